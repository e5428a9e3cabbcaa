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

@Suite struct PullThroughTests {
    @Test func pullsThroughVerifiesAndCaches() throws {
        let pair = try PullThroughPair()
        let image = try PushedImage.push(to: pair.upstream.base, name: "team/app", tag: "v1")

        let manifest = try pair.client.send("GET", "/v2/team/app/manifests/v1")
        #expect(manifest.status == 200)
        #expect(manifest.body == image.manifest)
        #expect(manifest.header("Docker-Content-Digest") == image.digest.description)
        #expect(manifest.header("Content-Type") == "application/vnd.oci.image.manifest.v1+json")
        for blob in [image.config, image.layer] {
            #expect(try pair.client.send("GET", "/v2/team/app/blobs/\(Digest.sha256(of: blob))").body == blob)
        }

        // Everything again: served from the cache, the upstream sees nothing new.
        let before = pair.counter.count("GET", "/v2/team/app/blobs/\(image.layerDigest)")
        #expect(before == 1)
        #expect(try pair.client.send("GET", "/v2/team/app/manifests/v1").body == image.manifest)
        #expect(try pair.client.send("GET", "/v2/team/app/blobs/\(image.layerDigest)").body == image.layer)
        #expect(pair.counter.count("GET", "/v2/team/app/blobs/\(image.layerDigest)") == 1)
        #expect(pair.counter.count("HEAD", "/v2/team/app/manifests/v1") == 1)
        #expect(pair.counter.count("GET", "/v2/team/app/manifests/\(image.digest)") == 1)
    }

