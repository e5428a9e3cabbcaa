import CLinux
import Foundation

/// The system calls the filesystem driver makes, each turning a failure into a `StorageError` naming the call.
enum System {
    /// The error for `call` failing on `path`, with the `errno` it set.
    static func fail(_ call: String, _ path: String, _ number: Int32 = errno) -> StorageError {
        StorageError(.system(call: call, errno: number), path: path)
    }

    /// The kernel's identifier for this boot: it changes when the machine restarts, and only then, so data written
    /// under the same identifier is still in the page cache even if the process that wrote it was killed.
    static let bootID: String = {
        guard let text = try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8) else {
            return "unknown"
        }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }()

    /// The file's status, or nil when nothing is there.
    static func status(_ path: String) throws -> stat? {
        var result = stat()
        guard stat(path, &result) == 0 else {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw fail("stat", path)
        }
        return result
    }

    /// Opens a file read-only; nil when nothing is there or it is a directory.
    static func openForReading(_ path: String) throws -> Int32? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            if errno == ENOENT || errno == ENOTDIR || errno == EISDIR { return nil }
            throw fail("open", path)
        }
        return descriptor
    }

    /// Opens a file for writing, creating it when missing and keeping what it holds.
    static func openForAppending(_ path: String) throws -> Int32 {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw fail("open", path) }
        return descriptor
    }

    /// Opens an existing file for writing that bypasses the page cache; -1 when that fails, as it does on
    /// filesystems without direct I/O.
    static func openForDirectWriting(_ path: String) -> Int32 {
        open(path, O_WRONLY | O_CLOEXEC | buildset_o_direct())
    }

    /// Creates a new file for writing; throws when one is already there.
    static func create(_ path: String) throws -> Int32 {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw fail("open", path) }
        return descriptor
    }

    /// The size in bytes of an open file.
    static func size(of descriptor: Int32, path: String) throws -> Int64 {
        var result = stat()
        guard fstat(descriptor, &result) == 0 else { throw fail("fstat", path) }
        return Int64(result.st_size)
    }

    /// Cuts an open file down to `length` bytes.
    static func truncate(_ descriptor: Int32, to length: Int64, path: String) throws {
        guard ftruncate(descriptor, off_t(length)) == 0 else { throw fail("ftruncate", path) }
    }

    /// Reads up to `buffer.count` bytes at the file's position, retrying when interrupted; answers 0 at the end.
    static func read(_ descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer, path: String) throws -> Int {
        while true {
            let count = Glibc.read(descriptor, buffer.baseAddress, buffer.count)
            if count >= 0 { return count }
            if errno != EINTR { throw fail("read", path) }
        }
    }

    /// Reads up to `buffer.count` bytes at `offset`, retrying when interrupted; answers 0 at the end.
    static func read(_ descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64, path: String)
        throws -> Int
    {
        while true {
            let count = pread(descriptor, buffer.baseAddress, buffer.count, off_t(offset))
            if count >= 0 { return count }
            if errno != EINTR { throw fail("pread", path) }
        }
    }

    /// Writes every byte at the file's position, going on after short and interrupted writes.
    static func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
        var written = 0
        while written < bytes.count {
            let count = Glibc.write(descriptor, bytes.baseAddress! + written, bytes.count - written)
            if count < 0 {
                if errno == EINTR { continue }
                throw fail("write", path)
            }
            written += count
        }
    }

    /// Writes every byte from `offset` on, going on after short and interrupted writes.
    static func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int64, path: String) throws {
        var written = 0
        while written < bytes.count {
            let count = pwrite(descriptor, bytes.baseAddress! + written, bytes.count - written, off_t(offset) + written)
            if count < 0 {
                if errno == EINTR { continue }
                throw fail("pwrite", path)
            }
            written += count
        }
    }

    /// Checks that a file holds exactly `expectedSize` bytes; a missing or different file is damage.
    static func checkSize(_ file: String, expectedSize: Int64, path: String) throws {
        guard let status = try status(file), Int64(status.st_size) == expectedSize else {
            throw StorageError(.corrupt, path: path)
        }
    }

    /// Flushes a file to the disk.
    static func syncPath(_ file: String) throws {
        let descriptor = open(file, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw fail("open", file) }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw fail("fsync", file) }
    }

    /// Flushes a directory's entries to the disk, so that files created or renamed in it survive a power loss.
    static func syncDirectory(_ directory: String) throws {
        let descriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw fail("open", directory) }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw fail("fsync", directory) }
    }

    /// The path without its last component; `.` for a path without a `/`.
    static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return String(path[..<slash])
    }

    /// Creates a directory and any missing parents; one that is already there is not an error.
    static func makeDirectories(_ path: String) throws {
        if mkdir(path, 0o755) == 0 || errno == EEXIST { return }
        guard errno == ENOENT else { throw fail("mkdir", path) }
        try makeDirectories(parent(of: path))
        guard mkdir(path, 0o755) == 0 || errno == EEXIST else { throw fail("mkdir", path) }
    }

    /// Renames `source` onto `target`, creating the target's directory when missing.
    static func renameCreatingParent(_ source: String, to target: String) throws {
        if rename(source, target) == 0 { return }
        guard errno == ENOENT else { throw fail("rename", target) }
        try makeDirectories(parent(of: target))
        guard rename(source, target) == 0 else { throw fail("rename", target) }
    }

    /// The names in a directory, without `.` and `..`; a missing one lists as empty.
    static func listDirectory(_ path: String) throws -> [String] {
        guard let directory = opendir(path) else {
            if errno == ENOENT || errno == ENOTDIR { return [] }
            throw fail("opendir", path)
        }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Removes a file or a directory with everything in it; nothing there is not an error.
    static func removeTree(_ path: String) throws {
        if unlink(path) == 0 || errno == ENOENT { return }
        guard errno == EISDIR || errno == EPERM else { throw fail("unlink", path) }
        for name in try listDirectory(path) {
            try removeTree(path + "/" + name)
        }
        guard rmdir(path) == 0 || errno == ENOENT else { throw fail("rmdir", path) }
    }
}
