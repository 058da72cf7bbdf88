// Randomised runs of the engine against a small client model over socket transports that come and go: strings
// are duplicated, reordered, dropped with their transport, and both directions must still deliver every string
// exactly once, in order. Deterministic: each seed replays the same run.

import MinervaTestSupport
import Testing

@testable import MinervaCore

@Suite struct ServerRandomizedTests {
    @Test(arguments: 0..<40)
    func clientToServerExactlyOnceInOrder(seed: Int) {
        var rng = SeededGenerator(seed: UInt64(seed))
        var configuration = ServerEngineConfiguration()
        configuration.maxTransportsPerStream = 1000  // half of the uploaders are never closed
        let h = Harness(configuration: configuration)
        let total: Int64 = 120
        var acked: Int64 = -1
        var tnum = 0
        let first = h.socket()
        h.send(first, [hs()])
        _ = h.out(first)
        for _ in 0..<60 where acked < total - 1 {
            tnum += 1
            let t = h.socket()
            h.send(t, [hs("-new", "tnum:\(tnum)")])
            for _ in 0..<Int.random(in: 1...3, using: &rng) where acked < total - 1 {
                var frames: [String] = []
                for _ in 0..<Int.random(in: 1...8, using: &rng) {
                    let low = acked + 1
                    let seq = Int64.random(in: low...min(total - 1, low + 60), using: &rng)
                    frames += ["\(seq)N", "string\(seq) "]
                    if Bool.random(using: &rng) { frames += ["\(seq)N", "string\(seq) "] }  // duplicate
                }
                h.send(t, frames)
                for frame in h.out(t) where frame.hasSuffix("A") {
                    let ack = frame.dropLast().split(separator: "|", omittingEmptySubsequences: false).last!
                    acked = max(acked, Int64(ack)!)
                }
            }
            if Bool.random(using: &rng) { h.engine.transportClosed(t, now: h.now) }
        }
        // Finally everything still unacknowledged, in order, on a fresh transport.
        let last = h.socket()
        h.send(last, [hs("-new", "tnum:\(tnum + 1)"), "\(acked + 1)N"] + (acked + 1..<total).map { "string\($0) " })
        #expect(h.app.allStrings == (0..<total).map { "string\($0)" })
        #expect(h.out(last).last == "|\(total - 1)A")
    }

    @Test(arguments: 0..<40)
    func serverToClientExactlyOnceInOrder(seed: Int) throws {
        var rng = SeededGenerator(seed: UInt64(seed) &+ 1000)
        let h = Harness()
        var window = ReceiveWindow(
            limits: ReceiveWindowLimits(maxUndeliveredStrings: 1000, maxUndeliveredBytes: 1 << 30, overheadPerString: 0)
        )
        var received: [String] = []
        var sent = 0
        var tnum = 0
        var current: TransportHandle?

        var nextSeq: [TransportHandle: Int64] = [:]  // per transport, across reads
        func read(_ t: TransportHandle, keep: Bool) {
            var next = nextSeq[t] ?? 0
            defer { nextSeq[t] = next }
            var batch: [(Int64, ArraySlice<UInt8>)] = []
            for frame in h.out(t) {
                if frame.hasSuffix("N") {
                    next = Int64(frame.dropLast())!
                } else if frame.hasSuffix(" ") {
                    batch.append((next, Array(frame.dropLast().utf8)[...]))
                    next += 1
                }
            }
            if keep {
                batch.sort { $0.0 < $1.0 }
                _ = window.receive(batch) { received.append(String(decoding: $0, as: UTF8.self)) }
            }
        }

        let first = h.socket()
        h.send(first, [hs("eeds:null")])
        current = first
        let stream = h.stream!
        for _ in 0..<80 {
            switch Int.random(in: 0..<10, using: &rng) {
            case 0...3:
                try h.app {
                    for _ in 0..<Int.random(in: 1...4, using: &rng) {
                        try stream.send("s2c\(sent)")
                        sent += 1
                    }
                }
            case 4, 5:
                if let t = current { h.send(t, [window.sack.description + "A"]) }
            case 6, 7:
                // A new primary; the old one's in-flight output is lost half of the time.
                if let t = current { read(t, keep: Bool.random(using: &rng)) }
                tnum += 1
                let t = h.socket()
                let eeds = Bool.random(using: &rng) ? "eeds:null" : "eeds:\(tnum - 1)"
                h.send(t, [hs("-new", "tnum:\(tnum)", eeds, "sack:\"\(window.sack.description)\"")])
                current = t
            case 8:
                if let t = current {
                    read(t, keep: true)
                    h.engine.transportClosed(t, now: h.now)
                    current = nil
                }
            default:
                if let t = current { read(t, keep: true) }
            }
        }
        if let t = current { read(t, keep: true) }
        tnum += 1
        let final = h.socket()
        h.send(final, [hs("-new", "tnum:\(tnum)", "eeds:null", "sack:\"\(window.sack.description)\"")])
        read(final, keep: true)
        #expect(received == (0..<sent).map { "s2c\($0)" })
        h.send(final, [window.sack.description + "A"])
        #expect(stream.queuedCount == 0)
    }
}

