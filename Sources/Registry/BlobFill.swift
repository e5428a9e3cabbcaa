import Foundation
import HTTPServer
import Hashing
import Logging
import Storage
import Synchronization
import Upstream

/// One upstream fetch of a missing blob, which every client asking for that blob reads from as it arrives.
///
/// The fill, not any client, owns the transfer: it runs on its own thread, streams the upstream's bytes into a
/// private upload (hashed on the way), and commits it with the same atomic step as a push once the digest
/// matches. Clients read the growing upload file up to what has been written and wait for more. A client that
/// goes away leaves the fill running, bounded by the upstream's stall timeout. On a mismatch or an upstream
/// failure nothing is committed and every waiting client's transfer is cut short of its promised length.
///
/// The fill writes around the page cache, so clients read what it wrote from the disk; the cache below the
/// slowest attached client is released as they go, as a streamed blob does (see `ReaderSource`).
final class BlobFill: @unchecked Sendable {
    /// How far the fill has got: waiting for the upstream, streaming a known length, committed, or failed.
    enum State {
        case starting
        case streaming(length: Int64)
        case complete(length: Int64)
        case failed(UpstreamError)
    }

    /// The blob being fetched, which the fetched bytes must hash to.
    let digest: Digest
    // Everything below is guarded by `condition`'s lock.
    private let condition = NSCondition()
    private var state = State.starting
    private var written: Int64 = 0
    private var reader: (any ObjectReader)?
    /// Where each attached client reads next, by the number `attach` gave it.
    private var positions: [Int: Int64] = [:]
    private var nextClient = 0
    /// The cache below this offset has been released.
    private var released: Int64 = 0

    /// Makes a fill for `digest` that has not yet heard from the upstream.
    init(digest: Digest) {
        self.digest = digest
    }

    /// Waits until the upstream has answered: the blob's length, or why there is none.
    func waitForLength() -> Result<Int64, UpstreamError> {
        condition.lock()
        defer { condition.unlock() }
        while true {
            switch state {
            case .starting: condition.wait()
            case .streaming(let length), .complete(let length): return .success(length)
            case .failed(let error): return .failure(error)
            }
        }
    }

    /// Registers a client that reads from `offset` on, answering its number for `read` and `detach`.
    func attach(at offset: Int64) -> Int {
        condition.lock()
        defer { condition.unlock() }
        nextClient += 1
        positions[nextClient] = offset
        return nextClient
    }

    /// Forgets a client, which no longer holds back the release of the cache.
    func detach(_ client: Int) {
        condition.lock()
        positions[client] = nil
        // The last client of a finished fill releases what is left, shorter than a step.
        var rest: Range<Int64>?
        if positions.isEmpty, case .complete(let length) = state, length > released {
            rest = released..<length
            released = length
        }
        let reader = self.reader
        condition.unlock()
        if let rest, let reader { reader.releaseCache(rest) }
    }

    /// Copies bytes at `offset` into `buffer` for `client`, waiting until they are written; nil once the fill has
    /// failed.
    func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer, for client: Int) -> Int? {
        condition.lock()
        while true {
            switch state {
            case .failed:
                condition.unlock()
                return nil
            case .complete(let length) where offset >= length:
                condition.unlock()
                return 0
            case .starting, .streaming, .complete:
                // Until the digest is verified the last byte is held back, so a client whose fill fails is cut
                // short of the promised length and never receives a complete, wrong blob.
                var readable = written
                if case .streaming(let length) = state { readable = min(written, length - 1) }
                if offset < readable, let reader {
                    let count = Int(min(Int64(buffer.count), readable - offset))
                    condition.unlock()
                    // pread on the shared descriptor needs no lock, and the bytes below `written` never change.
                    let read = try? reader.read(
                        at: offset, into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<count]))
                    if let read { advance(client, to: offset + Int64(read), reader) }
                    return read
                }
                condition.wait()
            }
        }
    }

    /// Records where `client` reads next and releases the cache below the slowest client, outside the lock.
    private func advance(_ client: Int, to offset: Int64, _ reader: any ObjectReader) {
        condition.lock()
        positions[client] = offset
        var passed: Range<Int64>?
        if let slowest = positions.values.min(), slowest - released >= ReaderSource.releaseStep {
            passed = released..<slowest
            released = slowest
        }
        condition.unlock()
        if let passed { reader.releaseCache(passed) }
    }

    /// Whether the fill has given up; a new request for the blob then starts another.
    var hasFailed: Bool {
        condition.lock()
        defer { condition.unlock() }
        if case .failed = state { return true }
        return false
    }

    // MARK: - The fill's side

    /// Gives clients the reader of the upload the fill writes into; until then they wait.
    func opened(_ reader: any ObjectReader) {
        condition.lock()
        self.reader = reader
        condition.unlock()
    }

    /// Records the length the upstream announced and wakes the clients waiting for it.
    func started(length: Int64) {
        update { $0 = .streaming(length: length) }
    }

    /// Records that the first `total` bytes are written and wakes the clients waiting for them.
    func advanced(to total: Int64) {
        condition.lock()
        written = total
        condition.broadcast()
        condition.unlock()
    }

    /// Records how the fill ended, committed at a length or failed, and wakes every waiting client.
    func finished(_ outcome: Result<Int64, UpstreamError>) {
        update { state in
            switch outcome {
            case .success(let length): state = .complete(length: length)
            case .failure(let error): state = .failed(error)
            }
        }
    }

    private func update(_ change: (inout State) -> Void) {
        condition.lock()
        change(&state)
        condition.broadcast()
        condition.unlock()
    }
}

/// The fills in progress, so that concurrent requests for one blob share one upstream fetch.
final class FillTable: Sendable {
    private let fills = Mutex<[String: BlobFill]>([:])

    /// The fill for this blob, and whether the caller must start it.
    func join(_ key: String, digest: Digest) -> (fill: BlobFill, isNew: Bool) {
        fills.withLock { table in
            // A failed fill stays in the table for a moment after its clients are told; it must not be joined.
            if let existing = table[key], !existing.hasFailed { return (existing, false) }
            let fill = BlobFill(digest: digest)
            table[key] = fill
            return (fill, true)
        }
    }

    /// Forgets a finished fill, unless a newer one has taken its place; later requests find the blob in the
    /// cache, or start again after a failure.
    func remove(_ key: String, _ fill: BlobFill) {
        fills.withLock { table in
            if table[key] === fill { table.removeValue(forKey: key) }
        }
    }
}

/// A response body read from a fill as it grows.
final class FillSource: HTTPBodySource {
    /// The fill the body is read from.
    let fill: BlobFill
    /// The offset in the blob the body starts at, for a range request.
    let start: Int64
    private let client: Int

    /// Makes a body that reads `fill` from `start` on.
    init(fill: BlobFill, start: Int64) {
        self.fill = fill
        self.start = start
        self.client = fill.attach(at: start)
    }

    func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        fill.read(at: start + offset, into: buffer, for: client)
    }

    func close() {
        fill.detach(client)
    }
}
