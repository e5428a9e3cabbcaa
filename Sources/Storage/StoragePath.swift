import Hashing

/// A location in storage, relative to the storage root, made only from checked names.
public struct StoragePath: Hashable, Sendable, CustomStringConvertible {
    /// The path's components; none is empty, `.` or `..`.
    public let components: [String]

    fileprivate init(_ components: [String]) {
        self.components = components
    }

    /// A path read back from storage's own records, whose components the caller has checked.
    init(unchecked components: [String]) {
        self.components = components
    }

    /// The path with `/` between components.
    public var description: String { components.joined(separator: "/") }

    /// The path of a child of this path; the name must come from a listing of this path or a checked name.
    public func appending(_ name: String) -> StoragePath {
        precondition(
            !name.isEmpty && name != "." && name != ".." && !name.utf8.contains(UInt8(ascii: "/")),
            "unsafe path component")
        return StoragePath(components + [name])
    }
}

/// Every path the registry uses, in one place.
///
/// ```
/// <root>/
/// ├── _uploads/<upload id>/
/// │   ├── data                              the bytes received so far (or segments, on object storage)
/// │   └── state                             offset, saved SHA-256 state, repository, start time
/// ├── _tmp/                                 whole objects being written, renamed into place when complete
/// ├── _sync/                                (filesystem) records of committed files not yet flushed to disk
/// └── <namespace>/                          _local holds pushes; upstream caches get their own
///     ├── blobs/<algorithm>/<hex[0..<2]>/<hex>           complete, verified content
///     └── repositories/<name>/
///         ├── _layers/<algorithm>/<hex>                  link: the blob belongs to this repository
///         ├── _manifests/revisions/<algorithm>/<hex>     link holding the manifest's media type
///         ├── _manifests/tags/<tag>                      the digest the tag points at
///         └── _referrers/<algorithm>/<subject hex>/<algorithm>-<hex>   descriptor of a referrer
/// ```
///
/// Repository names cannot start with `_`, so a repository's directories never collide with the layout's own.
public enum StorageLayout {
    /// The directory that holds every upload.
    public static let uploads = StoragePath(["_uploads"])

    /// The directory for whole objects being written.
    public static let temporary = StoragePath(["_tmp"])

    /// The blob a path of `blob(_:in:)` names, or nil for any other path.
    public static func blobDigest(_ path: StoragePath) -> Digest? {
        let parts = path.components
        guard parts.count == 5, parts[1] == "blobs", let digest = Digest("\(parts[2]):\(parts[4])"),
            parts[3] == String(digest.hex.prefix(2))
        else { return nil }
        return digest
    }

    /// The directory of one upload.
    public static func upload(_ id: UploadID) -> StoragePath {
        uploads.appending(id.value)
    }

    /// The state record of one upload.
    public static func uploadState(_ id: UploadID) -> StoragePath {
        upload(id).appending("state")
    }

    /// The directory of a namespace's blobs.
    public static func blobs(_ namespace: Namespace) -> StoragePath {
        StoragePath([namespace.value, "blobs"])
    }

    /// The complete content of a blob.
    public static func blob(_ digest: Digest, in namespace: Namespace) -> StoragePath {
        StoragePath([namespace.value, "blobs", digest.algorithm.rawValue, String(digest.hex.prefix(2)), digest.hex])
    }

    /// The directory that holds every repository of a namespace.
    public static func repositories(_ namespace: Namespace) -> StoragePath {
        StoragePath([namespace.value, "repositories"])
    }

    /// The directory of one repository.
    public static func repository(_ name: RepositoryName, in namespace: Namespace) -> StoragePath {
        StoragePath([namespace.value, "repositories"] + name.components)
    }

    /// The link that says a blob belongs to a repository.
    public static func layerLink(_ digest: Digest, _ name: RepositoryName, in namespace: Namespace) -> StoragePath {
        repository(name, in: namespace).appending("_layers").appending(digest.algorithm.rawValue).appending(digest.hex)
    }

    /// The link that says a manifest belongs to a repository; it holds the manifest's media type.
    public static func manifestLink(_ digest: Digest, _ name: RepositoryName, in namespace: Namespace) -> StoragePath {
        repository(name, in: namespace).appending("_manifests").appending("revisions")
            .appending(digest.algorithm.rawValue).appending(digest.hex)
    }

    /// The directory of a repository's tags.
    public static func tags(_ name: RepositoryName, in namespace: Namespace) -> StoragePath {
        repository(name, in: namespace).appending("_manifests").appending("tags")
    }

    /// The record of one tag, holding the digest it points at.
    public static func tag(_ tag: Tag, _ name: RepositoryName, in namespace: Namespace) -> StoragePath {
        tags(name, in: namespace).appending(tag.value)
    }

    /// The directory of the referrers of one subject.
    public static func referrers(_ subject: Digest, _ name: RepositoryName, in namespace: Namespace) -> StoragePath {
        repository(name, in: namespace).appending("_referrers").appending(subject.algorithm.rawValue)
            .appending(subject.hex)
    }

    /// The descriptor of one referrer of a subject.
    public static func referrer(_ digest: Digest, of subject: Digest, _ name: RepositoryName, in namespace: Namespace)
        -> StoragePath
    {
        referrers(subject, name, in: namespace).appending("\(digest.algorithm.rawValue)-\(digest.hex)")
    }
}
