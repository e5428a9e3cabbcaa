import Foundation
import Hashing
import Testing

/// The executable's commands, run as a user would run them.
@Suite struct CommandLineTests {
    let directory = TemporaryDirectory()

    func write(_ name: String, _ text: String) throws -> String {
        let path = directory.path + "/" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func checkConfigAcceptsAGoodFile() throws {
        let path = try write("good.yaml", "registry:\n  port: 5000\n  storage: {driver: filesystem, root: /tmp/x}\n")
        let result = try run(ServerProcess.executable, ["check-config", "-c", path])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("ok"))
    }

    @Test func checkConfigListsEveryProblemWithFileLineAndKey() throws {
        let path = try write(
            "bad.yaml", "registry:\n  port: high\n  colour: blue\n  users:\n    - name: ci\n      access: root\n")
        let result = try run(ServerProcess.executable, ["check-config", "-c", path])
        #expect(result.status != 0)
        #expect(result.output.contains("\(path):2: error: registry.port"), "\(result.output)")
        #expect(result.output.contains("\(path):3: warning: registry.colour"), "\(result.output)")
        #expect(result.output.contains("\(path):6: error: registry.users[0].access"), "\(result.output)")
    }

    @Test func aMissingTLSFileStopsTheStart() throws {
        let path = try write(
            "tls.yaml",
            "registry:\n  port: \(try ServerProcess.freePort())\n  tls-cert: \(directory.path)/none.pem\n"
                + "  tls-key: \(directory.path)/none.key\n  upstreams: []\n"
                + "  storage: {driver: filesystem, root: \(directory.path)/storage}\n")
        let check = try run(ServerProcess.executable, ["check-config", "-c", path])
        #expect(check.status != 0)
        #expect(check.output.contains("registry.tls-cert"), "\(check.output)")
        let serve = try run(ServerProcess.executable, ["serve", "-c", path])
        #expect(serve.status != 0)
        #expect(serve.output.contains("cannot read"), "\(serve.output)")
    }

    @Test func helpAndUnknownArguments() throws {
        let help = try run(ServerProcess.executable, ["--help"])
        #expect(help.status == 0)
        #expect(help.output.contains("check-config"))
        let unknown = try run(ServerProcess.executable, ["--colour"])
        #expect(unknown.status == 2)
    }
}

/// What the server writes to its log for each request and upload.
@Suite struct LogTests {
    @Test func oneLinePerRequestWithItsFieldsAndNoCredentials() throws {
        let directory = TemporaryDirectory()
        let log = directory.path + "/server.log"
        let server = try ServerProcess(root: directory.path + "/storage", directory: directory.path, logPath: log)
        let secret = "Basic " + Data("someone:hunter2-secret".utf8).base64EncodedString()
        let blob = Fixture.randomBytes(1000)
        let digest = Digest.sha256(of: blob)
        let client = RegistryClient(base: server.base)
        let pushed = try client.send(
            "POST", "/v2/logged/blobs/uploads/?digest=\(digest)", headers: ["Authorization": secret], body: blob)
        #expect(pushed.status == 201)
        let requestID = try #require(pushed.header("X-Request-Id"))
        #expect(server.terminate() == 0)

        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        let requestLine = try #require(lines.first { $0.contains("request.id=\(requestID)") && $0.contains(" http: ") })
        for field in ["method=POST", "path=/v2/logged/blobs/uploads/", "status=201", "bytes=0", "duration_ms="] {
            #expect(requestLine.contains(field), "\(requestLine)")
        }
        #expect(requestLine.contains(" info "))
        let uploadLine = try #require(lines.first { $0.contains("blob uploaded") })
        #expect(uploadLine.contains("digest=\(digest)") && uploadLine.contains("upload.id="), "\(uploadLine)")
        let everything = lines.joined(separator: "\n")
        #expect(!everything.contains("hunter2"))
        #expect(!everything.contains(secret.dropFirst(6)))
    }
}
