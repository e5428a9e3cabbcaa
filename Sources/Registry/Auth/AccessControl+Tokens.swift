import Foundation
import HTTPServer
import Storage

extension AccessControl {
    /// `GET /auth/token`: checks Basic credentials, if any, and signs a token for the scopes they allow.
    ///
    /// A request without a scope is a login: it needs a configured user's password. Each requested scope is
    /// granted the actions the caller may take, which can be fewer than asked (none at all is a valid answer);
    /// the registry then refuses what the token does not cover.
    func tokenResponse(_ request: HTTPRequest) throws(RegistryError) -> HTTPResponse {
        let scopes = request.queryValues("scope").flatMap { $0.split(separator: " ").map(String.init) }
        var identity = Identity.anonymous
        if let header = request.header("Authorization") {
            guard let encoded = Self.credential(header, scheme: "Basic"),
                let (name, password) = Self.decodeBasic(encoded)
            else { throw loginFailure() }
            identity = checkPassword(name: name, password: password, request: request)
        }

        let requested = scopes.compactMap(Self.parseScope)
        let wantsWrite = requested.contains { !$0.actions.isSubset(of: ["pull"]) }
        switch identity {
        case .unknownCredentials where scopes.isEmpty || wantsWrite || !isAnonymousPullAllowed:
            throw loginFailure()
        case .anonymous where scopes.isEmpty && !isAnonymousPullAllowed:
            throw loginFailure()
        default:
            break
        }

        let grants = requested.compactMap { grant(for: $0, to: identity) }
        let now = Int(Date().timeIntervalSince1970)
        let subject: String
        switch identity {
        case .user(let name, _): subject = name
        default: subject = ""
        }
        let token = signer.sign(
            TokenClaims(
                subject: subject, service: service, issuedAt: now, expiresAt: now + tokenLifetime, access: grants))
        let issued = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(now)))
        let body: [String: Any] = [
            "token": token, "access_token": token, "expires_in": tokenLifetime, "issued_at": issued,
        ]
        let data = (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])) ?? Data()
        logger.debug("token issued", ["user": subject, "scopes": scopes.joined(separator: " ")])
        return HTTPResponse(status: 200, headers: [("Content-Type", "application/json")], body: .bytes(Array(data)))
    }

    private func loginFailure() -> RegistryError {
        RegistryError(
            .unauthorized, "wrong user name or password", headers: [("WWW-Authenticate", "Basic realm=\"\(service)\"")])
    }

    private func grant(for requested: Grant, to identity: Identity) -> Grant? {
        var wanted = requested.actions
        if wanted.contains("*") { wanted = Self.writeActions.union(["*"]) }
        var allowed: Set<String>
        switch requested.type {
        case "registry":
            guard requested.name == "catalog" else { return nil }
            allowed = allows(identity, .catalog) ? ["*"] : []
        case "repository":
            guard let name = RepositoryName(requested.name) else { return nil }
            allowed = []
            if allows(identity, .pull(name)) { allowed.insert("pull") }
            if allows(identity, .push(name)) { allowed.insert("push") }
            if allows(identity, .delete(name)) { allowed.insert("delete") }
            if allowed == Self.writeActions { allowed.insert("*") }
        default:
            return nil
        }
        return Grant(type: requested.type, name: requested.name, actions: wanted.intersection(allowed))
    }

    /// Parses `type:name:actions`; the type may carry a class, as in `repository(plugin)`.
    static func parseScope(_ scope: String) -> Grant? {
        let parts = scope.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return nil }
        var type = String(parts[0])
        if let parenthesis = type.firstIndex(of: "(") { type = String(type[..<parenthesis]) }
        let actions = Set(parts[2].split(separator: ",").map(String.init))
        return Grant(type: type, name: String(parts[1]), actions: actions)
    }
}
