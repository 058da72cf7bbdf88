// In-process fuzz of MinervaServerEngine.httpBodyReceived with byte-level mutations of valid bodies (random
// bytes, flips, inserts, deletes, truncation, CRLF games, overlong lines). MinervaCoreTests' chaos test mutates
// whole frames; this one breaks the bytes below the framing. Invariants: no trap; nothing is written on an HTTP
// transport after its response ended or it closed; nothing is left once every transport closed and streams idled.
import MinervaCore
import MinervaTestSupport
import Testing

@testable import MinervaHTTP
@testable import MinervaIO

/// Builds the body of an HTTP POST to the endpoint: a hello and a few frames, `\n`-terminated.
func fuzzValidBody(_ rng: inout SeededGenerator, ids: [String]) -> [UInt8] {
    let id = ids.randomElement(using: &rng)!
    let frames = [
        hh(
            "id:\"\(id)\"", "tnum:\(Int.random(in: 0..<6, using: &rng))",
            Bool.random(using: &rng) ? "-new" : "new:1", Bool.random(using: &rng) ? "eeds:null" : "-eeds",
            "maxt:\(Int.random(in: 0...2, using: &rng))")
    ]
    // Half the time a well-formed run of strings first (sequence number, then strings), so some survive.
    let run = Bool.random(using: &rng) ? ["0N"] + (0..<Int.random(in: 1...3, using: &rng)).map { "s\($0) " } : []
    let rest = (0..<Int.random(in: 0...5, using: &rng)).map { _ in fuzzFrameVocabulary.randomElement(using: &rng)! }
    return Array((frames + run + rest).map { $0 + "\n" }.joined().utf8)
}

/// Frames a client might send after its hello, valid and not.
let fuzzFrameVocabulary: [String] = [
    "0N", "string ", "echo ", "|0A", "|-1A", "1,2|0A", "3|1A", "C", "beat^", "?", "", "x|0!", "9007199254740992N",
    "{}H", "tk_stream_attach_failure", "bad\u{7f} ",
]

/// Bytes a mutation inserts: framing and JSON metacharacters, controls and high bytes.
private let fuzzAlphabet: [UInt8] = Array("\r\n\n {}[]\":,|!^NAH0123456789-x".utf8) + [0, 0x7F, 0x80, 0xFF]

