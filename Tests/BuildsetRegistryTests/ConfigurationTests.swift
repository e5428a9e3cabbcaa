import Config
import Testing

@Suite struct ConfigurationTests {
    @Test func readsEveryKey() throws {
        let text = """
            registry:
              address: 0.0.0.0
              port: 5000
              public-url: https://registry.example:5000/
              tls-cert: /etc/cert.pem
              tls-key: /etc/key.pem
              secret: "%(REGISTRY_SECRET)"
              expiration: 3600
              users:
                - name: ci
                  pass: "p:a:ss"
                  access: write
                - name: reader
                  pass: "%(READER_PASSWORD)-x"
                  access: read
              storage:
                driver: filesystem
                root: /srv/registry
            """
        let (configuration, warnings) = try RegistryConfiguration.parse(
            text, file: "registry.yaml", environment: ["REGISTRY_SECRET": "s3cret", "READER_PASSWORD": "r"])
        #expect(warnings.isEmpty)
        #expect(configuration.address == "0.0.0.0")
        #expect(configuration.port == 5000)
        #expect(configuration.effectivePublicURL == "https://registry.example:5000")
        #expect(configuration.tlsCertificatePath == "/etc/cert.pem")
        #expect(configuration.tlsKeyPath == "/etc/key.pem")
        #expect(configuration.secret == "s3cret")
        #expect(configuration.expiration == 3600)
        #expect(
            configuration.users == [
                .init(name: "ci", password: "p:a:ss", access: .write),
                .init(name: "reader", password: "r-x", access: .read),
            ])
        #expect(configuration.storage == .filesystem(root: "/srv/registry"))
    }

    @Test func readsExpirationWhereZuulRegistryKeepsIt() throws {
        let text = "registry:\n  storage:\n    driver: filesystem\n    root: /x\n    expiration: 86400\n"
        let (configuration, warnings) = try RegistryConfiguration.parse(text, file: "f", environment: [:])
        #expect(warnings.isEmpty)
        #expect(configuration.expiration == 86400)
    }

    @Test func readsUpstreams() throws {
        let text = """
            registry:
              upstreams:
                - name: quay.io
                  url: https://quay.io
                  username: robot
                  password: "%(QUAY_TOKEN)"
                  ca: /etc/ca.pem
                  connect-timeout: 3
                  timeout: 30
                  tag-ttl: 60
                - name: local.test
                  url: http://127.0.0.1:5000
            """
        let (configuration, _) = try RegistryConfiguration.parse(text, file: "f", environment: ["QUAY_TOKEN": "t"])
        #expect(configuration.upstreams.map(\.name) == ["quay.io", "local.test"])
        let quay = configuration.upstreams[0]
        #expect(quay.username == "robot" && quay.password == "t" && quay.certificateAuthorities == "/etc/ca.pem")
        #expect(quay.connectTimeout == 3 && quay.stallTimeout == 30 && quay.tagLifetime == 60)
        #expect(RegistryConfiguration.embeddedDefault.upstreams == [.dockerHub])
        let none = try RegistryConfiguration.parse("registry:\n  upstreams: []\n", file: "f", environment: [:])
        #expect(none.0.upstreams.isEmpty)
        #expect(throws: ConfigurationError.self) {
            try RegistryConfiguration.parse(
                "registry:\n  upstreams:\n    - name: x\n      url: ftp://x\n", file: "f", environment: [:])
        }
    }

    @Test func readsSwiftStorageKeys() throws {
        let text = "registry:\n  storage:\n    driver: swift\n    cloud: mycloud\n    container: images\n"
        let (configuration, _) = try RegistryConfiguration.parse(text, file: "f", environment: [:])
        #expect(configuration.storage == .swift(cloud: "mycloud", container: "images"))
    }

    @Test func defaultsMatchTheEmbeddedConfiguration() {
        let configuration = RegistryConfiguration.embeddedDefault
        #expect(configuration.address == "127.0.0.1")
        #expect(configuration.port == 9000)
        #expect(configuration.storage == .filesystem(root: "./data"))
        #expect(configuration.effectivePublicURL == "http://127.0.0.1:9000")
    }

    @Test func unknownKeysAreWarnings() throws {
        let text = "registry:\n  port: 9000\n  colour: blue\n  storage: {driver: filesystem, root: /x, size: 3}\n"
        let (_, warnings) = try RegistryConfiguration.parse(text, file: "r.yaml", environment: [:])
        #expect(warnings.map(\.key) == ["registry.colour", "registry.storage.size"])
        #expect(warnings.allSatisfy { $0.severity == .warning })
        #expect(warnings.first?.line == 3)
    }

    @Test(arguments: [
        ("registry:\n  port: eighty\n", "registry.port", 2),
        ("registry:\n  port: 70000\n", "registry.port", 2),
        ("registry:\n  public-url: registry.example\n", "registry.public-url", 2),
        ("registry:\n  secret: \"%(MISSING_VARIABLE)\"\n", "registry.secret", 2),
        ("registry:\n  storage:\n    driver: tape\n", "registry.storage.driver", 3),
        ("registry:\n  storage:\n    driver: filesystem\n", "registry.storage.root", 3),
        ("registry:\n  storage:\n    root: /x\n", "registry.storage.driver", 3),
        ("registry:\n  users:\n    - name: a\n      access: write\n", "registry.users[0].pass", 3),
        ("registry:\n  users:\n    - name: a\n      pass: b\n      access: admin\n", "registry.users[0].access", 5),
        ("registry:\n  users: everyone\n", "registry.users", 2),
        ("registry:\n  tls-cert: /c.pem\n", "registry.tls-cert", 2),
        ("registry:\n  expiration: -5\n", "registry.expiration", 2),
        ("storage: {}\n", "registry", 1),
        ("registry: [a, b]\n", "registry", 1),
        ("registry:\n  port: [9000\n", "", 3),
    ])
    func badFilesNameTheKeyAndLine(text: String, key: String, line: Int) {
        do {
            _ = try RegistryConfiguration.parse(text, file: "bad.yaml", environment: [:])
            Issue.record("accepted a bad file")
        } catch {
            let errors = error.problems.filter { $0.severity == .error }
            #expect(errors.contains { $0.key == key && $0.line == line && $0.file == "bad.yaml" }, "\(error.problems)")
        }
    }

    @Test func reportsEveryProblemAtOnce() {
        let text = "registry:\n  port: x\n  public-url: y\n  storage: {driver: z}\n"
        do {
            _ = try RegistryConfiguration.parse(text, file: "bad.yaml", environment: [:])
            Issue.record("accepted a bad file")
        } catch {
            #expect(error.problems.filter { $0.severity == .error }.count == 3)
            #expect(error.description.contains("bad.yaml:2: error: registry.port"))
        }
    }
}
