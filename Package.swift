// swift-tools-version: 6.1
import PackageDescription

/// Every target is in Swift 6 language mode (the concurrency contract is checked by the compiler).
let swift6: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "Minerva",
    products: [
        .library(name: "MinervaCore", targets: ["MinervaCore"]),
        .library(name: "MinervaIO", targets: ["MinervaIO"]),
        .library(name: "MinervaHTTP", targets: ["MinervaHTTP"]),
        .library(name: "MinervaServer", targets: ["MinervaServer"]),
        .library(name: "MinervaClient", targets: ["MinervaClient"]),
        .library(name: "MinervaJSON", targets: ["MinervaJSON"]),
        .library(name: "MinervaCluster", targets: ["MinervaCluster"]),
        .executable(name: "minerva-demo", targets: ["minerva-demo"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.0.0"),
        // `swift package generate-documentation` (DocC catalogs of MinervaServer and MinervaClient).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
    ],
    targets: [
        // The only C the Swift code sees: libev + http-parser (Debian libev-dev, libhttp-parser-dev)
        // plus a few small helpers that need _GNU_SOURCE. Only MinervaIO and MinervaHTTP import it.
        .target(
            name: "CShims",
            path: "CShims",
            linkerSettings: [.linkedLibrary("ev"), .linkedLibrary("http_parser")]
        ),
        // The Minerva protocol, pure: no sockets, no clocks, no Foundation, no CShims.
        .target(name: "MinervaCore", swiftSettings: swift6),
        // Event loops, timers, the one TCP connection type, listeners, cross-loop messages. No HTTP, no Minerva.
        .target(
            name: "MinervaIO",
            dependencies: ["CShims", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swift6
        ),
        // One http-parser wrapper (requests and responses), the HTTP/1.1 server and router, static files.
        .target(
            name: "MinervaHTTP",
            dependencies: [
                "CShims", "MinervaIO", .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swift6
        ),
        // The Minerva endpoint: transports, the engine of each loop, the application API.
        .target(
            name: "MinervaServer",
            dependencies: [
                "MinervaCore", "MinervaIO", "MinervaHTTP",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swift6
        ),
        // A cluster of servers on Redis (membership, stream ownership, relay between nodes) and publish/subscribe
        // channels (in-process across loops, across nodes through Redis). Above the endpoint; its own RESP client.
        .target(
            name: "MinervaCluster",
            dependencies: [
                "MinervaServer", "MinervaHTTP", "MinervaIO", "MinervaCore",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swift6
        ),
        // The Swift client: MinervaCore's client state machine over MinervaIO and MinervaHTTP (not the server).
        .target(
            name: "MinervaClient",
            dependencies: ["MinervaCore", "MinervaIO", "MinervaHTTP"],
            swiftSettings: swift6
        ),
        // Codable values as restricted strings (the asciify rule); Foundation's JSON coders, off the hot path.
        .target(name: "MinervaJSON", dependencies: ["MinervaCore"], swiftSettings: swift6),
        // The demo server and its demo protocol: thin, only wiring.
        .executableTarget(
            name: "minerva-demo",
            dependencies: [
                "MinervaCluster", "MinervaServer", "MinervaHTTP", "MinervaIO", "MinervaCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swift6
        ),
        // Fuzz targets over the parsers of untrusted bytes: libFuzzer with `./dev.sh fuzz`, seeded inputs otherwise.
        .executableTarget(
            name: "minerva-fuzz",
            dependencies: ["MinervaHTTP", "MinervaCore"],
            swiftSettings: swift6
        ),
        // Helpers shared by the test targets (seeded RNG, test hellos, raw client, test servers), written once.
        .target(
            name: "MinervaTestSupport",
            dependencies: [
                "MinervaCore", "MinervaIO", "MinervaHTTP", "MinervaServer",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/MinervaTestSupport",
            swiftSettings: swift6
        ),
        // One test target per layer; each depends on the layer it tests (+ MinervaTestSupport). See Tests/README.md.
        .testTarget(
            name: "MinervaCoreTests",
            dependencies: [
                "MinervaCore", "MinervaTestSupport",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: swift6
        ),
        .testTarget(
            name: "MinervaJSONTests",
            dependencies: ["MinervaJSON", "MinervaCore"],
            swiftSettings: swift6
        ),
        .testTarget(
            name: "MinervaIOTests",
            dependencies: ["MinervaIO", "CShims", "MinervaTestSupport"],
            swiftSettings: swift6
        ),
        .testTarget(
            name: "MinervaHTTPTests",
            dependencies: [
                "MinervaHTTP", "MinervaIO", "MinervaTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swift6
        ),
        .testTarget(
            name: "MinervaServerTests",
            dependencies: [
                "MinervaServer", "MinervaHTTP", "MinervaIO", "MinervaCore", "minerva-demo", "MinervaTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            swiftSettings: swift6
        ),
        .testTarget(
            name: "MinervaClusterTests",
            dependencies: [
                "MinervaCluster", "MinervaServer", "MinervaHTTP", "MinervaIO", "MinervaCore", "MinervaTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swift6
        ),
        .testTarget(
            name: "MinervaClientTests",
            dependencies: [
                "MinervaClient", "MinervaServer", "MinervaHTTP", "MinervaIO", "MinervaCore", "minerva-demo",
                "MinervaTestSupport",
            ],
            swiftSettings: swift6
        ),
    ]
)
