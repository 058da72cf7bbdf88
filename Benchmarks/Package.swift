// swift-tools-version: 6.1
// Micro-benchmarks (package-benchmark). A separate package so that users who depend on Minerva never
// resolve or build the benchmark tooling. Run with `swift package benchmark` in this folder, or
// `./dev.sh bench` from the repository root (which also runs the load comparison).
import PackageDescription

let package = Package(
    name: "MinervaBenchmarks",
    dependencies: [
        .package(name: "Minerva", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.0", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "CoreBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "MinervaCore", package: "Minerva"),
            ],
            path: "Benchmarks/CoreBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "ServerBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "MinervaCore", package: "Minerva"),
                .product(name: "MinervaIO", package: "Minerva"),
                .product(name: "MinervaHTTP", package: "Minerva"),
                .product(name: "MinervaServer", package: "Minerva"),
            ],
            path: "Benchmarks/ServerBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // The echo load generator used by run-load.sh (not under Benchmarks/, which the plugin runs).
        .systemLibrary(name: "CEpoll", path: "Tools/CEpoll"),
        .executableTarget(
            name: "minerva-load",
            dependencies: ["CEpoll", .product(name: "MinervaHTTP", package: "Minerva")],
            path: "Tools/minerva-load",
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
