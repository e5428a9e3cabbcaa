/// Serves requests: decides from the head how a request is answered, and takes its body when there is one.
public protocol HTTPHandler: Sendable {
    /// Called once the request head has arrived, on the connection's own thread.
    func begin(_ request: HTTPRequest) -> HTTPExchange
}

/// What a handler does with a request once its head is known.
public enum HTTPExchange {
    /// Answer with this response; a body the client sends is read and dropped.
    case respond(HTTPResponse)
    /// Stream the body into this receiver, which then gives the response.
    case receive(any HTTPBodyReceiver)
}

/// Takes a request body as it arrives and produces the response at its end.
public protocol HTTPBodyReceiver: AnyObject {
    /// Takes the next bytes of the body; a response ends the exchange early and the connection is closed.
    func receive(_ bytes: UnsafeRawBufferPointer) -> HTTPResponse?
    /// Called when the whole body has arrived.
    func finish() -> HTTPResponse
    /// Called instead of `finish` when the connection ended before the body did.
    func abandon()
}
