import CMicroHTTPD
import Foundation
import Logging
import Synchronization

/// An HTTP/1.1 server on libmicrohttpd; this file is the only one that calls into the library.
///
/// Threading: one thread per connection. A handler may block (on the disk, on an upstream registry, on a
/// pull-through fill another request is running) without holding up any other connection, because no other
/// connection shares its thread. Measured here against the alternative, an epoll pool of two threads, with 8
/// keep-alive clients: blob HEADs 17,000-17,500/s against 17,300/s, `GET /v2/` 22,700-24,500/s against 21,900/s,
/// so the pool wins nothing, and with it every wait would need a suspend and a resume through a worker. Idle
/// keep-alive connections cost a parked thread each, whose stack is virtual memory that is never touched; the
/// connection limit bounds them.
public final class HTTPServer: @unchecked Sendable {
    /// How the server listens and what it allows each connection.
    public struct Configuration: Sendable {
        /// The address to bind, as an IPv4 or IPv6 literal.
        public var address: String
        /// The port; 0 picks a free one, readable from `port` once started.
        public var port: UInt16
        /// The most connections served at once; more are refused at accept.
        public var connectionLimit: UInt32 = 1024
        /// Seconds a connection may stay silent before it is closed.
        public var connectionTimeout: UInt32 = 60
        /// Bytes of buffer per connection, which bound the request head and each body chunk handed over.
        ///
        /// A trade, measured here with 1 GiB pushes and `ab` on a blob HEAD for each size: first, with uploads
        /// written through the page cache, 64 KiB gave 240-620 MB/s and 19,500 HEADs/s, 512 KiB 600-770 MB/s
        /// and 13,400/s; again with direct writes, 64 KiB gave 1,115-1,516 MB/s and 50,700-53,200 HEADs/s,
        /// 512 KiB 1,388-1,526 MB/s and 43,000-45,700/s. The library clears the buffer between requests, which
        /// costs the small ones. Pushes are where the margin is needed. A connection touches its buffer only once
        /// it sends a request, so idle connections cost little.
        public var connectionMemoryLimit: Int = 512 * 1024
        /// The PEM certificate chain and key; both set serves TLS.
        public var tlsCertificatePEM: String?
        /// The PEM private key matching `tlsCertificatePEM`.
        public var tlsKeyPEM: String?

        /// Makes a configuration for plain HTTP on `address` and `port`.
        public init(address: String, port: UInt16) {
            self.address = address
            self.port = port
        }
    }

    /// Why the server could not start.
    public struct StartError: Error, CustomStringConvertible {
        /// What failed, naming the address.
        public let description: String
    }

    private let configuration: Configuration
    private let handler: any HTTPHandler
    private let logger: Logger
    private var daemon: OpaquePointer?
    private let requestCounter = Atomic<UInt64>(0)
    private let requestPrefix = String(format: "%06x", UInt32.random(in: 0..<0x100_0000))
    // C strings handed to the library must outlive the daemon.
    private var retainedStrings: [UnsafeMutablePointer<CChar>] = []
    /// How much of a refused body is read and dropped before the connection is closed on the client.
    static let drainLimit = 64 * 1024 * 1024

    /// Makes a server that answers through `handler`.
    public init(configuration: Configuration, handler: any HTTPHandler, logger: Logger) {
        self.configuration = configuration
        self.handler = handler
        self.logger = logger
    }

    deinit {
        stop()
        retainedStrings.forEach { free($0) }
    }

    /// The port the server listens on, once started.
    public private(set) var port: UInt16 = 0

    /// Whether the server serves TLS.
    public var isTLS: Bool { configuration.tlsCertificatePEM != nil && configuration.tlsKeyPEM != nil }

    /// Binds the address and starts serving.
    public func start() throws {
        var settings = shim_mhd_settings()
        settings.bind_address = UnsafePointer(retain(configuration.address))
        settings.port = configuration.port
        settings.connection_limit = configuration.connectionLimit
        settings.connection_timeout = configuration.connectionTimeout
        settings.connection_memory_limit = configuration.connectionMemoryLimit
        if let certificate = configuration.tlsCertificatePEM, let key = configuration.tlsKeyPEM {
            settings.tls_cert_pem = UnsafePointer(retain(certificate))
            settings.tls_key_pem = UnsafePointer(retain(key))
            settings.tls_priorities = UnsafePointer(retain("NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"))
        }
        settings.completed = requestCompleted
        settings.completed_cls = Unmanaged.passUnretained(self).toOpaque()

        // MHD_USE_POLL lifts select's limit of 1024 descriptors, so the connection limit is the only bound.
        let flags =
            MHD_USE_THREAD_PER_CONNECTION.rawValue | MHD_USE_INTERNAL_POLLING_THREAD.rawValue
            | MHD_USE_POLL.rawValue
        guard let started = shim_mhd_start(flags, &settings, accessHandler, Unmanaged.passUnretained(self).toOpaque())
        else {
            throw StartError(
                description: "cannot listen on \(configuration.address):\(configuration.port) "
                    + "(address in use, not local, or TLS key and certificate rejected)")
        }
        daemon = started
        port = shim_mhd_bound_port(started)
    }

