import Foundation

/// Stores objects as files under a root directory.
///
/// Whole objects are written into `_tmp`, fsynced and renamed into place. Uploads append to one `data` file each,
/// which the commit renames onto the blob's path, so committing copies no bytes whatever the size.
///
/// Durability of a committed upload: flushing a large file to this class of disk takes seconds (about 220 MB/s
/// here), far longer than receiving it, so the commit does not wait for it. Before the rename, a small fsynced
/// record in `_sync` names the file; a background queue fsyncs the file and its directory and then drops the
/// record. After a power loss, `unsyncedObjects()` lists the files whose flush may not have finished, and the
/// registry verifies each against its digest before serving anything, so a torn file is never served. A process
/// that is killed loses nothing: the page cache survives it.
public final class FilesystemDriver: StorageDriver {
    /// The root directory, absolute.
    public let root: String
    private let syncQueue = DispatchQueue(label: "buildset-registry.fsync")

    /// Uses `root` as the storage root, creating it when missing.
    public init(root: String) throws {
        let absolute = root.hasPrefix("/") ? root : FileManager.default.currentDirectoryPath + "/" + root
        self.root = absolute
        try System.makeDirectories(absolute)
        try System.makeDirectories(absolute + "/" + StorageLayout.temporary.description)
        try System.makeDirectories(absolute + "/" + Self.syncRecords)
    }

    /// The directory of records naming committed files whose flush to disk may not have finished.
    static let syncRecords = "_sync"

    /// The absolute file path of a storage path.
    func file(_ path: StoragePath) -> String {
        root + "/" + path.description
    }

    /// Stats the file at `path`; directories are not objects.
    public func info(_ path: StoragePath) throws -> ObjectInfo? {
        guard let status = try System.status(file(path)), (status.st_mode & S_IFMT) == S_IFREG else { return nil }
        let modified = Date(
            timeIntervalSince1970: Double(status.st_mtim.tv_sec) + Double(status.st_mtim.tv_nsec) / 1e9)
        return ObjectInfo(size: Int64(status.st_size), modified: modified)
    }

    /// Reads a small file whole.
    public func read(_ path: StoragePath, limit: Int) throws -> [UInt8]? {
        guard let descriptor = try System.openForReading(file(path)) else { return nil }
        defer { close(descriptor) }
        let size = try System.size(of: descriptor, path: file(path))
        guard size <= limit else { throw StorageError(.tooLarge, path: path.description) }
        // Objects are replaced by rename, never written in place, so the size read above is the size to read.
        var bytes = [UInt8](repeating: 0, count: Int(size))
        var filled = 0
        while filled < bytes.count {
            let count = try bytes.withUnsafeMutableBytes {
                try System.read(
                    descriptor, into: UnsafeMutableRawBufferPointer(rebasing: $0[filled...]), path: file(path))
            }
            guard count > 0 else { throw StorageError(.corrupt, path: path.description) }
            filled += count
        }
        return bytes
    }

