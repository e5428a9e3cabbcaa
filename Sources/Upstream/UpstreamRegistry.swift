import Config
import Foundation
import HTTPClient
import Hashing
import Logging
import Synchronization

/// A manifest as an upstream served it.
public struct UpstreamManifest: Sendable {
    /// The manifest's bytes, exactly as sent; empty for a HEAD.
    public let bytes: [UInt8]
    /// The `Content-Type` the upstream gave.
    public let mediaType: String
    /// The digest: computed from the bytes for a GET, the upstream's `Docker-Content-Digest` for a HEAD.
    public let digest: Digest
    /// The size in bytes.
    public let size: Int64
}

/// Talks to one upstream registry with libcurl: the token flow, retries, redirects and digest checks.
///
/// Connections are kept alive in a small pool of libcurl handles, one per concurrent request. Idempotent requests
/// are retried with backoff on connection errors and 5xx, as long as no body byte has been handed on; a blob
/// transfer that breaks later is resumed with a `Range` request. Redirects are followed by hand, and never with
/// the `Authorization` header, which is meant for the upstream alone.
public final class UpstreamRegistry: Sendable {
    /// The settings.
    public let configuration: UpstreamConfiguration
    /// Where unreachable upstreams and cached tokens are logged, tagged with the upstream's name.
    let logger: Logger
    private let pool = Mutex<[ClientBox]>([])
    private let tokens = Mutex<[String: (token: String, expires: Date)]>([:])
    /// Set once the upstream asked for Basic credentials; until then they are sent only to a token realm.
    private let usesBasic = Atomic<Bool>(false)
    /// When the upstream last could not be reached, in seconds since 1970; 0 when it answered since.
    private let unreachableSince = Atomic<Int>(0)
    /// How long an unreachable upstream is not tried again, so that a network that drops packets costs one
    /// connect timeout, not one per request (a push HEADs every layer).
    static let unreachablePause = 10

    /// The manifest media types asked for, newest first.
    public static let manifestTypes = [
        "application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json",
    ]
    /// How many times a request is tried on connection errors and 5xx before the failure is reported.
    static let attempts = 3
    /// How many times a blob transfer that broke after it started is resumed.
    static let resumes = 3
    /// The largest manifest accepted from an upstream, in bytes.
    static let manifestLimit = 4 * 1024 * 1024

    /// Makes a client for `configuration`.
    public init(_ configuration: UpstreamConfiguration, logger: Logger = Logger(label: "upstream")) {
        self.configuration = configuration
        self.logger = logger.with(["upstream": configuration.name])
    }

    /// The repository name on the upstream for a name clients use: Docker Hub puts official images in `library/`.
    public func upstreamName(_ name: String) -> String {
        configuration.addsLibraryPrefix && !name.contains("/") ? "library/" + name : name
    }

    // MARK: - Manifests and tags

    /// Fetches a manifest by tag or digest; a HEAD answers only its digest, type and size.
    public func manifest(_ repository: String, reference: String, head: Bool = false) throws(UpstreamError)
        -> UpstreamManifest
    {
        let path = "/v2/\(repository)/manifests/\(reference)"
        let headers = ["Accept": Self.manifestTypes.joined(separator: ", ")]
        let response = try fetch(
            head ? "HEAD" : "GET", path, repository: repository, headers: headers, limit: Self.manifestLimit)
        let mediaType = response.header("Content-Type").map { String($0.split(separator: ";")[0]) } ?? ""
        if head {
            guard let digest = response.header("Docker-Content-Digest").flatMap(Digest.init) else {
                throw UpstreamError(
                    .invalidResponse("HEAD without Docker-Content-Digest"), upstream: configuration.name)
            }
            let size = response.header("Content-Length").flatMap { Int64($0) } ?? 0
            return UpstreamManifest(bytes: [], mediaType: mediaType, digest: digest, size: size)
        }
        let digest = Digest.sha256(of: response.body)
        if let named = Digest(reference), named != digest {
            throw UpstreamError(.digestMismatch, upstream: configuration.name)
        }
        if let claimed = response.header("Docker-Content-Digest").flatMap(Digest.init), claimed.algorithm == .sha256,
            claimed != digest
        {
            throw UpstreamError(.digestMismatch, upstream: configuration.name)
        }
        return UpstreamManifest(
            bytes: response.body, mediaType: mediaType, digest: digest, size: Int64(response.body.count))
    }

