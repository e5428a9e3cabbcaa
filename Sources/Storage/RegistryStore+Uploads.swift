import Foundation
import Hashing

/// What storage records about an upload between requests.
///
/// The saved SHA-256 state lets any process continue the digest where the last chunk left it, without reading
/// back the bytes already received.
struct UploadRecord: Codable {
    /// The namespace the blob is committed into.
    var namespace: String
    /// The repository the upload was started in.
    var repository: String
    /// How many bytes the upload has received.
    var offset: Int64
    /// The saved SHA-256 state over those bytes.
    var hashState: Data
    /// When the upload was started, in seconds since 1970.
    var startedAt: Double
    /// Who wrote the data the hash state describes; see `StorageDriver.mayHaveLostWrites(since:)`.
    var writer: String?
}

/// The progress of an upload, as a client can learn it.
public struct UploadStatus: Sendable, Equatable {
    /// The repository the upload was started in.
    public let repository: RepositoryName
    /// How many bytes have been received.
    public let offset: Int64
    /// When the upload was started.
    public let startedAt: Date
}

extension RegistryStore {
    /// Starts an empty upload into `repository`.
    public func startUpload(in repository: RepositoryName, namespace: Namespace = .local) throws -> UploadID {
        let id = UploadID.make()
        let record = UploadRecord(
            namespace: namespace.value, repository: repository.value, offset: 0,
            hashState: Data(SHA256Hasher().savedState), startedAt: Date().timeIntervalSince1970,
            writer: driver.writerIdentity)
        try save(record, for: id)
        return id
    }

    /// The progress of an upload in `repository`, or nil when there is no such upload there.
    public func uploadStatus(_ id: UploadID, in repository: RepositoryName) throws -> UploadStatus? {
        guard let record = try loadRecord(id), record.repository == repository.value else { return nil }
        return UploadStatus(
            repository: repository, offset: record.offset, startedAt: Date(timeIntervalSince1970: record.startedAt))
    }

    /// Opens an upload for the next chunk; `expectedOffset` is where the client says the chunk starts, when it
    /// says so.
    public func openUpload(_ id: UploadID, in repository: RepositoryName, expectedOffset: Int64? = nil) throws
        -> UploadAppender
    {
        guard let record = try loadRecord(id), record.repository == repository.value else {
            throw RegistryStoreError(.uploadUnknown)
        }
        if let expectedOffset, expectedOffset != record.offset {
            throw RegistryStoreError(.uploadOutOfOrder(offset: record.offset))
        }
        guard var hasher = SHA256Hasher(savedState: Array(record.hashState)) else {
            throw RegistryStoreError(.uploadDamaged)
        }
        // After a restart of the machine the bytes on disk may differ from what the saved state hashed, so the
        // state is rebuilt from them; a torn byte then fails the digest check instead of being committed.
        if driver.mayHaveLostWrites(since: record.writer ?? "") {
            hasher = try rehashUpload(id, length: record.offset)
        }
        let writer: any SegmentWriter
        do {
            writer = try driver.openSegmentWriter(StorageLayout.upload(id), at: record.offset)
        } catch let error as StorageError where error.kind == .corrupt {
            throw RegistryStoreError(.uploadDamaged)
        }
        var current = record
        current.writer = driver.writerIdentity
        return UploadAppender(store: self, id: id, record: current, hasher: hasher, writer: writer)
    }

    private func rehashUpload(_ id: UploadID, length: Int64) throws -> SHA256Hasher {
        guard let reader = try driver.openReader(StorageLayout.upload(id).appending("data")), reader.size >= length
        else {
            throw RegistryStoreError(.uploadDamaged)
        }
        defer { reader.close() }
        var hasher = SHA256Hasher()
        do {
            try Self.readBack(reader, length: length) { hasher.update($0) }
        } catch let error as StorageError where error.kind == .corrupt {
            throw RegistryStoreError(.uploadDamaged)
        }
        logger.warning("upload rehashed after a restart of the machine", ["upload.id": id.value])
        return hasher
    }

    /// Opens the bytes an upload has received so far, for reading while it grows; the reader stays valid after
    /// the upload is committed or removed.
    public func openUploadData(_ id: UploadID) throws -> (any ObjectReader)? {
        try driver.openReader(StorageLayout.upload(id).appending("data"))
    }

    /// Removes an upload and everything it received; answers false when there was none in `repository`.
    public func cancelUpload(_ id: UploadID, in repository: RepositoryName) throws -> Bool {
        guard let record = try loadRecord(id), record.repository == repository.value else { return false }
        try driver.delete(StorageLayout.upload(id))
        return true
    }

    /// Every upload in storage with its start time, for pruning abandoned ones.
    public func uploads() throws -> [(id: UploadID, startedAt: Date)] {
        try driver.list(StorageLayout.uploads).compactMap { name in
            guard let id = UploadID(name) else { return nil }
            if let record = try? loadRecord(id) {
                return (id, Date(timeIntervalSince1970: record.startedAt))
            }
            let age = try driver.info(StorageLayout.upload(id).appending("data"))?.modified ?? .distantPast
            return (id, age)
        }
    }

