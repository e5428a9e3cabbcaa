import Foundation
import Hashing

/// The media types of manifests this registry stores.
enum ManifestMediaType {
    /// The Docker image manifest of schema 2.
    static let dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
    /// The Docker manifest list, schema 2's index of images for several platforms.
    static let dockerList = "application/vnd.docker.distribution.manifest.list.v2+json"
    /// The OCI image manifest.
    static let ociManifest = "application/vnd.oci.image.manifest.v1+json"
    /// The OCI image index.
    static let ociIndex = "application/vnd.oci.image.index.v1+json"
    /// The Docker schema 1 types, which are refused.
    static let schema1 = [
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    ]
}

/// A content descriptor inside a manifest.
struct Descriptor {
    /// The media type of the content described.
    let mediaType: String
    /// The content's digest.
    let digest: Digest
    /// The content's size in bytes.
    let size: Int64
    /// Other places the content can be fetched from; empty when none are given.
    let urls: [String]
    /// The artifact type the descriptor declares, if any.
    let artifactType: String?
    /// The descriptor's annotations, if any.
    let annotations: [String: Any]?
}

/// The parts of a pushed manifest the registry checks and indexes.
struct ManifestDocument {
    /// The media type the manifest is stored and served with.
    let mediaType: String
    /// The blobs an image manifest needs: its config and layers.
    let blobs: [Descriptor]
    /// The manifests an index lists.
    let manifests: [Descriptor]
    /// The manifest this one refers to, for the referrers API.
    let subject: Descriptor?
    /// The artifact type reported to referrers listings.
    let artifactType: String?
    /// The manifest's annotations.
    let annotations: [String: Any]?

    /// Parses and checks a pushed manifest; `contentType` is the request's `Content-Type` without parameters.
    static func parse(_ bytes: [UInt8], contentType: String?) throws(RegistryError) -> ManifestDocument {
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)), let root = object as? [String: Any]
        else { throw RegistryError(.manifestInvalid, "the manifest is not a JSON object") }

        let declared = root["mediaType"] as? String
        let contentType = contentType.flatMap { $0.isEmpty ? nil : $0 }
        if let schemaVersion = root["schemaVersion"] as? Int, schemaVersion == 1 {
            throw RegistryError(.manifestInvalid, "schema 1 manifests are not supported; push schema 2 or OCI")
        }
        if let type = contentType ?? declared, ManifestMediaType.schema1.contains(type) {
            throw RegistryError(.manifestInvalid, "schema 1 manifests are not supported; push schema 2 or OCI")
        }
        guard root["schemaVersion"] as? Int == 2 else {
            throw RegistryError(.manifestInvalid, "schemaVersion must be 2")
        }
        if let declared, let contentType, declared != contentType {
            throw RegistryError(.manifestInvalid, "mediaType \(declared) differs from Content-Type \(contentType)")
        }

        let mediaType: String
        if let type = contentType ?? declared {
            mediaType = type
        } else if root["manifests"] != nil {
            mediaType = ManifestMediaType.ociIndex
        } else {
            mediaType = ManifestMediaType.ociManifest
        }

        let subject = try root["subject"].map { value throws(RegistryError) in try descriptor(value, field: "subject") }
        let annotations = root["annotations"] as? [String: Any]
        switch mediaType {
        case ManifestMediaType.dockerManifest, ManifestMediaType.ociManifest:
            guard let configValue = root["config"] else { throw RegistryError(.manifestInvalid, "config is missing") }
            let config = try descriptor(configValue, field: "config")
            guard let layerValues = root["layers"] as? [Any] else {
                throw RegistryError(.manifestInvalid, "layers must be a list")
            }
            var layers: [Descriptor] = []
            for (index, value) in layerValues.enumerated() {
                layers.append(try descriptor(value, field: "layers[\(index)]"))
            }
            let artifactType = root["artifactType"] as? String ?? config.mediaType
            return ManifestDocument(
                mediaType: mediaType, blobs: [config] + layers, manifests: [], subject: subject,
                artifactType: artifactType, annotations: annotations)
        case ManifestMediaType.dockerList, ManifestMediaType.ociIndex:
            guard let values = root["manifests"] as? [Any] else {
                throw RegistryError(.manifestInvalid, "manifests must be a list")
            }
            var manifests: [Descriptor] = []
            for (index, value) in values.enumerated() {
                manifests.append(try descriptor(value, field: "manifests[\(index)]"))
            }
            return ManifestDocument(
                mediaType: mediaType, blobs: [], manifests: manifests, subject: subject,
                artifactType: root["artifactType"] as? String, annotations: annotations)
        default:
            throw RegistryError(.manifestInvalid, "unsupported manifest media type \(mediaType)")
        }
    }

    private static func descriptor(_ value: Any, field: String) throws(RegistryError) -> Descriptor {
        guard let object = value as? [String: Any], let mediaType = object["mediaType"] as? String,
            let digestText = object["digest"] as? String, let size = (object["size"] as? NSNumber)?.int64Value
        else { throw RegistryError(.manifestInvalid, "\(field) must have mediaType, digest and size") }
        guard let digest = Digest(digestText) else {
            throw RegistryError(.manifestInvalid, "\(field).digest is not a valid digest")
        }
        guard size >= 0 else { throw RegistryError(.manifestInvalid, "\(field).size is negative") }
        return Descriptor(
            mediaType: mediaType, digest: digest, size: size, urls: object["urls"] as? [String] ?? [],
            artifactType: object["artifactType"] as? String, annotations: object["annotations"] as? [String: Any])
    }
}
