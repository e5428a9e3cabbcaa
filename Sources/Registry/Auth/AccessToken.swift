import Foundation
import Hashing

/// What a token allows on one resource: `repository:<name>` or `registry:catalog`.
struct Grant: Equatable, Sendable {
    /// The kind of resource: `repository` or `registry`.
    let type: String
    /// The resource's name: a repository name, or `catalog`.
    let name: String
    /// The actions allowed on the resource, such as `pull`, `push`, `delete` or `*`.
    let actions: Set<String>
}

/// The claims of a token this registry issues.
struct TokenClaims: Equatable, Sendable {
    /// The user the token was issued to; empty for an anonymous caller.
    let subject: String
    /// The service the token is for, its audience.
    let service: String
    /// When the token was issued, in seconds since 1970.
    let issuedAt: Int
    /// When the token stops being valid, in seconds since 1970.
    let expiresAt: Int
    /// What the token allows, one grant per resource.
    let access: [Grant]

    /// Whether the token grants `action` on the resource.
    func allows(_ action: String, type: String, name: String) -> Bool {
        access.contains { $0.type == type && $0.name == name && $0.actions.contains(action) }
    }
}

/// Why a presented token was refused.
enum TokenRejection: Error, Equatable {
    case malformed
    case algorithm
    case signature
    case expired
    case wrongService
}

/// Signs and checks HS256 JSON web tokens with the configured secret.
///
/// Checking is: split in three, require the header's `alg` to be exactly HS256 (so `none` and every other
/// algorithm fail), compare the MAC in constant time, then read expiry and audience. Nothing else in a token
/// is trusted before the MAC has matched.
struct AccessTokenSigner: Sendable {
    /// The HMAC key tokens are signed and checked with.
    let secret: [UInt8]

    /// Longest token accepted; anything longer is refused before any work is done on it.
    static let maximumLength = 16 * 1024

    /// Encodes `claims` as an HS256 JSON web token with a random `jti`, signed with the secret.
    func sign(_ claims: TokenClaims) -> String {
        let header = Base64URL.encode(Array(#"{"alg":"HS256","typ":"JWT"}"#.utf8))
        let access: [[String: Any]] = claims.access.map {
            ["type": $0.type, "name": $0.name, "actions": $0.actions.sorted()]
        }
        let payload: [String: Any] = [
            "sub": claims.subject, "aud": claims.service, "iss": claims.service, "iat": claims.issuedAt,
            "nbf": claims.issuedAt, "exp": claims.expiresAt, "jti": Hex.encode(Crypto.randomBytes(12)),
            "access": access,
        ]
        let body = (try? JSONSerialization.data(withJSONObject: payload, options: [.sortedKeys])) ?? Data()
        let signingInput = header + "." + Base64URL.encode(body)
        return signingInput + "." + Base64URL.encode(Crypto.hmacSHA256(key: secret, message: Array(signingInput.utf8)))
    }

    /// The claims of `token` once its algorithm, MAC, expiry and audience pass; throws why it is refused otherwise.
    func verify(_ token: String, service: String, now: Int) throws(TokenRejection) -> TokenClaims {
        guard token.utf8.count <= Self.maximumLength else { throw .malformed }
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let headerBytes = Base64URL.decode(parts[0]),
            let header = (try? JSONSerialization.jsonObject(with: Data(headerBytes))) as? [String: Any]
        else { throw .malformed }
        guard header["alg"] as? String == "HS256" else { throw .algorithm }

        guard let signature = Base64URL.decode(parts[2]) else { throw .malformed }
        let expected = Crypto.hmacSHA256(key: secret, message: Array("\(parts[0]).\(parts[1])".utf8))
        guard Crypto.constantTimeEqual(signature, expected) else { throw .signature }

        guard let payloadBytes = Base64URL.decode(parts[1]),
            let payload = (try? JSONSerialization.jsonObject(with: Data(payloadBytes))) as? [String: Any],
            let expiresAt = (payload["exp"] as? NSNumber)?.intValue
        else { throw .malformed }
        guard expiresAt > now else { throw .expired }
        if let notBefore = (payload["nbf"] as? NSNumber)?.intValue, notBefore > now + 60 { throw .expired }
        guard payload["aud"] as? String == service else { throw .wrongService }

        let access = (payload["access"] as? [[String: Any]] ?? []).compactMap { entry -> Grant? in
            guard let type = entry["type"] as? String, let name = entry["name"] as? String,
                let actions = entry["actions"] as? [String]
            else { return nil }
            return Grant(type: type, name: name, actions: Set(actions))
        }
        return TokenClaims(
            subject: payload["sub"] as? String ?? "", service: service,
            issuedAt: (payload["iat"] as? NSNumber)?.intValue ?? 0, expiresAt: expiresAt, access: access)
    }
}
