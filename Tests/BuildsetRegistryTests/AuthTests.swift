import Foundation
import HTTPClient
import Hashing
import Testing

@testable import Registry

/// The token flow, Basic credentials, and the attacks a registry on a CI network must shrug off.
@Suite struct AuthTests {
    static let secret = "test-secret"
    let server: TestServer
    let client: RegistryClient

    init() throws {
        try self.init(readUsers: false)
    }

    init(readUsers: Bool) throws {
        var users = [AccessControl.User(name: "pusher", password: "p:ss:word", canWrite: true)]
        if readUsers { users.append(AccessControl.User(name: "reader", password: "read", canWrite: false)) }
        let access = AccessControl(
            users: users, secret: Self.secret, publicURL: "http://registry.test:9000", tokenLifetime: 600)
        server = try TestServer(accessControl: access)
        client = RegistryClient(base: server.base)
    }

    static func basic(_ user: String, _ password: String) -> String {
        "Basic " + Data("\(user):\(password)".utf8).base64EncodedString()
    }

    func token(_ scopes: [String], user: String? = "pusher", password: String = "p:ss:word") throws
        -> HTTPClient.Response
    {
        let query = scopes.map { "scope=" + $0.addingPercentEncoding(withAllowedCharacters: .alphanumerics)! }
        var headers: [String: String] = [:]
        if let user { headers["Authorization"] = Self.basic(user, password) }
        return try client.send(
            "GET", "/auth/token?service=registry.test:9000&" + query.joined(separator: "&"), headers: headers)
    }

    func bearer(_ scopes: [String], user: String? = "pusher", password: String = "p:ss:word") throws -> [String: String]
    {
        let response = try token(scopes, user: user, password: password)
        let token = try #require(response.json?["token"] as? String)
        return ["Authorization": "Bearer \(token)"]
    }

    func forge(
        _ payload: [String: Any], header: String = #"{"alg":"HS256","typ":"JWT"}"#, key: String = AuthTests.secret
    )
        -> String
    {
        let body = try! JSONSerialization.data(withJSONObject: payload)
        let input = Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(body)
        return input + "." + Base64URL.encode(Crypto.hmacSHA256(key: Array(key.utf8), message: Array(input.utf8)))
    }

    func validPayload(actions: [String], name: String = "app", expiresIn: Int = 600) -> [String: Any] {
        let now = Int(Date().timeIntervalSince1970)
        return [
            "aud": "registry.test:9000", "exp": now + expiresIn, "iat": now,
            "access": [["type": "repository", "name": name, "actions": actions]],
        ]
    }

    func expectUnauthorized(_ response: HTTPClient.Response, _ note: String = "") {
        #expect(response.status == 401 || response.status == 403, "\(note)")
        #expect(["UNAUTHORIZED", "DENIED"].contains(errorCode(response) ?? ""), "\(note)")
        #expect(response.header("Docker-Distribution-API-Version") == "registry/2.0")
    }

    @Test func challengeNamesRealmServiceAndScope() throws {
        let response = try client.send("POST", "/v2/app/blobs/uploads/")
        #expect(response.status == 401)
        #expect(errorCode(response) == "UNAUTHORIZED")
        let challenge =
            #"Bearer realm="http://registry.test:9000/auth/token",service="registry.test:9000","#
            + #"scope="repository:app:pull,push""#
        #expect(response.header("WWW-Authenticate") == challenge)
        let base = try client.send("GET", "/v2/")
        #expect(base.status == 401)
        #expect(base.header("WWW-Authenticate")?.contains("scope=") == false)
    }

    @Test func tokenFlowPushesAndPulls() throws {
        let response = try token(["repository:app:pull,push"])
        #expect(response.status == 200)
        let json = try #require(response.json)
        #expect(json["token"] as? String == json["access_token"] as? String)
        #expect(json["expires_in"] as? Int == 600)
        #expect((json["issued_at"] as? String)?.hasSuffix("Z") == true)

        let headers = try bearer(["repository:app:pull,push"])
        let blob = Fixture.randomBytes(1000)
        let pushed = try client.send(
            "POST", "/v2/app/blobs/uploads/?digest=\(Digest.sha256(of: blob))", headers: headers, body: blob)
        #expect(pushed.status == 201)
        #expect(try client.send("GET", "/v2/app/blobs/\(Digest.sha256(of: blob))", headers: headers).body == blob)
        #expect(try client.send("GET", "/v2/", headers: headers).status == 200)
    }

