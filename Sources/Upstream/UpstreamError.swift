/// Why an upstream could not give what was asked.
public struct UpstreamError: Error, Sendable, CustomStringConvertible {
    /// What went wrong.
    public enum Kind: Sendable, Equatable {
        /// The upstream answered with this status; `retryAfter` is its `Retry-After` header.
        case status(Int, retryAfter: String?)
        /// The upstream could not be reached, or the transfer broke off.
        case unreachable(String)
        /// The bytes did not match their digest.
        case digestMismatch
        /// The response was not what the protocol promises, such as a manifest too large.
        case invalidResponse(String)
    }

    /// What went wrong.
    public let kind: Kind
    /// The upstream's name.
    public let upstream: String

    /// Makes an error.
    public init(_ kind: Kind, upstream: String) {
        self.kind = kind
        self.upstream = upstream
    }

    /// Whether the upstream said the thing does not exist.
    public var isNotFound: Bool { kind == .status(404, retryAfter: nil) }

    /// The failure in words.
    public var description: String {
        switch kind {
        case .status(let status, _): "upstream \(upstream) answered \(status)"
        case .unreachable(let reason): "upstream \(upstream) unreachable: \(reason)"
        case .digestMismatch: "upstream \(upstream) sent content that does not match its digest"
        case .invalidResponse(let reason): "upstream \(upstream) sent an invalid response: \(reason)"
        }
    }
}
