/// One registry that images not held locally are fetched from.
public struct UpstreamConfiguration: Sendable, Equatable {
    /// The name clients select it by: a path prefix (`/v2/<name>/org/image/...`) or `?ns=<name>`.
    public var name: String
    /// The base URL, such as `https://registry-1.docker.io`.
    public var url: String
    /// Credentials for the upstream, when it needs them.
    public var username: String?
    /// The password for `username`.
    public var password: String?
    /// A PEM file of certificate authorities to trust for this upstream instead of the system's.
    public var certificateAuthorities: String?
    /// Seconds to wait for a connection.
    public var connectTimeout = 10
    /// Seconds a transfer may go without a byte before it is abandoned.
    public var stallTimeout = 60
    /// Seconds a tag's digest is trusted before it is checked again with a HEAD.
    public var tagLifetime = 300
    /// Whether single-segment names get `library/`, as on Docker Hub.
    public var addsLibraryPrefix = false

    /// Makes an upstream; Docker Hub's URL turns on its `library/` prefix.
    public init(name: String, url: String) {
        self.name = name
        self.url = url.hasSuffix("/") ? String(url.dropLast()) : url
        addsLibraryPrefix = self.url.hasSuffix("://registry-1.docker.io")
    }

    /// Docker Hub, the default upstream.
    public static let dockerHub = UpstreamConfiguration(name: "docker.io", url: "https://registry-1.docker.io")
}
