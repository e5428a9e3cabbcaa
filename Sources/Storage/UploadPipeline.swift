import Dispatch
import Hashing
import Synchronization

/// Hashes and writes an upload's bytes on two background queues while the connection's thread goes on receiving.
///
/// Done one after the other on the receiving thread, hashing (1.4 to 1.9 GB/s here) and writing cost more than
/// receiving, and the socket stalls while they run. Here the receiving thread only copies bytes into large
/// buffers; each full buffer goes to a hashing queue and a writing queue at once, and goes back to the spare
/// buffers when both are done with it. Buffers keep their order on each queue, so the hash and the file see the
/// same bytes in the same order. Memory is bounded: an upload holds at most `bufferCount` buffers of `bufferSize`.
///
/// Each buffer's bytes sit where the writer's `alignment` asks, so a writer that bypasses the page cache can take
/// them without a copy: the first buffer starts filling at the asked phase, which leaves every later one aligned.
final class UploadPipeline: @unchecked Sendable {
    /// Bytes per buffer: ten 1 GiB pushes here, written through the page cache, gave a median of about 700 MB/s
    /// with 2 MiB against 630 MB/s with 1 MiB, for 4 MiB more peak memory per upload.
    static let bufferSize = 1 << 21
    /// How many buffers one upload may hold at once, which bounds its memory.
    static let bufferCount = 4
    /// The address boundary buffers start on: a page, which covers the alignment a writer can ask for.
    static let bufferAlignment = 4096

    private let writer: any SegmentWriter
    private var hasher: SHA256Hasher
    private let hashQueue = DispatchQueue(label: "buildset-registry.upload.hash")
    private let writeQueue = DispatchQueue(label: "buildset-registry.upload.write")
    /// Counts the buffers this upload may still take.
    private let available = DispatchSemaphore(value: UploadPipeline.bufferCount)
    private let inFlight = DispatchGroup()
    private var current: UnsafeMutableRawBufferPointer?
    private var filled = 0
    /// Where in a new buffer the next byte goes, so that its address lines up as the writer asks.
    private var start: Int
    private var writeError: (any Error)?
    /// How many bytes the writer has stored, starting from `alreadyWritten`; touched only on the write queue.
    private var written: Int64
    private let onWritten: (@Sendable (Int64) -> Void)?

    /// Makes a pipeline; `onWritten` is told, on the write queue, how many bytes are stored after each write.
    init(
        writer: any SegmentWriter, hasher: SHA256Hasher, alreadyWritten: Int64 = 0,
        onWritten: (@Sendable (Int64) -> Void)? = nil
    ) {
        self.writer = writer
        self.hasher = hasher
        self.written = alreadyWritten
        self.onWritten = onWritten
        let alignment = writer.alignment
        start = Self.bufferAlignment % alignment.boundary == 0 ? alignment.phase % alignment.boundary : 0
    }

    deinit {
        inFlight.wait()
        // An upload given up before `finish` still holds one. libdispatch refuses to free a semaphore below its
        // starting value, so it is counted back too.
        if let current {
            SpareBuffers.shared.giveBack(current)
            available.signal()
        }
    }

    /// Takes the next bytes of the upload; throws when an earlier write failed.
    func append(_ bytes: UnsafeRawBufferPointer) throws {
        var remaining = bytes
        while !remaining.isEmpty {
            if let writeError { throw writeError }
            if current == nil {
                current = takeBuffer()
                filled = start
            }
            let buffer = current!
            let count = min(remaining.count, buffer.count - filled)
            (buffer.baseAddress! + filled).copyMemory(from: remaining.baseAddress!, byteCount: count)
            filled += count
            remaining = UnsafeRawBufferPointer(rebasing: remaining[count...])
            if filled == buffer.count { submitCurrent() }
        }
    }

    /// Waits until every byte is hashed and written, and answers the hash state; throws when a write failed.
    func finish() throws -> SHA256Hasher {
        submitCurrent()
        inFlight.wait()
        if let writeError { throw writeError }
        return hashQueue.sync { hasher }
    }

    private func takeBuffer() -> UnsafeMutableRawBufferPointer {
        available.wait()
        return SpareBuffers.shared.take()
    }

    private func submitCurrent() {
        guard let buffer = current, filled > start else { return }
        let chunk = Chunk(buffer: buffer, bytes: UnsafeRawBufferPointer(rebasing: buffer[start..<filled]))
        current = nil
        // The buffer ended on a boundary, so the next one starts aligned.
        start = 0

        let both = DispatchGroup()
        inFlight.enter()
        both.enter()
        hashQueue.async {
            self.hasher.update(chunk.bytes)
            both.leave()
        }
        both.enter()
        writeQueue.async {
            if self.writeError == nil {
                do {
                    try self.writer.write(chunk.bytes)
                    self.written += Int64(chunk.bytes.count)
                    self.onWritten?(self.written)
                } catch {
                    self.writeError = error
                }
            }
            both.leave()
        }
        both.notify(queue: writeQueue) {
            SpareBuffers.shared.giveBack(chunk.buffer)
            self.available.signal()
            self.inFlight.leave()
        }
    }
}

/// Pipeline buffers kept between uploads, so that the next upload, or the next chunk of this one, fills memory
/// that is already mapped: a fresh mapping costs a page fault per 4 KiB, which on the virtual machines this
/// registry runs on the hypervisor takes as well. Measured here, 1 GiB pushed in 16 MiB chunks over one keep-alive
/// connection, three times in each of two rounds: 662-744 and 819-897 MB/s without, 834-869 and 873-987 MB/s with.
final class SpareBuffers: Sendable {
    /// The buffers all uploads share.
    static let shared = SpareBuffers()
    /// How many idle buffers are kept: enough for two uploads at a time; more are freed.
    static let limit = 2 * UploadPipeline.bufferCount

    private let idle = Mutex<[Buffer]>([])

    /// A buffer of `UploadPipeline.bufferSize` bytes, aligned as the pipeline needs.
    func take() -> UnsafeMutableRawBufferPointer {
        if let buffer = idle.withLock({ $0.popLast() }) { return buffer.bytes }
        return UnsafeMutableRawBufferPointer.allocate(
            byteCount: UploadPipeline.bufferSize, alignment: UploadPipeline.bufferAlignment)
    }

    /// Returns a buffer from `take()`, keeping it for the next upload or freeing it.
    func giveBack(_ bytes: UnsafeMutableRawBufferPointer) {
        let kept = idle.withLock { idle in
            guard idle.count < Self.limit else { return false }
            idle.append(Buffer(bytes: bytes))
            return true
        }
        if !kept { bytes.deallocate() }
    }

    /// An idle buffer; only the thread that took it out of `idle` touches it.
    private struct Buffer: @unchecked Sendable {
        let bytes: UnsafeMutableRawBufferPointer
    }
}

/// A filled buffer on its way through the queues; only one side writes to it, and nobody while it is queued.
private struct Chunk: @unchecked Sendable {
    let buffer: UnsafeMutableRawBufferPointer
    let bytes: UnsafeRawBufferPointer
}