    @Test func anonymousPullIsAllowedWithoutReadUsers() throws {
        let blob = Fixture.randomBytes(100)
        _ = try client.send(
            "POST", "/v2/app/blobs/uploads/?digest=\(Digest.sha256(of: blob))",
            headers: ["Authorization": Self.basic("pusher", "p:ss:word")],
            body: blob)
        #expect(try client.send("GET", "/v2/app/blobs/\(Digest.sha256(of: blob))").status == 200)
        let anonymous = try bearer(["repository:app:pull,push"], user: nil)
        #expect(try client.send("GET", "/v2/app/blobs/\(Digest.sha256(of: blob))", headers: anonymous).status == 200)
        expectUnauthorized(try client.send("POST", "/v2/app/blobs/uploads/", headers: anonymous), "anonymous push")

        // A mirror's Docker Hub login is unknown here: still fine for pulls, refused for pushes.
        let mirror = try token(["repository:app:pull"], user: "hubuser", password: "hubpass")
        #expect(mirror.status == 200)
        #expect(try token(["repository:app:pull,push"], user: "hubuser", password: "hubpass").status == 401)
        let basicUnknown = ["Authorization": Self.basic("hubuser", "hubpass")]
        #expect(try client.send("GET", "/v2/app/blobs/\(Digest.sha256(of: blob))", headers: basicUnknown).status == 200)
        expectUnauthorized(try client.send("POST", "/v2/app/blobs/uploads/", headers: basicUnknown))
    }

    @Test func readUsersMakePullPrivate() throws {
        let secured = try AuthTests(readUsers: true)
        expectUnauthorized(try secured.client.send("GET", "/v2/app/tags/list"))
        let anonymous = try secured.bearer(["repository:app:pull"], user: nil)
        expectUnauthorized(try secured.client.send("GET", "/v2/app/tags/list", headers: anonymous), "empty token")
        let reader = try secured.bearer(["repository:app:pull,push"], user: "reader", password: "read")
        #expect(try secured.client.send("GET", "/v2/app/tags/list", headers: reader).status == 404)
        expectUnauthorized(try secured.client.send("POST", "/v2/app/blobs/uploads/", headers: reader), "reader pushes")
        let basicReader = ["Authorization": Self.basic("reader", "read")]
        #expect(try secured.client.send("POST", "/v2/app/blobs/uploads/", headers: basicReader).status == 403)
    }

