// Metrics through swift-metrics: each loop's driver reads its engine's counters (plain integers, no atomics on the
// hot path) every `metricsInterval` seconds and reports the differences. Whatever backend the application bootstraps
// (Prometheus in the demo) receives them; without one, swift-metrics drops them.
import Metrics
import MinervaCore

/// The metrics of one loop's engine. Loop thread only.
final class MinervaEngineMetrics {
    private var last = EngineCounters()
    private let streamsCreated: Counter
    private let resets: [Counter]  // application, peer, idle, other
    private let transportsOpened: [Counter]  // http, socket
    private let stringsReceived: Counter
    private let stringsSent: Counter
    private let stringsRetransmitted: Counter
    private let sackHoles: Counter
    private let kills: [Counter]  // KillReason.allCases order
    private let streams: Gauge
    private let transports: Gauge
    private let queuedBytes: Gauge
    private let timerEntries: Gauge
    private let heap: (inUse: Gauge, free: Gauge)?  // the process's, recorded by the heap check's loop only

    /// - Parameters:
    ///   - loop: the loop's index, a dimension of the gauges (each loop reports its own).
    ///   - recordsHeap: whether this loop runs the endpoint's heap check and so reports the `minerva_heap_bytes` gauges.
    ///   - factory: the metrics backend.
    init(loop: Int, recordsHeap: Bool = false, factory: any MetricsFactory) {
        let loopDimension = [("loop", String(loop))]
        streamsCreated = Counter(label: "minerva_streams_created_total", factory: factory)
        resets = ["application", "peer", "idle", "other"].map {
            Counter(label: "minerva_stream_resets_total", dimensions: [("cause", $0)], factory: factory)
        }
        transportsOpened = ["http", "socket"].map {
            Counter(label: "minerva_transports_opened_total", dimensions: [("kind", $0)], factory: factory)
        }
        stringsReceived = Counter(label: "minerva_strings_received_total", factory: factory)
        stringsSent = Counter(label: "minerva_strings_sent_total", factory: factory)
        stringsRetransmitted = Counter(label: "minerva_strings_retransmitted_total", factory: factory)
        sackHoles = Counter(label: "minerva_sack_holes_total", factory: factory)
        kills = KillReason.allCases.map {
            Counter(label: "minerva_transport_kills_total", dimensions: [("reason", $0.rawValue)], factory: factory)
        }
        streams = Gauge(label: "minerva_streams", dimensions: loopDimension, factory: factory)
        transports = Gauge(label: "minerva_transports", dimensions: loopDimension, factory: factory)
        queuedBytes = Gauge(label: "minerva_queued_bytes", dimensions: loopDimension, factory: factory)
        timerEntries = Gauge(label: "minerva_timer_entries", dimensions: loopDimension, factory: factory)
        heap =
            recordsHeap
            ? (
                Gauge(label: "minerva_heap_bytes", dimensions: [("state", "in_use")], factory: factory),
                Gauge(label: "minerva_heap_bytes", dimensions: [("state", "free")], factory: factory)
            ) : nil
    }

    /// Records the process heap's figures (from the heap check, every `heapTrimInterval`).
    func recordHeap(inUse: Int, free: Int) {
        heap?.inUse.record(inUse)
        heap?.free.record(free)
    }

    /// Reports what changed since the last call.
    func report(_ engine: MinervaServerEngine) {
        let now = engine.counters
        func add(_ counter: Counter, _ value: Int, _ previous: Int) {
            if value > previous { counter.increment(by: value - previous) }
        }
        add(streamsCreated, now.streamsCreated, last.streamsCreated)
        add(resets[0], now.resetsByApplication, last.resetsByApplication)
        add(resets[1], now.resetsByPeer, last.resetsByPeer)
        add(resets[2], now.resetsIdle, last.resetsIdle)
        add(resets[3], now.resetsOther, last.resetsOther)
        add(transportsOpened[0], now.httpTransportsOpened, last.httpTransportsOpened)
        add(transportsOpened[1], now.socketTransportsOpened, last.socketTransportsOpened)
        add(stringsReceived, now.stringsReceived, last.stringsReceived)
        add(stringsSent, now.stringsSent, last.stringsSent)
        add(stringsRetransmitted, now.stringsRetransmitted, last.stringsRetransmitted)
        add(sackHoles, now.sackHoles, last.sackHoles)
        for index in kills.indices { add(kills[index], now.kills[index], last.kills[index]) }
        streams.record(engine.streamCount)
        transports.record(engine.transportCount)
        queuedBytes.record(now.queuedBytes)
        timerEntries.record(engine.transportTimerCount)
        last = now
    }
}
