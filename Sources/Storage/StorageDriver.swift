import Foundation

/// What a storage backend offers: the few primitives that a filesystem and an object store both have.
///
/// No rename is assumed. A whole object is replaced atomically; an upload is written as segments under its own
/// path, and `commitSegments` makes them visible at a final path in one atomic step (a rename on a filesystem,
/// one manifest or object PUT on an object store).
public protocol StorageDriver: Sendable {
    /// The size and age of the object at `path`, or nil when there is none.
    func info(_ path: StoragePath) throws -> ObjectInfo?

    /// The whole content of a small object, or nil when there is none; throws when it is larger than `limit`.
    func read(_ path: StoragePath, limit: Int) throws -> [UInt8]?

    /// Opens an object for reading, or answers nil when there is none.
    func openReader(_ path: StoragePath) throws -> (any ObjectReader)?

    /// Replaces the object at `path` with `bytes`; a reader sees the old content or the new, never a mix. When
    /// `durable` is false the object may be lost, never torn, if the machine loses power soon after.
    func write(_ path: StoragePath, _ bytes: [UInt8], durable: Bool) throws

    /// The names directly under `directory`, in no particular order; empty when there are none.
    func list(_ directory: StoragePath) throws -> [String]

    /// Removes the object at `path`, or everything under it; nothing there is not an error.
    func delete(_ path: StoragePath) throws

    /// Opens the upload at `upload` for appending bytes that start at `offset`; anything stored past `offset` by
    /// an earlier, interrupted writer is discarded.
    func openSegmentWriter(_ upload: StoragePath, at offset: Int64) throws -> any SegmentWriter

    /// Makes the `length` bytes of the upload at `upload` visible at `destination` in one atomic step, then
    /// removes the upload. Answers false when `destination` already existed: the upload is dropped and the
    /// existing object, which has the same content, stays.
    func commitSegments(_ upload: StoragePath, length: Int64, to destination: StoragePath) throws -> Bool

    /// Makes `destination` hold the same bytes as `source` in one atomic step, on the store's side (a hard link on a
    /// filesystem, a server-side copy on an object store); an existing `destination` is left as it is.
    func copy(_ source: StoragePath, to destination: StoragePath) throws

    /// Objects committed before the machine last restarted whose flush to disk may not have finished; they must
    /// be checked before they are served.
    func unsyncedObjects() throws -> [StoragePath]

    /// Whether data written by an earlier process may have been lost since: the machine restarted in between.
    func mayHaveLostWrites(since writer: String) -> Bool

    /// What identifies this process's writes for `mayHaveLostWrites(since:)`.
    var writerIdentity: String { get }

    /// Forgets the objects `unsyncedObjects()` listed, once each has been checked or removed.
    func markAllSynced() throws

    /// Waits until everything committed so far is durable.
    func waitUntilDurable()
}

extension StorageDriver {
    /// Replaces an object durably.
    public func write(_ path: StoragePath, _ bytes: [UInt8]) throws {
        try write(path, bytes, durable: true)
    }

    /// A store whose writes are durable when they return never loses them.
    public func mayHaveLostWrites(since writer: String) -> Bool { false }

    /// A store whose writes are durable when they return needs no identity.
    public var writerIdentity: String { "" }

    /// A store whose writes are durable when they return has nothing to check.
    public func unsyncedObjects() throws -> [StoragePath] { [] }

    /// A store whose writes are durable when they return keeps no records.
    public func markAllSynced() throws {}

    /// A store whose writes are durable when they return never has to wait.
    public func waitUntilDurable() {}
}

/// The size and last modification time of an object.
public struct ObjectInfo: Sendable, Equatable {
    /// The size in bytes.
    public let size: Int64
    /// When the object was last written.
    public let modified: Date

    /// Makes an object description.
    public init(size: Int64, modified: Date) {
        self.size = size
        self.modified = modified
    }
}

/// An open object, read at any offset.
public protocol ObjectReader: AnyObject {
    /// The object's size in bytes.
    var size: Int64 { get }

    /// Reads up to `buffer.count` bytes at `offset`; answers 0 at the end.
    func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int

    /// Hands over a file descriptor for the object when it is a local file, so it can be sent with sendfile; the
    /// caller then owns and closes it, and this reader must not be used again.
    func takeFileDescriptor() -> Int32?

    /// Whether the object's bytes are in memory now, judged from a sample of them; a reader of a remote object
    /// answers false. A method, since it asks the kernel.
    func isCached() -> Bool

    /// Says that the bytes in `range` will not be read again soon, so the memory caching them can go to the next
    /// bytes read instead.
    func releaseCache(_ range: Range<Int64>)

    /// Releases the reader.
    func close()
}

/// Appends bytes to one upload.
public protocol SegmentWriter: AnyObject {
    /// Appends bytes.
    func write(_ bytes: UnsafeRawBufferPointer) throws

    /// Ends this segment; everything written is stored when this returns.
    func finish() throws

    /// Gives up this segment; what was written may or may not be kept.
    func abandon()

    /// How the address of the next write's bytes should line up for the write to cost least: `phase` bytes past
    /// a multiple of `boundary`. A writer that does not care answers a boundary of 1.
    var alignment: (boundary: Int, phase: Int) { get }
}

extension ObjectReader {
    /// Not a local file: nothing is cached.
    public func isCached() -> Bool { false }

    /// Not a local file: nothing to release.
    public func releaseCache(_ range: Range<Int64>) {}
}

extension SegmentWriter {
    /// No preference: any address will do.
    public var alignment: (boundary: Int, phase: Int) { (1, 0) }
}

/// A storage operation that failed.
public struct StorageError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure this is.
    public enum Kind: Sendable, Equatable {
        /// A system call failed.
        case system(call: String, errno: Int32)
        /// An object is larger than the caller allowed.
        case tooLarge
        /// Stored data is not what the registry wrote, or is incomplete.
        case corrupt
    }

    /// What kind of failure this is.
    public let kind: Kind
    /// The storage path involved.
    public let path: String

    /// Makes an error.
    public init(_ kind: Kind, path: String) {
        self.kind = kind
        self.path = path
    }

    /// The failure in words, naming the call and the path.
    public var description: String {
        switch kind {
        case .system(let call, let number): "\(call) failed for \(path): \(String(cString: strerror(number)))"
        case .tooLarge: "object too large: \(path)"
        case .corrupt: "stored data is incomplete or damaged: \(path)"
        }
    }
}
