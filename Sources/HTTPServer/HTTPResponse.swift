import Foundation

/// A response: status, headers and a body that is held, read from a file, or produced as it is sent.
public struct HTTPResponse {
    /// Where a response's body comes from.
    public enum Body {
        /// No body.
        case empty
        /// Bytes held in memory.
        case bytes([UInt8])
        /// A byte range of an open file, which the server closes when done; sent with sendfile where possible.
        case file(descriptor: Int32, offset: Int64, length: Int64)
        /// A body of this length that is never sent: the answer to a HEAD.
        case lengthOnly(Int64)
        /// Bytes produced while sending; a nil length sends them chunked.
        case stream(length: Int64?, source: any HTTPBodySource)
    }

    /// The status code.
    public var status: Int
    /// Headers in the order they are sent; `Content-Length` is set by the server from the body.
    public var headers: [(name: String, value: String)]
    /// The body.
    public var body: Body

    /// Makes a response.
    public init(status: Int, headers: [(name: String, value: String)] = [], body: Body = .empty) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// Adds a header.
    public mutating func addHeader(_ name: String, _ value: String) {
        headers.append((name, value))
    }

    /// The first value of a header, matched without regard to case.
    public func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }

    /// How many body bytes the response declares, for logs.
    public var declaredLength: Int64 {
        switch body {
        case .empty: 0
        case .bytes(let bytes): Int64(bytes.count)
        case .file(_, _, let length): length
        case .lengthOnly: 0
        case .stream(let length, _): length ?? -1
        }
    }
}

/// Produces a streamed body, one buffer at a time, on the connection's thread.
public protocol HTTPBodySource: AnyObject {
    /// Fills `buffer` with the next bytes at `offset`; returns how many, 0 at the end, or nil when the body
    /// cannot be completed (the connection is then closed short of the promised length).
    func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) -> Int?
    /// Called once when the response is done with, sent or not.
    func close()
}
