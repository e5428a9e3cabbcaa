import Config
import Foundation
import HTTPClient
import HTTPServer
import Hashing
import Storage
import Synchronization
import Testing
import Upstream

@testable import Registry

/// An image pushed to an upstream registry: its manifest and blobs.
struct PushedImage {
    let manifest: [UInt8]
    let config: [UInt8]
    let layer: [UInt8]
    var digest: Digest { Digest.sha256(of: manifest) }
    var layerDigest: Digest { Digest.sha256(of: layer) }

    static func push(
        to base: String, name: String, tag: String, layerSize: Int = 200_000, headers: [String: String] = [:]
    )
        throws -> PushedImage
    {
        let client = RegistryClient(base: base)
        let config = Array(
            "{\"os\":\"linux\",\"image\":\"\(name):\(tag)\",\"n\":\(Int.random(in: 0..<1_000_000))}".utf8)
        let layer = Fixture.randomBytes(layerSize)
        for blob in [config, layer] {
            let response = try client.send(
                "POST", "/v2/\(name)/blobs/uploads/?digest=\(Digest.sha256(of: blob))", headers: headers, body: blob)
            guard response.status == 201 else { throw POSIXError(.EIO) }
        }
        let manifest = Fixture.imageManifest(config: config, layers: [layer])
        var manifestHeaders = headers
        manifestHeaders["Content-Type"] = "application/vnd.oci.image.manifest.v1+json"
        let pushed = try client.send("PUT", "/v2/\(name)/manifests/\(tag)", headers: manifestHeaders, body: manifest)
        guard pushed.status == 201 else { throw POSIXError(.EIO) }
        return PushedImage(manifest: manifest, config: config, layer: layer)
    }
}

/// A pull-through registry in front of one in-process upstream whose requests are counted.
struct PullThroughPair {
    let upstream: TestServer
    let counter: CountingHandler
    let proxy: TestServer
    let client: RegistryClient

    init(tagLifetime: Int = 300, upstreamAccess: AccessControl? = nil, credentials: (String, String)? = nil) throws {
        var counting: CountingHandler?
        upstream = try TestServer(accessControl: upstreamAccess) { registry in
            let counter = CountingHandler(registry)
            counting = counter
            return counter
        }
        counter = counting!
        var configuration = UpstreamConfiguration(name: "upstream.test", url: upstream.base)
        configuration.tagLifetime = tagLifetime
        configuration.username = credentials?.0
        configuration.password = credentials?.1
        configuration.stallTimeout = 5
        proxy = try TestServer(upstreams: [UpstreamRegistry(configuration)])
        client = RegistryClient(base: proxy.base)
    }
}

/// An upstream wrapper that answers blob GETs with a redirect to another server, as Docker Hub does.
final class RedirectingHandler: HTTPHandler {
    let inner: any HTTPHandler
    let blobHost: BlobHost

    init(_ inner: any HTTPHandler, blobHost: BlobHost) {
        self.inner = inner
        self.blobHost = blobHost
    }

    func begin(_ request: HTTPRequest) -> HTTPExchange {
        if request.method == "GET", request.path.contains("/blobs/sha256:"), request.header("Authorization") != nil {
            let exchange = inner.begin(request)
            guard case .respond(let response) = exchange, [200, 206].contains(response.status) else { return exchange }
            return .respond(HTTPResponse(status: 307, headers: [("Location", blobHost.base + "/content")]))
        }
        return inner.begin(request)
    }
}

/// A plain server holding one blob's bytes, that records the Authorization header of every request.
final class BlobHost: Sendable {
    private let handler = BlobHostHandler()
    private let server: HTTPServer

    init() throws {
        server = HTTPServer(
            configuration: .init(address: "127.0.0.1", port: 0), handler: handler, logger: .init(label: "blob-host"))
        try server.start()
    }

    deinit { server.stop() }

    var base: String { "http://127.0.0.1:\(server.port)" }

    func serve(_ content: [UInt8]) { handler.state.withLock { $0.content = content } }
    /// Makes the next transfer stop half-way; later ones are whole. Like many blob hosts, it ignores `Range`.
    func breakNextTransfer() { handler.state.withLock { $0.breaksNext = true } }
    func requests() -> Int { handler.state.withLock { $0.requests } }
    func authorizationHeaders() -> [String] { handler.state.withLock { $0.seen } }
}

