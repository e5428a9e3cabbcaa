import Foundation
import HTTPClient
import Hashing
import Testing

/// Manifests, tags, the catalog and referrers, against a real server on loopback.
@Suite struct ManifestAPITests {
    let server: TestServer
    let client: RegistryClient

    init() throws {
        server = try TestServer()
        client = RegistryClient(base: server.base)
    }

    func pushImage(_ name: String, tag: String, mediaType: String = "application/vnd.oci.image.manifest.v1+json")
        throws -> (manifest: [UInt8], response: HTTPClient.Response)
    {
        let config = Array("{\"os\":\"linux\",\"tag\":\"\(tag)\"}".utf8)
        let layer = Fixture.randomBytes(3000)
        try client.pushMonolithic(config, to: name)
        try client.pushMonolithic(layer, to: name)
        let manifest = Fixture.imageManifest(config: config, layers: [layer], mediaType: mediaType)
        return (manifest, try client.pushManifest(manifest, to: name, reference: tag, mediaType: mediaType))
    }

    @Test func manifestPushAndPullByTagAndDigest() throws {
        let (manifest, response) = try pushImage("img", tag: "v1")
        let digest = Digest.sha256(of: manifest)
        #expect(response.status == 201)
        #expect(response.header("Docker-Content-Digest") == digest.description)
        #expect(response.header("Location") == "/v2/img/manifests/\(digest)")

        for reference in ["v1", digest.description] {
            let get = try client.send("GET", "/v2/img/manifests/\(reference)")
            #expect(get.status == 200)
            #expect(get.body == manifest)
            #expect(get.header("Content-Type") == "application/vnd.oci.image.manifest.v1+json")
            #expect(get.header("Docker-Content-Digest") == digest.description)
            let head = try client.send(
                "HEAD", "/v2/img/manifests/\(reference)",
                headers: ["Accept": "application/vnd.oci.image.manifest.v1+json"])
            #expect(head.status == 200)
            #expect(head.header("Content-Length") == String(manifest.count))
        }
        #expect(try client.send("GET", "/v2/img/blobs/\(digest)").body == manifest)
    }

    @Test func tagPointsAtTheLastManifestPushed() throws {
        let (first, _) = try pushImage("retag", tag: "latest")
        let (second, _) = try pushImage(
            "retag", tag: "latest", mediaType: "application/vnd.docker.distribution.manifest.v2+json")
        #expect(first != second)
        let get = try client.send("GET", "/v2/retag/manifests/latest")
        #expect(get.body == second)
        #expect(get.header("Content-Type") == "application/vnd.docker.distribution.manifest.v2+json")
        #expect(try client.send("GET", "/v2/retag/manifests/\(Digest.sha256(of: first))").status == 200)
    }