    @Test func loginChecksThePassword() throws {
        #expect(try token([]).status == 200)
        let wrong = try token([], password: "nope")
        #expect(wrong.status == 401)
        #expect(errorCode(wrong) == "UNAUTHORIZED")
        #expect(try token([], user: "nobody", password: "x").status == 401)
        #expect(
            try client.send("GET", "/v2/", headers: ["Authorization": Self.basic("pusher", "p:ss:word")]).status == 200)
        expectUnauthorized(try client.send("GET", "/v2/", headers: ["Authorization": Self.basic("pusher", "wrong")]))
    }

    @Test func basicCredentialsStraightToTheAPI() throws {
        let headers = ["Authorization": Self.basic("pusher", "p:ss:word")]
        let blob = Fixture.randomBytes(100)
        let pushed = try client.send(
            "POST", "/v2/direct/blobs/uploads/?digest=\(Digest.sha256(of: blob))", headers: headers, body: blob)
        #expect(pushed.status == 201)
    }

    @Test func tokensAreBoundToOneRepositoryAndAction() throws {
        let pullOnly = try bearer(["repository:app:pull"])
        expectUnauthorized(try client.send("POST", "/v2/app/blobs/uploads/", headers: pullOnly), "pull token pushes")
        let otherRepo = try bearer(["repository:other:pull,push"])
        let refused = try client.send("POST", "/v2/app/blobs/uploads/", headers: otherRepo)
        expectUnauthorized(refused, "token for another repository")
        #expect(refused.header("WWW-Authenticate")?.contains("insufficient_scope") == true)
        let noDelete = try bearer(["repository:app:pull,push"])
        expectUnauthorized(
            try client.send("DELETE", "/v2/app/manifests/latest", headers: noDelete), "delete without scope")
        let catalog = try bearer(["registry:catalog:*"])
        #expect(try client.send("GET", "/v2/_catalog", headers: catalog).status == 200)
    }

    @Test func forgedAndDamagedTokensAreRefused() throws {
        let attacks: [(String, String)] = [
            ("other secret", forge(validPayload(actions: ["push", "pull"]), key: "guess")),
            (
                "alg none",
                forge(validPayload(actions: ["push", "pull"]), header: #"{"alg":"none","typ":"JWT"}"#).split(
                    separator: "."
                ).prefix(2).joined(separator: ".") + "."
            ),
            ("alg HS512", forge(validPayload(actions: ["push", "pull"]), header: #"{"alg":"HS512","typ":"JWT"}"#)),
            ("expired", forge(validPayload(actions: ["push", "pull"], expiresIn: -10))),
            ("wrong audience", forge(validPayload(actions: ["push", "pull"]).merging(["aud": "elsewhere"]) { $1 })),
            ("garbage", "not.a.token"),
            ("two parts", "abc.def"),
        ]
        for (name, token) in attacks {
            expectUnauthorized(
                try client.send("POST", "/v2/app/blobs/uploads/", headers: ["Authorization": "Bearer \(token)"]), name)
        }

        // A real pull token whose payload is edited to grant push no longer matches its signature.
        let real = try #require(try token(["repository:app:pull"]).json?["token"] as? String)
        let parts = real.split(separator: ".").map(String.init)
        var payload = try #require(
            try JSONSerialization.jsonObject(with: Data(Base64URL.decode(parts[1])!)) as? [String: Any])
        payload["access"] = [["type": "repository", "name": "app", "actions": ["pull", "push"]]]
        let tampered =
            parts[0] + "." + Base64URL.encode(try JSONSerialization.data(withJSONObject: payload)) + "." + parts[2]
        expectUnauthorized(
            try client.send("POST", "/v2/app/blobs/uploads/", headers: ["Authorization": "Bearer \(tampered)"]),
            "tampered")

        // The forging helper itself makes tokens the registry accepts, so the refusals above are for the reasons named.
        let genuine = forge(validPayload(actions: ["push", "pull"]))
        #expect(
            try client.send("POST", "/v2/app/blobs/uploads/", headers: ["Authorization": "Bearer \(genuine)"]).status
                == 202)
    }

    @Test func garbageAndOverlongHeadersAreRefused() throws {
        for header in [
            "Basic !!!", "Basic " + Data("nocolon".utf8).base64EncodedString(), "Digest x", "Bearer", "\u{7f}",
        ] {
            expectUnauthorized(
                try client.send("POST", "/v2/app/blobs/uploads/", headers: ["Authorization": header]), header)
        }
        let long = "Bearer " + String(repeating: "a", count: 20_000)
        let response = try client.send("POST", "/v2/app/blobs/uploads/", headers: ["Authorization": long])
        #expect((400..<500).contains(response.status))
        #expect(
            try client.send("GET", "/v2/", headers: ["Authorization": Self.basic("pusher", "p:ss:word")]).status == 200)
    }

    @Test func mountNeedsPullOnTheSourceRepository() throws {
        let blob = Fixture.randomBytes(500)
        let digest = Digest.sha256(of: blob)
        let secured = try AuthTests(readUsers: true)
        let pusher = ["Authorization": Self.basic("pusher", "p:ss:word")]
        _ = try secured.client.send("POST", "/v2/source/blobs/uploads/?digest=\(digest)", headers: pusher, body: blob)
        let targetOnly = try secured.bearer(["repository:target:pull,push"])
        let fallback = try secured.client.send(
            "POST", "/v2/target/blobs/uploads/?mount=\(digest)&from=source", headers: targetOnly)
        #expect(fallback.status == 202)
        let both = try secured.bearer(["repository:target:pull,push", "repository:source:pull"])
        let mounted = try secured.client.send(
            "POST", "/v2/target/blobs/uploads/?mount=\(digest)&from=source", headers: both)
        #expect(mounted.status == 201)
    }
}
