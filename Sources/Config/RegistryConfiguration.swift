import Foundation

/// The contents of a `registry.yaml`, in zuul-registry's shape.
///
/// ```yaml
/// registry:
///   address: 127.0.0.1
///   port: 9000
///   public-url: https://registry.example:9000
///   tls-cert: /path/cert.pem
///   tls-key: /path/key.pem
///   secret: "%(ZUUL_REGISTRY_SECRET)"
///   users:
///     - {name: ci, pass: secret, access: write}
///   storage: {driver: filesystem, root: /var/lib/registry}
/// ```
public struct RegistryConfiguration: Sendable, Equatable {
    /// A user allowed to log in.
    public struct User: Sendable, Equatable {
        /// What a user may do.
        public enum Access: String, Sendable {
            case read, write
        }
        /// The login name.
        public var name: String
        /// The password.
        public var password: String
        /// What the user may do.
        public var access: Access

        /// Makes a user.
        public init(name: String, password: String, access: Access) {
            self.name = name
            self.password = password
            self.access = access
        }
    }

    /// Where blobs and manifests live.
    public enum Storage: Sendable, Equatable {
        /// A directory on the local filesystem.
        case filesystem(root: String)
        /// An OpenStack Swift container, reached with the credentials of `cloud`.
        case swift(cloud: String, container: String)
    }

    /// The address to listen on.
    public var address = "127.0.0.1"
    /// The port to listen on.
    public var port: UInt16 = 9000
    /// The URL clients reach the registry at; derived from address and port when unset.
    public var publicURL: String?
    /// The PEM certificate chain for TLS.
    public var tlsCertificatePath: String?
    /// The PEM key for TLS.
    public var tlsKeyPath: String?
    /// The secret tokens are signed with.
    public var secret: String?
    /// The users allowed to log in.
    public var users: [User] = []
    /// Where content is stored.
    public var storage: Storage = .filesystem(root: "./data")
    /// Seconds after which unused uploads and unreferenced content may be pruned.
    public var expiration: Int?
    /// Where images not pushed here come from, the first being the default; `upstreams: []` turns this off.
    public var upstreams: [UpstreamConfiguration] = [.dockerHub]

    /// The configuration used when no file is given: loopback only, plain HTTP, anonymous push, `./data`.
    public static let embeddedDefault = RegistryConfiguration()

    /// The URL clients reach the registry at.
    public var effectivePublicURL: String {
        if let publicURL { return publicURL.hasSuffix("/") ? String(publicURL.dropLast()) : publicURL }
        let scheme = tlsCertificatePath == nil ? "http" : "https"
        let host = address.contains(":") ? "[\(address)]" : address
        return "\(scheme)://\(host):\(port)"
    }
}

/// Something wrong or doubtful in a configuration file, with where it is.
public struct ConfigurationProblem: Sendable, Equatable, CustomStringConvertible {
    /// How bad the problem is.
    public enum Severity: String, Sendable {
        case warning, error
    }
    /// How bad the problem is.
    public let severity: Severity
    /// The file the problem is in.
    public let file: String
    /// The 1-based line.
    public let line: Int
    /// The dotted key, such as `registry.storage.root`.
    public let key: String
    /// What is wrong.
    public let message: String

    /// The problem as `file:line: severity: key: message`.
    public var description: String { "\(file):\(line): \(severity.rawValue): \(key): \(message)" }
}

/// A configuration file that could not be used, with every problem found in it.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    /// Every problem found, errors and warnings.
    public let problems: [ConfigurationProblem]

    /// The problems, one a line.
    public var description: String { problems.map(\.description).joined(separator: "\n") }
}
