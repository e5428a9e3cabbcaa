import Foundation
import HTTPClient
import Hashing
import Testing

/// Every endpoint and error of the API, against a real server on loopback.
@Suite struct APITests {
    let server: TestServer
    let client: RegistryClient

    init() throws {
        server = try TestServer()
        client = RegistryClient(base: server.base)
    }

    @Test func baseEndpointAnswersWithVersionHeader() throws {
        let response = try client.send("GET", "/v2/")
        #expect(response.status == 200)
        #expect(response.header("Docker-Distribution-API-Version") == "registry/2.0")
        let missing = try client.send("GET", "/v2/nothing/here/manifests/latest")
        #expect(missing.status == 404)
        #expect(missing.header("Docker-Distribution-API-Version") == "registry/2.0")
        #expect(errorCode(missing) == "MANIFEST_UNKNOWN")
    }

    @Test func monolithicPushThenHeadAndGet() throws {
        let blob = Fixture.randomBytes(70_000)
        let digest = Digest.sha256(of: blob)
        let pushed = try client.pushMonolithic(blob, to: "mono")
        #expect(pushed.status == 201)
        #expect(pushed.header("Location") == "/v2/mono/blobs/\(digest)")
        #expect(pushed.header("Docker-Content-Digest") == digest.description)

        let head = try client.send("HEAD", "/v2/mono/blobs/\(digest)")
        #expect(head.status == 200)
        #expect(head.header("Content-Length") == "70000")
        #expect(head.header("Docker-Content-Digest") == digest.description)
        #expect(head.body.isEmpty)

        let get = try client.send("GET", "/v2/mono/blobs/\(digest)")
        #expect(get.status == 200)
        #expect(get.body == blob)

        let other = try client.send("HEAD", "/v2/elsewhere/blobs/\(digest)")
        #expect(other.status == 404)
    }

    @Test func rangedGets() throws {
        let blob = Fixture.randomBytes(1000)
        let digest = Digest.sha256(of: blob)
        try client.pushMonolithic(blob, to: "ranges")
        let part = try client.send("GET", "/v2/ranges/blobs/\(digest)", headers: ["Range": "bytes=10-19"])
        #expect(part.status == 206)
        #expect(part.header("Content-Range") == "bytes 10-19/1000")
        #expect(part.body == Array(blob[10...19]))
        let tail = try client.send("GET", "/v2/ranges/blobs/\(digest)", headers: ["Range": "bytes=-5"])
        #expect(tail.body == Array(blob[995...]))
        let beyond = try client.send("GET", "/v2/ranges/blobs/\(digest)", headers: ["Range": "bytes=5000-"])
        #expect(beyond.status == 416)
        #expect(beyond.header("Content-Range") == "bytes */1000")
        #expect(errorCode(beyond) == "RANGE_INVALID")
        let garbage = try client.send("GET", "/v2/ranges/blobs/\(digest)", headers: ["Range": "lines=1-2"])
        #expect(garbage.status == 416)
    }

    @Test func chunkedPushWithContentRange() throws {
        let blob = Fixture.randomBytes(250_000)
        let response = try client.pushChunked(blob, to: "chunks/app", chunkSize: 64_000)
        #expect(response.status == 201)
        let get = try client.send("GET", "/v2/chunks/app/blobs/\(Digest.sha256(of: blob))")
        #expect(get.body == blob)
    }

    @Test func streamedPatchWithoutLengthAsDockerSendsIt() throws {
        let blob = Fixture.randomBytes(500_000)
        let start = try client.send("POST", "/v2/docker/blobs/uploads/")
        #expect(start.status == 202)
        #expect(start.header("Range") == "0-0")
        let id = try #require(start.header("Docker-Upload-UUID"))
        let location = try #require(start.header("Location"))
        #expect(location == "/v2/docker/blobs/uploads/\(id)")

        let patch = try client.send("PATCH", location, body: blob, chunked: true)
        #expect(patch.status == 202)
        #expect(patch.header("Range") == "0-499999")
        #expect(patch.header("Docker-Upload-UUID") == id)

        let status = try client.send("GET", location)
        #expect(status.status == 204)
        #expect(status.header("Range") == "0-499999")

        let put = try client.send("PUT", location + "?digest=\(Digest.sha256(of: blob))")
        #expect(put.status == 201)
        #expect(try client.send("GET", "/v2/docker/blobs/\(Digest.sha256(of: blob))").body == blob)
    }

    @Test func finalPutMayCarryTheLastBytes() throws {
        let blob = Fixture.randomBytes(10_000)
        let start = try client.send("POST", "/v2/lastput/blobs/uploads/")
        let location = try #require(start.header("Location"))
        let patch = try client.send(
            "PATCH", location, headers: ["Content-Range": "0-4999"], body: Array(blob[..<5000]))
        let put = try client.send(
            "PUT", try #require(patch.header("Location")) + "?digest=\(Digest.sha256(of: blob))",
            body: Array(blob[5000...]))
        #expect(put.status == 201)
        #expect(try client.send("GET", "/v2/lastput/blobs/\(Digest.sha256(of: blob))").body == blob)
    }

