/// A content digest such as `sha256:<64 hex>`, checked against the OCI grammar when made.
public struct Digest: Hashable, Sendable, CustomStringConvertible {
    /// The hash functions a digest may name.
    public enum Algorithm: String, Sendable, CaseIterable {
        case sha256, sha512

        /// How many lowercase hex characters an encoded digest of this algorithm has.
        public var hexLength: Int {
            switch self {
            case .sha256: 64
            case .sha512: 128
            }
        }
    }

    /// The hash function.
    public let algorithm: Algorithm
    /// The lowercase hex encoding of the hash.
    public let hex: String

    /// Parses `algorithm:hex`; nil when the text is not a digest this registry supports.
    public init?(_ text: some StringProtocol) {
        guard let colon = text.firstIndex(of: ":"),
            let algorithm = Algorithm(rawValue: String(text[text.startIndex..<colon]))
        else { return nil }
        let hex = text[text.index(after: colon)...]
        guard hex.utf8.count == algorithm.hexLength, hex.utf8.allSatisfy(Self.isLowercaseHex) else { return nil }
        self.algorithm = algorithm
        self.hex = String(hex)
    }

    /// Makes a digest from raw hash bytes.
    public init(algorithm: Algorithm, bytes: some Sequence<UInt8>) {
        self.algorithm = algorithm
        self.hex = Hex.encode(bytes)
    }

    /// The digest as it appears on the wire, `algorithm:hex`.
    public var description: String { "\(algorithm.rawValue):\(hex)" }

    /// The SHA-256 digest of `bytes`.
    public static func sha256(of bytes: some Collection<UInt8>) -> Digest {
        var hasher = SHA256Hasher()
        hasher.update(Array(bytes))
        return hasher.digest()
    }

    private static func isLowercaseHex(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
            || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))
    }
}

/// Lowercase hexadecimal encoding.
public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    /// Encodes bytes as lowercase hex.
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        var out: [UInt8] = []
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