    @Test func headByTagThenGetByDigestGoesUpstreamOnce() throws {
        let pair = try PullThroughPair()
        let image = try PushedImage.push(to: pair.upstream.base, name: "docker/flow", tag: "latest")
        let head = try pair.client.send("HEAD", "/v2/docker/flow/manifests/latest")
        #expect(head.status == 200)
        #expect(head.header("Docker-Content-Digest") == image.digest.description)
        let get = try pair.client.send("GET", "/v2/docker/flow/manifests/\(image.digest)")
        #expect(get.body == image.manifest)
        #expect(pair.counter.count("GET", "/v2/docker/flow/manifests/\(image.digest)") <= 1)
        #expect(
            pair.counter.count("GET", endingWith: "/manifests/\(image.digest)")
                + pair.counter.count("GET", "/v2/docker/flow/manifests/latest") == 1)
    }

    @Test func pushedImageShadowsTheUpstreamOne() throws {
        let pair = try PullThroughPair()
        let upstreamImage = try PushedImage.push(to: pair.upstream.base, name: "shadow", tag: "v1")
        #expect(try pair.client.send("GET", "/v2/shadow/manifests/v1").body == upstreamImage.manifest)
        let localImage = try PushedImage.push(to: pair.proxy.base, name: "shadow", tag: "v1")
        #expect(try pair.client.send("GET", "/v2/shadow/manifests/v1").body == localImage.manifest)
        let tags = try pair.client.send("GET", "/v2/shadow/tags/list")
        #expect(tags.json?["tags"] as? [String] == ["v1"])
        _ = try PushedImage.push(to: pair.upstream.base, name: "shadow", tag: "v2")
        _ = try PushedImage.push(to: pair.proxy.base, name: "shadow", tag: "local-only")
        let merged = try pair.client.send("GET", "/v2/shadow/tags/list")
        #expect(merged.json?["tags"] as? [String] == ["local-only", "v1", "v2"])
    }

    @Test func unknownEverywhereIs404() throws {
        let pair = try PullThroughPair()
        let manifest = try pair.client.send("GET", "/v2/nothing/manifests/v1")
        #expect(manifest.status == 404)
        #expect(errorCode(manifest) == "MANIFEST_UNKNOWN")
        let blob = try pair.client.send("GET", "/v2/nothing/blobs/\(Digest.sha256(of: [1]))")
        #expect(blob.status == 404)
        #expect(errorCode(blob) == "BLOB_UNKNOWN")
    }

    @Test func concurrentColdPullsShareOneUpstreamFetch() throws {
        let pair = try PullThroughPair()
        let image = try PushedImage.push(to: pair.upstream.base, name: "many", tag: "v1", layerSize: 8_000_000)
        let failures = Mutex<[String]>([])
        let base = pair.proxy.base
        let digest = image.layerDigest
        let expected = image.layer
        runTogether(16) { index in
            do {
                let response = try RegistryClient(base: base).send("GET", "/v2/many/blobs/\(digest)")
                if response.status != 200 || response.body != expected {
                    failures.withLock { $0.append("client \(index): \(response.status), \(response.body.count) bytes") }
                }
            } catch {
                failures.withLock { $0.append("client \(index): \(error)") }
            }
        }
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 })")
        #expect(pair.counter.count("GET", "/v2/many/blobs/\(digest)") == 1)
    }

    @Test func rangeOnAMissGetsTheRightPart() throws {
        let pair = try PullThroughPair()
        let image = try PushedImage.push(to: pair.upstream.base, name: "ranged", tag: "v1")
        let part = try pair.client.send(
            "GET", "/v2/ranged/blobs/\(image.layerDigest)", headers: ["Range": "bytes=1000-1999"])
        #expect(part.status == 206)
        #expect(part.header("Content-Range") == "bytes 1000-1999/\(image.layer.count)")
        #expect(part.body == Array(image.layer[1000...1999]))
    }

    @Test func cachedTagIsServedWhileTheUpstreamIsDown() throws {
        var pair: PullThroughPair? = try PullThroughPair(tagLifetime: 1)
        let image = try PushedImage.push(to: pair!.upstream.base, name: "offline", tag: "v1")
        let client = pair!.client
        #expect(try client.send("GET", "/v2/offline/manifests/v1").body == image.manifest)
        #expect(try client.send("GET", "/v2/offline/blobs/\(image.layerDigest)").body == image.layer)
        pair!.upstream.server.stop()
        // Let the tag's lifetime pass, so the next request must try the upstream first.
        Thread.sleep(forTimeInterval: 1.2)
        let served = try client.send("GET", "/v2/offline/manifests/v1")
        #expect(served.status == 200)
        #expect(served.body == image.manifest)
        let uncached = try client.send("GET", "/v2/offline/manifests/v2")
        #expect(uncached.status == 502)
        #expect(uncached.json?["errors"] != nil)
        pair = nil
    }

    @Test func tokenUpstreamAndNoAuthorizationAcrossRedirects() throws {
        let blobHost = try BlobHost()
        // The token realm must name the upstream's own port, so the port is chosen before the server starts.
        let port = try ServerProcess.freePort()
        let access = AccessControl(
            users: [
                .init(name: "mirror", password: "m1rror", canWrite: true),
                .init(name: "viewer", password: "v", canWrite: false),
            ],
            secret: "upstream-secret", publicURL: "http://127.0.0.1:\(port)")
        var counting: CountingHandler?
        let upstream = try TestServer(accessControl: access, port: port) { registry in
            let counter = CountingHandler(RedirectingHandler(registry, blobHost: blobHost))
            counting = counter
            return counter
        }
        let counter = try #require(counting)
        let pusher = ["Authorization": "Basic " + Data("mirror:m1rror".utf8).base64EncodedString()]
        let image = try PushedImage.push(to: upstream.base, name: "private/app", tag: "v1", headers: pusher)
        blobHost.serve(image.layer)

        var configuration = UpstreamConfiguration(name: "hub.test", url: upstream.base)
        configuration.username = "viewer"
        configuration.password = "v"
        let proxy = try TestServer(upstreams: [UpstreamRegistry(configuration)])
        let client = RegistryClient(base: proxy.base)
        #expect(try client.send("GET", "/v2/private/app/manifests/v1").body == image.manifest)
        let blob = try client.send("GET", "/v2/private/app/blobs/\(image.layerDigest)")
        #expect(blob.status == 200)
        #expect(blob.body == image.layer)
        #expect(blobHost.requests() >= 1)
        #expect(blobHost.authorizationHeaders().isEmpty, "\(blobHost.authorizationHeaders())")
        // The proxy went through the Bearer challenge: it asked the realm for a token.
        #expect(counter.count("GET", "/auth/token") >= 1)
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
            guard case .respond(let response) = exchange, response.status == 200 else { return exchange }
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
    func requests() -> Int { handler.state.withLock { $0.requests } }
    func authorizationHeaders() -> [String] { handler.state.withLock { $0.seen } }
}