    @Test func outOfOrderChunkGets416WithCurrentRange() throws {
        let start = try client.send("POST", "/v2/order/blobs/uploads/")
        let location = try #require(start.header("Location"))
        _ = try client.send("PATCH", location, headers: ["Content-Range": "0-9"], body: Array(repeating: 1, count: 10))
        let skipped = try client.send(
            "PATCH", location, headers: ["Content-Range": "20-29"], body: Array(repeating: 2, count: 10))
        #expect(skipped.status == 416)
        #expect(skipped.header("Range") == "0-9")
        #expect(errorCode(skipped) == "BLOB_UPLOAD_INVALID")
        let malformed = try client.send(
            "PATCH", location, headers: ["Content-Range": "ten-twenty"], body: Array(repeating: 2, count: 10))
        #expect(malformed.status == 416)
        let short = try client.send(
            "PATCH", location, headers: ["Content-Range": "10-29"], body: Array(repeating: 2, count: 10))
        #expect(short.status == 416)
        #expect(short.header("Range") == "0-19")
    }

    @Test func digestMismatchIsRefusedAndNothingIsVisible() throws {
        let blob = Fixture.randomBytes(1000)
        let wrong = Digest.sha256(of: Array("other".utf8))
        let response = try client.send("POST", "/v2/bad/blobs/uploads/?digest=\(wrong)", body: blob)
        #expect(response.status == 400)
        #expect(errorCode(response) == "DIGEST_INVALID")
        #expect(try client.send("HEAD", "/v2/bad/blobs/\(wrong)").status == 404)
        #expect(try client.send("HEAD", "/v2/bad/blobs/\(Digest.sha256(of: blob))").status == 404)
        let invalid = try client.send("POST", "/v2/bad/blobs/uploads/?digest=sha256:nothex", body: blob)
        #expect(errorCode(invalid) == "DIGEST_INVALID")
        let start = try client.send("POST", "/v2/bad/blobs/uploads/")
        let noDigest = try client.send("PUT", try #require(start.header("Location")))
        #expect(errorCode(noDigest) == "DIGEST_INVALID")
    }

    @Test func sha512DigestsAreVerified() throws {
        let blob = Array("sha512 content".utf8)
        let hasher = StreamHasher(.sha512)
        blob.withUnsafeBytes { hasher.update($0) }
        let digest = hasher.finish()
        let response = try client.send("POST", "/v2/long/blobs/uploads/?digest=\(digest)", body: blob)
        #expect(response.status == 201)
        #expect(try client.send("GET", "/v2/long/blobs/\(digest)").body == blob)
    }

    @Test func cancelledUploadIsGone() throws {
        let start = try client.send("POST", "/v2/cancel/blobs/uploads/")
        let location = try #require(start.header("Location"))
        #expect(try client.send("DELETE", location).status == 204)
        let after = try client.send("GET", location)
        #expect(after.status == 404)
        #expect(errorCode(after) == "BLOB_UPLOAD_UNKNOWN")
        let unknown = try client.send("PATCH", "/v2/cancel/blobs/uploads/\(UUID().uuidString.lowercased())", body: [1])
        #expect(errorCode(unknown) == "BLOB_UPLOAD_UNKNOWN")
        let otherRepo = try client.send("POST", "/v2/cancel/blobs/uploads/")
        let id = try #require(otherRepo.header("Docker-Upload-UUID"))
        #expect(try client.send("GET", "/v2/not-cancel/blobs/uploads/\(id)").status == 404)
    }

    @Test func crossRepositoryMount() throws {
        let blob = Fixture.randomBytes(2000)
        let digest = Digest.sha256(of: blob)
        try client.pushMonolithic(blob, to: "source")
        let mounted = try client.send("POST", "/v2/target/blobs/uploads/?mount=\(digest)&from=source")
        #expect(mounted.status == 201)
        #expect(mounted.header("Location") == "/v2/target/blobs/\(digest)")
        #expect(try client.send("GET", "/v2/target/blobs/\(digest)").body == blob)

        let missing = Digest.sha256(of: Array("absent".utf8))
        let fallback = try client.send("POST", "/v2/target/blobs/uploads/?mount=\(missing)&from=source")
        #expect(fallback.status == 202)
        #expect(fallback.header("Docker-Upload-UUID") != nil)
        let noFrom = try client.send("POST", "/v2/third/blobs/uploads/?mount=\(digest)")
        #expect(noFrom.status == 202)
    }

    @Test func blobDeleteRemovesItFromTheRepositoryOnly() throws {
        let blob = Fixture.randomBytes(100)
        let digest = Digest.sha256(of: blob)
        try client.pushMonolithic(blob, to: "keep")
        try client.pushMonolithic(blob, to: "drop")
        #expect(try client.send("DELETE", "/v2/drop/blobs/\(digest)").status == 202)
        #expect(try client.send("HEAD", "/v2/drop/blobs/\(digest)").status == 404)
        #expect(try client.send("HEAD", "/v2/keep/blobs/\(digest)").status == 200)
        #expect(errorCode(try client.send("DELETE", "/v2/drop/blobs/\(digest)")) == "BLOB_UNKNOWN")
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

    @Test func malformedNamesAndUnsupportedMethods() throws {
        let badName = try client.send("GET", "/v2/Bad_Name/tags/list")
        #expect(badName.status == 400)
        #expect(errorCode(badName) == "NAME_INVALID")
        let traversal = try client.send("GET", "/v2/a/%2e%2e/%2e%2e/manifests/latest")
        #expect(traversal.status == 400)
        let method = try client.send("POST", "/v2/a/manifests/latest")
        #expect(method.status == 405)
        #expect(errorCode(method) == "UNSUPPORTED")
        let nowhere = try client.send("GET", "/elsewhere")
        #expect(nowhere.status == 404)
        #expect(nowhere.json?["errors"] != nil)
    }
}
