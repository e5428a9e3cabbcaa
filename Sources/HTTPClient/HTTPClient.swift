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

    /// Limits and trust settings for one request.
    public struct Options: Sendable {
        /// Seconds the whole transfer may take; 0 for no limit.
        public var timeout = 60
        /// Seconds to wait for the connection.
        public var connectTimeout = 10
        /// Seconds the transfer may go without a byte before it is abandoned; 0 for no limit.
        public var stallTimeout = 0
        /// A PEM file of certificate authorities to trust instead of the system's.
        public var certificateAuthorities: String?

        /// The defaults: 60 s in all, 10 s to connect.
        public init() {}
    }

    /// Sends a request; `body` is sent with `Content-Length`, or chunked when `chunked` is set.
    public func send(
        _ method: String, _ url: String, headers: [String: String] = [:], body: [UInt8]? = nil, chunked: Bool = false,
        timeout: Int = 60
    ) throws -> Response {
        var options = Options()
        options.timeout = timeout
        let transfer = Transfer(body: body ?? [])
        let status = try perform(
            method, url, headers: headers, chunked: chunked && body != nil, hasBody: body != nil,
            options: options, transfer: transfer)
        return Response(status: status, headers: transfer.headers, body: transfer.received)
    }

    /// Sends a bodiless request and hands the response to the caller as it arrives: `onHead` once with the
    /// status and headers, then `onData` for each piece of the body. Either returning false aborts the transfer,
    /// which then throws. Answers the status.
    @discardableResult
    public func stream(
        _ method: String, _ url: String, headers: [String: String] = [:], options: Options = Options(),
        onHead: @escaping (Int, [(name: String, value: String)]) -> Bool,
        onData: @escaping (UnsafeRawBufferPointer) -> Bool
    ) throws -> Int {
        let transfer = Transfer(body: [])
        transfer.onHead = onHead
        transfer.onData = onData
        let status = try perform(
            method, url, headers: headers, chunked: false, hasBody: false, options: options,
            transfer: transfer)
        _ = transfer.deliverHeadIfPending(status: status)
        return status
    }

    private func perform(
        _ method: String, _ url: String, headers: [String: String], chunked: Bool, hasBody: Bool, options: Options,
        transfer: Transfer
    ) throws -> Int {
        curl_easy_reset(handle)
        let context = Unmanaged.passUnretained(transfer).toOpaque()
        transfer.handle = handle

        shim_curl_set_pointer(handle, CURLOPT_URL, url)
        shim_curl_set_long(handle, CURLOPT_TIMEOUT, options.timeout)
        shim_curl_set_long(handle, CURLOPT_CONNECTTIMEOUT, options.connectTimeout)
        if options.stallTimeout > 0 {
            shim_curl_set_long(handle, CURLOPT_LOW_SPEED_LIMIT, 1)
            shim_curl_set_long(handle, CURLOPT_LOW_SPEED_TIME, options.stallTimeout)
        }
        if let authorities = options.certificateAuthorities {
            shim_curl_set_pointer(handle, CURLOPT_CAINFO, authorities)
        }
        shim_curl_set_long(handle, CURLOPT_NOSIGNAL, 1)
        // Larger pieces mean fewer callbacks, and fewer writes and wake-ups behind each.
        shim_curl_set_long(handle, CURLOPT_BUFFERSIZE, 512 * 1024)
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
        if hasBody {
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
        transfer.handle = nil
        guard code == CURLE_OK else {
            throw TransferError(code: Int(code.rawValue), description: String(cString: curl_easy_strerror(code)))
        }
        var status = 0
        shim_curl_get_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return status
    }
}

/// The state of one transfer, reached from libcurl's callbacks.
final class Transfer {
    /// The request body, handed to libcurl by the read callback.
    let body: [UInt8]
    /// How many bytes of `body` libcurl has taken so far.
    var sent = 0
    /// The response body, collected here when no streaming caller takes it.
    var received: [UInt8] = []
    /// The headers of the latest response head, in the order received.
    var headers: [(name: String, value: String)] = []
    /// The status of the latest response head; 0 until a status line arrives.
    var status = 0
    /// The easy handle while the transfer runs; nil before and after.
    var handle: UnsafeMutableRawPointer?
    /// Takes the status and headers of a streamed final response; returning false aborts the transfer.
    var onHead: ((Int, [(name: String, value: String)]) -> Bool)?
    /// Takes each piece of a streamed body; returning false aborts the transfer.
    var onData: ((UnsafeRawBufferPointer) -> Bool)?
    /// Whether `onHead` has been called, so it is called at most once.
    var headDelivered = false

    /// Makes a transfer that sends `body`.
    init(body: [UInt8]) {
        self.body = body
    }

    /// Hands the head to a streaming caller once; answers whether the transfer should go on.
    func deliverHeadIfPending(status: Int) -> Bool {
        guard let onHead, !headDelivered else { return true }
        headDelivered = true
        return onHead(status, headers)
    }
}

private let writeCallback: curl_write_callback = { data, size, count, context in
    let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
    let length = size * count
    guard let data, length > 0 else { return length }
    let bytes = UnsafeRawBufferPointer(start: data, count: length)
    if let onData = transfer.onData {
        guard transfer.deliverHeadIfPending(status: transfer.status), onData(bytes) else { return 0 }
        return length
    }
    transfer.received.append(contentsOf: bytes)
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
        let parts = line.split(separator: " ")
        transfer.status = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
    } else if let colon = line.firstIndex(of: ":") {
        let name = String(line[..<colon])
        let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
        transfer.headers.append((name, value))
    } else if line == "\r\n", transfer.status >= 200 {
        // The end of a final response's head.
        return transfer.deliverHeadIfPending(status: transfer.status) ? length : 0
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
