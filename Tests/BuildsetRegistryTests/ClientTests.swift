import Foundation
import HTTPClient
import Hashing
import Testing

/// Real registry clients from Debian push to and pull from the registry.
@Suite struct ClientTests {
    @Test func skopeoCopiesAnImageInAndOutByteExact() throws {
        let directory = TemporaryDirectory()
        let server = try TestServer()
        let host = "127.0.0.1:\(server.server.port)"
        let source = try OCILayout.make(at: directory.path + "/source", layers: 3, tag: "v1")

        let push = try run(
            "skopeo",
            [
                "copy", "--preserve-digests", "--dest-tls-verify=false", "oci:\(source.path):v1",
                "docker://\(host)/skopeo/image:v1",
            ])
        #expect(push.status == 0, "\(push.output)")

        let pulled = directory.path + "/pulled"
        let pull = try run(
            "skopeo",
            [
                "copy", "--preserve-digests", "--src-tls-verify=false", "docker://\(host)/skopeo/image:v1",
                "oci:\(pulled):v1",
            ])
        #expect(pull.status == 0, "\(pull.output)")
        #expect(try OCILayout(path: pulled, manifestDigest: source.manifestDigest).blobs() == source.blobs())

        let inspect = try run("skopeo", ["inspect", "--tls-verify=false", "docker://\(host)/skopeo/image:v1"])
        #expect(inspect.output.contains(source.manifestDigest))
        let tags = try run("skopeo", ["list-tags", "--tls-verify=false", "docker://\(host)/skopeo/image"])
        #expect(tags.output.contains("\"v1\""))

        let delete = try run(
            "skopeo", ["delete", "--tls-verify=false", "docker://\(host)/skopeo/image@\(source.manifestDigest)"])
        #expect(delete.status == 0, "\(delete.output)")
        #expect(try RegistryClient(base: server.base).send("GET", "/v2/skopeo/image/manifests/v1").status == 404)
    }
}
