import Foundation
import HTTPClient

/// The `buildset-registry` executable run as a child process, for tests that need several servers or a kill.
final class ServerProcess {
    let port: UInt16
    let root: String
    private let process = Process()
    private let configPath: String

    /// The built executable: `BUILDSET_REGISTRY_BINARY`, else the one beside the test bundle.
    static var executable: String {
        if let path = ProcessInfo.processInfo.environment["BUILDSET_REGISTRY_BINARY"] { return path }
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        return bundle.appendingPathComponent("buildset-registry").path
    }

    /// Starts a server on a free port over `root` and waits until it answers; its log goes to `logPath` if given.
    init(root: String, directory: String, logPath: String? = nil) throws {
        self.root = root
        port = try Self.freePort()
        configPath = directory + "/registry-\(port).yaml"
        let config = """
            registry:
              address: 127.0.0.1
              port: \(port)
              upstreams: []
              storage:
                driver: filesystem
                root: \(root)

            """
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: Self.executable)
        process.arguments = ["serve", "-c", configPath]
        if let logPath {
            _ = FileManager.default.createFile(atPath: logPath, contents: nil)
            process.standardError = FileHandle(forWritingAtPath: logPath)
        } else {
            process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        }
        try process.run()
        try waitUntilServing()
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    var base: String { "http://127.0.0.1:\(port)" }

    /// Kills the server with SIGKILL, as a crash or an out-of-memory kill would.
    func kill9() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Sends SIGTERM and answers the exit status, or nil when the process has not exited within ten seconds.
    func terminate() -> Int32? {
        kill(process.processIdentifier, SIGTERM)
        guard waitUntil(seconds: 10, { !process.isRunning }) else { return nil }
        return process.terminationStatus
    }

    private func waitUntilServing() throws {
        let client = HTTPClient()
        let answered = waitUntil(seconds: 5) {
            (try? client.send("GET", base + "/v2/", timeout: 2))?.status == 200 || !process.isRunning
        }
        guard answered, process.isRunning else { throw POSIXError(.ETIMEDOUT) }
    }

    /// A port nothing listens on right now.
    static func freePort() throws -> UInt16 {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0
            }
        }
        guard bound else { throw POSIXError(.EADDRINUSE) }
        return UInt16(bigEndian: address.sin_port)
    }
}

/// Runs `count` closures on their own threads, released together, and waits for all of them.
func runTogether(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let gate = DispatchSemaphore(value: 0)
    let group = DispatchGroup()
    for index in 0..<count {
        group.enter()
        let thread = Thread {
            gate.wait()
            body(index)
            group.leave()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }
    for _ in 0..<count { gate.signal() }
    group.wait()
}
