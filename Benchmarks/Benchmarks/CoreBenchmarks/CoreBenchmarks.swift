import Benchmark
import MinervaCore

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal, .instructions],
        warmupIterations: 100,
        scalingFactor: .kilo,
        maxDuration: .seconds(2)
    )

    // Looking a stream up by id: building the inline id from wire bytes and hashing it.
    Benchmark("StreamID from bytes + hash") { benchmark in
        let bytes: [UInt8] = Array("abcdefghijklmnopqrstuvwxyz".utf8)
        var table: [StreamID: Int] = [:]
        table[StreamID(bytes: bytes)!] = 1
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(table[StreamID(bytes: bytes)!])
        }
    }
}