/// Random event sequences (valid, invalid and hostile frames; app sends and resets; aborts; timers) must never
/// trap, never write after finishing, and must leave no stream or transport behind once everything is closed.
@Suite struct ServerChaosTests {
    private static let vocabulary: [String] = [
        "string ", "string ", "string ", "string ", "string ", "string ", "0N", "5N", "2N", "|0A", "|-1A", "3|1A",
        "|1A", "1,2|0A", "string ", "string ", "string ", "string ", "|999A", "x|0!", "?", "", "C", "beat^",
        "bad\u{7f} ", "9007199254740992N", "{}H",
    ]

    @Test(arguments: 0..<60)
    func randomEventsNeverTrapOrLeak(seed: Int) throws {
        var rng = SeededGenerator(seed: UInt64(seed) &* 7919 &+ 17)
        var configuration = ServerEngineConfiguration()
        configuration.socketCloseGracePeriod = 5
        configuration.maxQueuedBytesPerStream = 400
        configuration.resetStreamMemory = 0
        let h = Harness(configuration: configuration)
        let appRandom = RandomBox(SeededGenerator(seed: UInt64(seed) &+ 99))
        h.configure = { recorder in
            recorder.onStrings = { stream, strings in
                for string in strings where Int.random(in: 0..<4, using: &appRandom.generator) == 0 {
                    try? stream.send(string)
                }
                if Int.random(in: 0..<40, using: &appRandom.generator) == 0 { try? stream.reset(reason: "chaos") }
            }
        }
        let ids = (0..<3).map { String(repeating: "abc"[String.Index(utf16Offset: $0, in: "abc")], count: 22) }
        var open: [TransportHandle] = []
        var httpOpen: Set<TransportHandle> = []
        for _ in 0..<200 {
            switch Int.random(in: 0..<12, using: &rng) {
            case 0, 1:
                let id = ids.randomElement(using: &rng)!
                var edits = ["id:\"\(id)\"", "tnum:\(Int.random(in: 0..<5, using: &rng))"]
                if Bool.random(using: &rng) { edits.append("-new") }
                if Bool.random(using: &rng) { edits.append("eeds:null") }
                if Int.random(in: 0..<3, using: &rng) == 0 {
                    edits.append("maxia:\(Int.random(in: 1...3, using: &rng))")
                }
                var frames = [hsList(edits)]
                for _ in 0..<Int.random(in: 0...4, using: &rng) {
                    frames.append(Self.vocabulary.randomElement(using: &rng)!)
                }
                if Bool.random(using: &rng) {
                    let t = h.socket()
                    open.append(t)
                    h.send(t, frames)
                } else {
                    edits.append("ming:\(Int.random(in: 0...1, using: &rng))")
                    frames[0] = hsList(edits + ["format:2", "maxt:\(Int.random(in: 0...5, using: &rng))"])
                    let t = h.post(frames.map { $0 + "\n" }.joined())
                    httpOpen.insert(t)
                }
            case 2, 3, 4:
                if let t = open.randomElement(using: &rng) {
                    h.send(
                        t,
                        (0..<Int.random(in: 1...4, using: &rng)).map { _ in Self.vocabulary.randomElement(using: &rng)!
                        })
                }
            case 5:
                if let t = open.randomElement(using: &rng) {
                    h.engine.transportClosed(t, now: h.now)
                    open.removeAll { $0 == t }
                }
            case 6:
                if let t = httpOpen.randomElement(using: &rng) {
                    h.engine.transportClosed(t, now: h.now)
                    httpOpen.remove(t)
                }
            case 7, 8:
                h.advance(to: h.now + Double.random(in: 0...3, using: &rng))
            case 9, 10:
                for id in ids {
                    guard let stream = h.engine.stream(StreamID(id)!) else { continue }
                    try? h.app { for _ in 0..<Int.random(in: 1...5, using: &rng) { try stream.send("s2c") } }
                }
            default:
                if Int.random(in: 0..<4, using: &rng) == 0, let id = ids.randomElement(using: &rng),
                    let stream = h.engine.stream(StreamID(id)!)
                {
                    try? h.app { try stream.reset(reason: "app") }
                }
            }
        }
        for t in open { h.engine.transportClosed(t, now: h.now) }
        for t in httpOpen { h.engine.transportClosed(t, now: h.now) }
        h.advance(to: h.now + 1000)
        #expect(h.engine.streamCount == 0)
        #expect(h.engine.transportCount == 0)
        #expect(!h.recorders.isEmpty)
        for recorder in h.recorders { #expect(recorder.resets.count == 1) }
    }
}

/// A generator shared with closures.
final class RandomBox {
    var generator: SeededGenerator
    init(_ generator: SeededGenerator) { self.generator = generator }
}
