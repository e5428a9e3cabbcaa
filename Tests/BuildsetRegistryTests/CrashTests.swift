import Foundation
import HTTPClient
import Hashing
import Testing

/// A server killed with SIGKILL mid-upload leaves only complete blobs visible, and the upload can go on.
@Suite struct CrashTests {
    /// Every blob file under the storage root, checked against the digest its path names.
    static func damagedBlobs(root: String) throws -> [String] {
        var damaged: [String] = []
        let blobs = root + "/_local/blobs/sha256"
        for prefix in (try? FileManager.default.contentsOfDirectory(atPath: blobs)) ?? [] {
            for hex in try FileManager.default.contentsOfDirectory(atPath: blobs + "/" + prefix) {
                let data = try Data(contentsOf: URL(fileURLWithPath: "\(blobs)/\(prefix)/\(hex)"))
                if Digest.sha256(of: Array(data)).hex != hex { damaged.append(hex) }
            }
        }
        return damaged
    }

    @Test func killDuringUploadsLeavesOnlyCompleteBlobs() throws {
        let directory = TemporaryDirectory()
        let root = directory.path + "/storage"
        let server = try ServerProcess(root: root, directory: directory.path)
        let client = RegistryClient(base: server.base)

        let complete = Fixture.randomBytes(300_000)
        #expect(try client.pushMonolithic(complete, to: "crash").status == 201)

        // One upload has a recorded first chunk and a second chunk in flight when the kill comes.
        let resumable = Fixture.randomBytes(200_000)
        let start = try client.send("POST", "/v2/crash/blobs/uploads/")
        let location = try #require(start.header("Location"))
        let first = try client.send(
            "PATCH", location, headers: ["Content-Range": "0-99999"], body: Array(resumable[..<100_000]))
        #expect(first.status == 202)
        let inFlight = try RawConnection(port: server.port)
        inFlight.send(
            "PATCH \(location) HTTP/1.1\r\nHost: x\r\nContent-Range: 100000-199999\r\nContent-Length: 100000\r\n\r\n")
        inFlight.send(Array(resumable[100_000..<150_000]))

        // Another is a monolithic push whose body is half sent.
        let monolithic = Fixture.randomBytes(400_000)
        let pending = try RawConnection(port: server.port)
        pending.send(
            "POST /v2/crash/blobs/uploads/?digest=\(Digest.sha256(of: monolithic)) HTTP/1.1\r\nHost: x\r\n"
                + "Content-Length: 400000\r\n\r\n")
        pending.send(Array(monolithic[..<200_000]))

        // However much of the two bodies has arrived by now, the kill comes in the middle of both transfers.
        #expect(try client.send("GET", location).status == 204)
        server.kill9()

        #expect(try Self.damagedBlobs(root: root).isEmpty)
        let restarted = try ServerProcess(root: root, directory: directory.path)
        let after = RegistryClient(base: restarted.base)
        #expect(try after.send("HEAD", "/v2/crash/blobs/\(Digest.sha256(of: monolithic))").status == 404)
        #expect(try after.send("GET", "/v2/crash/blobs/\(Digest.sha256(of: complete))").body == complete)

        // The interrupted upload resumes from the offset its state recorded.
        let status = try after.send("GET", location)
        #expect(status.status == 204)
        #expect(status.header("Range") == "0-99999")
        let rest = try after.send(
            "PATCH", location, headers: ["Content-Range": "100000-199999"], body: Array(resumable[100_000...]))
        #expect(rest.status == 202)
        let put = try after.send("PUT", location + "?digest=\(Digest.sha256(of: resumable))")
        #expect(put.status == 201)
        #expect(try after.send("GET", "/v2/crash/blobs/\(Digest.sha256(of: resumable))").body == resumable)

        // The half-sent monolithic push is simply sent again.
        #expect(try after.pushMonolithic(monolithic, to: "crash").status == 201)
        #expect(try Self.damagedBlobs(root: root).isEmpty)
        withExtendedLifetime((inFlight, pending)) {}
    }

    @Test func repeatedKillsDuringConcurrentPushesNeverExposePartialBlobs() throws {
        let directory = TemporaryDirectory()
        let root = directory.path + "/storage"
        for round in 0..<4 {
            let server = try ServerProcess(root: root, directory: directory.path)
            let base = server.base
            let blobs = (0..<6).map { _ in Fixture.randomBytes(1_000_000 + round) }
            let threads = DispatchGroup()
            for blob in blobs {
                threads.enter()
                Thread {
                    _ = try? RegistryClient(base: base).pushChunked(blob, to: "kill/round", chunkSize: 64 * 1024)
                    threads.leave()
                }.start()
            }
            // Kill once some of the pushes have had time to commit, without waiting for them all.
            let client = RegistryClient(base: base)
            waitUntil(seconds: 1, interval: 0.005) {
                blobs.contains {
                    (try? client.send("HEAD", "/v2/kill/round/blobs/\(Digest.sha256(of: $0))").status) == 200
                }
            }
            server.kill9()
            threads.wait()
            #expect(try Self.damagedBlobs(root: root).isEmpty)
        }
    }

    @Test func sigtermStopsTheServerCleanly() throws {
        let directory = TemporaryDirectory()
        let server = try ServerProcess(root: directory.path + "/storage", directory: directory.path)
        let blob = Fixture.randomBytes(10_000)
        #expect(try RegistryClient(base: server.base).pushMonolithic(blob, to: "term").status == 201)
        #expect(server.terminate() == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path + "/storage/_sync").isEmpty)
    }
}