/// Mutates `body` in place 1–5 times.
func fuzzMutate(_ body: inout [UInt8], _ rng: inout SeededGenerator) {
    for _ in 0..<Int.random(in: 1...5, using: &rng) {
        let i = body.isEmpty ? 0 : Int.random(in: 0..<body.count, using: &rng)
        switch Int.random(in: 0..<9, using: &rng) {
        case 0 where !body.isEmpty: body[i] = UInt8.random(in: 0...255, using: &rng)
        case 1: body.insert(fuzzAlphabet.randomElement(using: &rng)!, at: i)
        case 2 where !body.isEmpty: body.remove(at: i)
        case 3: body.removeLast(min(body.count, Int.random(in: 0...20, using: &rng)))  // truncated
        case 4:  // CRLF games: every \n becomes \r\n, \r\r\n or \n\r
            let variants: [[UInt8]] = [[13, 10], [13, 13, 10], [10, 13]]
            let variant = variants.randomElement(using: &rng)!
            body = body.flatMap { $0 == 10 ? variant : [$0] }
        case 5: body.insert(contentsOf: [10, 10, 13, 10], at: i)  // empty lines
        case 6 where !body.isEmpty:  // a duplicated range
            let end = min(body.count, i + Int.random(in: 1...40, using: &rng))
            body.insert(contentsOf: body[i..<end], at: end)
        case 7: body = (0..<Int.random(in: 0...200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        default: body.insert(contentsOf: [UInt8](repeating: 0x20, count: Int.random(in: 1...300, using: &rng)), at: i)
        }
    }
}

@Suite struct FuzzEngineBodyTests {
    /// Echoes some strings and sometimes resets.
    final class ChaosHandler: MinervaStreamHandler {
        var rng: SeededGenerator
        init(seed: UInt64) { rng = SeededGenerator(seed: seed) }
        func streamStarted(_ stream: ServerStream) throws {}
        func stringsReceived(_ strings: [ArraySlice<UInt8>], on stream: ServerStream) {
            for s in strings where Bool.random(using: &rng) { try? stream.send(s) }
            if Int.random(in: 0..<30, using: &rng) == 0 { try? stream.reset(reason: "chaos") }
        }
        func streamReset(_ stream: ServerStream, reason: String, applicationLevel: Bool) {}
    }

    @Test(arguments: 0..<24)
    func mutatedBodiesNeverTrapWriteAfterEndOrLeak(seed: Int) {
        var rng = SeededGenerator(seed: UInt64(seed) &* 0x1000_0001 &+ 5)
        var configuration = ServerEngineConfiguration()
        configuration.maxIdleTime = 5
        configuration.idleCheckInterval = 1
        configuration.resetStreamMemory = 1
        configuration.socketCloseGracePeriod = 1
        var handlerSeed = UInt64(seed)
        let engine = MinervaServerEngine(configuration: configuration, now: 0) { _ in
            handlerSeed &+= 1
            return ChaosHandler(seed: handlerSeed)
        }
        let ids = ["a", "b", "c"].map { String(repeating: $0, count: 24) }
        var now = 0.0
        var next = 0
        var open: Set<TransportHandle> = []
        var ended: Set<TransportHandle> = []  // response complete or transport closed: must stay silent
        var violations: [String] = []
        var completed = 0
        var streamsSeen = 0
        func drain() {
            engine.drainActions { action in
                switch action {
                case .write(let h, _, let kind):
                    if ended.contains(h) { violations.append("write on ended \(h)") }
                    if kind == .httpWholeBody {
                        ended.insert(h)
                        completed += 1
                    }
                    if kind == .socket { violations.append("socket write on HTTP \(h)") }
                case .finish(let h):
                    if ended.contains(h) { violations.append("finish on ended \(h)") }
                    ended.insert(h)
                    completed += 1
                case .close(let h): violations.append("close of HTTP \(h)")
                }
            }
        }
        for step in 0..<120 {
            switch Int.random(in: 0..<10, using: &rng) {
            case 0...5:
                var body = fuzzValidBody(&rng, ids: ids)
                if Int.random(in: 0..<5, using: &rng) != 0 { fuzzMutate(&body, &rng) }
                if step == 60 && seed % 6 == 0 {  // an overlong line now and then (PROTOCOL.md: 1 MiB frames)
                    body += [UInt8](repeating: 0x41, count: 1_048_577) + [10]
                }
                next += 1
                let h = TransportHandle(next)
                engine.openTransport(h, kind: .http, connection: ConnectionInfo(), now: now)
                open.insert(h)
                engine.httpBodyReceived(h, body: body, now: now)
                streamsSeen = max(streamsSeen, engine.streamCount)
                drain()
            case 6, 7:
                if let h = open.randomElement(using: &rng) {
                    engine.transportClosed(h, now: now)
                    open.remove(h)
                    ended.insert(h)
                    drain()
                }
            default:
                now += Double.random(in: 0...1.5, using: &rng)
                engine.timersDue(now: now)
                drain()
            }
            engine.flush(now: now)
            drain()
        }
        for h in open { engine.transportClosed(h, now: now) }
        ended.formUnion(open)
        drain()
        now += 20
        engine.timersDue(now: now)
        engine.flush(now: now)
        drain()
        #expect(violations.isEmpty, "\(violations.prefix(5))")
        #expect(completed > 10)  // the fuzz got answers, not only silence
        #expect(streamsSeen > 0)  // and some bodies survived mutation well enough to open streams
        #expect(engine.transportCount == 0)
        #expect(engine.streamCount == 0)
    }
}
