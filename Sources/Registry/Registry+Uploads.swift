import HTTPServer
import Hashing
import Logging
import Storage

extension Registry {
    /// POST to the uploads endpoint: a cross-repository mount, a monolithic upload with `digest`, or a new upload.
    func startUpload(_ name: RepositoryName, _ request: HTTPRequest) throws -> HTTPExchange {
        if let mount = request.query("mount") {
            guard let digest = Digest(mount) else { throw RegistryError(.digestInvalid, "mount is not a digest") }
            // A mount reads the source repository, so it needs pull there; without it the client just uploads.
            if let from = request.query("from"), let source = RepositoryName(from),
                accessControl?.permits(request, .pull(source)) ?? true,
                try store.mountBlob(digest, from: source, into: name)
            {
                logger.debug("blob mounted", ["digest": digest.description, "repository": name.value, "from": from])
                return .respond(blobCreated(name, digest))
            }
            // A blob the upstream cache holds for the source repository mounts into `_local` just the same.
            if let from = request.query("from"), let source = RepositoryName(from),
                accessControl?.permits(request, .pull(source)) ?? true, let pullThrough,
                let target = pullThrough.target(for: source, request),
                try store.importBlob(digest, from: target.repository, of: target.namespace, into: name)
            {
                logger.debug(
                    "blob mounted from the upstream cache", ["digest": digest.description, "repository": name.value])
                return .respond(blobCreated(name, digest))
            }
        }

        if let digestText = request.query("digest") {
            guard let digest = Digest(digestText) else { throw RegistryError(.digestInvalid, "digest is not a digest") }
            let id = try store.startUpload(in: name)
            let appender = try store.openUpload(id, in: name)
            return .receive(UploadReceiver(registry: self, request: request, appender: appender, commitAs: digest))
        }

        let id = try store.startUpload(in: name)
        logger.debug("upload started", ["upload.id": id.value, "repository": name.value])
        return .respond(uploadAccepted(name, id, offset: 0, status: 202))
    }

    /// PATCH of an upload: appends one chunk, streamed, whether sized, ranged or chunked.
    func appendUpload(_ name: RepositoryName, _ id: UploadID, _ request: HTTPRequest) throws -> HTTPExchange {
        var chunk: (start: Int64, end: Int64)?
        if let header = request.header("Content-Range") {
            guard let parsed = ByteRange.parseChunk(header) else {
                let offset = try store.uploadStatus(id, in: name)?.offset ?? 0
                throw RegistryError(
                    .blobUploadInvalid, "Content-Range must be <start>-<end>", status: 416,
                    headers: [("Range", Self.rangeHeader(offset))])
            }
            chunk = parsed
        }
        let appender = try store.openUpload(id, in: name, expectedOffset: chunk?.start)
        let expectedLength = chunk.map { $0.end - $0.start + 1 }
        return .receive(
            UploadReceiver(registry: self, request: request, appender: appender, expectedLength: expectedLength))
    }

    /// PUT of an upload: appends a final body, if any, and commits the blob under the `digest` parameter.
    func finishUpload(_ name: RepositoryName, _ id: UploadID, _ request: HTTPRequest) throws -> HTTPExchange {
        guard let digestText = request.query("digest") else { throw RegistryError(.digestInvalid, "digest is missing") }
        guard let digest = Digest(digestText) else { throw RegistryError(.digestInvalid, "digest is not a digest") }
        let appender = try store.openUpload(id, in: name)
        return .receive(UploadReceiver(registry: self, request: request, appender: appender, commitAs: digest))
    }

    /// GET of an upload: how much has arrived.
    func uploadStatus(_ name: RepositoryName, _ id: UploadID) throws -> HTTPResponse {
        guard let status = try store.uploadStatus(id, in: name) else { throw RegistryError(.blobUploadUnknown) }
        return uploadAccepted(name, id, offset: status.offset, status: 204)
    }

    /// DELETE of an upload: drops it and what it received.
    func cancelUpload(_ name: RepositoryName, _ id: UploadID) throws -> HTTPResponse {
        guard try store.cancelUpload(id, in: name) else { throw RegistryError(.blobUploadUnknown) }
        logger.debug("upload cancelled", ["upload.id": id.value])
        return HTTPResponse(status: 204)
    }

    /// The response for an upload in progress: its location, its id, and the `Range` of the `offset` bytes received.
    func uploadAccepted(_ name: RepositoryName, _ id: UploadID, offset: Int64, status: Int) -> HTTPResponse {
        HTTPResponse(
            status: status,
            headers: [
                ("Location", "/v2/\(name)/blobs/uploads/\(id)"), ("Range", Self.rangeHeader(offset)),
                ("Docker-Upload-UUID", id.value),
            ])
    }

    /// The 201 for a blob now in the repository, with its location and digest.
    func blobCreated(_ name: RepositoryName, _ digest: Digest) -> HTTPResponse {
        HTTPResponse(
            status: 201,
            headers: [("Location", "/v2/\(name)/blobs/\(digest)"), ("Docker-Content-Digest", digest.description)])
    }
}

/// Streams one request's body into an upload, then records the chunk or commits the blob.
final class UploadReceiver: ThrowingReceiver {
    /// Writes the body into the upload.
    let appender: UploadAppender
    /// The length the request's `Content-Range` promised; nil when it gave none.
    let expectedLength: Int64?
    /// The digest to commit the blob as once the body is in; nil saves the chunk and leaves the upload open.
    let commitDigest: Digest?
    private let startOffset: Int64

    /// Makes a receiver that appends to `appender`, checks `expectedLength` and commits as `digest`, each when given.
    init(
        registry: Registry, request: HTTPRequest, appender: UploadAppender, expectedLength: Int64? = nil,
        commitAs digest: Digest? = nil
    ) {
        self.appender = appender
        self.expectedLength = expectedLength
        self.commitDigest = digest
        self.startOffset = appender.offset
        super.init(registry: registry, request: request)
    }

    /// Appends the bytes to the upload.
    override func take(_ bytes: UnsafeRawBufferPointer) throws {
        try appender.append(bytes)
    }

    /// Checks the length `Content-Range` promised, then saves the chunk or commits the blob.
    override func complete() throws -> HTTPResponse {
        let received = appender.offset - startOffset
        if let expectedLength, received != expectedLength {
            appender.saveAfterInterruption()
            throw RegistryError(
                .blobUploadInvalid, "Content-Range promised \(expectedLength) bytes, body had \(received)",
                status: 416, headers: [("Range", Registry.rangeHeader(appender.offset))])
        }
        let name = appender.repository
        let metadata: Logger.Metadata = ["upload.id": appender.id.value, "request.id": request.requestID]

        guard let digest = commitDigest else {
            let offset = try appender.save()
            registry.logger.debug("upload chunk stored", metadata.merging(["offset": String(offset)]) { $1 })
            return registry.uploadAccepted(name, appender.id, offset: offset, status: 202)
        }

        try appender.commit(as: digest)
        registry.logger.info(
            "blob uploaded",
            metadata.merging(["digest": digest.description, "size": String(appender.offset), "repository": name.value])
            { $1 })
        return registry.blobCreated(name, digest)
    }

    /// Saves what arrived, so the client can resume the upload from there.
    override func interrupted() {
        appender.saveAfterInterruption()
    }
}
