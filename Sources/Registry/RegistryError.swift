import Foundation
import HTTPServer

/// The error codes of the distribution spec, each with its usual status and message: the one table of them.
public enum ErrorCode: String, Sendable, CaseIterable {
    case blobUnknown = "BLOB_UNKNOWN"
    case blobUploadInvalid = "BLOB_UPLOAD_INVALID"
    case blobUploadUnknown = "BLOB_UPLOAD_UNKNOWN"
    case digestInvalid = "DIGEST_INVALID"
    case manifestBlobUnknown = "MANIFEST_BLOB_UNKNOWN"
    case manifestInvalid = "MANIFEST_INVALID"
    case manifestUnknown = "MANIFEST_UNKNOWN"
    case nameInvalid = "NAME_INVALID"
    case nameUnknown = "NAME_UNKNOWN"
    case sizeInvalid = "SIZE_INVALID"
    case tagInvalid = "TAG_INVALID"
    case unauthorized = "UNAUTHORIZED"
    case denied = "DENIED"
    case unsupported = "UNSUPPORTED"
    case tooManyRequests = "TOOMANYREQUESTS"
    /// Not in the spec, which names no code for a blob `Range` that cannot be satisfied.
    case rangeInvalid = "RANGE_INVALID"
    case unknown = "UNKNOWN"

    /// The status this code is answered with unless a handler says otherwise.
    public var status: Int {
        switch self {
        case .blobUnknown, .blobUploadUnknown, .manifestUnknown, .nameUnknown: 404
        case .blobUploadInvalid, .digestInvalid, .manifestBlobUnknown, .manifestInvalid, .nameInvalid, .sizeInvalid,
            .tagInvalid:
            400
        case .unauthorized: 401
        case .denied: 403
        case .unsupported: 405
        case .tooManyRequests: 429
        case .rangeInvalid: 416
        case .unknown: 500
        }
    }

    /// The message sent with this code.
    public var message: String {
        switch self {
        case .blobUnknown: "blob unknown to registry"
        case .blobUploadInvalid: "blob upload invalid"
        case .blobUploadUnknown: "blob upload unknown to registry"
        case .digestInvalid: "provided digest did not match uploaded content"
        case .manifestBlobUnknown: "manifest references a manifest or blob unknown to registry"
        case .manifestInvalid: "manifest invalid"
        case .manifestUnknown: "manifest unknown to registry"
        case .nameInvalid: "invalid repository name"
        case .nameUnknown: "repository name not known to registry"
        case .sizeInvalid: "provided length did not match content length"
        case .tagInvalid: "invalid tag"
        case .unauthorized: "authentication required"
        case .denied: "requested access to the resource is denied"
        case .unsupported: "the operation is unsupported"
        case .tooManyRequests: "too many requests"
        case .rangeInvalid: "requested range not satisfiable"
        case .unknown: "unknown error"
        }
    }
}

/// An error a client is told about: a spec code, a detail, and the status and headers to answer with.
public struct RegistryError: Error, Sendable {
    /// The spec code.
    public let code: ErrorCode
    /// What exactly was wrong, sent as the `detail` string.
    public let detail: String?
    /// The status, when it differs from the code's usual one.
    public let status: Int
    /// Headers sent with the error, such as `Range` on a 416 or `WWW-Authenticate` on a 401.
    public let headers: [(name: String, value: String)]

    /// Makes an error.
    public init(_ code: ErrorCode, _ detail: String? = nil, status: Int? = nil, headers: [(String, String)] = []) {
        self.code = code
        self.detail = detail
        self.status = status ?? code.status
        self.headers = headers.map { (name: $0.0, value: $0.1) }
    }

    /// The response: the status, the headers, and the `{"errors":[...]}` body.
    public func response() -> HTTPResponse {
        var entry: [String: Any] = ["code": code.rawValue, "message": code.message]
        if let detail { entry["detail"] = detail }
        let body = (try? JSONSerialization.data(withJSONObject: ["errors": [entry]], options: [.sortedKeys])) ?? Data()
        var response = HTTPResponse(status: status, headers: headers, body: .bytes(Array(body)))
        response.addHeader("Content-Type", "application/json")
        return response
    }
}
