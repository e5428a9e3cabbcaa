import Foundation

/// One request's head, readable while the request is being served on its connection's thread.
///
/// Header and query values are looked up in the server library's own parsed tables, so a request carries no
/// copies of headers nobody asks for.
public final class HTTPRequest {
    /// The request method, upper case as the client sent it.
    public let method: String
    /// The path, percent-decoded, without the query string.
    public let path: String
    /// An identifier for this request, unique within the process, for logs and the `X-Request-Id` header.
    public let requestID: String
    private let lookup: HTTPHeaderLookup

    /// Makes a request whose headers, query parameters and peer address come from `lookup`.
    init(method: String, path: String, requestID: String, lookup: HTTPHeaderLookup) {
        self.method = method
        self.path = path
        self.requestID = requestID
        self.lookup = lookup
    }

    /// The value of a request header, matched without regard to case.
    public func header(_ name: String) -> String? {
        lookup.header(name)
    }

    /// The value of a query parameter, percent-decoded.
    public func query(_ name: String) -> String? {
        lookup.query(name)
    }

    /// Every value of a query parameter that may repeat, such as `scope`, in the order sent.
    public func queryValues(_ name: String) -> [String] {
        lookup.queryValues(name)
    }

    /// The peer's IP address as text.
    public var remoteAddress: String {
        lookup.remoteAddress()
    }
}

/// Where a request finds its headers: the live library connection, reached through this protocol so that only
/// the server's bridge file calls into libmicrohttpd.
protocol HTTPHeaderLookup {
    /// The value of the named request header, matched without regard to case; nil when it was not sent.
    func header(_ name: String) -> String?
    /// The value of the named query parameter, percent-decoded; nil when it was not sent.
    func query(_ name: String) -> String?
    /// Every value of the named query parameter, in the order sent.
    func queryValues(_ name: String) -> [String]
    /// The peer's IP address as text.
    func remoteAddress() -> String
}
