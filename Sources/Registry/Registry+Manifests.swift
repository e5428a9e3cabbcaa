import Foundation
import HTTPServer
import Hashing
import Logging
import Storage
import Upstream

extension Registry {
    /// HEAD or GET of a manifest by tag or digest, byte-exact, with the media type it was pushed with.
    ///
    /// `_local` answers first, so a pushed image shadows the upstream one; then the upstream, through the cache.
    func manifest(_ name: RepositoryName, _ reference: Reference, _ request: HTTPRequest) throws -> HTTPResponse {
        var namespace = Namespace.local
        var found = try store.manifest(reference, in: name)
        if found == nil, let pullThrough, let target = pullThrough.target(for: name, request) {
            do {
                found = try pullThrough.manifest(reference, target)
                namespace = target.namespace
            } catch let error as UpstreamError {
                throw error.registryError(notFound: .manifestUnknown)
            }
        }
        guard let entry = found else { throw RegistryError(.manifestUnknown, reference.description) }

        let headers = [
            ("Content-Type", entry.mediaType), ("Docker-Content-Digest", entry.digest.description),
            ("ETag", "\"\(entry.digest)\""),
        ]
        if request.method == "HEAD" {
            return HTTPResponse(status: 200, headers: headers.map { ($0.0, $0.1) }, body: .lengthOnly(entry.size))
        }
        guard let reader = try store.openContent(entry.digest, namespace: namespace) else {
            throw RegistryError(.manifestUnknown, reference.description)
        }
        return HTTPResponse(status: 200, headers: headers.map { ($0.0, $0.1) }, body: body(reader, 0, reader.size))
    }

    /// PUT of a manifest: the body is read whole (up to the limit), checked, and stored.
    func putManifest(_ name: RepositoryName, _ reference: Reference, _ request: HTTPRequest) throws -> HTTPExchange {
        if let length = request.header("Content-Length").flatMap({ Int($0) }), length > Self.manifestLimit {
            throw RegistryError(.sizeInvalid, "manifests are limited to \(Self.manifestLimit) bytes", status: 413)
        }
        return .receive(ManifestReceiver(registry: self, request: request, name: name, reference: reference))
    }

    /// Checks a pushed manifest and its references, then stores it.
    func storeManifest(_ bytes: [UInt8], _ name: RepositoryName, _ reference: Reference, contentType: String?) throws
        -> HTTPResponse
    {
        let document = try ManifestDocument.parse(bytes, contentType: contentType)
        let digest: Digest
        var tag: Tag?
        switch reference {
        case .digest(let named):
            digest = named.algorithm == .sha256 ? Digest.sha256(of: bytes) : Self.digest(bytes, named.algorithm)
            guard digest == named else {
                throw RegistryError(.digestInvalid, "manifest digest is \(digest), not \(named)")
            }
        case .tag(let named):
            digest = Digest.sha256(of: bytes)
            tag = named
        }

        for blob in document.blobs where blob.urls.isEmpty {
            guard try store.blobSize(blob.digest, in: name) != nil else {
                throw RegistryError(.manifestBlobUnknown, blob.digest.description)
            }
        }
        for child in document.manifests {
            guard try store.hasManifest(child.digest, in: name) || store.blobSize(child.digest, in: name) != nil else {
                throw RegistryError(.manifestBlobUnknown, child.digest.description)
            }
        }

        try store.putManifest(
            bytes, digest: digest, mediaType: document.mediaType, in: name, tag: tag, subject: document.subject?.digest,
            referrerDescriptor: document.subject == nil ? nil : referrerDescriptor(document, digest, bytes.count))
        logger.info(
            "manifest stored",
            ["repository": name.value, "digest": digest.description, "reference": reference.description])

        var response = HTTPResponse(
            status: 201,
            headers: [("Location", "/v2/\(name)/manifests/\(digest)"), ("Docker-Content-Digest", digest.description)])
        if let subject = document.subject {
            response.addHeader("OCI-Subject", subject.digest.description)
        }
        return response
    }

    /// DELETE of a manifest by digest (with its tags), or of one tag.
    func deleteManifest(_ name: RepositoryName, _ reference: Reference) throws -> HTTPResponse {
        switch reference {
        case .digest(let digest):
            guard try store.deleteManifest(digest, in: name) else {
                throw RegistryError(.manifestUnknown, digest.description)
            }
        case .tag(let tag):
            guard try store.deleteTag(tag, in: name) else { throw RegistryError(.manifestUnknown, tag.value) }
        }
        return HTTPResponse(status: 202)
    }

    private func referrerDescriptor(_ document: ManifestDocument, _ digest: Digest, _ size: Int) -> [UInt8] {
        var descriptor: [String: Any] = ["mediaType": document.mediaType, "digest": digest.description, "size": size]
        if let artifactType = document.artifactType { descriptor["artifactType"] = artifactType }
        if let annotations = document.annotations { descriptor["annotations"] = annotations }
        let data = (try? JSONSerialization.data(withJSONObject: descriptor, options: [.sortedKeys])) ?? Data()
        return Array(data)
    }

    private static func digest(_ bytes: [UInt8], _ algorithm: Digest.Algorithm) -> Digest {
        let hasher = StreamHasher(algorithm)
        bytes.withUnsafeBytes { hasher.update($0) }
        return hasher.finish()
    }
}

/// Collects a manifest body, refusing it once it passes the size limit.
final class ManifestReceiver: ThrowingReceiver {
    /// The repository the manifest is pushed to.
    let name: RepositoryName
    /// The tag or digest the manifest is pushed under.
    let reference: Reference
    private var bytes: [UInt8] = []

    /// Makes a receiver for a push of the manifest of `name` at `reference`.
    init(registry: Registry, request: HTTPRequest, name: RepositoryName, reference: Reference) {
        self.name = name
        self.reference = reference
        super.init(registry: registry, request: request)
    }

    /// Collects a chunk; throws a 413 once the manifest would pass `Registry.manifestLimit`.
    override func take(_ chunk: UnsafeRawBufferPointer) throws {
        guard bytes.count + chunk.count <= Registry.manifestLimit else {
            throw RegistryError(.sizeInvalid, "manifests are limited to \(Registry.manifestLimit) bytes", status: 413)
        }
        bytes.append(contentsOf: chunk)
    }

    /// Stores the manifest under the request's `Content-Type`, without its parameters.
    override func complete() throws -> HTTPResponse {
        let contentType = request.header("Content-Type").map {
            String($0.split(separator: ";").first ?? "").trimmingCharacters(in: .whitespaces)
        }
        return try registry.storeManifest(bytes, name, reference, contentType: contentType)
    }
}
