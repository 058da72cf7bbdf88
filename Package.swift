// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Minerva",
    products: [
        .library(name: "MinervaCore", targets: ["MinervaCore"]),
        .library(name: "MinervaServer", targets: ["MinervaServer"]),
        .library(name: "MinervaClient", targets: ["MinervaClient"]),
        .executable(name: "minerva-demo", targets: ["minerva-demo"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.0"),
    ],
    targets: [
        // The only C the Swift code sees: libev + http-parser (Debian libev-dev, libhttp-parser-dev)
        // plus a few small helpers that need _GNU_SOURCE. Only MinervaServer imports it.
        .target(
            name: "CShims",
            path: "CShims",
            linkerSettings: [.linkedLibrary("ev"), .linkedLibrary("http_parser")]
        ),
        // The Minerva protocol, pure: no sockets, no clocks, no Foundation, no CShims.
        .target(name: "MinervaCore"),
        // Event loop, HTTP/1.1 server, Minerva transports.
        .target(
            name: "MinervaServer",
            dependencies: [
                "CShims", "MinervaCore",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        // The Swift client: MinervaCore's client state machine on a MinervaServer event loop.
        .target(
            name: "MinervaClient",
            dependencies: ["MinervaCore", "MinervaServer"],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        .executableTarget(
            name: "minerva-demo",
            dependencies: [
                "MinervaServer", "MinervaCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        .testTarget(
            name: "MinervaCoreTests",
            dependencies: [
                "MinervaCore",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(
            name: "MinervaClientTests",
            dependencies: ["MinervaClient", "MinervaServer", "MinervaCore"],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        .testTarget(
            name: "MinervaServerTests",
            dependencies: ["MinervaServer", "MinervaCore", "CShims"],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
    ]
)