    /// Opens the file for reading at any offset, or for sendfile.
    public func openReader(_ path: StoragePath) throws -> (any ObjectReader)? {
        guard let descriptor = try System.openForReading(file(path)) else { return nil }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            let number = errno
            close(descriptor)
            throw StorageError(.system(call: "fstat", errno: number), path: path.description)
        }
        return FileReader(descriptor: descriptor, size: Int64(status.st_size), path: path.description)
    }

    /// Writes the bytes into `_tmp` and renames the file into place.
    public func write(_ path: StoragePath, _ bytes: [UInt8], durable: Bool) throws {
        let temporary = file(StorageLayout.temporary) + "/" + UploadID.make().value
        let descriptor = try System.create(temporary)
        do {
            try bytes.withUnsafeBytes { try System.writeAll(descriptor, $0, path: temporary) }
            // Flushed before the rename, so a power loss leaves the old object or the new one, never an empty one.
            if durable {
                guard fsync(descriptor) == 0 else { throw System.fail("fsync", temporary) }
            }
            close(descriptor)
            try System.renameCreatingParent(temporary, to: file(path))
        } catch {
            close(descriptor)
            unlink(temporary)
            throw error
        }
    }

    /// Lists a directory; a missing one lists as empty.
    public func list(_ directory: StoragePath) throws -> [String] {
        try System.listDirectory(file(directory))
    }

    /// Removes a file or a whole directory tree.
    public func delete(_ path: StoragePath) throws {
        try System.removeTree(file(path))
    }

    /// Opens the upload's `data` file, truncated to `offset`.
    public func openSegmentWriter(_ upload: StoragePath, at offset: Int64) throws -> any SegmentWriter {
        let directory = file(upload)
        try System.makeDirectories(directory)
        let data = directory + "/data"
        let descriptor = try System.openForAppending(data)
        do {
            let size = try System.size(of: descriptor, path: data)
            // Fewer bytes than the upload's state records means data written before a crash never reached the
            // disk; more means a writer died after writing and before recording. Only the second can be repaired.
            guard size >= offset else { throw StorageError(.corrupt, path: upload.description) }
            if size > offset {
                try System.truncate(descriptor, to: offset, path: data)
            }
        } catch {
            close(descriptor)
            throw error
        }
        return FileSegmentWriter(
            descriptor: descriptor, direct: System.openForDirectWriting(data), offset: offset, path: data)
    }

    /// Fsyncs the upload's `data` file, renames it onto `destination` and fsyncs the directory.
    public func commitSegments(_ upload: StoragePath, length: Int64, to destination: StoragePath) throws -> Bool {
        let data = file(upload) + "/data"
        let target = file(destination)

        try System.checkSize(data, expectedSize: length, path: upload.description)

        if try System.status(target) != nil {
            try System.removeTree(file(upload))
            return false
        }

        let record = try recordUnsynced(destination)

        try System.renameCreatingParent(data, to: target)

        syncInBackground(target, record: record)
        try System.removeTree(file(upload))
        return true
    }

    /// Hard-links `source` at `destination`, so both share the bytes; the link appears whole or not at all.
    public func copy(_ source: StoragePath, to destination: StoragePath) throws {
        let target = file(destination)
        if link(file(source), target) == 0 || errno == EEXIST { return }
        guard errno == ENOENT, try System.status(file(source)) != nil else { throw System.fail("link", target) }
        try System.makeDirectories(System.parent(of: target))
        guard link(file(source), target) == 0 || errno == EEXIST else { throw System.fail("link", target) }
    }

    /// The committed files whose flush to disk may not have finished before the machine last restarted. Records
    /// written during this boot are left out: their process may have been killed, but the page cache kept the data.
    public func unsyncedObjects() throws -> [StoragePath] {
        try syncRecords().compactMap { record in
            guard mayHaveLostWrites(since: record.writer) else { return nil }
            let components = record.target.split(separator: "/").map(String.init)
            guard components.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else { return nil }
            return StoragePath(unchecked: components)
        }
    }

    /// Flushes every file that still has a sync record and drops the records, once `unsyncedObjects()` were checked.
    public func markAllSynced() throws {
        for record in try syncRecords() {
            if let descriptor = try System.openForReading(root + "/" + record.target) {
                fsync(descriptor)
                close(descriptor)
            }
            unlink(record.file)
        }
    }

    /// Whether the machine restarted since `writer` wrote: only then can the page cache have lost its data.
    public func mayHaveLostWrites(since writer: String) -> Bool {
        writer != System.bootID
    }

    /// This boot's identifier.
    public var writerIdentity: String { System.bootID }

    /// Each record holds the writer's boot identifier and the committed file's path, one a line.
    private func syncRecords() throws -> [(file: String, writer: String, target: String)] {
        let directory = root + "/" + Self.syncRecords
        return try System.listDirectory(directory).compactMap { name in
            guard let bytes = try read(StoragePath(unchecked: [Self.syncRecords, name]), limit: 4096) else {
                return nil
            }
            let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init)
            guard let target = lines.last else { return nil }
            return (directory + "/" + name, lines.count > 1 ? lines[0] : "", target)
        }
    }

    /// Waits until every committed file so far is on disk.
    public func waitUntilDurable() {
        syncQueue.sync {}
    }

    private func recordUnsynced(_ destination: StoragePath) throws -> String {
        let record = root + "/" + Self.syncRecords + "/" + UploadID.make().value
        let descriptor = try System.create(record)
        defer { close(descriptor) }
        let content = System.bootID + "\n" + destination.description
        try Array(content.utf8).withUnsafeBytes { try System.writeAll(descriptor, $0, path: record) }
        guard fsync(descriptor) == 0 else { throw System.fail("fsync", record) }
        try System.syncDirectory(root + "/" + Self.syncRecords)
        return record
    }

    private func syncInBackground(_ target: String, record: String) {
        syncQueue.async {
            do {
                try System.syncPath(target)
                try System.syncDirectory(System.parent(of: target))
                unlink(record)
            } catch {
                // The record stays, so the file is checked again at the next start.
            }
        }
    }
}

/// Reads a local file by offset.
///
/// Readers that stream a large file once release what they have read (`releaseCache`), so that the pages the
/// kernel reads ahead into are ones it just freed. On the virtual machines this registry runs on, a page the
/// kernel has not used lately costs a fault in the hypervisor on first touch: reading 1 GiB that was not cached
/// ran at 810 MB/s, and at 2.5-3.3 GB/s when every 8 MiB read was released (`bench/page-cache.py`, here).
final class FileReader: ObjectReader {
    private var descriptor: Int32
    let size: Int64
    private let path: String

    /// Makes a reader over `descriptor`, an open file of `size` bytes; `path` names the file in errors.
    init(descriptor: Int32, size: Int64, path: String) {
        self.descriptor = descriptor
        self.size = size
        self.path = path
    }

    deinit { close() }

