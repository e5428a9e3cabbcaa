import CCurl
import Foundation

// The one file of this project that calls into libcurl.

/// A blocking HTTP/1.1 client on libcurl that keeps its connections alive between requests.
///
/// One client is one libcurl easy handle, so it is used by one thread at a time; make one per thread.
public final class HTTPClient {
    /// A response, with its body read whole.
    public struct Response {
        /// The status code.
        public let status: Int
        /// The headers, in the order received, names as sent.
        public let headers: [(name: String, value: String)]
        /// The body.
        public let body: [UInt8]

        /// The first value of a header, matched without regard to case.
        public func header(_ name: String) -> String? {
            headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
        }

        /// The body as UTF-8 text.
        public var text: String { String(decoding: body, as: UTF8.self) }

        /// The body parsed as a JSON object, or nil.
        public var json: [String: Any]? {
            (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
        }
    }

    /// A transfer libcurl could not complete.
    public struct TransferError: Error, CustomStringConvertible {
        /// libcurl's code.
        public let code: Int
        /// libcurl's words for it.
        public let description: String
    }

    private let handle: UnsafeMutableRawPointer

    /// Makes a client.
    public init() {
        curl_global_init(Int(CURL_GLOBAL_DEFAULT))
        handle = curl_easy_init()
    }

    deinit {
        curl_easy_cleanup(handle)
    }

    /// Sends a request; `body` is sent with `Content-Length`, or chunked when `chunked` is set.
    public func send(
        _ method: String, _ url: String, headers: [String: String] = [:], body: [UInt8]? = nil, chunked: Bool = false,
        timeout: Int = 60
    ) throws -> Response {
        curl_easy_reset(handle)
        let transfer = Transfer(body: body ?? [])
        let context = Unmanaged.passUnretained(transfer).toOpaque()

        shim_curl_set_pointer(handle, CURLOPT_URL, url)
        shim_curl_set_long(handle, CURLOPT_TIMEOUT, timeout)
        shim_curl_set_long(handle, CURLOPT_NOSIGNAL, 1)
        shim_curl_set_header_function(handle, headerCallback)
        shim_curl_set_pointer(handle, CURLOPT_HEADERDATA, context)
        shim_curl_set_write_function(handle, writeCallback)
        shim_curl_set_pointer(handle, CURLOPT_WRITEDATA, context)
        if method == "HEAD" {
            shim_curl_set_long(handle, CURLOPT_NOBODY, 1)
        } else {
            shim_curl_set_pointer(handle, CURLOPT_CUSTOMREQUEST, method)
        }

        var headerLines = headers.map { "\($0.key): \($0.value)" }
        if body != nil {
            shim_curl_set_long(handle, CURLOPT_UPLOAD, 1)
            shim_curl_set_read_function(handle, readCallback)
            shim_curl_set_pointer(handle, CURLOPT_READDATA, context)
            if chunked {
                headerLines.append("Transfer-Encoding: chunked")
            } else {
                shim_curl_set_offset(handle, CURLOPT_INFILESIZE_LARGE, curl_off_t(transfer.body.count))
            }
            headerLines.append("Expect:")
        }
        var list: UnsafeMutablePointer<curl_slist>?
        for line in headerLines { list = curl_slist_append(list, line) }
        defer { curl_slist_free_all(list) }
        shim_curl_set_pointer(handle, CURLOPT_HTTPHEADER, list)

        let code = curl_easy_perform(handle)
        guard code == CURLE_OK else {
            throw TransferError(code: Int(code.rawValue), description: String(cString: curl_easy_strerror(code)))
        }
        var status = 0
        shim_curl_get_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return Response(status: status, headers: transfer.headers, body: transfer.received)
    }
}

/// The state of one transfer, reached from libcurl's callbacks.
final class Transfer {
    let body: [UInt8]
    var sent = 0
    var received: [UInt8] = []
    var headers: [(name: String, value: String)] = []

    init(body: [UInt8]) {
        self.body = body
    }
}

private let writeCallback: curl_write_callback = { data, size, count, context in
    let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
    let length = size * count
    if let data, length > 0 {
        data.withMemoryRebound(to: UInt8.self, capacity: length) {
            transfer.received.append(contentsOf: UnsafeBufferPointer(start: $0, count: length))
        }
    }
    return length
}

private let headerCallback: curl_write_callback = { data, size, count, context in
    let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
    let length = size * count
    guard let data else { return length }
    let line = data.withMemoryRebound(to: UInt8.self, capacity: length) {
        String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
    }
    if line.hasPrefix("HTTP/") {
        // A new status line: 100 Continue or a redirect came first.
        transfer.headers.removeAll()
    } else if let colon = line.firstIndex(of: ":") {
        let name = String(line[..<colon])
        let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
        transfer.headers.append((name, value))
    }
    return length
}

private let readCallback: curl_read_callback = { buffer, size, count, context in
    let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
    let length = min(size * count, transfer.body.count - transfer.sent)
    guard let buffer, length > 0 else { return 0 }
    transfer.body.withUnsafeBytes { bytes in
        UnsafeMutableRawPointer(buffer).copyMemory(from: bytes.baseAddress! + transfer.sent, byteCount: length)
    }
    transfer.sent += length
    return length
}
