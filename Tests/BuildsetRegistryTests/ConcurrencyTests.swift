import Foundation
import HTTPClient
import Hashing
import Synchronization
import Testing

/// Many uploads of one blob at once all succeed, and each client sees the whole blob right after its 201.
@Suite struct ConcurrencyTests {
    static let clients = 32
    static let rounds = 8

    /// Pushes `blob` in chunks through the servers in `bases` (chunk i goes to server i % count), then checks
    /// HEAD and GET; answers a description of what went wrong, or nil.
    static func pushAndVerify(_ blob: [UInt8], name: String, bases: [String], client index: Int) -> String? {
        let digest = Digest.sha256(of: blob)
        let clients = bases.map { RegistryClient(base: $0) }
        let pick = { (step: Int) in clients[(index + step) % clients.count] }
        do {
            let start = try pick(0).send("POST", "/v2/\(name)/blobs/uploads/")
            guard start.status == 202, var location = start.header("Location") else { return "POST \(start.status)" }
            let chunk = 16 * 1024
            var offset = 0
            var step = 1
            while offset < blob.count {
                let end = min(offset + chunk, blob.count)
                let patch = try pick(step).send(
                    "PATCH", location, headers: ["Content-Range": "\(offset)-\(end - 1)"],
                    body: Array(blob[offset..<end]))
                guard patch.status == 202, let next = patch.header("Location") else { return "PATCH \(patch.status)" }
                location = next
                offset = end
                step += 1
            }
            let finalClient = pick(step)
            let put = try finalClient.send("PUT", location + "?digest=\(digest)")
            guard put.status == 201 else { return "PUT \(put.status) \(put.text)" }
            let head = try finalClient.send("HEAD", "/v2/\(name)/blobs/\(digest)")
            guard head.status == 200, head.header("Content-Length") == String(blob.count) else {
                return "HEAD \(head.status) length \(head.header("Content-Length") ?? "none")"
            }
            let get = try finalClient.send("GET", "/v2/\(name)/blobs/\(digest)")
            guard get.status == 200, get.body == blob else { return "GET \(get.status), \(get.body.count) bytes" }
            return nil
        } catch {
            return "\(error)"
        }
    }

    static func hammer(bases: [String]) -> [String] {
        let failures = Mutex<[String]>([])
        for round in 0..<rounds {
            let blob = Fixture.randomBytes(100_000 + round)
            let name = "race/round\(round)"
            runTogether(clients) { index in
                if let failure = pushAndVerify(blob, name: name, bases: bases, client: index) {
                    failures.withLock { $0.append("round \(round) client \(index): \(failure)") }
                }
            }
        }
        return failures.withLock { $0 }
    }

    @Test func sameBlobFromManyClientsAllSucceed() throws {
        let server = try TestServer()
        let failures = Self.hammer(bases: [server.base])
        #expect(failures.isEmpty, "\(failures.prefix(5))")
    }

    @Test func sameBlobThroughTwoProcessesOnOneRootAllSucceed() throws {
        let directory = TemporaryDirectory()
        let root = directory.path + "/shared"
        let first = try ServerProcess(root: root, directory: directory.path)
        let second = try ServerProcess(root: root, directory: directory.path)
        let failures = Self.hammer(bases: [first.base, second.base])
        #expect(failures.isEmpty, "\(failures.prefix(5))")
    }
}