final class BlobHostHandler: HTTPHandler {
    let state = Mutex<(content: [UInt8], seen: [String], requests: Int)>(([], [], 0))

    func begin(_ request: HTTPRequest) -> HTTPExchange {
        let authorization = request.header("Authorization")
        let content = state.withLock { state in
            state.requests += 1
            if let authorization { state.seen.append(authorization) }
            return state.content
        }
        return .respond(HTTPResponse(status: 200, body: .bytes(content)))
    }
}

/// An upstream that misbehaves on blob GETs in the way a test chooses.
final class FaultyUpstream: HTTPHandler {
    enum Fault: Sendable {
        case none
        /// Send half the blob, then close the connection.
        case dieHalfWay
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

    init(_ inner: any HTTPHandler) {
        self.inner = inner
    }

    func begin(_ request: HTTPRequest) -> HTTPExchange {
        let current = fault.withLock { $0 }
        let isBlob = request.method == "GET" && request.path.contains("/blobs/sha256:")
        let isManifest = request.path.contains("/manifests/")
        if isBlob { blobRequests.withLock { $0 += 1 } }
        switch current {
        case .status(let status, let retryAfter) where isBlob || isManifest:
            var error = RegistryError(
                .tooManyRequests, status: status, headers: retryAfter.map { [("Retry-After", $0)] } ?? []
            )
            .response()
            error.addHeader("Docker-Distribution-API-Version", "registry/2.0")
            return .respond(error)
        case .dieHalfWay, .wrongBytes, .held:
            guard isBlob, case .respond(let response) = inner.begin(request), response.status == 200,
                case .file(let descriptor, let offset, let length) = response.body
            else { return inner.begin(request) }
            let content = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
            try? content.seek(toOffset: UInt64(offset))
            var bytes = Array(content.readData(ofLength: Int(length)))
            let source: FaultySource
            switch current {
            case .dieHalfWay: source = FaultySource(bytes: bytes, stopAt: bytes.count / 2, gate: nil)
            case .wrongBytes:
                bytes[bytes.count / 3] ^= 0xff
                source = FaultySource(bytes: bytes, stopAt: nil, gate: nil)
            case .held(let gate): source = FaultySource(bytes: bytes, stopAt: nil, gate: gate)
            default: return inner.begin(request)
            }
            return .respond(
                HTTPResponse(status: 200, headers: response.headers, body: .stream(length: length, source: source)))
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

@Suite struct UpstreamFaultTests {
    let upstream: TestServer
    let faulty: FaultyUpstream
    let proxy: TestServer
    let client: RegistryClient
    let image: PushedImage

    init() throws {
        var made: FaultyUpstream?
        upstream = try TestServer { registry in
            let faulty = FaultyUpstream(registry)
            made = faulty
            return faulty
        }
        faulty = made!
        var configuration = UpstreamConfiguration(name: "flaky.test", url: upstream.base)
        configuration.stallTimeout = 5
        proxy = try TestServer(upstreams: [UpstreamRegistry(configuration)])
        client = RegistryClient(base: proxy.base)
        image = try PushedImage.push(to: upstream.base, name: "flaky", tag: "v1", layerSize: 600_000)
    }

    var isCached: Bool {
        (try? proxy.store.driver.info(StorageLayout.blob(image.layerDigest, in: .cache("flaky.test")))) != nil
    }

    /// Fetches the layer through the proxy: true only for a complete, correct body.
    func pullSucceeds() -> Bool {
        guard let response = try? client.send("GET", "/v2/flaky/blobs/\(image.layerDigest)") else { return false }
        return response.status == 200 && response.body == image.layer
    }

    @Test func upstreamDyingMidBlobCachesNothing() throws {
        faulty.fault.withLock { $0 = .dieHalfWay }
        #expect(!pullSucceeds())
        #expect(!isCached)
        faulty.fault.withLock { $0 = .none }
        #expect(pullSucceeds())
        #expect(isCached)
    }

    @Test func wrongBytesAreNeverServedWholeNorCached() throws {
        faulty.fault.withLock { $0 = .wrongBytes }
        let response = try? client.send("GET", "/v2/flaky/blobs/\(image.layerDigest)")
        #expect(response == nil || response!.body.count < image.layer.count)
        #expect(!isCached)
        faulty.fault.withLock { $0 = .none }
        #expect(pullSucceeds())
    }

    @Test func tooManyRequestsIsPassedOnWithRetryAfter() throws {
        faulty.fault.withLock { $0 = .status(429, retryAfter: "7") }
        let blob = try client.send("GET", "/v2/flaky/blobs/\(image.layerDigest)")
        #expect(blob.status == 429)
        #expect(blob.header("Retry-After") == "7")
        #expect(errorCode(blob) == "TOOMANYREQUESTS")
        let manifest = try client.send("GET", "/v2/flaky/manifests/v1")
        #expect(manifest.status == 429)
        #expect(manifest.header("Retry-After") == "7")
    }

    @Test func serviceUnavailableIsRetriedThenReported() throws {
        faulty.fault.withLock { $0 = .status(503, retryAfter: nil) }
        let before = faulty.blobRequests.withLock { $0 }
        let blob = try client.send("GET", "/v2/flaky/blobs/\(image.layerDigest)")
        #expect(blob.status == 503)
        #expect(blob.json?["errors"] != nil)
        #expect(faulty.blobRequests.withLock { $0 } - before == 3)
        #expect(!isCached)
    }

    @Test func aClientThatGoesAwayDoesNotAbortTheFill() throws {
        let gate = DispatchSemaphore(value: 0)
        faulty.fault.withLock { $0 = .held(gate) }
        do {
            let leaving = try RawConnection(port: proxy.server.port)
            leaving.send("GET /v2/flaky/blobs/\(image.layerDigest) HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(leaving.readStatus() == 200)
        }
        // The connection is closed now; only then does the upstream send the body.
        gate.signal()
        var cached = false
        for _ in 0..<500 where !cached {
            cached = isCached
            if !cached { usleep(10_000) }
        }
        #expect(cached)
        faulty.fault.withLock { $0 = .none }
        let requests = faulty.blobRequests.withLock { $0 }
        #expect(pullSucceeds())
        #expect(faulty.blobRequests.withLock { $0 } == requests)
    }

    @Test func aSlowUpstreamHoldsUpNoOtherClient() throws {
        let gate = DispatchSemaphore(value: 0)
        faulty.fault.withLock { $0 = .held(gate) }
        let local = Fixture.randomBytes(1000)
        #expect(try client.pushMonolithic(local, to: "fast").status == 201)

        let slowDone = Mutex<Bool>(false)
        let group = DispatchGroup()
        group.enter()
        let proxyBase = proxy.base
        let digest = image.layerDigest
        let expected = image.layer
        Thread {
            let body = try? RegistryClient(base: proxyBase).send("GET", "/v2/flaky/blobs/\(digest)").body
            slowDone.withLock { $0 = body == expected }
            group.leave()
        }.start()

        // While the upstream holds its body, other requests are answered.
        #expect(try client.send("GET", "/v2/fast/blobs/\(Digest.sha256(of: local))").body == local)
        #expect(try client.send("GET", "/v2/").status == 200)
        #expect(slowDone.withLock { !$0 })
        gate.signal()
        group.wait()
        #expect(slowDone.withLock { $0 })
    }
}
