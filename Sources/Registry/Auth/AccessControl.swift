import Foundation
import HTTPServer
import Hashing
import Logging
import Storage

/// What a request needs before it is served.
enum Permission: Equatable {
    /// `GET /v2/`: any valid credential, which is how `docker login` checks a password.
    case login
    /// The repository list.
    case catalog
    /// Reading a repository.
    case pull(RepositoryName)
    /// Writing to a repository: uploads, mounts, manifest pushes.
    case push(RepositoryName)
    /// Deleting from a repository.
    case delete(RepositoryName)
}

/// Who sent a request, as far as its `Authorization` header shows.
enum Identity {
    case anonymous
    case user(name: String, canWrite: Bool)
    case token(TokenClaims)
    /// Credentials were sent but are not a configured user's; `name` is the login name given.
    case unknownCredentials(name: String)
}

/// Decides who may do what: the configured users, and tokens signed with the configured secret.
///
/// Push, mount and delete need a write user. Pull is anonymous unless read users are configured; when it is,
/// credentials the registry does not know (a docker daemon using it as a mirror sends its Docker Hub login) are
/// treated as anonymous for pulls, and refused for anything else.
public final class AccessControl: Sendable {
    /// A configured user.
    public struct User: Sendable {
        /// The login name.
        public let name: String
        /// The password.
        public let password: String
        /// Whether the user may push and delete.
        public let canWrite: Bool

        /// Makes a user.
        public init(name: String, password: String, canWrite: Bool) {
            self.name = name
            self.password = password
            self.canWrite = canWrite
        }
    }

    /// The configured users by login name; the first of a repeated name wins.
    let users: [String: User]
    /// Signs and checks the tokens this registry issues.
    let signer: AccessTokenSigner
    /// The service name tokens are issued for.
    let service: String
    /// The token endpoint clients are sent to.
    let realm: String
    /// Seconds an issued token stays valid.
    let tokenLifetime: Int
    /// Whether callers without credentials may pull and list, which holds while no read-only user is configured.
    let isAnonymousPullAllowed: Bool
    /// Where failed logins and issued tokens are logged.
    let logger: Logger

    /// The actions a write user may be granted.
    static let writeActions: Set<String> = ["pull", "push", "delete"]

    /// Makes the access rules; without a secret, one is drawn at random, so tokens last only as long as the
    /// process and are not shared between replicas.
    public init(
        users: [User], secret: String?, publicURL: String, tokenLifetime: Int = 3600,
        logger: Logger = Logger(label: "auth")
    ) {
        self.users = Dictionary(users.map { ($0.name, $0) }) { first, _ in first }
        signer = AccessTokenSigner(secret: secret.map { Array($0.utf8) } ?? Crypto.randomBytes(32))
        let url = URL(string: publicURL)
        service = url?.host.map { host in url?.port.map { "\(host):\($0)" } ?? host } ?? "buildset-registry"
        realm = publicURL + "/auth/token"
        self.tokenLifetime = tokenLifetime
        isAnonymousPullAllowed = !users.contains { !$0.canWrite }
        self.logger = logger
    }

    // MARK: - Checking requests

    /// Lets the request through, or throws the 401 or 403 that tells the client how to get in.
    func authorize(_ request: HTTPRequest, _ permission: Permission) throws(RegistryError) {
        let identity: Identity
        do {
            identity = try self.identity(of: request)
        } catch {
            throw challenge(permission, error: error == .signature || error == .expired ? "invalid_token" : nil)
        }
        if allows(identity, permission) { return }
        switch identity {
        case .user(let name, _):
            throw RegistryError(.denied, "\(name) may not \(Self.describe(permission))")
        case .token:
            throw challenge(permission, error: "insufficient_scope")
        case .anonymous, .unknownCredentials:
            throw challenge(permission, error: nil)
        }
    }

    /// Whether the request may do this, without an error: for checks that only narrow what happens.
    func permits(_ request: HTTPRequest, _ permission: Permission) -> Bool {
        guard let identity = try? identity(of: request) else { return false }
        return allows(identity, permission)
    }

