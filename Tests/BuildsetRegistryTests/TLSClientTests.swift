import Foundation
import HTTPClient
import Hashing
import Testing

@testable import Registry

/// Real clients over TLS with a certificate made by the test, logging in with the configured users.
@Suite(.serialized) struct TLSClientTests {
    let directory = TemporaryDirectory()
    let tls: TLSFixture
    let server: TestServer
    var host: String { "127.0.0.1:\(server.server.port)" }

    init() throws {
        tls = try TLSFixture.make(in: directory.path)
        let users = [
            AccessControl.User(name: "ci", password: "s3cret:pass", canWrite: true),
            AccessControl.User(name: "viewer", password: "look", canWrite: false),
        ]
        // The realm must be reachable by the clients, so the public URL is the server's own; the port is known only
        // once it listens, so a first server finds a free port and the real one takes it.
        let port = try ServerProcess.freePort()
        let access = AccessControl(users: users, secret: "tls-test", publicURL: "https://127.0.0.1:\(port)")
        server = try TestServer(accessControl: access, tls: (tls.chainPEM, tls.keyPEM), port: port)
    }

    @Test func servesTLSOnlyWithTheConfiguredChain() throws {
        let verified = try run(
            "/usr/bin/curl",
            ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", tls.caPath, "https://\(host)/v2/"])
        #expect(verified.output == "401")
        let unverified = try run(
            "/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "https://\(host)/v2/"])
        #expect(unverified.output == "000")
        let old = try run(
            "/usr/bin/curl",
            [
                "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", tls.caPath, "--tls-max", "1.1",
                "https://\(host)/v2/",
            ])
        #expect(old.output == "000")
        let plain = try run("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://\(host)/v2/"])
        #expect(plain.output != "401")
    }

    @Test func skopeoCopiesInAndOutWithCredentials() throws {
        let source = try OCILayout.make(at: directory.path + "/source", layers: 2, tag: "v1")
        let push = try run(
            "skopeo",
            [
                "copy", "--preserve-digests", "--dest-cert-dir", tls.certificateDirectory, "--dest-creds",
                "ci:s3cret:pass",
                "oci:\(source.path):v1", "docker://\(host)/tls/image:v1",
            ])
        #expect(push.status == 0, "\(push.output)")

        let denied = try run(
            "skopeo",
            [
                "copy", "--preserve-digests", "--dest-cert-dir", tls.certificateDirectory, "--dest-creds", "ci:wrong",
                "oci:\(source.path):v1", "docker://\(host)/tls/image:v2",
            ])
        #expect(denied.status != 0)
        #expect(
            denied.output.lowercased().contains("unauthorized") || denied.output.lowercased().contains("denied"),
            "\(denied.output)")
        let readerPush = try run(
            "skopeo",
            [
                "copy", "--preserve-digests", "--dest-cert-dir", tls.certificateDirectory, "--dest-creds",
                "viewer:look",
                "oci:\(source.path):v1", "docker://\(host)/tls/image:v3",
            ])
        #expect(readerPush.status != 0)

        let pulled = directory.path + "/pulled"
        let pull = try run(
            "skopeo",
            [
                "copy", "--preserve-digests", "--src-cert-dir", tls.certificateDirectory, "--src-creds", "viewer:look",
                "docker://\(host)/tls/image:v1", "oci:\(pulled):v1",
            ])
        #expect(pull.status == 0, "\(pull.output)")
        #expect(try OCILayout(path: pulled, manifestDigest: source.manifestDigest).blobs() == source.blobs())

        let anonymous = try run(
            "skopeo", ["inspect", "--cert-dir", tls.certificateDirectory, "docker://\(host)/tls/image:v1"])
        #expect(anonymous.status != 0, "read users are configured, so pulls need credentials")
    }

    @Test func podmanLogsInPushesAndPulls() throws {
        // podman names an image pulled from a layout after its path, which must then be lowercase.
        let layoutPath = "/tmp/buildset-podman-\(UUID().uuidString.lowercased())"
        defer { try? FileManager.default.removeItem(atPath: layoutPath) }
        let source = try OCILayout.make(at: layoutPath, layers: 2, tag: "v1")
        let storage = [
            "--root", directory.path + "/podman/root", "--runroot", directory.path + "/podman/run",
            "--storage-driver=vfs",
        ]
        let environment = ["REGISTRY_AUTH_FILE": directory.path + "/podman/auth.json", "HOME": directory.path]
        func podman(_ arguments: [String]) throws -> CommandResult {
            try run("podman", storage + arguments, environment: environment)
        }

        let wrong = try podman(["login", "--cert-dir", tls.certificateDirectory, "-u", "ci", "-p", "bad", host])
        #expect(wrong.status != 0, "\(wrong.output)")
        let login = try podman(["login", "--cert-dir", tls.certificateDirectory, "-u", "ci", "-p", "s3cret:pass", host])
        #expect(login.status == 0, "\(login.output)")

        let pulledLocal = try podman(["pull", "oci:\(source.path):v1"])
        #expect(pulledLocal.status == 0, "\(pulledLocal.output)")
        let imageID = pulledLocal.output.split(separator: "\n").last.map(String.init) ?? ""
        let push = try podman([
            "push", "--cert-dir", tls.certificateDirectory, imageID, "docker://\(host)/podman/image:v1",
        ])
        #expect(push.status == 0, "\(push.output)")
        _ = try podman(["rmi", "-f", imageID])

        let pull = try podman(["pull", "--cert-dir", tls.certificateDirectory, "\(host)/podman/image:v1"])
        #expect(pull.status == 0, "\(pull.output)")
        let images = try podman(["images", "--format", "{{.Repository}}:{{.Tag}}"])
        #expect(images.output.contains("\(host)/podman/image:v1"), "\(images.output)")
    }

    @Test func dockerLogsInPushesAndPulls() throws {
        let daemon = try DockerDaemon(directory: directory.path)
        let source = try OCILayout.make(at: directory.path + "/docker-source", layers: 2, tag: "v1")
        let archive = directory.path + "/image.tar"
        let exported = try run("skopeo", ["copy", "oci:\(source.path):v1", "docker-archive:\(archive):local/image:v1"])
        #expect(exported.status == 0, "\(exported.output)")
        #expect(try daemon.docker(["load", "-i", archive]).status == 0)
        let name = "\(host)/docker/image:v1"
        #expect(try daemon.docker(["tag", "local/image:v1", name]).status == 0)

        // docker treats 127.0.0.0/8 as an insecure registry: TLS is used, its certificate not checked.
        let wrong = try daemon.docker(["login", "-u", "ci", "-p", "wrong", host])
        #expect(wrong.status != 0)
        #expect(wrong.output.contains("unauthorized"), "\(wrong.output)")
        let pushWithoutLogin = try daemon.docker(["push", name])
        #expect(pushWithoutLogin.status != 0, "\(pushWithoutLogin.output)")

        let login = try daemon.docker(["login", "-u", "ci", "-p", "s3cret:pass", host])
        #expect(login.status == 0, "\(login.output)")
        let push = try daemon.docker(["push", name])
        #expect(push.status == 0, "\(push.output)")
        #expect(try daemon.docker(["rmi", name, "local/image:v1"]).status == 0)
        let pull = try daemon.docker(["pull", name])
        #expect(pull.status == 0, "\(pull.output)")
        #expect(try daemon.docker(["image", "inspect", name]).status == 0)
    }
}
