import Hashing
import Storage

/// A request path of the registry API, parsed.
///
/// Repository names contain `/`, so a path is read from its end: the last segments say which endpoint it is, and
/// everything between `/v2/` and them is the name. Names, digests and upload ids are checked here, before any
/// storage path can be formed from them.
enum Route: Equatable {
    case base
    case catalog
    case tags(RepositoryName)
    case manifest(RepositoryName, Reference)
    case blob(RepositoryName, Digest)
    case uploads(RepositoryName)
    case upload(RepositoryName, UploadID)
    case referrers(RepositoryName, Digest)

    /// Why a path did not parse.
    enum Failure: Error, Equatable {
        case notFound
        case nameInvalid
        case tagInvalid
        case digestInvalid
        case uploadUnknown
    }

    /// Parses a path; throws `Failure` when it is not an API path or a part of it is malformed.
    static func parse(_ path: String) throws(Failure) -> Route {
        guard path == "/v2" || path.hasPrefix("/v2/") else { throw .notFound }
        var segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst(2)
        if segments.last == "" { segments = segments.dropLast() }
        if segments.isEmpty { return .base }
        if segments.count == 1 && segments.first == "_catalog" { return .catalog }

        let count = segments.count
        let last = segments.last!
        let secondLast = count >= 2 ? segments[segments.endIndex - 2] : ""
        let thirdLast = count >= 3 ? segments[segments.endIndex - 3] : ""

        func name(droppingLast dropped: Int) throws(Failure) -> RepositoryName {
            guard count > dropped else { throw .notFound }
            guard let name = RepositoryName(segments.dropLast(dropped).joined(separator: "/")) else {
                throw .nameInvalid
            }
            return name
        }

        if secondLast == "tags" && last == "list" {
            return .tags(try name(droppingLast: 2))
        }
        if secondLast == "manifests" {
            let repository = try name(droppingLast: 2)
            guard let reference = Reference(last) else { throw last.contains(":") ? .digestInvalid : .tagInvalid }
            return .manifest(repository, reference)
        }
        if secondLast == "referrers" {
            let repository = try name(droppingLast: 2)
            guard let digest = Digest(last) else { throw .digestInvalid }
            return .referrers(repository, digest)
        }
        if thirdLast == "blobs" && secondLast == "uploads" {
            let repository = try name(droppingLast: 3)
            guard let id = UploadID(last) else { throw .uploadUnknown }
            return .upload(repository, id)
        }
        if secondLast == "blobs" && last == "uploads" {
            return .uploads(try name(droppingLast: 2))
        }
        if secondLast == "blobs" {
            let repository = try name(droppingLast: 2)
            guard let digest = Digest(last) else { throw .digestInvalid }
            return .blob(repository, digest)
        }
        throw .notFound
    }
}