    /// Every tag of a repository, following the upstream's pagination for a bounded number of pages.
    public func tags(_ repository: String) throws(UpstreamError) -> [String] {
        var tags: [String] = []
        var path = "/v2/\(repository)/tags/list?n=1000"
        for _ in 0..<50 {
            let response = try fetch("GET", path, repository: repository, headers: [:], limit: 16 * 1024 * 1024)
            let object = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any]
            tags += object?["tags"] as? [String] ?? []
            guard let link = response.header("Link"), let start = link.firstIndex(of: "<"),
                let end = link.firstIndex(of: ">"), start < end
            else { break }
            path = String(link[link.index(after: start)..<end])
        }
        return tags
    }

    /// The size of a blob the upstream holds.
    public func blobSize(_ repository: String, digest: Digest) throws(UpstreamError) -> Int64 {
        let response = try fetch(
            "HEAD", "/v2/\(repository)/blobs/\(digest)", repository: repository, headers: [:], limit: 0)
        return response.header("Content-Length").flatMap { Int64($0) } ?? 0
    }

    // MARK: - Blobs

    /// Streams a blob: `onStart` gets its length once the upstream answers, `onData` every piece as it arrives,
    /// each byte once. Either returning false stops the transfer. A transfer that breaks after it started is
    /// resumed where it broke, with a `Range` request, up to `resumes` times; throws when the upstream refuses,
    /// or the transfer breaks for good.
    public func streamBlob(
        _ repository: String, digest: Digest, onStart: @escaping (Int64?) -> Bool,
        onData: @escaping (UnsafeRawBufferPointer) -> Bool
    ) throws(UpstreamError) {
        try checkReachable()
        let blobURL = configuration.url + "/v2/\(repository)/blobs/\(digest)"
        var url = blobURL
        var sendsAuthorization = true
        var hasAuthenticated = false
        var started = false
        var delivered: Int64 = 0
        var retries = 0
        var resumes = 0
        for _ in 0..<(Self.attempts + Self.resumes + 5) {
            var headers = ["Accept-Encoding": "identity"]
            if sendsAuthorization, let authorization = authorization(for: repository) {
                headers["Authorization"] = authorization
            }
            if delivered > 0 { headers["Range"] = "bytes=\(delivered)-" }
            var head: (status: Int, headers: [(name: String, value: String)])?
            var passesBody = false
            var callerStopped = false
            var alreadyDelivered: Int64 = 0
            var errorBody: [UInt8] = []
            let outcome = Result { () throws -> Int in
                try withClient { client in
                    try client.stream(
                        "GET", url, headers: headers, options: options(),
                        onHead: { status, responseHeaders in
                            head = (status, responseHeaders)
                            if status == 206, started {
                                // A resumed transfer must go on exactly where the last one broke.
                                let range = Self.header("Content-Range", in: responseHeaders)
                                passesBody = range?.hasPrefix("bytes \(delivered)-") == true
                                return passesBody
                            }
                            guard status == 200 else { return true }
                            passesBody = true
                            if started {
                                // The upstream ignored the Range: what was delivered is skipped this time.
                                alreadyDelivered = delivered
                                return true
                            }
                            started = true
                            callerStopped = !onStart(
                                Self.header("Content-Length", in: responseHeaders).flatMap { Int64($0) })
                            return !callerStopped
                        },
                        onData: { bytes in
                            guard passesBody else {
                                if errorBody.count < 64 * 1024 { errorBody.append(contentsOf: bytes) }
                                return true
                            }
                            let skipped = Int(min(alreadyDelivered, Int64(bytes.count)))
                            alreadyDelivered -= Int64(skipped)
                            guard skipped < bytes.count else { return true }
                            delivered += Int64(bytes.count - skipped)
                            callerStopped = !onData(UnsafeRawBufferPointer(rebasing: bytes[skipped...]))
                            return !callerStopped
                        })
                }
            }
            if case .success = outcome { unreachableSince.store(0, ordering: .relaxed) }
            if started, head?.status == 206, !passesBody {
                throw UpstreamError(
                    .invalidResponse("a resumed transfer did not start at \(delivered)"), upstream: configuration.name)
            }
            switch outcome {
            case .success where passesBody:
                return
            case .success(let status) where (300..<400).contains(status):
                guard let location = head.flatMap({ Self.header("Location", in: $0.headers) }) else {
                    throw UpstreamError(.invalidResponse("redirect without Location"), upstream: configuration.name)
                }
                url = Self.resolve(location, against: url)
                sendsAuthorization = false
            case .success(401) where sendsAuthorization && !hasAuthenticated:
                try authenticate(head?.headers ?? [], repository: repository)
                hasAuthenticated = true
            case .success(let status):
                if status >= 500, retries < Self.attempts - 1 {
                    backoff(retries)
                    retries += 1
                    continue
                }
                throw UpstreamError(
                    .status(status, retryAfter: head.flatMap { Self.header("Retry-After", in: $0.headers) }),
                    upstream: configuration.name)
            case .failure(let error) where started:
                guard !callerStopped, resumes < Self.resumes else {
                    throw UpstreamError(.unreachable("\(error)"), upstream: configuration.name)
                }
                logger.warning(
                    "blob transfer broke; resuming", ["digest": digest.description, "offset": String(delivered)])
                backoff(resumes)
                resumes += 1
                // From the registry again: a redirect target may have been what failed.
                url = blobURL
                sendsAuthorization = true
            case .failure(let error):
                guard retries < Self.attempts - 1 else { throw markUnreachable(error) }
                backoff(retries)
                retries += 1
            }
        }
        throw UpstreamError(.invalidResponse("too many redirects"), upstream: configuration.name)
    }

    // MARK: - Requests

    /// A whole response of at most `limit` body bytes, with authentication, retries and redirects handled.
    func fetch(_ method: String, _ path: String, repository: String, headers extra: [String: String], limit: Int)
        throws(UpstreamError) -> HTTPClient.Response
    {
        try checkReachable()
        var url = configuration.url + path
        var sendsAuthorization = true
        var hasAuthenticated = false
        for attempt in 0..<(Self.attempts + 5) {
            var headers = extra
            headers["Accept-Encoding"] = "identity"
            if sendsAuthorization, let authorization = authorization(for: repository) {
                headers["Authorization"] = authorization
            }
            let response: HTTPClient.Response
            do {
                response = try withClient { client in try client.send(method, url, headers: headers, timeout: 120) }
            } catch {
                if attempt < Self.attempts - 1 {
                    backoff(attempt)
                    continue
                }
                throw markUnreachable(error)
            }
            unreachableSince.store(0, ordering: .relaxed)
            switch response.status {
            case 200..<300:
                guard response.body.count <= max(limit, 0) || method == "HEAD" else {
                    throw UpstreamError(.invalidResponse("response too large"), upstream: configuration.name)
                }
                return response
            case 300..<400:
                guard let location = response.header("Location") else {
                    throw UpstreamError(.invalidResponse("redirect without Location"), upstream: configuration.name)
                }
                url = Self.resolve(location, against: url)
                sendsAuthorization = false
            case 401 where sendsAuthorization && !hasAuthenticated:
                try authenticate(response.headers, repository: repository)
                hasAuthenticated = true
            case 500..<600 where attempt < Self.attempts - 1:
                backoff(attempt)
            default:
                throw UpstreamError(
                    .status(response.status, retryAfter: response.header("Retry-After")), upstream: configuration.name)
            }
        }
        throw UpstreamError(.invalidResponse("too many redirects"), upstream: configuration.name)
    }

    private func checkReachable() throws(UpstreamError) {
        let since = unreachableSince.load(ordering: .relaxed)
        if since > 0, Int(Date().timeIntervalSince1970) - since < Self.unreachablePause {
            throw UpstreamError(.unreachable("not tried again yet after a failure"), upstream: configuration.name)
        }
    }

    private func markUnreachable(_ error: any Error) -> UpstreamError {
        unreachableSince.store(Int(Date().timeIntervalSince1970), ordering: .relaxed)
        logger.warning("upstream unreachable", ["error": "\(error)"])
        return UpstreamError(.unreachable("\(error)"), upstream: configuration.name)
    }

    private func options() -> HTTPClient.Options {
        var options = HTTPClient.Options()
        options.timeout = 0
        options.connectTimeout = configuration.connectTimeout
        options.stallTimeout = configuration.stallTimeout
        options.certificateAuthorities = configuration.certificateAuthorities
        return options
    }

    private func backoff(_ attempt: Int) {
        usleep(UInt32(100_000 << (2 * attempt)))
    }

    private func withClient<T>(_ body: (HTTPClient) throws -> T) throws -> T {
        let box = pool.withLock { $0.popLast() } ?? ClientBox()
        defer { pool.withLock { if $0.count < 16 { $0.append(box) } } }
        return try body(box.client)
    }

    // MARK: - Authentication

    private func scope(_ repository: String) -> String { "repository:\(repository):pull" }

    /// The header to send: a cached token for the repository's pull scope, or Basic once the upstream asked for
    /// it; else none, and a 401's challenge says what to do.
    private func authorization(for repository: String) -> String? {
        if let cached = tokens.withLock({ $0[scope(repository)] }), cached.expires > Date() {
            return "Bearer \(cached.token)"
        }
        return usesBasic.load(ordering: .relaxed) ? basicCredentials() : nil
    }

    private func basicCredentials() -> String? {
        guard let username = configuration.username else { return nil }
        return "Basic " + Data("\(username):\(configuration.password ?? "")".utf8).base64EncodedString()
    }

    /// Answers a 401's challenge: fetches a token from the Bearer realm and caches it until it expires.
    private func authenticate(_ headers: [(name: String, value: String)], repository: String) throws(UpstreamError) {
        guard let header = Self.header("WWW-Authenticate", in: headers), let challenge = AuthenticationChallenge(header)
        else { throw UpstreamError(.status(401, retryAfter: nil), upstream: configuration.name) }
        guard challenge.scheme == "bearer", let realm = challenge.parameters["realm"] else {
            // Basic: the credentials are sent from now on, if there are any.
            guard basicCredentials() != nil, !usesBasic.load(ordering: .relaxed) else {
                throw UpstreamError(.status(401, retryAfter: nil), upstream: configuration.name)
            }
            usesBasic.store(true, ordering: .relaxed)
            return
        }
        var components = URLComponents(string: realm)
        var query = components?.queryItems ?? []
        if let service = challenge.parameters["service"] { query.append(URLQueryItem(name: "service", value: service)) }
        query.append(URLQueryItem(name: "scope", value: challenge.parameters["scope"] ?? scope(repository)))
        components?.queryItems = query
        guard let tokenURL = components?.url?.absoluteString else {
            throw UpstreamError(.invalidResponse("bad token realm \(realm)"), upstream: configuration.name)
        }
        var headers: [String: String] = [:]
        if let basic = basicCredentials() { headers["Authorization"] = basic }
        let response: HTTPClient.Response
        do {
            response = try withClient { client in try client.send("GET", tokenURL, headers: headers, timeout: 30) }
        } catch {
            throw UpstreamError(.unreachable("token endpoint: \(error)"), upstream: configuration.name)
        }
        guard response.status == 200, let token = (response.json?["token"] ?? response.json?["access_token"]) as? String
        else {
            throw UpstreamError(
                .status(response.status == 200 ? 401 : response.status, retryAfter: nil), upstream: configuration.name)
        }
        let lifetime = (response.json?["expires_in"] as? NSNumber)?.doubleValue ?? 60
        tokens.withLock { $0[scope(repository)] = (token, Date().addingTimeInterval(max(lifetime - 10, 1))) }
        logger.debug("upstream token cached", ["repository": repository])
    }

    // MARK: - Helpers

    /// The last value of the named header, matched without regard to case.
    static func header(_ name: String, in headers: [(name: String, value: String)]) -> String? {
        headers.last { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }

    /// A redirect's `Location`, made absolute against the URL that answered with it.
    static func resolve(_ location: String, against base: String) -> String {
        URL(string: location, relativeTo: URL(string: base))?.absoluteString ?? location
    }
}

/// A libcurl handle, used by one thread at a time through the pool.
final class ClientBox: @unchecked Sendable {
    /// The client, whose connections stay open for whichever thread takes the box next.
    let client = HTTPClient()
}
