import Foundation
import HTTPClient
import HTTPServer
import Hashing
import Logging
import Registry
import Storage
import Synchronization
import Upstream

/// A directory under the system's temporary directory, removed when the value goes away.
final class TemporaryDirectory {
    let path: String

    init() {
        var template = Array((NSTemporaryDirectory() + "/buildset-test-XXXXXX").utf8CString)
        path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// A registry served in this process on a free loopback port, with its own storage.
final class TestServer {
    let directory = TemporaryDirectory()
    let store: RegistryStore
    let server: HTTPServer

    init(
        root: String? = nil, accessControl: AccessControl? = nil, tls: (certificate: String, key: String)? = nil,
        port: UInt16 = 0, upstreams: [UpstreamRegistry] = [], wrap: (Registry) -> any HTTPHandler = { $0 }
    ) throws {
        Logger.threshold = .error
        store = RegistryStore(driver: try FilesystemDriver(root: root ?? directory.path + "/storage"))
        var configuration = HTTPServer.Configuration(address: "127.0.0.1", port: port)
        configuration.tlsCertificatePEM = tls?.certificate
        configuration.tlsKeyPEM = tls?.key
        let registry = Registry(store: store, accessControl: accessControl, upstreams: upstreams)
        server = HTTPServer(configuration: configuration, handler: wrap(registry), logger: Logger(label: "test-http"))
        try server.start()
    }

    deinit {
        server.stop()
    }

    var base: String { "\(server.isTLS ? "https" : "http")://127.0.0.1:\(server.port)" }

    func url(_ path: String) -> String { base + path }
}

/// Test content: random blobs and the manifests that reference them.
enum Fixture {
    static func randomBytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    static func imageManifest(
        config: [UInt8], layers: [[UInt8]], mediaType: String = "application/vnd.oci.image.manifest.v1+json",
        extra: [String: Any] = [:]
    )
        -> [UInt8]
    {
        var object: [String: Any] = [
            "schemaVersion": 2, "mediaType": mediaType,
            "config": descriptor(config, "application/vnd.oci.image.config.v1+json"),
            "layers": layers.map { descriptor($0, "application/vnd.oci.image.layer.v1.tar") },
        ]
        object.merge(extra) { $1 }
        return Array(try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
    }

    static func descriptor(_ bytes: [UInt8], _ mediaType: String) -> [String: Any] {
        ["mediaType": mediaType, "digest": Digest.sha256(of: bytes).description, "size": bytes.count]
    }
}

/// Calls against a registry's API that tests repeat.
struct RegistryClient {
    let base: String
    let http = HTTPClient()

    func send(
        _ method: String, _ path: String, headers: [String: String] = [:], body: [UInt8]? = nil,
        chunked: Bool = false
    ) throws -> HTTPClient.Response {
        let url = path.hasPrefix("http") ? path : base + path
        return try http.send(method, url, headers: headers, body: body, chunked: chunked)
    }

    /// Pushes a blob in one POST; answers the response.
    @discardableResult
    func pushMonolithic(_ bytes: [UInt8], to name: String) throws -> HTTPClient.Response {
        try send("POST", "/v2/\(name)/blobs/uploads/?digest=\(Digest.sha256(of: bytes))", body: bytes)
    }

    /// Pushes a blob as POST, PATCHes of `chunkSize` with Content-Range, and a final PUT.
    @discardableResult
    func pushChunked(_ bytes: [UInt8], to name: String, chunkSize: Int) throws -> HTTPClient.Response {
        let start = try send("POST", "/v2/\(name)/blobs/uploads/")
        guard start.status == 202, var location = start.header("Location") else { return start }
        var offset = 0
        while offset < bytes.count {
            let end = min(offset + chunkSize, bytes.count)
            let patch = try send(
                "PATCH", location,
                headers: ["Content-Range": "\(offset)-\(end - 1)", "Content-Type": "application/octet-stream"],
                body: Array(bytes[offset..<end]))
            guard patch.status == 202, let next = patch.header("Location") else { return patch }
            location = next
            offset = end
        }
        return try send("PUT", location + "?digest=\(Digest.sha256(of: bytes))")
    }

    /// Pushes a manifest under `reference`.
    @discardableResult
    func pushManifest(
        _ bytes: [UInt8], to name: String, reference: String,
        mediaType: String = "application/vnd.oci.image.manifest.v1+json"
    ) throws -> HTTPClient.Response {
        try send("PUT", "/v2/\(name)/manifests/\(reference)", headers: ["Content-Type": mediaType], body: bytes)
    }
}

/// The first error code of a response's `{"errors":[...]}` body.
func errorCode(_ response: HTTPClient.Response) -> String? {
    ((response.json?["errors"] as? [[String: Any]])?.first?["code"]) as? String
}

/// Passes requests to another handler and counts them by method and path, as an upstream's log would.
final class CountingHandler: HTTPHandler {
    let inner: any HTTPHandler
    private let counts = Mutex<[String: Int]>([:])

    init(_ inner: any HTTPHandler) {
        self.inner = inner
    }

    func begin(_ request: HTTPRequest) -> HTTPExchange {
        counts.withLock { $0["\(request.method) \(request.path)", default: 0] += 1 }
        return inner.begin(request)
    }

    /// How many requests had this method and path.
    func count(_ method: String, _ path: String) -> Int {
        counts.withLock { $0["\(method) \(path)"] ?? 0 }
    }

    /// How many requests had this method and a path ending with `suffix`.
    func count(_ method: String, endingWith suffix: String) -> Int {
        counts.withLock { $0.filter { $0.key.hasPrefix(method + " ") && $0.key.hasSuffix(suffix) }.values.reduce(0, +) }
    }
}

/// Checks `condition` every `interval` until it holds, for at most `seconds`; answers whether it held.
///
/// The one way these tests wait: only for what another process or a server thread does and has no way to tell
/// the test about (a daemon that starts listening, a connection the server notices closed, a fill committing
/// after its client left). Each wait is bounded, and each caller asserts the outcome.
@discardableResult
func waitUntil(seconds: Double = 10, interval: Double = 0.01, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while true {
        if try condition() { return true }
        if Date() >= deadline { return false }
        usleep(UInt32(interval * 1_000_000))
    }
}
