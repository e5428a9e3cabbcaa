import Foundation

extension RegistryConfiguration {
    /// Reads and checks a configuration file; throws with every problem found when any is an error.
    public static func load(path: String, environment: [String: String] = ProcessInfo.processInfo.environment)
        throws(ConfigurationError) -> (RegistryConfiguration, warnings: [ConfigurationProblem])
    {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError(problems: [
                ConfigurationProblem(severity: .error, file: path, line: 0, key: "", message: "cannot read the file")
            ])
        }
        return try parse(String(decoding: data, as: UTF8.self), file: path, environment: environment)
    }

    /// Checks configuration text; throws with every problem found when any is an error.
    public static func parse(_ text: String, file: String, environment: [String: String]) throws(ConfigurationError)
        -> (RegistryConfiguration, warnings: [ConfigurationProblem])
    {
        var reader = ConfigurationReader(file: file, environment: environment)
        let configuration = reader.read(text)
        if reader.problems.contains(where: { $0.severity == .error }) {
            throw ConfigurationError(problems: reader.problems)
        }
        return (configuration, reader.problems)
    }
}

/// Walks the YAML tree of a configuration, collecting every problem instead of stopping at the first.
struct ConfigurationReader {
    /// The path of the file being read, named in every problem.
    let file: String
    /// The environment variables that a `%(NAME)` in a value is replaced from.
    let environment: [String: String]
    /// Every error and warning found so far, in the order found.
    var problems: [ConfigurationProblem] = []
    /// The expiration read under `storage`, where zuul-registry keeps it.
    private var expiration: Int?

    /// Makes a reader for `file` that fills values in from `environment`.
    init(file: String, environment: [String: String]) {
        self.file = file
        self.environment = environment
    }

    /// Reads a configuration from YAML text, recording every problem; a setting missing or in error keeps its default.
    mutating func read(_ text: String) -> RegistryConfiguration {
        var configuration = RegistryConfiguration()
        let root: YAMLNode?
        do {
            root = try YAML.parse(text)
        } catch {
            report(.error, line: error.line, key: "", "not valid YAML: \(error.message)")
            return configuration
        }
        guard let root, let top = mapping(root, key: "") else {
            report(.error, line: root?.line ?? 1, key: "", "expected a mapping with a `registry` key")
            return configuration
        }
        guard let registryNode = top.first(where: { $0.key == "registry" })?.value,
            let registry = mapping(registryNode, key: "registry")
        else {
            report(.error, line: root.line, key: "registry", "missing: the settings go under a `registry` key")
            return configuration
        }
        for (key, _) in top where key != "registry" {
            report(.warning, line: root.line, key: key, "unknown key, ignored")
        }

        for (key, value) in registry {
            let path = "registry.\(key)"
            switch key {
            case "address":
                if let text = scalar(value, key: path) { configuration.address = text }
            case "port":
                if let text = scalar(value, key: path) {
                    if let port = UInt16(text), port > 0 {
                        configuration.port = port
                    } else {
                        report(.error, line: value.line, key: path, "must be a port number from 1 to 65535")
                    }
                }
            case "public-url":
                if let text = scalar(value, key: path) {
                    if text.hasPrefix("http://") || text.hasPrefix("https://") {
                        configuration.publicURL = text
                    } else {
                        report(.error, line: value.line, key: path, "must start with http:// or https://")
                    }
                }
            case "tls-cert": configuration.tlsCertificatePath = scalar(value, key: path)
            case "tls-key": configuration.tlsKeyPath = scalar(value, key: path)
            case "secret": configuration.secret = scalar(value, key: path)
            case "expiration":
                configuration.expiration = seconds(value, key: path) ?? configuration.expiration
            case "users": configuration.users = readUsers(value, key: path)
            case "upstreams": configuration.upstreams = readUpstreams(value, key: path)
            case "storage": configuration.storage = readStorage(value, key: path) ?? configuration.storage
            default:
                report(.warning, line: value.line, key: path, "unknown key, ignored")
            }
        }

        if configuration.expiration == nil { configuration.expiration = expiration }
        if (configuration.tlsCertificatePath == nil) != (configuration.tlsKeyPath == nil) {
            report(.error, line: registryNode.line, key: "registry.tls-cert", "tls-cert and tls-key go together")
        }
        return configuration
    }

    private mutating func readUsers(_ node: YAMLNode, key: String) -> [RegistryConfiguration.User] {
        guard case .sequence(let items, _) = node else {
            report(.error, line: node.line, key: key, "expected a list of users")
            return []
        }
        var users: [RegistryConfiguration.User] = []
        for (index, item) in items.enumerated() {
            let itemKey = "\(key)[\(index)]"
            guard let fields = mapping(item, key: itemKey) else { continue }
            var name: String?
            var password: String?
            var access: RegistryConfiguration.User.Access?
            for (field, value) in fields {
                switch field {
                case "name": name = scalar(value, key: "\(itemKey).name")
                case "pass": password = scalar(value, key: "\(itemKey).pass")
                case "access":
                    if let text = scalar(value, key: "\(itemKey).access") {
                        access = RegistryConfiguration.User.Access(rawValue: text)
                        if access == nil {
                            report(.error, line: value.line, key: "\(itemKey).access", "must be read or write")
                        }
                    }
                default:
                    report(.warning, line: value.line, key: "\(itemKey).\(field)", "unknown key, ignored")
                }
            }
            guard let name, !name.isEmpty else {
                report(.error, line: item.line, key: "\(itemKey).name", "missing")
                continue
            }
            guard let password else {
                report(.error, line: item.line, key: "\(itemKey).pass", "missing")
                continue
            }
            users.append(.init(name: name, password: password, access: access ?? .read))
        }
        return users
    }

