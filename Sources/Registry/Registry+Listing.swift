import Foundation
import HTTPServer
import Hashing
import Storage

extension Registry {
    /// The repository's tags, sorted, paginated with `n` and `last`.
    ///
    /// With an upstream, the local tags come first and are merged with the upstream's.
    func tags(_ name: RepositoryName, _ request: HTTPRequest) throws -> HTTPResponse {
        var all = try store.tags(in: name).map(\.value)
        var isKnown = try !all.isEmpty || store.repositoryExists(name)
        if let pullThrough, let target = pullThrough.target(for: name, request) {
            do {
                let upstream = try target.upstream.tags(target.upstreamName)
                all = Array(Set(all).union(upstream)).sorted()
                isKnown = true
            } catch {
                logger.warning("upstream tags unavailable", ["repository": name.value, "error": "\(error)"])
            }
        }
        if !isKnown {
            throw RegistryError(.nameUnknown, name.value)
        }
        let (page, next) = try paginate(all, request)
        var response = json(["name": name.value, "tags": page])
        if let next {
            response.addHeader("Link", "</v2/\(name)/tags/list?n=\(page.count)&last=\(next)>; rel=\"next\"")
        }
        return response
    }

    /// The repositories of the registry, sorted, paginated with `n` and `last`.
    func catalog(_ request: HTTPRequest) throws -> HTTPResponse {
        let (page, next) = try paginate(try store.repositories().map(\.value), request)
        var response = json(["repositories": page])
        if let next {
            response.addHeader("Link", "</v2/_catalog?n=\(page.count)&last=\(next)>; rel=\"next\"")
        }
        return response
    }

    /// The manifests whose subject is `digest`, as an OCI index, optionally filtered by `artifactType`.
    func referrers(_ name: RepositoryName, _ digest: Digest, _ request: HTTPRequest) throws -> HTTPResponse {
        var descriptors = try store.referrers(of: digest, in: name).compactMap {
            try? JSONSerialization.jsonObject(with: Data($0)) as? [String: Any]
        }
        let filter = request.query("artifactType")
        if let filter {
            descriptors = descriptors.filter { $0["artifactType"] as? String == filter }
        }
        let index: [String: Any] = [
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": descriptors,
        ]
        var response = json(index, contentType: "application/vnd.oci.image.index.v1+json")
        if filter != nil {
            response.addHeader("OCI-Filters-Applied", "artifactType")
        }
        return response
    }

    /// The entries after `last`, at most `n` of them, and the last one returned when more follow.
    private func paginate(_ sorted: [String], _ request: HTTPRequest) throws -> (page: [String], next: String?) {
        var entries = sorted[...]
        if let last = request.query("last") {
            entries = entries.drop { $0 <= last }
        }
        guard let limitText = request.query("n") else { return (Array(entries), nil) }
        guard let limit = Int(limitText), limit >= 0 else {
            throw RegistryError(.unsupported, "n must be a non-negative number", status: 400)
        }
        let page = Array(entries.prefix(limit))
        let hasMore = entries.count > limit && limit > 0
        return (page, hasMore ? page.last : nil)
    }
}
