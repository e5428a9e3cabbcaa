import HTTPServer
import Hashing
import Storage
import Upstream

extension Registry {
    /// HEAD or GET of a blob, whole or by `Range`; manifests are readable here too, by digest.
    ///
    /// `_local` answers first; then the upstream cache; then the upstream, through a shared fill.
    func blob(_ name: RepositoryName, _ digest: Digest, _ request: HTTPRequest) throws -> HTTPResponse {
        let isHead = request.method == "HEAD"
        if let size = try store.blobSize(digest, in: name) {
            return try serveBlob(digest, size: size, repository: name, namespace: .local, request)
        }
        guard let pullThrough, let target = pullThrough.target(for: name, request) else {
            throw RegistryError(.blobUnknown, digest.description)
        }
        if let size = try pullThrough.cachedBlobSize(digest, target) {
            return try serveBlob(
                digest, size: size, repository: target.repository, namespace: target.namespace, request)
        }

        if isHead {
            // Clients HEAD each layer before pushing it, so an upstream that is down, refuses, or limits must not
            // fail the push: for a HEAD, anything but the upstream's yes is a plain "not here".
            guard let size = try? target.upstream.blobSize(target.upstreamName, digest: digest) else {
                throw RegistryError(.blobUnknown, digest.description)
            }
            return HTTPResponse(status: 200, headers: Self.blobHeaders(digest), body: .lengthOnly(size))
        }

        let fill = pullThrough.fill(digest, target)
        switch fill.waitForLength() {
        case .failure(let error):
            throw error.registryError(notFound: .blobUnknown)
        case .success(let size):
            return try ranged(digest, size: size, request) { start, length in
                .stream(length: length, source: FillSource(fill: fill, start: start))
            }
        }
    }

    private func serveBlob(
        _ digest: Digest, size: Int64, repository: RepositoryName, namespace: Namespace, _ request: HTTPRequest
    ) throws -> HTTPResponse {
        if request.method == "HEAD" {
            return HTTPResponse(status: 200, headers: Self.blobHeaders(digest), body: .lengthOnly(size))
        }
        guard let reader = try store.openBlob(digest, in: repository, namespace: namespace) else {
            throw RegistryError(.blobUnknown, digest.description)
        }
        do {
            return try ranged(digest, size: reader.size, request) { start, length in body(reader, start, length) }
        } catch {
            reader.close()
            throw error
        }
    }

    /// A 200 or 206 for the request's `Range`, with a body made by `makeBody(start, length)`, or a 416.
    private func ranged(
        _ digest: Digest, size: Int64, _ request: HTTPRequest, makeBody: (Int64, Int64) -> HTTPResponse.Body
    ) throws -> HTTPResponse {
        var headers = Self.blobHeaders(digest)
        switch ByteRange.parseRequest(request.header("Range"), size: size) {
        case .whole:
            return HTTPResponse(status: 200, headers: headers, body: makeBody(0, size))
        case .bytes(let start, let end):
            headers.append(("Content-Range", "bytes \(start)-\(end)/\(size)"))
            let length = end - start + 1
            return HTTPResponse(status: 206, headers: headers, body: makeBody(start, length))
        case .unsatisfiable:
            throw RegistryError(
                .rangeInvalid, "blob has \(size) bytes", headers: [("Content-Range", "bytes */\(size)")])
        }
    }

    /// The headers of every blob response: digest, range support, ETag, a year's caching and the content type.
    static func blobHeaders(_ digest: Digest) -> [(name: String, value: String)] {
        [
            ("Docker-Content-Digest", digest.description), ("Accept-Ranges", "bytes"), ("ETag", "\"\(digest)\""),
            ("Cache-Control", "max-age=31536000"), ("Content-Type", "application/octet-stream"),
        ]
    }

    /// A body that sends `length` bytes of `reader` from `offset`. A local file goes out by sendfile when it is
    /// small or in the page cache; a large one that is not is streamed, releasing the cache behind the read (see
    /// `FileReader`), since sendfile would fill the page cache with it at a fraction of the speed.
    func body(_ reader: any ObjectReader, _ offset: Int64, _ length: Int64) -> HTTPResponse.Body {
        if length < ReaderSource.releaseStep || reader.isCached(), let descriptor = reader.takeFileDescriptor() {
            return .file(descriptor: descriptor, offset: offset, length: length)
        }
        return .stream(length: length, source: ReaderSource(reader: reader, start: offset, length: length))
    }

    /// DELETE of a blob: it leaves this repository.
    func deleteBlob(_ name: RepositoryName, _ digest: Digest) throws -> HTTPResponse {
        guard try store.deleteBlob(digest, from: name) else { throw RegistryError(.blobUnknown, digest.description) }
        return HTTPResponse(status: 202, headers: [("Docker-Content-Digest", digest.description)])
    }
}

/// Streams an object reader as a response body, releasing the cache behind what it has sent.
final class ReaderSource: HTTPBodySource {
    /// How far the body gets between releases: the kernel's read-ahead here, 8 MiB.
    static let releaseStep: Int64 = 8 << 20

    /// The object the body is read from.
    let reader: any ObjectReader
    /// The offset in the object the body starts at.
    let start: Int64
    /// Where the body ends, in the object.
    let end: Int64
    private var released: Int64
    /// Where the body has read up to, in the object.
    private var reached: Int64

    /// Makes a body of `length` bytes that reads `reader` from `start` on.
    init(reader: any ObjectReader, start: Int64, length: Int64) {
        self.reader = reader
        self.start = start
        self.end = start + length
        self.released = start
        self.reached = start
    }

    func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        guard let count = try? reader.read(at: start + offset, into: buffer) else { return nil }
        reached = start + offset + Int64(count)
        // The last stretch, shorter than a step, goes as soon as it is read.
        if reached - released >= Self.releaseStep || reached >= end {
            reader.releaseCache(released..<reached)
            released = reached
        }
        return count
    }

    func close() {
        // A body cut short releases what it read.
        if reached > released { reader.releaseCache(released..<reached) }
        reader.close()
    }
}
