import Foundation
import HTTPClient
import Hashing
import Testing

/// Malformed and abusive requests get a 4xx or a closed connection, and other clients do not notice.
@Suite struct HostileInputTests {
    let server: TestServer
    let client: RegistryClient

    init() throws {
        server = try TestServer()
        client = RegistryClient(base: server.base)
    }

    func expectServerStillServes() throws {
        #expect(try RegistryClient(base: server.base).send("GET", "/v2/").status == 200)
    }

    func startUpload() throws -> String {
        try #require(try client.send("POST", "/v2/hostile/blobs/uploads/").header("Location"))
    }

    @Test func badChunkedEncodingIsRefused() throws {
        let location = try startUpload()
        let connection = try RawConnection(port: server.server.port)
        connection.send(
            "PATCH \(location) HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nnot-hex\r\nabc\r\n0\r\n\r\n")
        let status = connection.readStatus()
        #expect(status == nil || (400..<500).contains(status!))
        try expectServerStillServes()
    }

    @Test func oversizedHeadersAreRefused() throws {
        let connection = try RawConnection(port: server.server.port)
        let huge = String(repeating: "a", count: 1024 * 1024)
        connection.send("GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: \(huge)\r\n\r\n")
        let status = connection.readStatus()
        #expect(status == nil || (400..<500).contains(status!))
        try expectServerStillServes()
    }

    @Test func garbageRequestLineIsRefused() throws {
        let connection = try RawConnection(port: server.server.port)
        connection.send("\u{1}\u{2}GARBAGE\r\n\r\n")
        let status = connection.readStatus()
        #expect(status == nil || (400..<500).contains(status!))
        try expectServerStillServes()
    }

    @Test func bodyThatStopsHalfWayLeavesAResumableUpload() throws {
        let location = try startUpload()
        let blob = Fixture.randomBytes(20_000)
        let connection = try RawConnection(port: server.server.port)
        connection.send(
            "PATCH \(location) HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                + "Content-Length: 20000\r\n\r\n")
        connection.send(Array(blob[..<8_000]))
        connection.shutdownWrite()
        #expect(connection.readStatus() == nil)

        // The server notices the close on its own thread; poll the upload's state, bounded.
        var offset = "0-0"
        try waitUntil(seconds: 2) {
            offset = try client.send("GET", location).header("Range") ?? ""
            return offset == "0-7999"
        }
        #expect(offset == "0-7999")

        let rest = try client.send(
            "PATCH", location, headers: ["Content-Range": "8000-19999"], body: Array(blob[8_000...]))
        #expect(rest.status == 202)
        let put = try client.send("PUT", location + "?digest=\(Digest.sha256(of: blob))")
        #expect(put.status == 201)
        #expect(try client.send("GET", "/v2/hostile/blobs/\(Digest.sha256(of: blob))").body == blob)
    }

    @Test func idleAndSlowConnectionsDoNotStallOthers() throws {
        let idle = try (0..<300).map { _ in try RawConnection(port: server.server.port) }
        let slow = try RawConnection(port: server.server.port)
        slow.send("GET /v2/ HTTP/1.1\r\nHo")

        let blob = Fixture.randomBytes(1000)
        #expect(try client.pushMonolithic(blob, to: "busy").status == 201)
        for _ in 0..<20 {
            #expect(try client.send("HEAD", "/v2/busy/blobs/\(Digest.sha256(of: blob))").status == 200)
        }

        slow.send("st: x\r\n\r\n")
        #expect(slow.readStatus() == 200)
        withExtendedLifetime(idle) {}
    }

    @Test func pathsCannotLeaveTheStorageRoot() throws {
        let attempts = [
            "/v2/..%2f..%2fetc/manifests/passwd", "/v2/a/blobs/sha256:..%2f..%2f..%2fetc%2fpasswd",
            "/v2/a/manifests/..%2f..%2f..%2fetc%2fpasswd", "/v2/a/blobs/uploads/..%2f..%2fstate",
            "/v2/%2e%2e/tags/list", "/v2/a%00b/tags/list",
        ]
        for path in attempts {
            let response = try client.send("GET", path)
            #expect((400..<500).contains(response.status), "\(path)")
            #expect(response.json?["errors"] != nil, "\(path)")
        }
    }
}
