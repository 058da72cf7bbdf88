// Micro-benchmarks of MinervaCore. Allocation counts (malloc total) are deterministic and are the figures to
// gate on; wall-clock times are for comparison within one run. With `scalingFactor: .kilo`, each measured
// sample runs 1,000 iterations, so "per iteration" = reported value / 1,000.
import Benchmark
import MinervaCore

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal],
        warmupIterations: 10,
        scalingFactor: .kilo,
        maxDuration: .seconds(2)
    )

    // Looking a stream up by id: building the inline id from wire bytes and hashing it.
    Benchmark("StreamID from bytes + dictionary lookup") { benchmark in
        let bytes: [UInt8] = Array("abcdefghijklmnopqrstuvwxyz".utf8)
        var table: [StreamID: Int] = [:]
        table[StreamID(bytes: bytes)!] = 1
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(table[StreamID(bytes: bytes)!])
        }
    }

    Benchmark("Decode string frame (64 bytes, C2S)") { benchmark in
        let frame = ArraySlice(Array(String(repeating: "x", count: 64).utf8) + [UInt8(ascii: " ")])
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(Frame.decode(frame, direction: .clientToServer))
        }
    }

    Benchmark("Encode string frame (64 bytes) into a reused buffer") { benchmark in
        let payload = ArraySlice(Array(String(repeating: "x", count: 64).utf8))
        var buffer: [UInt8] = []
        buffer.reserveCapacity(256)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            buffer.removeAll(keepingCapacity: true)
            Frame.string(payload).encode(into: &buffer)
            blackHole(buffer.count)
        }
    }

    Benchmark("Decode + encode SACK frame 1,4,9|2A") { benchmark in
        let frame = ArraySlice(Array("1,4,9|2A".utf8))
        var buffer: [UInt8] = []
        buffer.reserveCapacity(64)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            buffer.removeAll(keepingCapacity: true)
            if case .success(let decoded) = Frame.decode(frame, direction: .clientToServer) {
                decoded.encode(into: &buffer)
            }
            blackHole(buffer.count)
        }
    }

    // The hello the original client sends on its first long-poll (PROTOCOL.md 7.3).
    Benchmark("Parse the original client's first hello") { benchmark in
        let hello = Array(
            (#"{"tnum":0,"ver":2,"format":2,"new":true,"id":"k2j3h4k5j6h7k8j9h0k1j2h3","ming":false,"#
                + #""maxb":300000,"maxt":25,"maxia":0,"tcpack":false,"eeds":null,"sack":"|-1","seenack":"|-1"}H"#)
                .utf8)
        let slice = ArraySlice(hello)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(Frame.decode(slice, direction: .clientToServer))
        }
    }
}
