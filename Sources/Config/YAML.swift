import CYAML

// The one file of this project that calls into libyaml.

/// A parsed YAML node with the line it starts on, for error messages that point into the file.
public indirect enum YAMLNode: Sendable, Equatable {
    case scalar(String, line: Int)
    case mapping([(key: String, value: YAMLNode)], line: Int)
    case sequence([YAMLNode], line: Int)

    /// The 1-based line the node starts on.
    public var line: Int {
        switch self {
        case .scalar(_, let line), .mapping(_, let line), .sequence(_, let line): line
        }
    }

    /// Whether two nodes have the same content and lines.
    public static func == (lhs: YAMLNode, rhs: YAMLNode) -> Bool {
        switch (lhs, rhs) {
        case (.scalar(let a, let la), .scalar(let b, let lb)): a == b && la == lb
        case (.sequence(let a, let la), .sequence(let b, let lb)): a == b && la == lb
        case (.mapping(let a, let la), .mapping(let b, let lb)):
            la == lb && a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: false
        }
    }
}

/// A YAML text that could not be parsed.
public struct YAMLError: Error, Equatable, Sendable {
    /// What the parser said.
    public let message: String
    /// The 1-based line of the problem.
    public let line: Int
}

/// Parses YAML text with libyaml.
public enum YAML {
    /// Parses the first document of `text`; an empty text gives nil.
    public static func parse(_ text: String) throws(YAMLError) -> YAMLNode? {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else { throw YAMLError(message: "cannot start the parser", line: 0) }
        defer { yaml_parser_delete(&parser) }

        let bytes = Array(text.utf8)
        var document = yaml_document_t()
        let loaded = bytes.withUnsafeBufferPointer { buffer -> Int32 in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            return yaml_parser_load(&parser, &document)
        }
        guard loaded == 1 else {
            let problem = parser.problem.map { String(cString: $0) } ?? "invalid YAML"
            throw YAMLError(message: problem, line: Int(parser.problem_mark.line) + 1)
        }
        defer { yaml_document_delete(&document) }
        guard let root = yaml_document_get_root_node(&document) else { return nil }
        return convert(root, in: &document, depth: 0)
    }

    private static func convert(
        _ node: UnsafeMutablePointer<yaml_node_t>, in document: inout yaml_document_t, depth: Int
    )
        -> YAMLNode
    {
        let line = Int(node.pointee.start_mark.line) + 1
        // Aliases can make a document a cycle; a config is never this deep.
        guard depth < 64 else { return .scalar("", line: line) }
        switch node.pointee.type {
        case YAML_SCALAR_NODE:
            let scalar = node.pointee.data.scalar
            let text = String(decoding: UnsafeBufferPointer(start: scalar.value, count: scalar.length), as: UTF8.self)
            return .scalar(text, line: line)
        case YAML_SEQUENCE_NODE:
            var items: [YAMLNode] = []
            var item = node.pointee.data.sequence.items.start
            while let current = item, current != node.pointee.data.sequence.items.top {
                if let child = yaml_document_get_node(&document, current.pointee) {
                    items.append(convert(child, in: &document, depth: depth + 1))
                }
                item = current + 1
            }
            return .sequence(items, line: line)
        case YAML_MAPPING_NODE:
            var pairs: [(key: String, value: YAMLNode)] = []
            var pair = node.pointee.data.mapping.pairs.start
            while let current = pair, current != node.pointee.data.mapping.pairs.top {
                if let keyNode = yaml_document_get_node(&document, current.pointee.key),
                    let valueNode = yaml_document_get_node(&document, current.pointee.value)
                {
                    let key = convert(keyNode, in: &document, depth: depth + 1)
                    let keyText: String
                    if case .scalar(let text, _) = key { keyText = text } else { keyText = "" }
                    pairs.append((keyText, convert(valueNode, in: &document, depth: depth + 1)))
                }
                pair = current + 1
            }
            return .mapping(pairs, line: line)
        default:
            return .scalar("", line: line)
        }
    }
}
