/// The byte ranges of `Range` and `Content-Range` headers, parsed without regular expressions.
enum ByteRange {
    /// What a blob `Range` header asks for.
    enum Request: Equatable {
        /// No usable range: send the whole blob.
        case whole
        /// Send bytes `start...end`, inclusive.
        case bytes(start: Int64, end: Int64)
        /// The header is malformed or no byte of it lies in the blob.
        case unsatisfiable
    }

    /// Reads `bytes=a-b`, `bytes=a-` or `bytes=-n` against a blob of `size` bytes.
    static func parseRequest(_ header: String?, size: Int64) -> Request {
        guard let header else { return .whole }
        guard header.hasPrefix("bytes=") else { return .unsatisfiable }
        let spec = header.dropFirst("bytes=".count)
        // Several ranges would need a multipart answer; a server may ignore Range, so the whole blob is sent.
        if spec.contains(",") { return .whole }
        guard let dash = spec.firstIndex(of: "-") else { return .unsatisfiable }
        let first = spec[..<dash]
        let second = spec[spec.index(after: dash)...]
        if first.isEmpty {
            guard let suffix = number(second), suffix > 0, size > 0 else { return .unsatisfiable }
            return .bytes(start: max(size - suffix, 0), end: size - 1)
        }
        guard let start = number(first), start < size else { return .unsatisfiable }
        if second.isEmpty { return .bytes(start: start, end: size - 1) }
        guard let end = number(second), end >= start else { return .unsatisfiable }
        return .bytes(start: start, end: min(end, size - 1))
    }

    /// Reads an upload chunk's `Content-Range`, `a-b` inclusive, also accepting a `bytes ` or `bytes=` prefix.
    static func parseChunk(_ header: String) -> (start: Int64, end: Int64)? {
        var text = Substring(header)
        for prefix in ["bytes=", "bytes "] where text.hasPrefix(prefix) {
            text = text.dropFirst(prefix.count)
        }
        guard let dash = text.firstIndex(of: "-"), let start = number(text[..<dash]),
            let end = number(text[text.index(after: dash)...]), end >= start
        else { return nil }
        return (start, end)
    }

    /// A non-negative decimal of at most 18 digits.
    static func number(_ text: Substring) -> Int64? {
        guard !text.isEmpty, text.count <= 18,
            text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        else { return nil }
        return Int64(text)
    }
}
