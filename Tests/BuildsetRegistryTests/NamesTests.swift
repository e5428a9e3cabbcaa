import Hashing
import Storage
import Testing

@testable import Registry

@Suite struct NamesTests {
    @Test(arguments: [
        ("library/ubuntu", true), ("a", true), ("a/b/c", true), ("foo.bar", true), ("foo__bar", true),
        ("foo---bar", true), ("foo_bar", true), ("Foo", false), ("foo/", false), ("/foo", false), ("foo//bar", false),
        ("..", false), ("foo/../bar", false), ("foo/./bar", false), ("_local", false), ("foo/_manifests", false),
        ("foo___bar", false), ("foo.-bar", false), ("-foo", false), ("foo-", false), ("", false),
        (String(repeating: "a", count: 256), false), (String(repeating: "a", count: 255), true),
        ("foo%2fbar", false), ("foo bar", false),
    ])
    func repositoryNameGrammar(name: String, isValid: Bool) {
        #expect((RepositoryName(name) != nil) == isValid)
    }

    @Test(arguments: [
        ("latest", true), ("v1.0.0-rc_1", true), ("_x", true), (".x", false), ("-x", false), ("a/b", false),
        ("", false), (String(repeating: "t", count: 128), true), (String(repeating: "t", count: 129), false),
        ("a:b", false), ("..", false),
    ])
    func tagGrammar(tag: String, isValid: Bool) {
        #expect((Tag(tag) != nil) == isValid)
    }

    @Test func digestGrammar() {
        let hex64 = String(repeating: "a", count: 64)
        #expect(Digest("sha256:\(hex64)")?.hex == hex64)
        #expect(Digest("sha512:\(String(repeating: "0", count: 128))")?.algorithm == .sha512)
        #expect(Digest("sha256:\(hex64.uppercased())") == nil)
        #expect(Digest("sha256:\(hex64.dropLast())") == nil)
        #expect(Digest("md5:\(hex64)") == nil)
        #expect(Digest("sha256:../../../../etc/passwd") == nil)
        #expect(Digest(hex64) == nil)
    }

    @Test func uploadIDGrammar() {
        let made = UploadID.make()
        #expect(UploadID(made.value) == made)
        #expect(UploadID("../../../etc/passwd-xxxxxxxxxxxxxxxxxxxxxxxxx") == nil)
        #expect(UploadID("00000000-0000-0000-0000-00000000000G") == nil)
        #expect(UploadID(made.value.uppercased()) == nil || made.value == made.value.uppercased())
    }

    @Test func digestOfKnownBytes() {
        #expect(
            Digest.sha256(of: Array("hello\n".utf8)).description
                == "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03")
    }
}

@Suite struct RouteTests {
    static let digest = "sha256:" + String(repeating: "b", count: 64)

    @Test func parsesEveryEndpoint() throws {
        let name = RepositoryName("a/b")!
        let digest = Digest(Self.digest)!
        let id = UploadID.make()
        #expect(try Route.parse("/v2/") == .base)
        #expect(try Route.parse("/v2") == .base)
        #expect(try Route.parse("/v2/_catalog") == .catalog)
        #expect(try Route.parse("/v2/a/b/tags/list") == .tags(name))
        #expect(try Route.parse("/v2/a/b/manifests/latest") == .manifest(name, .tag(Tag("latest")!)))
        #expect(try Route.parse("/v2/a/b/manifests/\(Self.digest)") == .manifest(name, .digest(digest)))
        #expect(try Route.parse("/v2/a/b/blobs/\(Self.digest)") == .blob(name, digest))
        #expect(try Route.parse("/v2/a/b/blobs/uploads/") == .uploads(name))
        #expect(try Route.parse("/v2/a/b/blobs/uploads/\(id)") == .upload(name, id))
        #expect(try Route.parse("/v2/a/b/referrers/\(Self.digest)") == .referrers(name, digest))
        // A name may contain a segment that is also an endpoint word.
        #expect(
            try Route.parse("/v2/blobs/manifests/manifests/v1")
                == .manifest(RepositoryName("blobs/manifests")!, .tag(Tag("v1")!)))
    }

    @Test(arguments: [
        ("/v2/../etc/manifests/latest", Route.Failure.nameInvalid),
        ("/v2/UPPER/manifests/latest", .nameInvalid),
        ("/v2/a/manifests/bad:digest", .digestInvalid),
        ("/v2/a/manifests/-tag", .tagInvalid),
        ("/v2/a/blobs/sha256:short", .digestInvalid),
        ("/v2/a/blobs/uploads/../../x", .notFound),
        ("/v2/a/blobs/uploads/not-an-id", .uploadUnknown),
        ("/v2/a/unknown/thing", .notFound),
        ("/v3/", .notFound),
        ("/v2/manifests/latest", .notFound),
    ])
    func rejectsMalformedPaths(path: String, failure: Route.Failure) {
        #expect(throws: failure) { try Route.parse(path) }
    }

    @Test func layoutPathsStayInsideTheirNamespace() {
        let name = RepositoryName("library/ubuntu")!
        let digest = Digest(Self.digest)!
        #expect(StorageLayout.blob(digest, in: .local).description == "_local/blobs/sha256/bb/\(digest.hex)")
        #expect(
            StorageLayout.layerLink(digest, name, in: .local).description
                == "_local/repositories/library/ubuntu/_layers/sha256/\(digest.hex)")
        #expect(
            StorageLayout.manifestLink(digest, name, in: .local).description
                == "_local/repositories/library/ubuntu/_manifests/revisions/sha256/\(digest.hex)")
        #expect(
            StorageLayout.tag(Tag("v1")!, name, in: .local).description
                == "_local/repositories/library/ubuntu/_manifests/tags/v1")
        #expect(
            StorageLayout.referrer(digest, of: digest, name, in: .local).description
                == "_local/repositories/library/ubuntu/_referrers/sha256/\(digest.hex)/sha256-\(digest.hex)")
        let id = UploadID.make()
        #expect(StorageLayout.uploadState(id).description == "_uploads/\(id)/state")
    }
}

@Suite struct ByteRangeTests {
    @Test(arguments: [
        ("bytes=0-9", ByteRange.Request.bytes(start: 0, end: 9)),
        ("bytes=5-", .bytes(start: 5, end: 99)),
        ("bytes=-10", .bytes(start: 90, end: 99)),
        ("bytes=90-200", .bytes(start: 90, end: 99)),
        ("bytes=100-", .unsatisfiable),
        ("bytes=9-5", .unsatisfiable),
        ("bytes=x-5", .unsatisfiable),
        ("items=0-5", .unsatisfiable),
        ("bytes=-0", .unsatisfiable),
        ("bytes=0-1,5-6", .whole),
        ("bytes=99999999999999999999-", .unsatisfiable),
    ])
    func blobRanges(header: String, expected: ByteRange.Request) {
        #expect(ByteRange.parseRequest(header, size: 100) == expected)
    }

    @Test func chunkRanges() {
        #expect(ByteRange.parseChunk("0-99")! == (0, 99))
        #expect(ByteRange.parseChunk("bytes=100-199")! == (100, 199))
        #expect(ByteRange.parseChunk("bytes 5-5")! == (5, 5))
        #expect(ByteRange.parseChunk("5-4") == nil)
        #expect(ByteRange.parseChunk("-4") == nil)
        #expect(ByteRange.parseChunk("a-b") == nil)
        #expect(ByteRange.parseChunk("") == nil)
    }
}
