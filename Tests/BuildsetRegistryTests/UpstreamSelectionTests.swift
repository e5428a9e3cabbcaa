import Config
import Foundation
import HTTPClient
import Hashing
import Testing
import Upstream

@testable import Registry

/// Several upstreams in one server, Docker Hub's `library/`, and mounts out of the cache.
@Suite struct UpstreamSelectionTests {
    let first: TestServer
    let second: TestServer
    let proxy: TestServer
    let client: RegistryClient

    init() throws {
        first = try TestServer()
        second = try TestServer()
        var hubShaped = UpstreamConfiguration(name: "first.test", url: first.base)
        hubShaped.addsLibraryPrefix = true
        let upstreams = [
            UpstreamRegistry(hubShaped), UpstreamRegistry(UpstreamConfiguration(name: "second.test", url: second.base)),
        ]
        proxy = try TestServer(upstreams: upstreams)
        client = RegistryClient(base: proxy.base)
    }

    @Test func pathPrefixAndNamespaceParameterPickTheUpstream() throws {
        let fromFirst = try PushedImage.push(to: first.base, name: "org/tool", tag: "v1")
        let fromSecond = try PushedImage.push(to: second.base, name: "org/tool", tag: "v1")
        #expect(try client.send("GET", "/v2/org/tool/manifests/v1").body == fromFirst.manifest)
        #expect(try client.send("GET", "/v2/second.test/org/tool/manifests/v1").body == fromSecond.manifest)
        #expect(try client.send("GET", "/v2/org/tool/manifests/v1?ns=second.test").body == fromSecond.manifest)
        #expect(try client.send("GET", "/v2/first.test/org/tool/manifests/v1").body == fromFirst.manifest)
        #expect(
            try client.send("GET", "/v2/second.test/org/tool/blobs/\(fromSecond.layerDigest)").body == fromSecond.layer)
        #expect(try client.send("GET", "/v2/org/tool/blobs/\(fromSecond.layerDigest)").status == 404)
    }

    @Test func singleSegmentNamesGetLibraryOnADockerHubShapedUpstream() throws {
        let image = try PushedImage.push(to: first.base, name: "library/busybox", tag: "latest")
        #expect(try client.send("GET", "/v2/busybox/manifests/latest").body == image.manifest)
        #expect(try client.send("GET", "/v2/busybox/blobs/\(image.layerDigest)").body == image.layer)
    }

    @Test func cachedUpstreamBlobMountsIntoLocal() throws {
        let image = try PushedImage.push(to: first.base, name: "base/image", tag: "v1")
        #expect(try client.send("GET", "/v2/base/image/blobs/\(image.layerDigest)").body == image.layer)
        let mounted = try client.send("POST", "/v2/mine/app/blobs/uploads/?mount=\(image.layerDigest)&from=base/image")
        #expect(mounted.status == 201)
        first.server.stop()
        #expect(try client.send("GET", "/v2/mine/app/blobs/\(image.layerDigest)").body == image.layer)
        let notCached = try client.send("POST", "/v2/mine/app/blobs/uploads/?mount=\(image.digest)&from=base/image")
        #expect(notCached.status == 202)
    }
}

/// distribution, with htpasswd auth, as the upstream of real clients pulling through this registry.
@Suite(.serialized) struct DistributionUpstreamTests {
    @Test func skopeoAndPodmanPullThroughAndLocalPushesWin() throws {
        let directory = TemporaryDirectory()
        let htpasswd = try run("htpasswd", ["-Bbn", "mirror", "m1rror"])
        #expect(htpasswd.status == 0)
        try htpasswd.output.write(toFile: directory.path + "/htpasswd", atomically: true, encoding: .utf8)
        let port = try ServerProcess.freePort()
        let config = """
            version: 0.1
            log: {accesslog: {disabled: true}, level: error}
            storage:
              filesystem: {rootdirectory: \(directory.path)/distribution}
            auth:
              htpasswd: {realm: upstream, path: \(directory.path)/htpasswd}
            http: {addr: "127.0.0.1:\(port)"}

            """
        try config.write(toFile: directory.path + "/distribution.yml", atomically: true, encoding: .utf8)
        let distribution = Process()
        distribution.executableURL = URL(fileURLWithPath: "/usr/bin/docker-registry")
        distribution.arguments = ["serve", directory.path + "/distribution.yml"]
        distribution.standardError = FileHandle(forWritingAtPath: "/dev/null")
        distribution.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        try distribution.run()
        defer {
            distribution.terminate()
            distribution.waitUntilExit()
        }
        let probe = HTTPClient()
        #expect(
            waitUntil(interval: 0.02) {
                (try? probe.send("GET", "http://127.0.0.1:\(port)/v2/", timeout: 2))?.status == 401
            })

        let source = try OCILayout.make(at: directory.path + "/source", layers: 2, tag: "v1")
        let seed = try run(
            "skopeo",
            [
                "copy", "--preserve-digests", "--dest-tls-verify=false", "--dest-creds", "mirror:m1rror",
                "oci:\(source.path):v1", "docker://127.0.0.1:\(port)/team/base:v1",
            ])
        #expect(seed.status == 0, "\(seed.output)")

        var upstream = UpstreamConfiguration(name: "distribution.test", url: "http://127.0.0.1:\(port)")
        upstream.username = "mirror"
        upstream.password = "m1rror"
        let proxy = try TestServer(upstreams: [UpstreamRegistry(upstream)])
        let host = "127.0.0.1:\(proxy.server.port)"

        let pulled = directory.path + "/pulled"
        let pull = try run(
            "skopeo",
            [
                "copy", "--preserve-digests", "--src-tls-verify=false", "docker://\(host)/team/base:v1",
                "oci:\(pulled):v1",
            ])
        #expect(pull.status == 0, "\(pull.output)")
        #expect(try OCILayout(path: pulled, manifestDigest: source.manifestDigest).blobs() == source.blobs())

        let podmanRoot = [
            "--root", directory.path + "/podman/root", "--runroot", directory.path + "/podman/run",
            "--storage-driver=vfs",
        ]
        let podman = try run("podman", podmanRoot + ["pull", "--tls-verify=false", "\(host)/team/base:v1"])
        #expect(podman.status == 0, "\(podman.output)")

        // The same name pushed here now shadows the upstream's image.
        let local = try OCILayout.make(at: directory.path + "/local", layers: 1, tag: "v1")
        let push = try run(
            "skopeo",
            [
                "copy", "--preserve-digests", "--dest-tls-verify=false", "oci:\(local.path):v1",
                "docker://\(host)/team/base:v1",
            ])
        #expect(push.status == 0, "\(push.output)")
        let inspect = try run("skopeo", ["inspect", "--raw", "--tls-verify=false", "docker://\(host)/team/base:v1"])
        #expect(Digest.sha256(of: Array(inspect.output.utf8)).description == local.manifestDigest)
    }
}
