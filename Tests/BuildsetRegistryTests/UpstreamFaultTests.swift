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

    @Test func aTransferThatBreaksIsResumedWhereItBroke() throws {
        faulty.fault.withLock { $0 = .dieHalfWayOnce }
        #expect(pullSucceeds())
        #expect(isCached)
        let ranges = faulty.blobRanges.withLock { $0 }
        try #require(ranges.count == 2)
        #expect(ranges[0] == nil)
        // What arrived before the break, which is at most the half the upstream sent.
        let start = try #require(ranges[1].flatMap { Int($0.dropFirst("bytes=".count).dropLast()) })
        #expect(start > 0 && start <= image.layer.count / 2)
        #expect(ranges[1] == "bytes=\(start)-")
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
        #expect(waitUntil(seconds: 5) { isCached })
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