    private mutating func readUpstreams(_ node: YAMLNode, key: String) -> [UpstreamConfiguration] {
        guard case .sequence(let items, _) = node else {
            report(.error, line: node.line, key: key, "expected a list of upstreams")
            return []
        }
        var upstreams: [UpstreamConfiguration] = []
        for (index, item) in items.enumerated() {
            let itemKey = "\(key)[\(index)]"
            guard let fields = mapping(item, key: itemKey) else { continue }
            var values: [String: String] = [:]
            var numbers: [String: Int] = [:]
            for (field, value) in fields {
                let fieldKey = "\(itemKey).\(field)"
                switch field {
                case "name", "url", "username", "password", "ca":
                    values[field] = scalar(value, key: fieldKey)
                case "connect-timeout", "timeout", "tag-ttl":
                    numbers[field] = seconds(value, key: fieldKey)
                default:
                    report(.warning, line: value.line, key: fieldKey, "unknown key, ignored")
                }
            }
            guard let name = values["name"], !name.isEmpty, !name.contains("/") else {
                report(.error, line: item.line, key: "\(itemKey).name", "missing, or contains /")
                continue
            }
            guard let url = values["url"], url.hasPrefix("http://") || url.hasPrefix("https://") else {
                report(.error, line: item.line, key: "\(itemKey).url", "missing, or not an http:// or https:// URL")
                continue
            }
            var upstream = UpstreamConfiguration(name: name, url: url)
            upstream.username = values["username"]
            upstream.password = values["password"]
            upstream.certificateAuthorities = values["ca"]
            upstream.connectTimeout = numbers["connect-timeout"] ?? upstream.connectTimeout
            upstream.stallTimeout = numbers["timeout"] ?? upstream.stallTimeout
            upstream.tagLifetime = numbers["tag-ttl"] ?? upstream.tagLifetime
            upstreams.append(upstream)
        }
        return upstreams
    }

    private mutating func readStorage(_ node: YAMLNode, key: String) -> RegistryConfiguration.Storage? {
        guard let fields = mapping(node, key: key) else { return nil }
        var values: [String: (String, Int)] = [:]
        for (field, value) in fields {
            switch field {
            case "driver", "root", "cloud", "container":
                if let text = scalar(value, key: "\(key).\(field)") { values[field] = (text, value.line) }
            case "expiration":
                // zuul-registry reads the manifest expiration here, under storage.
                expiration = seconds(value, key: "\(key).expiration") ?? expiration
            default:
                report(.warning, line: value.line, key: "\(key).\(field)", "unknown key, ignored")
            }
        }
        guard let (driver, driverLine) = values["driver"] else {
            report(.error, line: node.line, key: "\(key).driver", "missing: filesystem or swift")
            return nil
        }
        switch driver {
        case "filesystem":
            guard let (root, _) = values["root"], !root.isEmpty else {
                report(.error, line: node.line, key: "\(key).root", "missing: the directory to store content in")
                return nil
            }
            return .filesystem(root: root)
        case "swift":
            guard let (cloud, _) = values["cloud"], let (container, _) = values["container"] else {
                report(.error, line: node.line, key: key, "the swift driver needs cloud and container")
                return nil
            }
            return .swift(cloud: cloud, container: container)
        default:
            report(.error, line: driverLine, key: "\(key).driver", "unknown driver \(driver): filesystem or swift")
            return nil
        }
    }

    private mutating func seconds(_ node: YAMLNode, key: String) -> Int? {
        guard let text = scalar(node, key: key) else { return nil }
        guard let seconds = Int(text), seconds > 0 else {
            report(.error, line: node.line, key: key, "must be a positive number of seconds")
            return nil
        }
        return seconds
    }

    private mutating func mapping(_ node: YAMLNode, key: String) -> [(key: String, value: YAMLNode)]? {
        guard case .mapping(let pairs, _) = node else {
            report(.error, line: node.line, key: key, "expected a mapping")
            return nil
        }
        return pairs
    }

    /// A scalar's text with `%(NAME)` replaced from the environment, as zuul-registry does.
    private mutating func scalar(_ node: YAMLNode, key: String) -> String? {
        guard case .scalar(let text, let line) = node else {
            report(.error, line: node.line, key: key, "expected a single value")
            return nil
        }
        var result = ""
        var rest = Substring(text)
        while let start = rest.range(of: "%(") {
            result += rest[..<start.lowerBound]
            guard let end = rest[start.upperBound...].firstIndex(of: ")") else {
                report(.error, line: line, key: key, "unclosed %( in value")
                return nil
            }
            let name = String(rest[start.upperBound..<end])
            guard let value = environment[name] else {
                report(.error, line: line, key: key, "environment variable \(name) is not set")
                return nil
            }
            result += value
            rest = rest[rest.index(after: end)...]
        }
        return result + rest
    }

    private mutating func report(_ severity: ConfigurationProblem.Severity, line: Int, key: String, _ message: String) {
        problems.append(ConfigurationProblem(severity: severity, file: file, line: line, key: key, message: message))
    }
}