    func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try System.read(descriptor, into: buffer, at: offset, path: path)
    }

    func takeFileDescriptor() -> Int32? {
        let taken = descriptor
        descriptor = -1
        return taken
    }

    /// How many pages `isCached()` looks at.
    static let cacheSamples = 16

    func isCached() -> Bool {
        guard size > 0 else { return true }
        let pageSize = Int64(getpagesize())
        guard let mapping = mmap(nil, Int(size), PROT_READ, MAP_SHARED, descriptor, 0), mapping != MAP_FAILED else {
            return true
        }
        defer { munmap(mapping, Int(size)) }
        // Mapping costs no I/O and mincore reads no data: this only asks the page cache which pages it holds.
        var resident = 0
        for sample in 0..<Self.cacheSamples {
            let page = (size - 1) * Int64(sample) / Int64(Self.cacheSamples - 1) / pageSize * pageSize
            var flag: UInt8 = 0
            if mincore(mapping + Int(page), Int(pageSize), &flag) == 0, flag & 1 != 0 { resident += 1 }
        }
        return resident * 4 >= Self.cacheSamples * 3
    }

    func releaseCache(_ range: Range<Int64>) {
        _ = posix_fadvise(descriptor, off_t(range.lowerBound), off_t(range.count), POSIX_FADV_DONTNEED)
    }

    func close() {
        if descriptor >= 0 {
            Glibc.close(descriptor)
            descriptor = -1
        }
    }
}

/// Appends to an upload's data file.
///
/// Runs of whole blocks go through a second descriptor opened with `O_DIRECT`, from the caller's buffer straight
/// to the disk. Through the page cache, each byte of a new blob needs a page of memory the kernel has not used
/// lately, and on the virtual machines this registry runs on the first touch of such a page costs a fault in the
/// hypervisor: writing 1 GiB ran at 400-620 MB/s through the page cache against 3.1-3.4 GB/s direct
/// (`bench/page-cache.py`, here). Direct I/O takes whole blocks at block-aligned addresses and offsets only, so
/// the bytes before the first block boundary and after the last one go through the page cache, and so does
/// everything when the caller's buffer does not line up (see `alignment`) or the filesystem refuses direct I/O.
final class FileSegmentWriter: SegmentWriter {
    /// The block that direct writes are aligned to, in memory and in the file: a multiple of the logical block
    /// size of the disks and filesystems Linux has.
    static let block = 4096

    private var descriptor: Int32
    private var direct: Int32
    private var offset: Int64
    private let path: String

    /// Makes a writer that writes through `descriptor` from `offset` on, and through `direct`, a descriptor of the
    /// same file opened with `O_DIRECT` or -1, wherever it can; `path` names the file in errors.
    init(descriptor: Int32, direct: Int32, offset: Int64, path: String) {
        self.descriptor = descriptor
        self.direct = direct
        self.offset = offset
        self.path = path
    }

    deinit { abandon() }

    var alignment: (boundary: Int, phase: Int) {
        direct >= 0 ? (Self.block, Int(offset % Int64(Self.block))) : (1, 0)
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        var rest = bytes
        let phase = Int(offset % Int64(Self.block))
        if direct >= 0, let base = bytes.baseAddress, Int(bitPattern: base) % Self.block == phase {
            let head = min(rest.count, (Self.block - phase) % Self.block)
            try writeBuffered(UnsafeRawBufferPointer(rebasing: rest[..<head]))
            let blocks = (rest.count - head) / Self.block * Self.block
            try writeDirect(UnsafeRawBufferPointer(rebasing: rest[head..<(head + blocks)]))
            rest = UnsafeRawBufferPointer(rebasing: rest[(head + blocks)...])
        }
        try writeBuffered(rest)
    }

    private func writeBuffered(_ bytes: UnsafeRawBufferPointer) throws {
        guard !bytes.isEmpty else { return }
        try System.writeAll(descriptor, bytes, at: offset, path: path)
        offset += Int64(bytes.count)
    }

    private func writeDirect(_ bytes: UnsafeRawBufferPointer) throws {
        guard !bytes.isEmpty else { return }
        let count = pwrite(direct, bytes.baseAddress, bytes.count, off_t(offset))
        if count == bytes.count {
            offset += Int64(count)
            return
        }
        guard count >= 0 || errno == EINVAL || errno == EINTR else { throw System.fail("pwrite", path) }
        // Refused (EINVAL: the filesystem takes no direct I/O) or cut short, which leaves the offset unaligned:
        // the rest goes through the page cache, and so does every later write.
        let done = max(count, 0)
        offset += Int64(done)
        closeDirect()
        try writeBuffered(UnsafeRawBufferPointer(rebasing: bytes[done...]))
    }

    func finish() throws {
        // Durability waits for the commit's fsync. Until then a killed process loses nothing: direct writes are
        // on the disk when they return, and the page cache holds the rest.
        abandon()
    }

    func abandon() {
        closeDirect()
        if descriptor >= 0 {
            close(descriptor)
            descriptor = -1
        }
    }

    private func closeDirect() {
        if direct >= 0 {
            close(direct)
            direct = -1
        }
    }
}
