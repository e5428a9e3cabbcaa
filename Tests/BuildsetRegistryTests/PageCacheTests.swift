import Foundation
import HTTPClient
import Hashing
import Storage
import Testing

/// Blob bytes go around the page cache: uploads write whole blocks directly, and large blobs that are not cached
/// are streamed with the cache released behind the read. These check that every byte lands and leaves where it
/// belongs, and that the cache really is left alone.
@Suite struct PageCacheTests {
    let directory = TemporaryDirectory()
    let name = RepositoryName("direct/io")!

    func makeStore() throws -> RegistryStore {
        RegistryStore(driver: try FilesystemDriver(root: directory.path))
    }

    /// Appends `bytes` in pieces of `piece` bytes, as the HTTP server hands a body over.
    func append(_ bytes: ArraySlice<UInt8>, to appender: UploadAppender, piece: Int) throws {
        var start = bytes.startIndex
        while start < bytes.endIndex {
            let end = min(start + piece, bytes.endIndex)
            try bytes[start..<end].withUnsafeBytes { try appender.append($0) }
            start = end
        }
    }

    func readAll(_ digest: Digest, from store: RegistryStore, size: Int) throws -> [UInt8] {
        let reader = try #require(try store.openBlob(digest, in: name))
        var read = [UInt8](repeating: 0, count: size)
        var position = 0
        while position < size {
            let count = try read.withUnsafeMutableBytes {
                try reader.read(at: Int64(position), into: UnsafeMutableRawBufferPointer(rebasing: $0[position...]))
            }
            try #require(count > 0)
            position += count
        }
        return read
    }

    @Test(arguments: [65_536, 65_549, 1_048_576])
    func chunksEndingAnywhereKeepEveryByte(piece: Int) throws {
        // Chunk ends off every block boundary, on one, inside the first block, and across pipeline buffers.
        let sizes = [1, 4_095, 300_001, 2_097_159, 4_096, 3_000_000, 262_144, 1_234_567]
        let content = Fixture.randomBytes(sizes.reduce(0, +))
        let store = try makeStore()
        let id = try store.startUpload(in: name)
        var offset = 0
        for size in sizes {
            let appender = try store.openUpload(id, in: name, expectedOffset: Int64(offset))
            try append(content[offset..<(offset + size)], to: appender, piece: piece)
            #expect(try appender.save() == Int64(offset + size))
            offset += size
        }
        let digest = Digest.sha256(of: content)
        try store.openUpload(id, in: name, expectedOffset: Int64(offset)).commit(as: digest)

        #expect(try readAll(digest, from: store, size: content.count) == content)
    }

    /// Starts an upload of `content` in one request of 1 MiB pieces, and answers its appender.
    func upload(_ content: [UInt8], in store: RegistryStore) throws -> (UploadID, UploadAppender) {
        let id = try store.startUpload(in: name)
        let appender = try store.openUpload(id, in: name)
        try append(content[...], to: appender, piece: 1 << 20)
        return (id, appender)
    }

    @Test func wholeBlocksOfALargeUploadBypassThePageCache() throws {
        let content = Fixture.randomBytes(8 << 20)
        let store = try makeStore()
        let (id, appender) = try upload(content, in: store)
        try appender.save()

        let data = directory.path + "/" + StorageLayout.upload(id).description + "/data"
        let (resident, pages) = try residentPages(of: data)
        #expect(pages == content.count / Int(getpagesize()))
        // Written through the page cache, every page would be resident until the kernel writes it back.
        #expect(resident == 0, "\(resident) of \(pages) pages went through the page cache")

        let digest = Digest.sha256(of: content)
        try store.openUpload(id, in: name, expectedOffset: Int64(content.count)).commit(as: digest)
        #expect(try readAll(digest, from: store, size: content.count) == content)
    }

