// Each loop reports its engine's counters to swift-metrics (here the test backend of swift-metrics) every
// `metricsInterval` seconds.
import Glibc
import MetricsTestKit
import MinervaCore
import MinervaTestSupport
import Testing

@testable import MinervaServer

@Suite("Metrics through swift-metrics")
struct MinervaMetricsTests {
    @Test func countersAndGaugesFollowTheTraffic() throws {
        let metrics = TestMetrics()
        let server = try MinervaTestServer(configure: {
            $0.metricsInterval = 0.05
            $0.heapTrimInterval = 0.05  // the heap check records the heap gauges
            $0.metricsFactory = metrics
        })
        defer { server.stop() }
        let first = try server.post(hh("-eeds") + "\n0N\na \nb \n")
        #expect(first.text.hasPrefix(";)]}^\nC\n"))
        _ = server.withStream { stream in try? stream.send("x") }
        let bad = try server.post(hh("-new", "tnum:1", "-eeds") + "\nnot a frame\n")
        #expect(bad.text.contains("invalid_frame_type_or_argumentsK"))

        func value(_ label: String, _ dimensions: [(String, String)] = []) -> Int64 {
            (try? metrics.expectCounter(label, dimensions).totalValue) ?? -1
        }
        func heapReported() -> Bool {
            (try? metrics.expectGauge("minerva_heap_bytes", [("state", "in_use")])) != nil
        }
        var waited = 0.0
        // Each loop reports on its own timer, and one loop's heap check on another: wait for both.
        while (value("minerva_strings_received_total") < 2 || !heapReported()) && waited < 5 {
            usleep(20_000)
            waited += 0.02
        }
        #expect(value("minerva_streams_created_total") == 1)
        #expect(value("minerva_strings_received_total") == 2)
        #expect(value("minerva_transports_opened_total", [("kind", "http")]) == 2)
        #expect(value("minerva_transport_kills_total", [("reason", "invalid_frame_type_or_arguments")]) == 1)
        #expect(value("minerva_transport_kills_total", [("reason", "rwin_overflow")]) == 0)
        let streams = (0..<server.threads).compactMap {
            try? metrics.expectGauge("minerva_streams", [("loop", String($0))]).lastValue
        }
        #expect(streams.reduce(0, +) == 1)
        let queued = (0..<server.threads).compactMap {
            try? metrics.expectGauge("minerva_queued_bytes", [("loop", String($0))]).lastValue
        }
        #expect(queued.reduce(0, +) == 1)
        // The process's heap, from the heap check of one loop: in use is at least what this test allocated (the server's tables and
        // buffers are far more than 64 KiB), and the free figure is reported too.
        let inUse = try metrics.expectGauge("minerva_heap_bytes", [("state", "in_use")]).lastValue ?? 0
        // Under AddressSanitizer or ThreadSanitizer malloc is the sanitizer's own, and glibc's mallinfo2 reports
        // zeros (scripts/sanitize.sh).
        let sanitized = dlsym(nil, "__asan_init") != nil || dlsym(nil, "__tsan_init") != nil
        #expect(sanitized || inUse > 65_536)
        #expect((try? metrics.expectGauge("minerva_heap_bytes", [("state", "free")]).lastValue) != nil)
    }
}
