import Foundation
import Hashing
import Logging

/// The registry's view of storage: blobs, uploads, manifests, tags and referrers, each kept per namespace.
///
/// Everything here goes through a `StorageDriver`, so a second process (a restarted server, or a replica on the
/// same storage) sees exactly what this one wrote; nothing is kept only in memory.
public final class RegistryStore: Sendable {
    /// The backend that holds the bytes.
    public let driver: any StorageDriver
    /// Where damaged blobs and interrupted, rehashed or mismatched uploads are logged.
    let logger: Logger

    /// The largest link, tag or state record read back; anything larger is damaged.
    static let recordLimit = 64 * 1024

    /// Makes a store over `driver`.
    public init(driver: any StorageDriver, logger: Logger = Logger(label: "storage")) {
        self.driver = driver
        self.logger = logger
    }

    /// Checks the content an earlier process committed but may not have flushed to disk before it stopped, and
    /// removes any that no longer matches its digest; answers how many were checked and how many removed.
    @discardableResult
    public func recoverUnsyncedContent() throws -> (checked: Int, removed: Int) {
        var checked = 0
        var removed = 0
        for path in try driver.unsyncedObjects() {
            guard let digest = StorageLayout.blobDigest(path), let reader = try driver.openReader(path) else {
                continue
            }
            checked += 1
            let actual = try Self.digest(of: reader, algorithm: digest.algorithm)
            if actual != digest {
                try driver.delete(path)
                removed += 1
                logger.error("damaged blob removed", ["digest": digest.description, "actual": actual.description])
            }
        }
        try driver.markAllSynced()
        return (checked, removed)
    }

    /// Hashes a whole object by reading it back, and closes the reader.
    static func digest(of reader: any ObjectReader, algorithm: Digest.Algorithm) throws -> Digest {
        defer { reader.close() }
        let hasher = StreamHasher(algorithm)
        try readBack(reader, length: reader.size) { hasher.update($0) }
        return hasher.finish()
    }

    /// Hands the first `length` bytes of an object to `body`, a megabyte at a time; throws when it is shorter.
    static func readBack(_ reader: any ObjectReader, length: Int64, _ body: (UnsafeRawBufferPointer) -> Void) throws {
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var position: Int64 = 0
        while position < length {
            let wanted = Int(min(Int64(buffer.count), length - position))
            let count = try buffer.withUnsafeMutableBytes {
                try reader.read(at: position, into: UnsafeMutableRawBufferPointer(rebasing: $0[..<wanted]))
            }
            guard count > 0 else { throw StorageError(.corrupt, path: "object shorter than \(length) bytes") }
            buffer.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
            position += Int64(count)
        }
    }

    // MARK: - Blobs

    /// The size of a blob the repository holds, or nil when the repository does not hold it.
    public func blobSize(_ digest: Digest, in repository: RepositoryName, namespace: Namespace = .local) throws
        -> Int64?
    {
        guard try driver.info(StorageLayout.layerLink(digest, repository, in: namespace)) != nil else { return nil }
        return try driver.info(StorageLayout.blob(digest, in: namespace))?.size
    }

    /// Opens a blob the repository holds, or answers nil when it does not hold it.
    public func openBlob(_ digest: Digest, in repository: RepositoryName, namespace: Namespace = .local) throws
        -> (any ObjectReader)?
    {
        guard try driver.info(StorageLayout.layerLink(digest, repository, in: namespace)) != nil else { return nil }
        return try driver.openReader(StorageLayout.blob(digest, in: namespace))
    }

    /// Makes a blob that already exists in the namespace belong to `repository` too.
    public func linkBlob(_ digest: Digest, into repository: RepositoryName, namespace: Namespace = .local) throws {
        try driver.write(StorageLayout.layerLink(digest, repository, in: namespace), Array(digest.description.utf8))
    }

    /// Links a blob held by `source` into `target`; answers false when `source` does not hold it.
    public func mountBlob(
        _ digest: Digest, from source: RepositoryName, into target: RepositoryName, namespace: Namespace = .local
    ) throws -> Bool {
        guard try blobSize(digest, in: source, namespace: namespace) != nil else { return false }
        try linkBlob(digest, into: target, namespace: namespace)
        return true
    }

    /// Brings a blob another namespace holds for `source` into `target` of `namespace`; answers false when the
    /// other namespace does not hold it for `source`.
    public func importBlob(
        _ digest: Digest, from source: RepositoryName, of other: Namespace, into target: RepositoryName,
        namespace: Namespace = .local
    ) throws -> Bool {
        guard try blobSize(digest, in: source, namespace: other) != nil else { return false }
        try driver.copy(StorageLayout.blob(digest, in: other), to: StorageLayout.blob(digest, in: namespace))
        try linkBlob(digest, into: target, namespace: namespace)
        return true
    }

    /// Removes a blob from a repository; answers false when the repository did not hold it.
    ///
    /// Only the link goes: other repositories may hold the same content, and the bytes are reclaimed by pruning.
    public func deleteBlob(_ digest: Digest, from repository: RepositoryName, namespace: Namespace = .local) throws
        -> Bool
    {
        let link = StorageLayout.layerLink(digest, repository, in: namespace)
        guard try driver.info(link) != nil else { return false }
        try driver.delete(link)
        return true
    }

    /// Stores small content, such as a manifest, as a blob of the namespace and links it into `repository`.
    public func storeBlob(
        _ bytes: [UInt8], digest: Digest, in repository: RepositoryName, namespace: Namespace = .local
    )
        throws
    {
        let path = StorageLayout.blob(digest, in: namespace)
        if try driver.info(path) == nil {
            try driver.write(path, bytes)
        }
        try linkBlob(digest, into: repository, namespace: namespace)
    }

    /// Whether any repository has ever held this name: it has blobs, manifests or tags.
    public func repositoryExists(_ repository: RepositoryName, namespace: Namespace = .local) throws -> Bool {
        let directory = StorageLayout.repository(repository, in: namespace)
        return try driver.list(directory).contains { $0 == "_manifests" || $0 == "_layers" }
    }
}

/// A registry-level failure that a client can be told about.
public struct RegistryStoreError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What went wrong.
    public enum Kind: Equatable, Sendable {
        /// The upload does not exist, or belongs to another repository.
        case uploadUnknown
        /// A chunk does not start where the upload ends; the upload has `offset` bytes.
        case uploadOutOfOrder(offset: Int64)
        /// The upload's stored data is damaged; it must be started again.
        case uploadDamaged
        /// The uploaded bytes do not hash to the digest the client named.
        case digestMismatch(expected: Digest, actual: Digest)
    }

    /// What went wrong.
    public let kind: Kind

    /// Makes an error of `kind`.
    init(_ kind: Kind) { self.kind = kind }

    /// The failure in words.
    public var description: String {
        switch kind {
        case .uploadUnknown: "upload unknown"
        case .uploadOutOfOrder(let offset): "chunk does not start at the upload's end, \(offset)"
        case .uploadDamaged: "upload data damaged"
        case .digestMismatch(let expected, let actual): "content is \(actual), not \(expected)"
        }
    }
}
