import Foundation

/// A certificate authority and a server certificate for 127.0.0.1, made with openssl for one test.
struct TLSFixture {
    let directory: String
    /// The server's certificate followed by the CA's: the chain the server presents.
    let chainPEM: String
    let keyPEM: String
    /// A directory holding `ca.crt`, as skopeo's and podman's `--cert-dir` expect.
    let certificateDirectory: String
    let caPath: String

    static func make(in directory: String) throws -> TLSFixture {
        let commands: [[String]] = [
            [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=buildset test CA",
                "-keyout", "ca.key", "-out", "ca.crt",
            ],
            [
                "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out",
                "server.csr",
            ],
            [
                "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days",
                "2",
                "-extfile", "san.cnf", "-out", "server.crt",
            ],
        ]
        try "subjectAltName=IP:127.0.0.1,DNS:localhost\n".write(
            toFile: directory + "/san.cnf", atomically: true, encoding: .utf8)
        for arguments in commands {
            let result = try run("/usr/bin/openssl", arguments, directory: directory)
            guard result.status == 0 else { throw POSIXError(.EIO) }
        }
        let server = try String(contentsOfFile: directory + "/server.crt", encoding: .utf8)
        let authority = try String(contentsOfFile: directory + "/ca.crt", encoding: .utf8)
        let certificates = directory + "/certs"
        try FileManager.default.createDirectory(atPath: certificates, withIntermediateDirectories: true)
        try authority.write(toFile: certificates + "/ca.crt", atomically: true, encoding: .utf8)
        return TLSFixture(
            directory: directory, chainPEM: server + authority,
            keyPEM: try String(contentsOfFile: directory + "/server.key", encoding: .utf8),
            certificateDirectory: certificates, caPath: directory + "/ca.crt")
    }
}