    /// Stops accepting, closes every connection and waits for their threads.
    public func stop() {
        guard let running = daemon else { return }
        daemon = nil
        MHD_stop_daemon(running)
    }

    private func retain(_ text: String) -> UnsafeMutablePointer<CChar> {
        let copy = strdup(text)!
        retainedStrings.append(copy)
        return copy
    }

    fileprivate func nextRequestID() -> String {
        let number = requestCounter.add(1, ordering: .relaxed).newValue
        return "\(requestPrefix)-\(number)"
    }

    // MARK: - The access handler

    /// Runs one call of the library's access handler for a request.
    ///
    /// The library calls it first with only the head, then once per body chunk, then once with no data. A
    /// response is never queued on the first call: the library would then close a keep-alive connection.
    fileprivate func handle(
        connection: OpaquePointer, url: UnsafePointer<CChar>, method: UnsafePointer<CChar>,
        uploadData: UnsafePointer<CChar>?, uploadDataSize: UnsafeMutablePointer<Int>,
        context slot: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    ) -> MHD_Result {
        guard let existing = slot.pointee else {
            let lookup = ConnectionLookup(connection: connection)
            let request = HTTPRequest(
                method: String(cString: method), path: String(cString: url), requestID: nextRequestID(),
                lookup: lookup)
            let started = DispatchTime.now().uptimeNanoseconds
            let exchange = RequestContext(request: request, state: handler.begin(request), started: started)
            slot.pointee = Unmanaged.passRetained(exchange).toOpaque()
            return .YES
        }
        let exchange = Unmanaged<RequestContext>.fromOpaque(existing).takeUnretainedValue()

        if uploadDataSize.pointee > 0 {
            let chunk = UnsafeRawBufferPointer(start: uploadData, count: uploadDataSize.pointee)
            uploadDataSize.pointee = 0
            switch exchange.state {
            case .receiving(let receiver):
                if let early = receiver.receive(chunk) {
                    exchange.state = .draining(early, discarded: 0)
                }
            case .draining(let response, let discarded):
                // A response queued while the client is still sending is lost to a reset when the socket closes
                // with unread data, so the rest of the body is read and dropped, up to a bound.
                let total = discarded + chunk.count
                if total > Self.drainLimit {
                    exchange.state = .answered
                    return queue(response, on: connection, for: exchange)
                }
                exchange.state = .draining(response, discarded: total)
            case .ready, .answered:
                break
            }
            return .YES
        }

        switch exchange.state {
        case .answered:
            return .YES
        case .ready(let response), .draining(let response, _):
            exchange.state = .answered
            return queue(response, on: connection, for: exchange)
        case .receiving(let receiver):
            exchange.state = .answered
            return queue(receiver.finish(), on: connection, for: exchange)
        }
    }

    private func queue(_ response: HTTPResponse, on connection: OpaquePointer, for exchange: RequestContext)
        -> MHD_Result
    {
        exchange.status = response.status
        exchange.bytes = response.declaredLength
        guard let made = makeLibraryResponse(response.body) else {
            logger.error("could not make a response", ["request.id": exchange.request.requestID])
            return .NO
        }
        for (name, value) in response.headers {
            MHD_add_response_header(made, name, value)
        }
        MHD_add_response_header(made, "X-Request-Id", exchange.request.requestID)
        let result = MHD_queue_response(connection, UInt32(response.status), made)
        MHD_destroy_response(made)
        return result
    }

    private func makeLibraryResponse(_ body: HTTPResponse.Body) -> OpaquePointer? {
        switch body {
        case .empty:
            return MHD_create_response_from_buffer(0, nil, .RESPMEM_PERSISTENT)
        case .bytes(let bytes):
            return bytes.withUnsafeBytes {
                MHD_create_response_from_buffer(
                    bytes.count, UnsafeMutableRawPointer(mutating: $0.baseAddress), .RESPMEM_MUST_COPY)
            }
        case .file(let descriptor, let offset, let length):
            // The library owns the descriptor from here and closes it with the response.
            return MHD_create_response_from_fd_at_offset64(UInt64(length), descriptor, UInt64(offset))
        case .lengthOnly(let length):
            return MHD_create_response_from_callback(UInt64(length), 4096, { _, _, _, _ in -2 }, nil, nil)
        case .stream(let length, let source):
            // 1 MiB pieces: a cold pull-through measured 420-540 MB/s with them, 360-470 MB/s with 256 KiB.
            let box = Unmanaged.passRetained(SourceBox(source)).toOpaque()
            return MHD_create_response_from_callback(
                length.map { UInt64($0) } ?? UInt64.max, 1024 * 1024, streamReader, box, streamFree)
        }
    }