    /// Whether `identity` has `permission`: by the user's rights, or by the grants of the token.
    func allows(_ identity: Identity, _ permission: Permission) -> Bool {
        switch identity {
        case .anonymous, .unknownCredentials:
            switch permission {
            case .pull, .catalog: return isAnonymousPullAllowed
            case .login, .push, .delete: return false
            }
        case .user(_, let canWrite):
            switch permission {
            case .login, .pull, .catalog: return true
            case .push, .delete: return canWrite
            }
        case .token(let claims):
            switch permission {
            case .login: return true
            case .catalog: return claims.allows("*", type: "registry", name: "catalog")
            case .pull(let name): return claims.allows("pull", type: "repository", name: name.value)
            case .push(let name): return claims.allows("push", type: "repository", name: name.value)
            case .delete(let name): return claims.allows("delete", type: "repository", name: name.value)
            }
        }
    }

    /// Who sent the request, per its `Authorization` header; throws when the header is malformed or the token refused.
    func identity(of request: HTTPRequest) throws(TokenRejection) -> Identity {
        guard let header = request.header("Authorization") else { return .anonymous }
        if header.count > AccessTokenSigner.maximumLength { throw .malformed }
        if let token = Self.credential(header, scheme: "Bearer") {
            return .token(try signer.verify(String(token), service: service, now: Int(Date().timeIntervalSince1970)))
        }
        if let encoded = Self.credential(header, scheme: "Basic") {
            guard let (name, password) = Self.decodeBasic(encoded) else { throw .malformed }
            return checkPassword(name: name, password: password, request: request)
        }
        throw .malformed
    }

    /// The configured user whose password matches, compared in constant time; otherwise logs the failed login and
    /// answers unknown credentials.
    func checkPassword(name: String, password: String, request: HTTPRequest) -> Identity {
        if let user = users[name], Crypto.constantTimeEqual(Array(user.password.utf8), Array(password.utf8)) {
            return .user(name: name, canWrite: user.canWrite)
        }
        logger.warning(
            "login failed", ["user": name, "remote": request.remoteAddress, "request.id": request.requestID])
        return .unknownCredentials(name: name)
    }

    /// The 401 whose `WWW-Authenticate` header sends the client to the token endpoint for what `permission` needs.
    func challenge(_ permission: Permission, error: String?) -> RegistryError {
        var value = "Bearer realm=\"\(realm)\",service=\"\(service)\""
        if let scope = Self.scope(for: permission) { value += ",scope=\"\(scope)\"" }
        if let error { value += ",error=\"\(error)\"" }
        return RegistryError(.unauthorized, Self.describe(permission), headers: [("WWW-Authenticate", value)])
    }

    /// The token scope that covers `permission`; nil for a login, which needs none.
    static func scope(for permission: Permission) -> String? {
        switch permission {
        case .login: nil
        case .catalog: "registry:catalog:*"
        case .pull(let name): "repository:\(name):pull"
        case .push(let name): "repository:\(name):pull,push"
        case .delete(let name): "repository:\(name):delete"
        }
    }

    /// What `permission` allows, in a few words for error messages.
    static func describe(_ permission: Permission) -> String {
        switch permission {
        case .login: "authentication required"
        case .catalog: "list repositories"
        case .pull(let name): "pull from \(name)"
        case .push(let name): "push to \(name)"
        case .delete(let name): "delete from \(name)"
        }
    }

    /// The credential after `scheme` in an `Authorization` header, the scheme matched without regard to case; nil
    /// when the header names another scheme.
    static func credential(_ header: String, scheme: String) -> Substring? {
        guard header.count > scheme.count + 1,
            header.prefix(scheme.count).caseInsensitiveCompare(scheme) == .orderedSame,
            header.dropFirst(scheme.count).first == " "
        else { return nil }
        return header.dropFirst(scheme.count + 1).drop { $0 == " " }
    }

    /// Splits `user:password` at the first colon, so passwords may contain colons.
    static func decodeBasic(_ encoded: Substring) -> (String, String)? {
        guard let data = Data(base64Encoded: String(encoded)), let text = String(data: data, encoding: .utf8),
            let colon = text.firstIndex(of: ":")
        else { return nil }
        return (String(text[..<colon]), String(text[text.index(after: colon)...]))
    }
}
