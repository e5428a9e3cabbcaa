import Foundation
import Hashing

/// The result of running a command to completion.
struct CommandResult {
    let status: Int32
    let output: String
}

/// Runs a program with arguments, waits for it, and answers its exit status with standard output and error.
@discardableResult
func run(_ program: String, _ arguments: [String], environment: [String: String]? = nil, directory: String? = nil)
    throws -> CommandResult
{
    let process = Process()
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    process.executableURL = URL(fileURLWithPath: program.hasPrefix("/") ? program : "/usr/bin/env")
    process.arguments = program.hasPrefix("/") ? arguments : [program] + arguments
    if let environment {
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return CommandResult(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
}

/// An OCI image layout on disk, made from scratch with real tar layers, as skopeo and podman read it.
struct OCILayout {
    let path: String
    let manifestDigest: String

    static func make(at path: String, layers: Int, tag: String) throws -> OCILayout {
        let blobs = path + "/blobs/sha256"
        try FileManager.default.createDirectory(atPath: blobs, withIntermediateDirectories: true)
        func store(_ bytes: [UInt8]) throws -> [String: Any] {
            let digest = Digest.sha256(of: bytes)
            try Data(bytes).write(to: URL(fileURLWithPath: "\(blobs)/\(digest.hex)"))
            return ["digest": digest.description, "size": bytes.count]
        }

        var layerDescriptors: [[String: Any]] = []
        for index in 0..<layers {
            let source = path + "/layer\(index)"
            try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
            try Data(Fixture.randomBytes(50_000 * (index + 1))).write(
                to: URL(fileURLWithPath: "\(source)/file\(index)"))
            let tarball = path + "/layer\(index).tar"
            let result = try run("tar", ["-C", source, "-cf", tarball, "."])
            guard result.status == 0 else { throw POSIXError(.EIO) }
            var descriptor = try store(Array(try Data(contentsOf: URL(fileURLWithPath: tarball))))
            descriptor["mediaType"] = "application/vnd.oci.image.layer.v1.tar"
            layerDescriptors.append(descriptor)
            try FileManager.default.removeItem(atPath: source)
            try FileManager.default.removeItem(atPath: tarball)
        }
        let config: [String: Any] = [
            "architecture": "amd64", "os": "linux",
            "rootfs": ["type": "layers", "diff_ids": layerDescriptors.map { $0["digest"]! }],
        ]
        var configDescriptor = try store(
            Array(try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys])))
        configDescriptor["mediaType"] = "application/vnd.oci.image.config.v1+json"
        let manifest: [String: Any] = [
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": configDescriptor,
            "layers": layerDescriptors,
        ]
        let manifestBytes = Array(try JSONSerialization.data(withJSONObject: manifest, options: [.sortedKeys]))
        var manifestDescriptor = try store(manifestBytes)
        manifestDescriptor["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
        manifestDescriptor["annotations"] = ["org.opencontainers.image.ref.name": tag]
        let index: [String: Any] = ["schemaVersion": 2, "manifests": [manifestDescriptor]]
        try JSONSerialization.data(withJSONObject: index).write(to: URL(fileURLWithPath: path + "/index.json"))
        try Data("{\"imageLayoutVersion\":\"1.0.0\"}".utf8).write(to: URL(fileURLWithPath: path + "/oci-layout"))
        return OCILayout(path: path, manifestDigest: Digest.sha256(of: manifestBytes).description)
    }

    /// The layout's blobs, by file name, with their bytes.
    func blobs() throws -> [String: Data] {
        let directory = path + "/blobs/sha256"
        var result: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
            result[name] = try Data(contentsOf: URL(fileURLWithPath: "\(directory)/\(name)"))
        }
        return result
    }
}