    fileprivate func completed(_ exchange: RequestContext, terminatedNormally: Bool) {
        if case .receiving(let receiver) = exchange.state {
            receiver.abandon()
        }
        let request = exchange.request
        let micros = (DispatchTime.now().uptimeNanoseconds - exchange.started) / 1000
        let fraction = String(micros % 1000)
        let elapsed = "\(micros / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
        var metadata: Logger.Metadata = [
            "request.id": request.requestID, "method": request.method, "path": request.path,
            "status": exchange.status.map(String.init) ?? "none", "bytes": String(exchange.bytes),
            "duration_ms": elapsed,
        ]
        if !terminatedNormally {
            metadata["closed"] = "early"
        }
        logger.info("request", metadata)
    }
}

// MARK: - Per-request state

/// What the server holds for one request between calls of the access handler.
final class RequestContext {
    /// Where the exchange stands: a response ready, a body being received or drained, or answered.
    enum State {
        case ready(HTTPResponse)
        case receiving(any HTTPBodyReceiver)
        /// The answer is known before the body ended; the rest of the body is read and dropped.
        case draining(HTTPResponse, discarded: Int)
        case answered
    }

    /// The request being served.
    let request: HTTPRequest
    /// Where the exchange stands, advanced by each call of the access handler.
    var state: State
    /// The status of the queued response, for the log line; nil until one is queued.
    var status: Int?
    /// The body length the queued response declares, for the log line.
    var bytes: Int64 = 0
    /// When the request head arrived, in uptime nanoseconds, for the logged duration.
    let started: UInt64

    /// Makes the state of `request`, starting from what the handler decided for it.
    init(request: HTTPRequest, state exchange: HTTPExchange, started: UInt64) {
        self.request = request
        self.started = started
        switch exchange {
        case .respond(let response): state = .ready(response)
        case .receive(let receiver): state = .receiving(receiver)
        }
    }
}

/// Header, query and peer lookups on a live library connection.
struct ConnectionLookup: HTTPHeaderLookup {
    /// The library's connection the request arrived on.
    let connection: OpaquePointer

    func header(_ name: String) -> String? {
        MHD_lookup_connection_value(connection, .HEADER_KIND, name).map { String(cString: $0) }
    }

    func query(_ name: String) -> String? {
        MHD_lookup_connection_value(connection, .GET_ARGUMENT_KIND, name).map { String(cString: $0) }
    }

    func queryValues(_ name: String) -> [String] {
        let collector = QueryCollector(name: name)
        MHD_get_connection_values(
            connection, .GET_ARGUMENT_KIND,
            { context, _, key, value in
                let collector = Unmanaged<QueryCollector>.fromOpaque(context!).takeUnretainedValue()
                if let key, let value, String(cString: key) == collector.name {
                    collector.values.append(String(cString: value))
                }
                return .YES
            }, Unmanaged.passUnretained(collector).toOpaque())
        return collector.values
    }

    func remoteAddress() -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        shim_mhd_client_address(connection, &buffer, buffer.count)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Gathers the values of one repeated query parameter from the library's iterator.
final class QueryCollector {
    /// The name of the parameter being collected.
    let name: String
    /// The values found so far, in the order the library yields them.
    var values: [String] = []
    /// Makes a collector for the parameter `name`.
    init(name: String) { self.name = name }
}

/// Holds a streamed body's source behind one pointer, for the library's content callbacks.
final class SourceBox {
    /// The source the body is read from.
    let source: any HTTPBodySource
    /// Boxes `source`.
    init(_ source: any HTTPBodySource) { self.source = source }
}

// MARK: - C callbacks

private let accessHandler: MHD_AccessHandlerCallback = {
    serverPointer, connection, url, method, _, uploadData, uploadDataSize, slot in
    guard let serverPointer, let connection, let url, let method, let uploadDataSize, let slot else { return .NO }
    let server = Unmanaged<HTTPServer>.fromOpaque(serverPointer).takeUnretainedValue()
    return server.handle(
        connection: connection, url: url, method: method, uploadData: uploadData, uploadDataSize: uploadDataSize,
        context: slot)
}

private let requestCompleted: MHD_RequestCompletedCallback = { serverPointer, _, slot, termination in
    guard let serverPointer, let slot, let existing = slot.pointee else { return }
    slot.pointee = nil
    let server = Unmanaged<HTTPServer>.fromOpaque(serverPointer).takeUnretainedValue()
    let exchange = Unmanaged<RequestContext>.fromOpaque(existing).takeRetainedValue()
    server.completed(exchange, terminatedNormally: termination == .REQUEST_TERMINATED_COMPLETED_OK)
}

private let streamReader: MHD_ContentReaderCallback = { boxPointer, position, buffer, capacity in
    guard let boxPointer, let buffer else { return -2 }
    let box = Unmanaged<SourceBox>.fromOpaque(boxPointer).takeUnretainedValue()
    guard
        let count = box.source.read(
            at: Int64(position), into: UnsafeMutableRawBufferPointer(start: buffer, count: capacity))
    else { return -2 }  // MHD_CONTENT_READER_END_WITH_ERROR
    return count == 0 ? -1 : count  // -1 is MHD_CONTENT_READER_END_OF_STREAM
}

private let streamFree: MHD_ContentReaderFreeCallback = { boxPointer in
    guard let boxPointer else { return }
    let box = Unmanaged<SourceBox>.fromOpaque(boxPointer).takeRetainedValue()
    box.source.close()
}