final class BlobHostHandler: HTTPHandler {
    let state = Mutex<(content: [UInt8], seen: [String], requests: Int, breaksNext: Bool)>(([], [], 0, false))

    func begin(_ request: HTTPRequest) -> HTTPExchange {
        let authorization = request.header("Authorization")
        let (content, breaks) = state.withLock { state in
            state.requests += 1
            if let authorization { state.seen.append(authorization) }
            let breaks = state.breaksNext
            state.breaksNext = false
            return (state.content, breaks)
        }
        guard breaks else { return .respond(HTTPResponse(status: 200, body: .bytes(content))) }
        let half = FaultySource(bytes: content, stopAt: content.count / 2, gate: nil)
        return .respond(HTTPResponse(status: 200, body: .stream(length: Int64(content.count), source: half)))
    }
}

/// An upstream that misbehaves on blob GETs in the way a test chooses.
final class FaultyUpstream: HTTPHandler {
    enum Fault: Sendable {
        case none
        /// Send half the blob, or of the asked range, then close the connection.
        case dieHalfWay
        /// Die half-way once, then serve as asked.
        case dieHalfWayOnce
        /// Send the promised length with one byte changed.
        case wrongBytes
        /// Answer with this status and `Retry-After`.
        case status(Int, retryAfter: String?)
        /// Hold the body until the gate is signalled.
        case held(DispatchSemaphore)
    }

    let inner: any HTTPHandler
    let fault = Mutex<Fault>(.none)
    let blobRequests = Mutex<Int>(0)
    /// The `Range` header of each blob GET, in order; nil for none.
    let blobRanges = Mutex<[String?]>([])

    init(_ inner: any HTTPHandler) {
        self.inner = inner
    }

    func begin(_ request: HTTPRequest) -> HTTPExchange {
        let current = fault.withLock { $0 }
        let isBlob = request.method == "GET" && request.path.contains("/blobs/sha256:")
        let isManifest = request.path.contains("/manifests/")
        if isBlob {
            blobRequests.withLock { $0 += 1 }
            blobRanges.withLock { $0.append(request.header("Range")) }
        }
        switch current {
        case .status(let status, let retryAfter) where isBlob || isManifest:
            var error = RegistryError(
                .tooManyRequests, status: status, headers: retryAfter.map { [("Retry-After", $0)] } ?? []
            )
            .response()
            error.addHeader("Docker-Distribution-API-Version", "registry/2.0")
            return .respond(error)
        case .dieHalfWay, .dieHalfWayOnce, .wrongBytes, .held:
            guard isBlob, case .respond(let response) = inner.begin(request), [200, 206].contains(response.status),
                case .file(let descriptor, let offset, let length) = response.body
            else { return inner.begin(request) }
            let content = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
            try? content.seek(toOffset: UInt64(offset))
            var bytes = Array(content.readData(ofLength: Int(length)))
            let source: FaultySource
            switch current {
            case .dieHalfWay: source = FaultySource(bytes: bytes, stopAt: bytes.count / 2, gate: nil)
            case .dieHalfWayOnce:
                fault.withLock { $0 = .none }
                source = FaultySource(bytes: bytes, stopAt: bytes.count / 2, gate: nil)
            case .wrongBytes:
                bytes[bytes.count / 3] ^= 0xff
                source = FaultySource(bytes: bytes, stopAt: nil, gate: nil)
            case .held(let gate): source = FaultySource(bytes: bytes, stopAt: nil, gate: gate)
            default: return inner.begin(request)
            }
            return .respond(
                HTTPResponse(
                    status: response.status, headers: response.headers, body: .stream(length: length, source: source)))
        default:
            return inner.begin(request)
        }
    }
}

final class FaultySource: HTTPBodySource {
    let bytes: [UInt8]
    let stopAt: Int?
    let gate: DispatchSemaphore?

    init(bytes: [UInt8], stopAt: Int?, gate: DispatchSemaphore?) {
        self.bytes = bytes
        self.stopAt = stopAt
        self.gate = gate
    }

    func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        if offset == 0, let gate { gate.wait() }
        let end = stopAt ?? bytes.count
        guard Int(offset) < end else { return Int(offset) < bytes.count ? nil : 0 }
        let count = min(buffer.count, end - Int(offset), 64 * 1024)
        bytes.withUnsafeBytes {
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[Int(offset)..<(Int(offset) + count)]))
        }
        return count
    }

    func close() {}
}
