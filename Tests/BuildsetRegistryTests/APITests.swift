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
