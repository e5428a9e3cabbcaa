import Config
import Foundation
import HTTPServer
import Logging
import Storage
import Upstream

/// Turns a configuration into a running server, or into a list of reasons it cannot run.
public enum Launcher {
    /// A configuration that parsed but cannot be served.
    public struct Refusal: Error, CustomStringConvertible {
        /// Why, in words.
        public let description: String
    }

    /// Checks what parsing cannot: files that must exist, and features this build does not have; every problem
    /// is listed, one a line.
    public static func check(_ configuration: RegistryConfiguration) throws(Refusal) {
        var problems: [String] = []
        if case .swift = configuration.storage {
            problems.append("registry.storage.driver: the swift storage driver is not available in this build")
        }
        let files = [
            ("registry.tls-cert", configuration.tlsCertificatePath), ("registry.tls-key", configuration.tlsKeyPath),
        ]
        for case (let key, let path?) in files where !FileManager.default.isReadableFile(atPath: path) {
            problems.append("\(key): cannot read \(path)")
        }
        if !problems.isEmpty {
            throw Refusal(description: problems.joined(separator: "\n"))
        }
    }

    /// Opens the configured storage.
    public static func openStore(_ configuration: RegistryConfiguration) throws -> RegistryStore {
        switch configuration.storage {
        case .filesystem(let root):
            return RegistryStore(driver: try FilesystemDriver(root: root))
        case .swift:
            throw Refusal(description: "the swift storage driver is not available in this build")
        }
    }

    /// A server that is running, with the storage it serves.
    public struct Running {
        /// The HTTP server.
        public let server: HTTPServer
        /// The storage.
        public let store: RegistryStore

        /// Stops accepting requests, finishes those in progress, and waits until committed content is on disk.
        public func stop() {
            server.stop()
            store.driver.waitUntilDurable()
        }
    }

    /// Checks content left unflushed by an earlier process, then starts serving `configuration`.
    public static func serve(_ configuration: RegistryConfiguration, isDefault: Bool, logger: Logger) throws
        -> Running
    {
        try check(configuration)
        let store = try openStore(configuration)
        let recovery = try store.recoverUnsyncedContent()
        if recovery.checked > 0 {
            logger.warning(
                "checked content committed before an unclean stop",
                ["checked": String(recovery.checked), "removed": String(recovery.removed)])
        }
        var settings = HTTPServer.Configuration(address: configuration.address, port: configuration.port)
        if let certificate = configuration.tlsCertificatePath, let key = configuration.tlsKeyPath {
            settings.tlsCertificatePEM = try String(contentsOfFile: certificate, encoding: .utf8)
            settings.tlsKeyPEM = try String(contentsOfFile: key, encoding: .utf8)
        }
        var accessControl: AccessControl?
        if !configuration.users.isEmpty {
            let users = configuration.users.map {
                AccessControl.User(name: $0.name, password: $0.password, canWrite: $0.access == .write)
            }
            accessControl = AccessControl(
                users: users, secret: configuration.secret, publicURL: configuration.effectivePublicURL)
            if configuration.secret == nil {
                logger.warning("no secret configured: tokens are signed with a random key and die with the process")
            }
        }
        let upstreams = configuration.upstreams.map { UpstreamRegistry($0) }
        let registry = Registry(store: store, accessControl: accessControl, upstreams: upstreams)
        let server = HTTPServer(configuration: settings, handler: registry, logger: Logger(label: "http"))
        try server.start()

        var metadata: Logger.Metadata = [
            "address": configuration.address, "port": String(server.port), "url": configuration.effectivePublicURL,
        ]
        if case .filesystem(let root) = configuration.storage { metadata["storage"] = root }
        metadata["upstreams"] = configuration.upstreams.map(\.name).joined(separator: ",")
        if isDefault { metadata["config"] = "embedded default" }
        logger.info("serving", metadata)
        if !server.isTLS {
            logger.warning("plain HTTP: no tls-cert is configured")
        }
        let isLoopback =
            configuration.address.hasPrefix("127.") || configuration.address == "::1"
            || configuration.address == "localhost"
        if let accessControl {
            let pull = accessControl.isAnonymousPullAllowed ? "anonymous" : "read users only"
            logger.info("authentication on", ["users": String(configuration.users.count), "pull": pull])
        } else if isLoopback {
            logger.warning("anonymous push is allowed; safe only because the registry listens on loopback")
        } else {
            logger.warning("anonymous push is allowed from the network: configure users to restrict it")
        }
        return Running(server: server, store: store)
    }

    /// How long a client has to finish an upload before `prune` removes it, as in zuul-registry.
    public static let uploadLifetime: TimeInterval = 3600

    /// Removes uploads started more than `uploadLifetime` ago.
    ///
    /// Known limit: manifests older than `expiration` and blobs no manifest references are not pruned yet, so
    /// storage grows until the buildset's registry is thrown away.
    public static func prune(_ configuration: RegistryConfiguration, logger: Logger) throws {
        let store = try openStore(configuration)
        let cutoff = Date().addingTimeInterval(-uploadLifetime)
        var removed = 0
        for upload in try store.uploads() where upload.startedAt < cutoff {
            try store.driver.delete(StorageLayout.upload(upload.id))
            logger.debug("abandoned upload removed", ["upload.id": upload.id.value])
            removed += 1
        }
        logger.info("pruned", ["uploads": String(removed)])
    }
}
