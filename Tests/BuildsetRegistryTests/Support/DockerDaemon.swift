import Foundation

/// A docker daemon and the containerd under it, started for one test with vfs storage, no bridge and no
/// iptables, on sockets in a temporary directory.
final class DockerDaemon {
    let directory: String
    private var processes: [Process] = []
    var socket: String { directory + "/docker.sock" }

    init(directory: String) throws {
        self.directory = directory
        let containerdConfig = """
            version = 2
            root = "\(directory)/containerd-root"
            state = "\(directory)/containerd-state"
            disabled_plugins = ["io.containerd.grpc.v1.cri"]
            [grpc]
              address = "\(directory)/containerd.sock"
            [ttrpc]
              address = "\(directory)/containerd-ttrpc.sock"

            """
        try containerdConfig.write(toFile: directory + "/containerd.toml", atomically: true, encoding: .utf8)
        let daemonConfig = #"{"iptables": false, "ip6tables": false, "bridge": "none", "storage-driver": "vfs"}"#
        try daemonConfig.write(toFile: directory + "/daemon.json", atomically: true, encoding: .utf8)

        try start("/usr/bin/containerd", ["--config", directory + "/containerd.toml"], log: "containerd.log")
        try waitFor(path: directory + "/containerd.sock")
        try start(
            "/usr/sbin/dockerd",
            [
                "--config-file", directory + "/daemon.json", "--data-root", directory + "/data", "--exec-root",
                directory + "/exec", "--pidfile", directory + "/docker.pid", "-H", "unix://" + socket, "--containerd",
                directory + "/containerd.sock",
            ], log: "dockerd.log")
        guard try waitUntil(seconds: 15, interval: 0.05, { try docker(["version"]).status == 0 }) else {
            throw POSIXError(.ETIMEDOUT)
        }
    }

    deinit {
        for process in processes.reversed() where process.isRunning {
            process.terminate()
            waitUntil(seconds: 5, interval: 0.05) { !process.isRunning }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
    }

    /// Runs the docker CLI against this daemon, with its login stored in this directory.
    func docker(_ arguments: [String]) throws -> CommandResult {
        try run("docker", ["-H", "unix://" + socket] + arguments, environment: ["DOCKER_CONFIG": directory + "/cli"])
    }

    private func start(_ program: String, _ arguments: [String], log: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        _ = FileManager.default.createFile(atPath: directory + "/" + log, contents: nil)
        let output = FileHandle(forWritingAtPath: directory + "/" + log)
        process.standardOutput = output
        process.standardError = output
        try process.run()
        processes.append(process)
    }

    private func waitFor(path: String) throws {
        guard waitUntil(seconds: 5, interval: 0.025, { FileManager.default.fileExists(atPath: path) }) else {
            throw POSIXError(.ETIMEDOUT)
        }
    }
}
