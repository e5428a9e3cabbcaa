import Hashing

/// A repository name checked against the distribution spec's grammar, so it can be part of a storage path.
///
/// Components are `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`, separated by `/`. No component can be
/// empty, `.` or `..`, or start with `_`, which keeps names apart from the storage layout's own directories.
public struct RepositoryName: Hashable, Sendable, CustomStringConvertible, Comparable {
    /// The longest name accepted, in bytes.
    public static let maximumLength = 255

    /// The name as the client wrote it.
    public let value: String

    /// Checks `text` against the grammar; nil when it does not match.
    public init?(_ text: some StringProtocol) {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty, bytes.count <= Self.maximumLength else { return nil }
        for component in bytes.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            guard Self.isValidComponent(component) else { return nil }
        }
        value = String(text)
    }

    /// The name's components, split at `/`.
    public var components: [String] { value.split(separator: "/").map(String.init) }

    /// The name as text.
    public var description: String { value }

    /// Orders names by their bytes, which is the lexical order catalog listings use.
    public static func < (lhs: RepositoryName, rhs: RepositoryName) -> Bool { lhs.value < rhs.value }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
            || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
    }

    // A component is runs of [a-z0-9] joined by one separator: ".", "_", "__" or any number of "-".
    private static func isValidComponent(_ component: ArraySlice<UInt8>) -> Bool {
        guard let first = component.first, let last = component.last, isAlphanumeric(first), isAlphanumeric(last)
        else { return false }
        var index = component.startIndex
        while index < component.endIndex {
            let byte = component[index]
            if isAlphanumeric(byte) {
                index += 1
                continue
            }
            var end = index
            while end < component.endIndex, !isAlphanumeric(component[end]) { end += 1 }
            let separator = component[index..<end]
            let allDashes = separator.allSatisfy { $0 == UInt8(ascii: "-") }
            let isKnown =
                allDashes || separator.elementsEqual([UInt8(ascii: ".")])
                || separator.elementsEqual([UInt8(ascii: "_")])
                || separator.elementsEqual([UInt8(ascii: "_"), UInt8(ascii: "_")])
            guard isKnown else { return false }
            index = end
        }
        return true
    }
}

/// A tag checked against `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
public struct Tag: Hashable, Sendable, CustomStringConvertible, Comparable {
    /// The tag as the client wrote it.
    public let value: String

    /// Checks `text` against the grammar; nil when it does not match.
    public init?(_ text: some StringProtocol) {
        let bytes = Array(text.utf8)
        guard let first = bytes.first, bytes.count <= 128, Self.isWordByte(first),
            bytes.dropFirst().allSatisfy({ Self.isWordByte($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") })
        else { return nil }
        value = String(text)
    }

    /// The tag as text.
    public var description: String { value }

    /// Orders tags by their bytes, which is the lexical order tag listings use.
    public static func < (lhs: Tag, rhs: Tag) -> Bool { lhs.value < rhs.value }

    private static func isWordByte(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
            || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
            || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "_")
    }
}

/// What a manifest request names: a tag or a digest.
public enum Reference: Hashable, Sendable, CustomStringConvertible {
    case tag(Tag)
    case digest(Digest)

    /// Parses a digest when the text has a `:`, else a tag; nil when it is neither.
    public init?(_ text: some StringProtocol) {
        if text.contains(":") {
            guard let digest = Digest(text) else { return nil }
            self = .digest(digest)
        } else {
            guard let tag = Tag(text) else { return nil }
            self = .tag(tag)
        }
    }

    /// The reference as text.
    public var description: String {
        switch self {
        case .tag(let tag): tag.value
        case .digest(let digest): digest.description
        }
    }
}

/// The identifier of one upload: a random UUID in lowercase, made by this registry.
public struct UploadID: Hashable, Sendable, CustomStringConvertible {
    /// The identifier as text, `8-4-4-4-12` lowercase hex.
    public let value: String

    /// Checks `text` against the UUID form; nil when it does not match.
    public init?(_ text: some StringProtocol) {
        let bytes = Array(text.utf8)
        guard bytes.count == 36 else { return nil }
        for (index, byte) in bytes.enumerated() {
            let isDashPosition = index == 8 || index == 13 || index == 18 || index == 23
            let isHex =
                (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))
            guard isDashPosition ? byte == UInt8(ascii: "-") : isHex else { return nil }
        }
        value = String(text)
    }

    /// A new random identifier.
    public static func make() -> UploadID {
        let hex = Hex.encode(Crypto.randomBytes(16))
        let parts = [
            hex.prefix(8), hex.dropFirst(8).prefix(4), hex.dropFirst(12).prefix(4), hex.dropFirst(16).prefix(4),
            hex.dropFirst(20),
        ]
        return UploadID(parts.joined(separator: "-"))!
    }

    /// The identifier as text.
    public var description: String { value }
}

/// A storage namespace: `_local` holds what clients push; others hold caches of upstream registries.
public struct Namespace: Hashable, Sendable, CustomStringConvertible {
    /// The directory name, which starts with `_` so it never collides with a repository name.
    public let value: String

    /// The namespace that holds pushed content.
    public static let local = Namespace(checked: "_local")

    private init(checked value: String) { self.value = value }

    /// The namespace that caches what one upstream registry served, named after it.
    public static func cache(_ upstream: String) -> Namespace {
        let safe = upstream.lowercased().map { character -> Character in
            character.isASCII && (character.isLetter || character.isNumber || character == "." || character == "-")
                ? character : "-"
        }
        return Namespace(checked: "_cache-" + String(safe))
    }

    /// Reads back a namespace recorded in storage; nil when it is not one this registry writes.
    init?(recorded value: String) {
        let isCache =
            value.hasPrefix("_cache-") && value.count > 7 && value != "_cache-." && value != "_cache-.."
            && !value.contains("/")
        guard value == Namespace.local.value || isCache else { return nil }
        self.value = value
    }

    /// The namespace as text.
    public var description: String { value }
}
