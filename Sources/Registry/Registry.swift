import Foundation
import HTTPServer
import Hashing
import Logging
import Storage
import Upstream

/// The registry API: routes each request to its handler and turns every failure into a spec error response.
public final class Registry: HTTPHandler {
    /// The storage the registry serves.
    public let store: RegistryStore
    /// Who may do what; nil lets anyone do anything, which is safe only on loopback.
    let accessControl: AccessControl?
    /// Where images not held locally come from; nil serves `_local` only.
    let pullThrough: PullThrough?
    /// Where request failures, uploads and manifest pushes are logged.
    let logger: Logger

    /// The largest manifest accepted; larger ones get 413.
    public static let manifestLimit = 4 * 1024 * 1024

    /// Makes a registry over `store`.
    public init(
        store: RegistryStore, accessControl: AccessControl? = nil, upstreams: [UpstreamRegistry] = [],
        logger: Logger = Logger(label: "registry")
    ) {
        self.store = store
        self.accessControl = accessControl
        pullThrough = upstreams.isEmpty ? nil : PullThrough(upstreams: upstreams, store: store, logger: logger)
        self.logger = logger
    }

    /// Routes the request and answers it, or takes its body first for uploads and manifest pushes.
    public func begin(_ request: HTTPRequest) -> HTTPExchange {
        do {
            if request.path == "/auth/token", let accessControl {
                return .respond(finish(try accessControl.tokenResponse(request)))
            }
            let route = try Route.parse(request.path)
            try accessControl?.authorize(request, Self.permission(route, request.method))
            switch try dispatch(route, request) {
            case .respond(let response):
                return .respond(finish(response))
            case .receive(let receiver):
                return .receive(FinishingReceiver(inner: receiver, registry: self, request: request))
            }
        } catch {
            return .respond(finish(errorResponse(error, for: request)))
        }
    }

    private func dispatch(_ route: Route, _ request: HTTPRequest) throws -> HTTPExchange {
        let method = request.method
        switch (route, method) {
        case (.base, "GET"), (.base, "HEAD"):
            return .respond(Self.versionCheck(isHead: method == "HEAD"))
        case (.catalog, "GET"):
            return .respond(try catalog(request))
        case (.tags(let name), "GET"):
            return .respond(try tags(name, request))
        case (.referrers(let name, let digest), "GET"):
            return .respond(try referrers(name, digest, request))
        case (.blob(let name, let digest), "GET"), (.blob(let name, let digest), "HEAD"):
            return .respond(try blob(name, digest, request))
        case (.blob(let name, let digest), "DELETE"):
            return .respond(try deleteBlob(name, digest))
        case (.uploads(let name), "POST"):
            return try startUpload(name, request)
        case (.upload(let name, let id), "PATCH"):
            return try appendUpload(name, id, request)
        case (.upload(let name, let id), "PUT"):
            return try finishUpload(name, id, request)
        case (.upload(let name, let id), "GET"):
            return .respond(try uploadStatus(name, id))
        case (.upload(let name, let id), "DELETE"):
            return .respond(try cancelUpload(name, id))
        case (.manifest(let name, let reference), "GET"), (.manifest(let name, let reference), "HEAD"):
            return .respond(try manifest(name, reference, request))
        case (.manifest(let name, let reference), "PUT"):
            return try putManifest(name, reference, request)
        case (.manifest(let name, let reference), "DELETE"):
            return .respond(try deleteManifest(name, reference))
        default:
            throw RegistryError(.unsupported, "\(method) is not supported on \(request.path)")
        }
    }

    /// The answer to `GET /v2/`: an empty JSON object, made without a serializer since it never changes.
    static func versionCheck(isHead: Bool) -> HTTPResponse {
        HTTPResponse(
            status: 200, headers: [("Content-Type", "application/json")],
            body: isHead ? .lengthOnly(2) : .bytes(Array("{}".utf8)))
    }

    /// What a request to `route` with `method` needs to be allowed.
    static func permission(_ route: Route, _ method: String) -> Permission {
        switch route {
        case .base: .login
        case .catalog: .catalog
        case .tags(let name), .referrers(let name, _): .pull(name)
        case .uploads(let name), .upload(let name, _): .push(name)
        case .blob(let name, _), .manifest(let name, _):
            switch method {
            case "DELETE": .delete(name)
            case "PUT", "POST", "PATCH": .push(name)
            default: .pull(name)
            }
        }
    }

    /// Adds the headers every response carries.
    func finish(_ response: HTTPResponse) -> HTTPResponse {
        var response = response
        response.addHeader("Docker-Distribution-API-Version", "registry/2.0")
        return response
    }

