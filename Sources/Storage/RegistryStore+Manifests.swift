import Foundation
import Hashing

/// A stored manifest: its digest, media type and size.
public struct ManifestEntry: Sendable, Equatable {
    /// The digest of the manifest's bytes.
    public let digest: Digest
    /// The media type it was pushed with.
    public let mediaType: String
    /// The size of its bytes.
    public let size: Int64

    /// Describes a manifest.
    public init(digest: Digest, mediaType: String, size: Int64) {
        self.digest = digest
        self.mediaType = mediaType
        self.size = size
    }
}

extension RegistryStore {
    /// Stores a manifest byte-exact, links it into the repository, records its subject's referrer entry, and
    /// points `tag` at it when given.
    ///
    /// The bytes are written before any link to them, and the tag last, so a reader that finds the tag always
    /// finds the manifest.
    public func putManifest(
        _ bytes: [UInt8], digest: Digest, mediaType: String, in repository: RepositoryName, tag: Tag?,
        subject: Digest?, referrerDescriptor: [UInt8]?, namespace: Namespace = .local
    ) throws {
        try storeBlob(bytes, digest: digest, in: repository, namespace: namespace)

        var link = mediaType
        if let subject { link += "\n" + subject.description }
        try driver.write(StorageLayout.manifestLink(digest, repository, in: namespace), Array(link.utf8))

        if let subject, let referrerDescriptor {
            try driver.write(
                StorageLayout.referrer(digest, of: subject, repository, in: namespace), referrerDescriptor)
        }

        if let tag {
            try driver.write(StorageLayout.tag(tag, repository, in: namespace), Array(digest.description.utf8))
        }
    }

    /// Points an existing tag, or a new one, at a manifest the repository holds.
    public func retag(_ tag: Tag, to digest: Digest, in repository: RepositoryName, namespace: Namespace = .local)
        throws
    {
        try driver.write(StorageLayout.tag(tag, repository, in: namespace), Array(digest.description.utf8))
    }

    /// When a tag was last pointed at a manifest, or confirmed, or nil when there is no such tag.
    public func tagModified(_ tag: Tag, in repository: RepositoryName, namespace: Namespace = .local) throws -> Date? {
        try driver.info(StorageLayout.tag(tag, repository, in: namespace))?.modified
    }

    /// The digest a tag points at, or nil when the repository has no such tag.
    public func resolveTag(_ tag: Tag, in repository: RepositoryName, namespace: Namespace = .local) throws -> Digest? {
        let path = StorageLayout.tag(tag, repository, in: namespace)
        guard let bytes = try driver.read(path, limit: Self.recordLimit) else { return nil }
        guard let digest = Digest(String(decoding: bytes, as: UTF8.self)) else {
            throw StorageError(.corrupt, path: path.description)
        }
        return digest
    }

    /// The manifest the repository holds under `reference`, or nil when it holds none.
    public func manifest(_ reference: Reference, in repository: RepositoryName, namespace: Namespace = .local) throws
        -> ManifestEntry?
    {
        let digest: Digest
        switch reference {
        case .digest(let named): digest = named
        case .tag(let tag):
            guard let resolved = try resolveTag(tag, in: repository, namespace: namespace) else { return nil }
            digest = resolved
        }
        guard let link = try manifestLink(digest, in: repository, namespace: namespace),
            let size = try driver.info(StorageLayout.blob(digest, in: namespace))?.size
        else { return nil }
        return ManifestEntry(digest: digest, mediaType: link.mediaType, size: size)
    }

    /// Whether the repository holds a manifest with this digest.
    public func hasManifest(_ digest: Digest, in repository: RepositoryName, namespace: Namespace = .local) throws
        -> Bool
    {
        try driver.info(StorageLayout.manifestLink(digest, repository, in: namespace)) != nil
    }

    /// Opens the bytes of a manifest or blob of the namespace by digest.
    public func openContent(_ digest: Digest, namespace: Namespace = .local) throws -> (any ObjectReader)? {
        try driver.openReader(StorageLayout.blob(digest, in: namespace))
    }

    /// Reads a whole manifest by digest.
    public func manifestBytes(_ digest: Digest, namespace: Namespace = .local, limit: Int) throws -> [UInt8]? {
        try driver.read(StorageLayout.blob(digest, in: namespace), limit: limit)
    }

    /// Removes a manifest from the repository with every tag that points at it and its referrer entry; answers
    /// false when the repository did not hold it.
    public func deleteManifest(_ digest: Digest, in repository: RepositoryName, namespace: Namespace = .local) throws
        -> Bool
    {
        guard let link = try manifestLink(digest, in: repository, namespace: namespace) else { return false }
        for tag in try tags(in: repository, namespace: namespace)
        where try resolveTag(tag, in: repository, namespace: namespace) == digest {
            try driver.delete(StorageLayout.tag(tag, repository, in: namespace))
        }
        if let subject = link.subject {
            try driver.delete(StorageLayout.referrer(digest, of: subject, repository, in: namespace))
        }
        try driver.delete(StorageLayout.manifestLink(digest, repository, in: namespace))
        try driver.delete(StorageLayout.layerLink(digest, repository, in: namespace))
        return true
    }

    /// Removes a tag, leaving the manifest; answers false when there was no such tag.
    public func deleteTag(_ tag: Tag, in repository: RepositoryName, namespace: Namespace = .local) throws -> Bool {
        let path = StorageLayout.tag(tag, repository, in: namespace)
        guard try driver.info(path) != nil else { return false }
        try driver.delete(path)
        return true
    }

    /// The repository's tags, sorted.
    public func tags(in repository: RepositoryName, namespace: Namespace = .local) throws -> [Tag] {
        try driver.list(StorageLayout.tags(repository, in: namespace)).compactMap(Tag.init).sorted()
    }

    /// The stored descriptors of the manifests whose subject is `subject`, in digest order.
    public func referrers(of subject: Digest, in repository: RepositoryName, namespace: Namespace = .local) throws
        -> [[UInt8]]
    {
        let directory = StorageLayout.referrers(subject, repository, in: namespace)
        return try driver.list(directory).sorted().compactMap { name in
            try driver.read(directory.appending(name), limit: Self.recordLimit)
        }
    }

    /// Every repository of the namespace that holds anything, sorted.
    public func repositories(namespace: Namespace = .local) throws -> [RepositoryName] {
        var found: [RepositoryName] = []
        try collectRepositories(under: StorageLayout.repositories(namespace), prefix: [], into: &found)
        return found.sorted()
    }

    private func collectRepositories(under directory: StoragePath, prefix: [String], into found: inout [RepositoryName])
        throws
    {
        let names = try driver.list(directory)
        if !prefix.isEmpty, names.contains(where: { $0 == "_manifests" || $0 == "_layers" }),
            let name = RepositoryName(prefix.joined(separator: "/"))
        {
            found.append(name)
        }
        for name in names where !name.hasPrefix("_") {
            try collectRepositories(under: directory.appending(name), prefix: prefix + [name], into: &found)
        }
    }

    private func manifestLink(_ digest: Digest, in repository: RepositoryName, namespace: Namespace) throws
        -> (mediaType: String, subject: Digest?)?
    {
        let path = StorageLayout.manifestLink(digest, repository, in: namespace)
        guard let bytes = try driver.read(path, limit: Self.recordLimit) else { return nil }
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        return (String(lines[0]), lines.count > 1 ? Digest(lines[1]) : nil)
    }
}
