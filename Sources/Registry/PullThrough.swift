import Foundation
import HTTPServer
import Hashing
import Logging
import Storage
import Upstream

/// Where an image not held locally comes from: which upstream, under which name, cached in which namespace.
struct UpstreamTarget {
    /// The upstream registry to fetch from.
    let upstream: UpstreamRegistry
    /// The repository as the upstream names it, which is also its name in the cache namespace.
    let repository: RepositoryName
    /// The cache namespace fetched content is kept in.
    let namespace: Namespace

    /// The name for requests to the upstream.
    var upstreamName: String { repository.value }

    /// A key that names one blob of this upstream, for sharing fills.
    func fillKey(_ digest: Digest) -> String { "\(namespace.value)/\(digest)" }
}

/// Fetches what `_local` does not hold from upstream registries and keeps it in a verified cache.
///
/// Lookup order is `_local`, then the upstream's cache namespace, then the upstream itself; pushes always go to
/// `_local`, so a pushed `name:tag` shadows the upstream image from then on. Manifests and blobs are cached by
/// digest and never change; a tag's digest is trusted for the upstream's tag lifetime, then checked again with a
/// HEAD. When the upstream fails and a digest is cached, the cached one is served and a warning logged.
final class PullThrough: Sendable {
    /// The configured upstreams; the first is the default.
    let upstreams: [UpstreamRegistry]
    /// The store holding `_local` and the cache namespaces.
    let store: RegistryStore
    /// The blob fills in progress, shared by the requests that ask for the same blob.
    let fills = FillTable()
    /// Where cached content and upstream failures are logged.
    let logger: Logger

    /// Makes a pull-through from `upstreams` that caches into `store`.
    init(upstreams: [UpstreamRegistry], store: RegistryStore, logger: Logger) {
        self.upstreams = upstreams
        self.store = store
        self.logger = logger
    }

    /// The upstream a request is for: named by `?ns=`, or by the first path segment; else the first, the default.
    func target(for name: RepositoryName, _ request: HTTPRequest) -> UpstreamTarget? {
        var upstream = upstreams.first
        var repository = name.value
        if let namespace = request.query("ns"),
            let named = upstreams.first(where: { $0.configuration.name == namespace })
        {
            upstream = named
        } else if let slash = repository.firstIndex(of: "/"),
            let named = upstreams.first(where: { $0.configuration.name == repository[..<slash] })
        {
            upstream = named
            repository = String(repository[repository.index(after: slash)...])
        }
        guard let upstream, let upstreamName = RepositoryName(upstream.upstreamName(repository)) else { return nil }
        return UpstreamTarget(
            upstream: upstream, repository: upstreamName, namespace: .cache(upstream.configuration.name))
    }

    // MARK: - Manifests

    /// The cached manifest for a reference, fetching or revalidating it upstream as needed.
    func manifest(_ reference: Reference, _ target: UpstreamTarget) throws -> ManifestEntry {
        let cached = try store.manifest(reference, in: target.repository, namespace: target.namespace)
        switch reference {
        case .digest(let digest):
            if let cached { return cached }
            return try fetchManifest(digest.description, tag: nil, target)
        case .tag(let tag):
            if let cached, try !isStale(tag, target) { return cached }
            do {
                let head = try target.upstream.manifest(target.upstreamName, reference: tag.value, head: true)
                if let known = try store.manifest(
                    .digest(head.digest), in: target.repository, namespace: target.namespace)
                {
                    try store.retag(tag, to: head.digest, in: target.repository, namespace: target.namespace)
                    return known
                }
                return try fetchManifest(head.digest.description, tag: tag, target)
            } catch let error as UpstreamError where !error.isNotFound {
                guard let cached else { throw error }
                logger.warning(
                    "upstream failed; serving the cached digest",
                    ["repository": target.repository.value, "tag": tag.value, "error": "\(error)"])
                return cached
            }
        }
    }

    private func isStale(_ tag: Tag, _ target: UpstreamTarget) throws -> Bool {
        guard let modified = try store.tagModified(tag, in: target.repository, namespace: target.namespace) else {
            return true
        }
        return Date().timeIntervalSince(modified) > Double(target.upstream.configuration.tagLifetime)
    }