    @Test func aBlobWrittenAroundTheCacheIsCachedOnlyOnceReadAndUntilReleased() throws {
        let content = Fixture.randomBytes(4 << 20)
        let store = try makeStore()
        let digest = Digest.sha256(of: content)
        try upload(content, in: store).1.commit(as: digest)

        let reader = try #require(try store.openBlob(digest, in: name))
        #expect(!reader.isCached())
        #expect(try readAll(digest, from: store, size: content.count) == content)
        #expect(reader.isCached())

        reader.releaseCache(0..<Int64(content.count))
        #expect(!reader.isCached())
        let file = directory.path + "/" + StorageLayout.blob(digest, in: .local).description
        #expect(try residentPages(of: file).resident == 0)
    }

    @Test func aLargeBlobOutsideTheCacheIsServedWholeAndByRangeWithoutFillingIt() throws {
        let server = try TestServer()
        let client = RegistryClient(base: server.base)
        let content = Fixture.randomBytes(24 << 20)
        let digest = Digest.sha256(of: content)
        #expect(try client.pushMonolithic(content, to: "streamed").status == 201)
        let file = server.directory.path + "/storage/" + StorageLayout.blob(digest, in: .local).description
        // Only the bytes that arrive before the upload's pipeline starts, and the unaligned tail, are cached.
        let (written, total) = try residentPages(of: file)
        #expect(written * 16 < total, "\(written) of \(total) pages went through the page cache")

        let whole = try client.send("GET", "/v2/streamed/blobs/\(digest)")
        #expect(whole.status == 200)
        #expect(whole.body == content)
        // Released every 8 MiB as the body went out, the last stretch too.
        let (resident, pages) = try residentPages(of: file)
        #expect(resident * 4 < pages, "\(resident) of \(pages) pages stayed in the page cache")

        let part = try client.send("GET", "/v2/streamed/blobs/\(digest)", headers: ["Range": "bytes=5000000-19999999"])
        #expect(part.status == 206)
        #expect(part.header("Content-Range") == "bytes 5000000-19999999/\(content.count)")
        #expect(part.body == Array(content[5_000_000..<20_000_000]))
    }

    @Test func aLargeBlobOutsideTheCacheStreamsOverTLS() throws {
        let tls = try TLSFixture.make(in: directory.path)
        let server = try TestServer(tls: (tls.chainPEM, tls.keyPEM))
        let content = Fixture.randomBytes(12 << 20)
        let digest = Digest.sha256(of: content)
        let pushed = directory.path + "/pushed.bin"
        let pulled = directory.path + "/pulled.bin"
        try Data(content).write(to: URL(fileURLWithPath: pushed))
        let curl = ["-s", "-w", "%{http_code}", "--cacert", tls.caPath]

        let push = try run(
            "/usr/bin/curl",
            curl + [
                "-o", "/dev/null", "-H", "Content-Type: application/octet-stream", "--data-binary", "@" + pushed,
                server.url("/v2/tls/blobs/uploads/?digest=\(digest)"),
            ])
        #expect(push.output == "201")
        let pull = try run("/usr/bin/curl", curl + ["-o", pulled, server.url("/v2/tls/blobs/\(digest)")])
        #expect(pull.output == "200")
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: pulled))) == content)
        // Streamed, not read whole into the cache by the TLS layer.
        let file = server.directory.path + "/storage/" + StorageLayout.blob(digest, in: .local).description
        let (resident, pages) = try residentPages(of: file)
        #expect(resident * 4 < pages, "\(resident) of \(pages) pages stayed in the page cache")
    }

    /// How many of the file's pages are in the page cache, by mincore(2) over a mapping of the file.
    func residentPages(of path: String) throws -> (resident: Int, pages: Int) {
        let descriptor = open(path, O_RDONLY)
        try #require(descriptor >= 0)
        defer { close(descriptor) }
        var status = stat()
        try #require(fstat(descriptor, &status) == 0)
        let length = Int(status.st_size)
        let mapping = try #require(mmap(nil, length, PROT_READ, MAP_SHARED, descriptor, 0))
        try #require(mapping != MAP_FAILED)
        defer { munmap(mapping, length) }
        let pageSize = Int(getpagesize())
        var vector = [UInt8](repeating: 0, count: (length + pageSize - 1) / pageSize)
        try #require(mincore(mapping, length, &vector) == 0)
        return (vector.filter { $0 & 1 != 0 }.count, vector.count)
    }
}
