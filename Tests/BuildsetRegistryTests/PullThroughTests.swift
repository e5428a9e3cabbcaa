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

    @Test func pushesWorkWhileTheUpstreamIsDown() throws {
        let pair = try PullThroughPair()
        pair.upstream.server.stop()
        let layer = Fixture.randomBytes(5000)
        let head = try pair.client.send("HEAD", "/v2/built/app/blobs/\(Digest.sha256(of: layer))")
        #expect(head.status == 404)
        _ = try PushedImage.push(to: pair.proxy.base, name: "built/app", tag: "v1")
        #expect(try pair.client.send("GET", "/v2/built/app/manifests/v1").status == 200)
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
        // A tag lifetime of zero makes every request check the tag upstream first.
        var pair: PullThroughPair? = try PullThroughPair(tagLifetime: 0)
        let image = try PushedImage.push(to: pair!.upstream.base, name: "offline", tag: "v1")
        let client = pair!.client
        #expect(try client.send("GET", "/v2/offline/manifests/v1").body == image.manifest)
        #expect(try client.send("GET", "/v2/offline/blobs/\(image.layerDigest)").body == image.layer)
        pair!.upstream.server.stop()
        let served = try client.send("GET", "/v2/offline/manifests/v1")
        #expect(served.status == 200)
        #expect(served.body == image.manifest)
        let uncached = try client.send("GET", "/v2/offline/manifests/v2")
        #expect(uncached.status == 502)
        #expect(uncached.json?["errors"] != nil)
        pair = nil
    }

    @Test func tokenUpstreamAndNoAuthorizationAcrossRedirectsOrResumes() throws {
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
        // The proxy went through the Bearer challenge: it asked the realm for a token.
        #expect(counter.count("GET", "/auth/token") >= 1)

        // A transfer from the blob host that breaks resumes through the registry, which redirects again; the
        // host ignores the Range and sends the whole blob, of which the proxy passes on only the rest.
        let second = try PushedImage.push(to: upstream.base, name: "private/app", tag: "v2", headers: pusher)
        blobHost.serve(second.layer)
        blobHost.breakNextTransfer()
        let before = blobHost.requests()
        let resumed = try client.send("GET", "/v2/private/app/blobs/\(second.layerDigest)")
        #expect(resumed.status == 200)
        #expect(resumed.body == second.layer)
        #expect(blobHost.requests() == before + 2)
        #expect(blobHost.authorizationHeaders().isEmpty, "\(blobHost.authorizationHeaders())")
    }
}