    private func fetchManifest(_ reference: String, tag: Tag?, _ target: UpstreamTarget) throws -> ManifestEntry {
        let fetched = try target.upstream.manifest(target.upstreamName, reference: reference)
        let document = try? ManifestDocument.parse(fetched.bytes, contentType: fetched.mediaType)
        let mediaType = document?.mediaType ?? fetched.mediaType
        try store.putManifest(
            fetched.bytes, digest: fetched.digest, mediaType: mediaType, in: target.repository, tag: tag, subject: nil,
            referrerDescriptor: nil, namespace: target.namespace)
        logger.info(
            "manifest cached",
            [
                "repository": target.repository.value, "digest": fetched.digest.description,
                "upstream": target.upstream.configuration.name,
            ])
        return ManifestEntry(digest: fetched.digest, mediaType: mediaType, size: fetched.size)
    }

    // MARK: - Blobs

    /// The size of a blob held in the cache for this repository, linking it when another repository's fetch
    /// already brought the bytes and the upstream confirms this repository has them too.
    func cachedBlobSize(_ digest: Digest, _ target: UpstreamTarget) throws -> Int64? {
        if let size = try store.blobSize(digest, in: target.repository, namespace: target.namespace) { return size }
        guard let stored = try store.driver.info(StorageLayout.blob(digest, in: target.namespace)),
            (try? target.upstream.blobSize(target.upstreamName, digest: digest)) != nil
        else { return nil }
        try store.linkBlob(digest, into: target.repository, namespace: target.namespace)
        return stored.size
    }

    /// Joins the fill of a blob, starting it when none runs.
    func fill(_ digest: Digest, _ target: UpstreamTarget) -> BlobFill {
        let key = target.fillKey(digest)
        let (fill, isNew) = fills.join(key, digest: digest)
        guard isNew else { return fill }
        let thread = Thread { [self] in
            run(fill, target)
            fills.remove(key, fill)
        }
        thread.stackSize = 1 << 20
        thread.start()
        return fill
    }

    private func run(_ fill: BlobFill, _ target: UpstreamTarget) {
        let metadata: Logger.Metadata = [
            "digest": fill.digest.description, "repository": target.repository.value,
            "upstream": target.upstream.configuration.name,
        ]
        let appender: UploadAppender
        do {
            let id = try store.startUpload(in: target.repository, namespace: target.namespace)
            appender = try store.openUpload(id, in: target.repository)
            appender.onWritten = { total in fill.advanced(to: total) }
            guard let reader = try store.openUploadData(id) else { throw StorageError(.corrupt, path: id.value) }
            fill.opened(reader)
        } catch {
            logger.error("cache fill could not start", metadata.merging(["error": "\(error)"]) { $1 })
            fill.finished(
                .failure(
                    UpstreamError(.invalidResponse("cache unavailable"), upstream: target.upstream.configuration.name)))
            return
        }

        var written: Int64 = 0
        var writeFailed = false
        do {
            try target.upstream.streamBlob(
                target.upstreamName, digest: fill.digest,
                onStart: { length in
                    guard let length else { return false }
                    fill.started(length: length)
                    return true
                },
                onData: { bytes in
                    do {
                        try appender.append(bytes)
                    } catch {
                        writeFailed = true
                        return false
                    }
                    written += Int64(bytes.count)
                    return true
                })
            guard !writeFailed else {
                throw UpstreamError(
                    .invalidResponse("cache write failed"), upstream: target.upstream.configuration.name)
            }
            try appender.commit(as: fill.digest)
            fill.advanced(to: written)
            fill.finished(.success(written))
            logger.info("blob cached", metadata.merging(["size": String(written)]) { $1 })
        } catch {
            _ = try? store.cancelUpload(appender.id, in: target.repository)
            let failure =
                (error as? UpstreamError)
                ?? UpstreamError(.digestMismatch, upstream: target.upstream.configuration.name)
            logger.error("cache fill failed", metadata.merging(["error": "\(error)"]) { $1 })
            fill.finished(.failure(failure))
        }
    }
}

extension UpstreamError {
    /// The spec error a client gets when the upstream could not help and nothing is cached.
    func registryError(notFound code: ErrorCode) -> RegistryError {
        switch kind {
        case .status(404, _):
            return RegistryError(code, "not found here or upstream at \(upstream)")
        case .status(let status, let retryAfter):
            let headers = retryAfter.map { [("Retry-After", $0)] } ?? []
            let spec: ErrorCode = status == 429 ? .tooManyRequests : status == 401 || status == 403 ? .denied : .unknown
            return RegistryError(spec, description, status: status == 401 ? 502 : status, headers: headers)
        case .unreachable, .invalidResponse:
            return RegistryError(.unknown, description, status: 502)
        case .digestMismatch:
            return RegistryError(.unknown, description, status: 502)
        }
    }
}
