import HTTPServer
import Hashing
import Storage

extension Registry {
    /// HEAD or GET of a blob, whole or by `Range`; manifests are readable here too, by digest.
    func blob(_ name: RepositoryName, _ digest: Digest, _ request: HTTPRequest) throws -> HTTPResponse {
        let isHead = request.method == "HEAD"
        var headers: [(String, String)] = [
            ("Docker-Content-Digest", digest.description), ("Accept-Ranges", "bytes"),
            ("ETag", "\"\(digest)\""), ("Cache-Control", "max-age=31536000"),
        ]

        if isHead {
            guard let size = try store.blobSize(digest, in: name) else {
                throw RegistryError(.blobUnknown, digest.description)
            }
            headers.append(("Content-Type", "application/octet-stream"))
            return HTTPResponse(status: 200, headers: headers.map { ($0.0, $0.1) }, body: .lengthOnly(size))
        }

        guard let reader = try store.openBlob(digest, in: name) else {
            throw RegistryError(.blobUnknown, digest.description)
        }
        let size = reader.size
        headers.append(("Content-Type", "application/octet-stream"))
        switch ByteRange.parseRequest(request.header("Range"), size: size) {
        case .whole:
            return HTTPResponse(status: 200, headers: headers.map { ($0.0, $0.1) }, body: body(reader, 0, size))
        case .bytes(let start, let end):
            headers.append(("Content-Range", "bytes \(start)-\(end)/\(size)"))
            return HTTPResponse(
                status: 206, headers: headers.map { ($0.0, $0.1) }, body: body(reader, start, end - start + 1))
        case .unsatisfiable:
            reader.close()
            throw RegistryError(
                .rangeInvalid, "blob has \(size) bytes", headers: [("Content-Range", "bytes */\(size)")])
        }
    }

    /// A body that sends `length` bytes of `reader` from `offset`: by sendfile from a local file, else streamed.
    func body(_ reader: any ObjectReader, _ offset: Int64, _ length: Int64) -> HTTPResponse.Body {
        if let descriptor = reader.takeFileDescriptor() {
            return .file(descriptor: descriptor, offset: offset, length: length)
        }
        return .stream(length: length, source: ReaderSource(reader: reader, start: offset))
    }

    /// DELETE of a blob: it leaves this repository.
    func deleteBlob(_ name: RepositoryName, _ digest: Digest) throws -> HTTPResponse {
        guard try store.deleteBlob(digest, from: name) else { throw RegistryError(.blobUnknown, digest.description) }
        return HTTPResponse(status: 202, headers: [("Docker-Content-Digest", digest.description)])
    }
}

/// Streams an object reader as a response body.
final class ReaderSource: HTTPBodySource {
    let reader: any ObjectReader
    let start: Int64

    init(reader: any ObjectReader, start: Int64) {
        self.reader = reader
        self.start = start
    }

    func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        try? reader.read(at: start + offset, into: buffer)
    }

    func close() {
        reader.close()
    }
}
