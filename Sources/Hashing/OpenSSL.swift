import CCrypto

// The one file of this project that calls into OpenSSL's libcrypto.

/// A SHA-256 computation whose state can be saved between chunks and restored in another process.
///
/// The low-level `SHA256_CTX` is a plain struct, so its bytes are the whole state; the EVP interface cannot be
/// saved this way, which is why this type uses the deprecated low-level calls.
public struct SHA256Hasher: Sendable {
    private var context = SHA256_CTX()

    /// Starts a new computation.
    public init() {
        SHA256_Init(&context)
    }

    /// Restores a computation from bytes produced by `savedState`; nil when they are not a saved state.
    public init?(savedState: [UInt8]) {
        guard savedState.count == MemoryLayout<SHA256_CTX>.size else { return nil }
        withUnsafeMutableBytes(of: &context) { $0.copyBytes(from: savedState) }
    }

    /// The computation's state, to be stored with an upload and restored later.
    public var savedState: [UInt8] {
        withUnsafeBytes(of: context) { Array($0) }
    }

    /// Feeds bytes into the computation.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        SHA256_Update(&context, base, bytes.count)
    }

    /// Feeds bytes into the computation.
    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The digest of everything fed so far; the computation itself can go on.
    public func digest() -> Digest {
        var copy = context
        var output = [UInt8](repeating: 0, count: Int(SHA256_DIGEST_LENGTH))
        SHA256_Final(&output, &copy)
        return Digest(algorithm: .sha256, bytes: output)
    }
}

/// A one-way computation of any supported digest algorithm, for verifying data that is read back.
public struct StreamHasher {
    private let context: OpaquePointer
    private let algorithm: Digest.Algorithm

    /// Starts a computation of `algorithm`.
    public init(_ algorithm: Digest.Algorithm) {
        self.algorithm = algorithm
        context = EVP_MD_CTX_new()
        EVP_DigestInit_ex(context, algorithm == .sha256 ? EVP_sha256() : EVP_sha512(), nil)
    }

    /// Feeds bytes into the computation.
    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        EVP_DigestUpdate(context, base, bytes.count)
    }

    /// Ends the computation, returns its digest and frees the context.
    public func finish() -> Digest {
        var output = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        EVP_DigestFinal_ex(context, &output, &length)
        EVP_MD_CTX_free(context)
        return Digest(algorithm: algorithm, bytes: output.prefix(Int(length)))
    }
}

/// Keyed hashing, random bytes and comparisons that do not leak timing.
public enum Crypto {
    /// The HMAC-SHA256 of `message` under `key`.
    public static func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        _ = key.withUnsafeBytes { keyBytes in
            message.withUnsafeBytes { messageBytes in
                HMAC(
                    EVP_sha256(), keyBytes.baseAddress, Int32(key.count),
                    messageBytes.baseAddress?.assumingMemoryBound(to: UInt8.self), message.count, &output, &length)
            }
        }
        return Array(output.prefix(Int(length)))
    }

    /// `count` bytes from OpenSSL's cryptographically secure generator.
    public static func randomBytes(_ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        guard RAND_bytes(&bytes, Int32(count)) == 1 else {
            fatalError("RAND_bytes failed: the process has no source of randomness")
        }
        return bytes
    }

    /// Whether two byte strings are equal, taking the same time wherever they differ.
    public static func constantTimeEqual(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        return lhs.withUnsafeBytes { left in
            rhs.withUnsafeBytes { right in
                CRYPTO_memcmp(left.baseAddress, right.baseAddress, lhs.count) == 0
            }
        }
    }
}