    /// The one place a failure becomes a response: spec errors as they are, storage and domain errors mapped to
    /// their codes, anything else a bare 500 whose cause goes to the log, never to the client.
    func errorResponse(_ error: any Error, for request: HTTPRequest) -> HTTPResponse {
        let registryError: RegistryError
        switch error {
        case let error as RegistryError:
            registryError = error
        case let failure as Route.Failure:
            switch failure {
            case .notFound: registryError = RegistryError(.unsupported, "no such endpoint", status: 404)
            case .nameInvalid:
                registryError = RegistryError(.nameInvalid, "repository names match [a-z0-9]+ joined by . _ __ - and /")
            case .tagInvalid where request.method == "PUT":
                registryError = RegistryError(.tagInvalid, "tags match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
            case .tagInvalid:
                // No manifest can be stored under such a reference, so reading one finds nothing: a 404, as the
                // spec's conformance suite requires.
                registryError = RegistryError(.manifestUnknown, "tags match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
            case .digestInvalid:
                registryError = RegistryError(.digestInvalid, "digests are sha256:<64 hex> or sha512:<128 hex>")
            case .uploadUnknown: registryError = RegistryError(.blobUploadUnknown)
            }
        case let failure as RegistryStoreError:
            switch failure.kind {
            case .uploadUnknown:
                registryError = RegistryError(.blobUploadUnknown)
            case .uploadOutOfOrder(let offset):
                registryError = RegistryError(
                    .blobUploadInvalid, "chunk must start at \(offset)", status: 416,
                    headers: [("Range", Self.rangeHeader(offset))])
            case .uploadDamaged:
                registryError = RegistryError(.blobUploadInvalid, "upload data damaged; start the upload again")
            case .digestMismatch(let expected, let actual):
                registryError = RegistryError(.digestInvalid, "content digest is \(actual), not \(expected)")
            }
        default:
            logger.error(
                "request failed", ["request.id": request.requestID, "path": request.path, "error": "\(error)"])
            registryError = RegistryError(.unknown)
        }
        if registryError.status >= 500 {
            logger.error("server error", ["request.id": request.requestID, "code": registryError.code.rawValue])
        } else {
            logger.debug("client error", ["request.id": request.requestID, "code": registryError.code.rawValue])
        }
        return registryError.response()
    }

    /// A JSON response; a HEAD gets the headers and length without the body.
    func json(_ object: Any, status: Int = 200, isHead: Bool = false, contentType: String = "application/json")
        -> HTTPResponse
    {
        let data =
            (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
            ?? Data()
        let body: HTTPResponse.Body = isHead ? .lengthOnly(Int64(data.count)) : .bytes(Array(data))
        return HTTPResponse(status: status, headers: [("Content-Type", contentType)], body: body)
    }

    /// The `Range` header of an upload holding `offset` bytes: the inclusive range received.
    static func rangeHeader(_ offset: Int64) -> String {
        "0-\(max(offset - 1, 0))"
    }
}

/// Wraps a handler's body receiver so its responses get the common headers and its failures the error renderer.
final class FinishingReceiver: HTTPBodyReceiver {
    /// The handler's receiver, which does the work.
    let inner: any HTTPBodyReceiver
    /// The registry whose common headers go on every response.
    let registry: Registry
    /// The request whose body is received.
    let request: HTTPRequest

    /// Wraps `inner`, which takes the body of `request`.
    init(inner: any HTTPBodyReceiver, registry: Registry, request: HTTPRequest) {
        self.inner = inner
        self.registry = registry
        self.request = request
    }

    func receive(_ bytes: UnsafeRawBufferPointer) -> HTTPResponse? {
        inner.receive(bytes).map(registry.finish)
    }

    func finish() -> HTTPResponse {
        registry.finish(inner.finish())
    }

    func abandon() {
        inner.abandon()
    }
}

/// A body receiver whose steps may throw; failures become spec error responses.
class ThrowingReceiver: HTTPBodyReceiver {
    /// The registry the body is received for, whose error renderer answers failures.
    let registry: Registry
    /// The request whose body is received.
    let request: HTTPRequest
    private var failed = false

    /// Makes a receiver for the body of `request`.
    init(registry: Registry, request: HTTPRequest) {
        self.registry = registry
        self.request = request
    }

    /// Takes the next bytes of the body; a thrown error is rendered as the response, which ends the exchange early.
    func take(_ bytes: UnsafeRawBufferPointer) throws {}
    /// Makes the response once the whole body has arrived; a thrown error is rendered as the response instead.
    func complete() throws -> HTTPResponse { HTTPResponse(status: 204) }
    /// Called when the connection ends before the body does, unless a step has already failed.
    func interrupted() {}

    final func receive(_ bytes: UnsafeRawBufferPointer) -> HTTPResponse? {
        guard !failed else { return nil }
        do {
            try take(bytes)
            return nil
        } catch {
            failed = true
            return registry.errorResponse(error, for: request)
        }
    }

    final func finish() -> HTTPResponse {
        do {
            return try complete()
        } catch {
            return registry.errorResponse(error, for: request)
        }
    }

    final func abandon() {
        if !failed { interrupted() }
    }
}