    /// The stored record of an upload, or nil when there is none; throws when it is damaged.
    func loadRecord(_ id: UploadID) throws -> UploadRecord? {
        guard let bytes = try driver.read(StorageLayout.uploadState(id), limit: Self.recordLimit) else { return nil }
        guard let record = try? JSONDecoder().decode(UploadRecord.self, from: Data(bytes)) else {
            throw RegistryStoreError(.uploadDamaged)
        }
        return record
    }

    /// Stores the record of an upload, without flushing it to disk.
    func save(_ record: UploadRecord, for id: UploadID) throws {
        let bytes = try JSONEncoder().encode(record)
        // Not flushed: a state lost with the machine only makes the client start the upload again.
        try driver.write(StorageLayout.uploadState(id), Array(bytes), durable: false)
    }
}

/// Takes the bytes of one request into an upload, hashing them on the way.
///
/// Chunks of one upload arrive in order, one request at a time, so an appender needs no lock: it only checks, when
/// opened, that the chunk starts where the stored state says the upload ends.
public final class UploadAppender {
    /// The upload being written.
    public let id: UploadID
    private let store: RegistryStore
    private var record: UploadRecord
    private var hasher: SHA256Hasher
    private let writer: any SegmentWriter
    private var pipeline: UploadPipeline?
    private var isOpen = true

    /// Below this many bytes in one request, hashing and writing inline costs less than handing them over.
    static let pipelineThreshold = 256 * 1024

    /// Makes an appender that continues `record`, hashing on from `hasher`'s state and writing through `writer`.
    init(store: RegistryStore, id: UploadID, record: UploadRecord, hasher: SHA256Hasher, writer: any SegmentWriter) {
        self.store = store
        self.id = id
        self.record = record
        self.hasher = hasher
        self.writer = writer
    }

    /// How many bytes the upload holds, counting this request's so far.
    public var offset: Int64 { record.offset }

    /// The repository the upload belongs to.
    public var repository: RepositoryName { RepositoryName(record.repository)! }

    /// Appends bytes to the upload.
    public func append(_ bytes: UnsafeRawBufferPointer) throws {
        if pipeline == nil, bytes.count >= Self.pipelineThreshold || received >= Self.pipelineThreshold {
            pipeline = UploadPipeline(writer: writer, hasher: hasher, alreadyWritten: received, onWritten: onWritten)
        }
        if let pipeline {
            try pipeline.append(bytes)
        } else {
            try writer.write(bytes)
            hasher.update(bytes)
            onWritten?(received + Int64(bytes.count))
        }
        received += Int64(bytes.count)
        record.offset += Int64(bytes.count)
    }

    private var received: Int64 = 0

    /// Told how many of this request's bytes are stored, after each write, possibly on another thread: for
    /// readers of an upload that is still growing.
    public var onWritten: (@Sendable (Int64) -> Void)?

    /// Ends this request's chunk and records the upload's new length and hash state.
    @discardableResult
    public func save() throws -> Int64 {
        guard isOpen else { return record.offset }
        isOpen = false
        if let pipeline {
            hasher = try pipeline.finish()
            self.pipeline = nil
        }
        try writer.finish()
        record.hashState = Data(hasher.savedState)
        try store.save(record, for: id)
        return record.offset
    }

    /// Records what arrived before the client went away, so the upload can be resumed from there.
    public func saveAfterInterruption() {
        guard isOpen else { return }
        do {
            try save()
            store.logger.info("upload interrupted", ["upload.id": id.value, "offset": String(record.offset)])
        } catch {
            store.logger.error("upload state not saved", ["upload.id": id.value, "error": "\(error)"])
        }
    }

    /// Ends the upload: checks the content against `expected` and makes it visible as a blob of the repository.
    ///
    /// The digest computed while streaming is compared first; only matching content is committed, in the
    /// driver's one atomic step. When the blob already exists, the upload is dropped and this still succeeds.
    public func commit(as expected: Digest) throws {
        try save()
        let upload = StorageLayout.upload(id)
        let actual = try expected.algorithm == .sha256 ? hasher.digest() : rehash(as: expected.algorithm)
        guard actual == expected else {
            try? store.driver.delete(upload)
            store.logger.error(
                "upload content does not match its digest",
                ["upload.id": id.value, "digest": expected.description, "actual": actual.description])
            throw RegistryStoreError(.digestMismatch(expected: expected, actual: actual))
        }
        guard let namespace = Namespace(recorded: record.namespace) else { throw RegistryStoreError(.uploadDamaged) }

        let created = try store.driver.commitSegments(
            upload, length: record.offset, to: StorageLayout.blob(expected, in: namespace))

        try store.linkBlob(expected, into: repository, namespace: namespace)

        store.logger.debug(
            created ? "blob committed" : "blob already present, upload dropped",
            ["upload.id": id.value, "digest": expected.description, "size": String(record.offset)])
    }

    // Digests other than SHA-256 are rare enough that reading the upload back costs less than hashing twice.
    private func rehash(as algorithm: Digest.Algorithm) throws -> Digest {
        guard let reader = try store.driver.openReader(StorageLayout.upload(id).appending("data")) else {
            throw RegistryStoreError(.uploadDamaged)
        }
        return try RegistryStore.digest(of: reader, algorithm: algorithm)
    }
}