    @Test func manifestChecks() throws {
        let layer = Fixture.randomBytes(100)
        let config = Array("{}".utf8)
        try client.pushMonolithic(config, to: "checks")
        let missingLayer = Fixture.imageManifest(config: config, layers: [layer])
        let unknown = try client.pushManifest(missingLayer, to: "checks", reference: "v1")
        #expect(unknown.status == 400)
        #expect(errorCode(unknown) == "MANIFEST_BLOB_UNKNOWN")

        let notJSON = try client.pushManifest(Array("not json".utf8), to: "checks", reference: "v1")
        #expect(errorCode(notJSON) == "MANIFEST_INVALID")

        let schema1 = try client.pushManifest(
            Array("{\"schemaVersion\":1,\"name\":\"x\"}".utf8), to: "checks", reference: "v1",
            mediaType: "application/vnd.docker.distribution.manifest.v1+prettyjws")
        #expect(errorCode(schema1) == "MANIFEST_INVALID")

        let mismatch = try client.pushManifest(
            Fixture.imageManifest(config: config, layers: []), to: "checks", reference: "v1",
            mediaType: "application/vnd.oci.image.index.v1+json")
        #expect(errorCode(mismatch) == "MANIFEST_INVALID")

        let valid = Fixture.imageManifest(config: config, layers: [])
        let wrongDigest = try client.pushManifest(valid, to: "checks", reference: Digest.sha256(of: layer).description)
        #expect(errorCode(wrongDigest) == "DIGEST_INVALID")

        let badTag = try client.pushManifest(valid, to: "checks", reference: "-bad")
        #expect(errorCode(badTag) == "TAG_INVALID")
        // Reading a reference no manifest can have is a plain miss.
        for method in ["GET", "HEAD", "DELETE"] {
            let missing = try client.send(method, "/v2/checks/manifests/.INVALID_MANIFEST_NAME")
            #expect(missing.status == 404, "\(method)")
            if method != "HEAD" { #expect(errorCode(missing) == "MANIFEST_UNKNOWN") }
        }

        let byDigest = try client.pushManifest(valid, to: "checks", reference: Digest.sha256(of: valid).description)
        #expect(byDigest.status == 201)
        #expect(try client.send("GET", "/v2/checks/tags/list").json?["tags"] as? [String] == [])
    }

    @Test func indexNeedsItsManifests() throws {
        let (child, _) = try pushImage("index", tag: "amd64")
        let entry = Fixture.descriptor(child, "application/vnd.oci.image.manifest.v1+json")
        let index = Array(
            try JSONSerialization.data(withJSONObject: [
                "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [entry],
            ]))
        let pushed = try client.pushManifest(
            index, to: "index", reference: "multi", mediaType: "application/vnd.oci.image.index.v1+json")
        #expect(pushed.status == 201)
        let orphan = try client.pushManifest(
            index, to: "other-index", reference: "multi", mediaType: "application/vnd.oci.image.index.v1+json")
        #expect(errorCode(orphan) == "MANIFEST_BLOB_UNKNOWN")
    }

    @Test func manifestWithoutContentTypeOrAcceptWorks() throws {
        let config = Array("{}".utf8)
        try client.pushMonolithic(config, to: "plain")
        let manifest = Fixture.imageManifest(config: config, layers: [])
        let pushed = try client.send("PUT", "/v2/plain/manifests/v1", body: manifest)
        #expect(pushed.status == 201)
        let get = try client.send("GET", "/v2/plain/manifests/v1")
        #expect(get.body == manifest)
        #expect(get.header("Content-Type") == "application/vnd.oci.image.manifest.v1+json")
    }

    @Test func oversizedManifestGets413() throws {
        let big = Array(repeating: UInt8(ascii: " "), count: 4 * 1024 * 1024 + 10)
        let response = try client.pushManifest(big, to: "big", reference: "v1")
        #expect(response.status == 413)
        #expect(errorCode(response) == "SIZE_INVALID")
        let streamed = try RegistryClient(base: server.base).send(
            "PUT", "/v2/big/manifests/v1", headers: ["Content-Type": "application/vnd.oci.image.manifest.v1+json"],
            body: big, chunked: true)
        #expect(streamed.status == 413)
        #expect(try client.send("GET", "/v2/").status == 200)
    }

    @Test func manifestDeleteByDigestAndByTag() throws {
        let (manifest, _) = try pushImage("del", tag: "v1")
        let digest = Digest.sha256(of: manifest)
        _ = try client.pushManifest(manifest, to: "del", reference: "v2")
        #expect(try client.send("DELETE", "/v2/del/manifests/v2").status == 202)
        #expect(try client.send("GET", "/v2/del/manifests/v2").status == 404)
        #expect(try client.send("GET", "/v2/del/manifests/v1").status == 200)
        #expect(try client.send("DELETE", "/v2/del/manifests/\(digest)").status == 202)
        #expect(try client.send("GET", "/v2/del/manifests/v1").status == 404)
        #expect(try client.send("GET", "/v2/del/manifests/\(digest)").status == 404)
        #expect(errorCode(try client.send("DELETE", "/v2/del/manifests/\(digest)")) == "MANIFEST_UNKNOWN")
    }

    @Test func tagListPagination() throws {
        let (manifest, _) = try pushImage("paged", tag: "c")
        for tag in ["a", "e", "b", "d"] {
            _ = try client.pushManifest(manifest, to: "paged", reference: tag)
        }
        let all = try client.send("GET", "/v2/paged/tags/list")
        #expect(all.json?["tags"] as? [String] == ["a", "b", "c", "d", "e"])
        #expect(all.json?["name"] as? String == "paged")
        let first = try client.send("GET", "/v2/paged/tags/list?n=2")
        #expect(first.json?["tags"] as? [String] == ["a", "b"])
        #expect(first.header("Link") == "</v2/paged/tags/list?n=2&last=b>; rel=\"next\"")
        let second = try client.send("GET", "/v2/paged/tags/list?n=2&last=b")
        #expect(second.json?["tags"] as? [String] == ["c", "d"])
        let last = try client.send("GET", "/v2/paged/tags/list?n=2&last=d")
        #expect(last.json?["tags"] as? [String] == ["e"])
        #expect(last.header("Link") == nil)
        #expect(try client.send("GET", "/v2/paged/tags/list?n=0").json?["tags"] as? [String] == [])
        #expect(try client.send("GET", "/v2/paged/tags/list?n=-1").status == 400)
        let unknown = try client.send("GET", "/v2/never/pushed/tags/list")
        #expect(unknown.status == 404)
        #expect(errorCode(unknown) == "NAME_UNKNOWN")
    }

    @Test func catalogListsRepositories() throws {
        for name in ["zeta", "alpha/one", "alpha/two"] {
            try client.pushMonolithic(Array(name.utf8), to: name)
        }
        let all = try client.send("GET", "/v2/_catalog")
        #expect(all.json?["repositories"] as? [String] == ["alpha/one", "alpha/two", "zeta"])
        let page = try client.send("GET", "/v2/_catalog?n=1&last=alpha/one")
        #expect(page.json?["repositories"] as? [String] == ["alpha/two"])
        #expect(page.header("Link") == "</v2/_catalog?n=1&last=alpha/two>; rel=\"next\"")
    }

    @Test func referrersAPI() throws {
        let (subject, _) = try pushImage("refs", tag: "v1")
        let subjectDigest = Digest.sha256(of: subject)
        let config = Array("{\"signature\":true}".utf8)
        try client.pushMonolithic(config, to: "refs")
        let subjectDescriptor = Fixture.descriptor(subject, "application/vnd.oci.image.manifest.v1+json")
        let referrer = Fixture.imageManifest(
            config: config, layers: [],
            extra: [
                "artifactType": "application/vnd.example.sig", "subject": subjectDescriptor, "annotations": ["k": "v"],
            ])
        let pushed = try client.pushManifest(referrer, to: "refs", reference: Digest.sha256(of: referrer).description)
        #expect(pushed.status == 201)
        #expect(pushed.header("OCI-Subject") == subjectDigest.description)

        let list = try client.send("GET", "/v2/refs/referrers/\(subjectDigest)")
        #expect(list.status == 200)
        #expect(list.header("Content-Type") == "application/vnd.oci.image.index.v1+json")
        let manifests = try #require(list.json?["manifests"] as? [[String: Any]])
        #expect(manifests.count == 1)
        #expect(manifests.first?["digest"] as? String == Digest.sha256(of: referrer).description)
        #expect(manifests.first?["artifactType"] as? String == "application/vnd.example.sig")
        #expect((manifests.first?["annotations"] as? [String: String])?["k"] == "v")

        let filtered = try client.send("GET", "/v2/refs/referrers/\(subjectDigest)?artifactType=application/other")
        #expect((filtered.json?["manifests"] as? [Any])?.isEmpty == true)
        #expect(filtered.header("OCI-Filters-Applied") == "artifactType")
        let none = try client.send("GET", "/v2/refs/referrers/\(Digest.sha256(of: config))")
        #expect((none.json?["manifests"] as? [Any])?.isEmpty == true)
        #expect(errorCode(try client.send("GET", "/v2/refs/referrers/sha256:zz")) == "DIGEST_INVALID")

        _ = try client.send("DELETE", "/v2/refs/manifests/\(Digest.sha256(of: referrer))")
        let afterDelete = try client.send("GET", "/v2/refs/referrers/\(subjectDigest)")
        #expect((afterDelete.json?["manifests"] as? [Any])?.isEmpty == true)
    }
}
