// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "buildset-registry",
    products: [
        .executable(name: "buildset-registry", targets: ["buildset-registry"])
    ],
    targets: [
        .systemLibrary(name: "CMicroHTTPD", pkgConfig: "libmicrohttpd"),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl"),
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto"),
        .systemLibrary(name: "CYAML", pkgConfig: "yaml-0.1"),
        .systemLibrary(name: "CLinux"),

        .target(name: "Logging"),
        .target(name: "Hashing", dependencies: ["CCrypto"]),
        .target(name: "HTTPServer", dependencies: ["CMicroHTTPD", "Logging"]),
        .target(name: "HTTPClient", dependencies: ["CCurl"]),
        .target(name: "Config", dependencies: ["CYAML"]),
        .target(name: "Upstream", dependencies: ["Config", "HTTPClient", "Hashing", "Logging"]),
        .target(name: "Storage", dependencies: ["CLinux", "Hashing", "Logging"]),
        .target(
            name: "Registry", dependencies: ["HTTPServer", "Storage", "Config", "Hashing", "Logging", "Upstream"]),
        .executableTarget(name: "buildset-registry", dependencies: ["Registry", "Config", "Logging"]),

        .testTarget(
            name: "BuildsetRegistryTests",
            dependencies: [
                "Registry", "Storage", "Config", "Hashing", "HTTPServer", "HTTPClient", "Logging", "Upstream",
            ]
        ),
    ]
)
