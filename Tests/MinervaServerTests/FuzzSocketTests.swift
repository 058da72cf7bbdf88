// A seeded hostile client against a real MinervaHTTPServer with the Minerva endpoint mounted, over 127.0.0.1: random
// bytes, truncated and mutated requests, mutated Minerva bodies (hellos, frames, CRLF games, overlong lines),
// chunked bodies with bad sizes, oversized heads, pipelining, and random closes and aborts, with up to 40
// connections open at once. Afterwards the server must answer GET /healthz, hold no connection, and its engine
// must hold no transport. Bounded: a few hundred connections per seed, every wait capped.
import Glibc
import Logging
import MinervaCore
import MinervaTestSupport
import Testing

@testable import MinervaHTTP
@testable import MinervaIO
@testable import MinervaServer

/// Echoes every string back and counts streams and strings.
private final class FuzzEchoHandler: MinervaStreamHandler {
    let counts: Locked<(streams: Int, strings: Int)>
    init(_ counts: Locked<(streams: Int, strings: Int)>) { self.counts = counts }
    func streamStarted(_ stream: ServerStream) throws { counts.update { $0.streams += 1 } }
    func stringsReceived(_ strings: [ArraySlice<UInt8>], on stream: ServerStream) {
        counts.update { $0.strings += strings.count }
        for s in strings { try? stream.send(s) }
    }
    func streamReset(_ stream: ServerStream, reason: String, applicationLevel: Bool) {}
}

/// A server with `/healthz` and the Minerva endpoint at `/_minerva/`, logging into a capture.
final class FuzzTarget {
    let server: MinervaTestServer
    var http: TestServer { server.http }
    var endpoint: MinervaEndpoint { server.endpoint }
    /// Streams started and strings received by the application.
    let seen = Locked<(streams: Int, strings: Int)>((0, 0))

    init(_ configure: (inout MinervaHTTPServerConfiguration) -> Void = { _ in }, socket: Bool = false) throws {
        let seen = self.seen
        server = try MinervaTestServer(
            configure: {
                $0.engine.maxIdleTime = 2
                $0.engine.idleCheckInterval = 0.5
            }, http: configure, socket: socket, logLevel: .trace, factory: { _, _ in FuzzEchoHandler(seen) },
            routes: { router in router.route("/healthz") { _, response in response.send(status: 200, body: "ok") } })
    }

    /// The engine's transport and stream counts, read on the loop (nil if the loop does not answer in time).
    func engineCounts() -> (transports: Int, streams: Int)? {
        (server.total(\.transportCount), server.total(\.streamCount))
    }

    /// Whether a fresh connection gets `ok` from GET /healthz.
    func isHealthy() -> Bool {
        guard let c = try? RawClient(port: http.port, timeoutMillis: 3000),
            let r = try? c.request(get("/healthz"))
        else { return false }
        return r.status == 200 && r.text == "ok"
    }
}

/// What the hostile client sends on one connection.
func fuzzPayload(_ rng: inout SeededGenerator, hugeAllowed: Bool) -> [UInt8] {
    // Two streams many transports share, and a fresh stream now and then.
    let fresh = String((0..<24).map { _ in "abcdefghijklmnopqrstuvwxyz".randomElement(using: &rng)! })
    let ids = ["p", "q"].map { String(repeating: $0, count: 24) } + [fresh]
    func post(_ body: [UInt8], lengthSkew: Int = 0, path: String = "/_minerva/io/") -> [UInt8] {
        Array("POST \(path) HTTP/1.1\r\nHost: f\r\nContent-Length: \(max(0, body.count + lengthSkew))\r\n\r\n".utf8)
            + body
    }
    switch Int.random(in: 0..<12, using: &rng) {
    case 0:  // noise
        return (0..<Int.random(in: 1...3000, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
    case 1:  // a valid GET, truncated anywhere or mutated
        var bytes = Array(get("/healthz").utf8)
        if Bool.random(using: &rng) {
            bytes.removeLast(Int.random(in: 1...bytes.count, using: &rng))
        } else {
            fuzzMutate(&bytes, &rng)
        }
        return bytes
    case 2, 3, 4:  // a Minerva POST with a mutated body, the length usually right
        var body = fuzzValidBody(&rng, ids: ids)
        fuzzMutate(&body, &rng)
        let skew = Int.random(in: 0..<4, using: &rng) == 0 ? Int.random(in: -5...5, using: &rng) : 0
        return post(body, lengthSkew: skew)
    case 5:  // a valid Minerva POST, then a mutated head
        var bytes = post(fuzzValidBody(&rng, ids: ids))
        if Bool.random(using: &rng) { fuzzMutate(&bytes, &rng) }
        return bytes
    case 6:  // pipelining: several requests in one write
        var bytes: [UInt8] = []
        for _ in 0..<Int.random(in: 2...6, using: &rng) {
            bytes += Bool.random(using: &rng) ? Array(get("/healthz").utf8) : post(fuzzValidBody(&rng, ids: ids))
        }
        return bytes
    case 7:  // chunked body, sizes sometimes lying or not hex
        let body = fuzzValidBody(&rng, ids: ids)
        var bytes = Array("POST /_minerva/io/ HTTP/1.1\r\nHost: f\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
        var i = 0
        while i < body.count {
            let n = min(body.count - i, Int.random(in: 1...40, using: &rng))
            let size =
                Int.random(in: 0..<8, using: &rng) == 0
                ? "zz" : String(n + Int.random(in: -1...1, using: &rng), radix: 16)
            bytes += Array("\(size)\r\n".utf8) + body[i..<(i + n)] + [13, 10]
            i += n
        }
        if Bool.random(using: &rng) { bytes += Array("0\r\n\r\n".utf8) }
        return bytes
    case 8:  // oversized head: a long URL or a long header
        if Bool.random(using: &rng) {
            return Array("GET /\(String(repeating: "u", count: 9000)) HTTP/1.1\r\n\r\n".utf8)
        }
        return Array("GET /healthz HTTP/1.1\r\nX: \(String(repeating: "h", count: 20000))\r\n\r\n".utf8)
    case 9:  // an overlong line in a Minerva body (1 MiB + 1), or a body over the HTTP limit
        guard hugeAllowed else { return post(fuzzValidBody(&rng, ids: ids)) }
        var body = fuzzValidBody(&rng, ids: ids)
        body += [UInt8](repeating: 0x61, count: 1_048_577) + [10]
        if Bool.random(using: &rng) { body += [UInt8](repeating: 0x62, count: 1_100_000) }
        return post(body)
    case 10:  // CRLF games in the head
        return Array("POST /_minerva/io/ HTTP/1.1\n\rHost: f\r\r\nContent-Length: 3\r\n\n\r\nabc".utf8)
    default:  // Expect: 100-continue, then maybe never the body
        var bytes = Array(
            "POST /_minerva/io/ HTTP/1.1\r\nHost: f\r\nExpect: 100-continue\r\nContent-Length: 40\r\n\r\n".utf8)
        if Bool.random(using: &rng) { bytes += fuzzValidBody(&rng, ids: ids).prefix(40) }
        return bytes
    }
}

@Suite(.serialized) struct FuzzSocketTests {
    /// Seed 3 runs with a connection limit below the pool size, so accepting pauses and resumes under churn.
    @Test(arguments: [(1, 12_000), (2, 12_000), (3, 16)])
    func hostileClientsLeaveTheServerHealthyAndEmpty(seed: Int, maxConnections: Int) throws {
        let target = try FuzzTarget { c in
            c.headerTimeout = 1
            c.bodyTimeout = 1
            c.writeTimeout = 2
            c.idleTimeout = 1
            c.maxConnections = maxConnections
        }
        defer { target.server.stop() }
        var rng = SeededGenerator(seed: UInt64(seed) &* 0x5851_F42D_4C95_7F2D)
        var pool: [RawClient] = []
        var huge = 0
        var opened = 0
        var malformedAnswers = 0
        let statusLine = Array("HTTP/1.1 ".utf8)
        /// Reads what has arrived; whatever the server says must start as an HTTP/1.1 response.
        func peek(_ c: RawClient, _ timeout: Double) {
            _ = c.fill(timeout: timeout)
            if !c.buffer.isEmpty && !c.buffer.starts(with: statusLine.prefix(c.buffer.count)) { malformedAnswers += 1 }
        }
        let start = monotonicNow()
        while opened < 250 && monotonicNow() - start < 12 {
            switch Int.random(in: 0..<10, using: &rng) {
            case 0...5:
                let c = try RawClient(port: target.http.port)
                c.setTimeout(millis: 300)  // a send into a server that stopped reading gives up
                opened += 1
                let payload = fuzzPayload(&rng, hugeAllowed: huge < 2)
                if payload.count > 1_000_000 { huge += 1 }
                // Sometimes in pieces, so the server sees partial heads and bodies.
                var at = 0
                while at < payload.count {
                    let n =
                        Bool.random(using: &rng)
                        ? payload.count - at : Int.random(in: 1...(payload.count - at), using: &rng)
                    if (try? c.send(Array(payload[at..<(at + n)]))) == nil { break }
                    at += n
                }
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: c.abort()  // RST once released below
                case 1: peek(c, 0.01)
                default: break
                }
                pool.append(c)
            case 6, 7:
                if !pool.isEmpty {
                    let c = pool.remove(at: Int.random(in: 0..<pool.count, using: &rng))
                    if Bool.random(using: &rng) { c.abort() }
                }
            default:
                if let c = pool.randomElement(using: &rng) { peek(c, 0.005) }
            }
            if pool.count > 40 { pool.removeFirst(10) }
        }
        #expect(opened > 50)
        #expect(malformedAnswers == 0)
        // Alive while clients are still connected (under a small limit a new client may queue behind them).
        if maxConnections > 40 { #expect(target.isHealthy()) }
        pool.removeAll()
        #expect(waitUntil(10) { target.http.server.connectionCount == 0 }, "\(target.http.server.connectionCount) left")
        #expect(target.isHealthy())
        #expect(waitUntil(5) { target.http.server.connectionCount == 0 })
        let counts = target.engineCounts()
        #expect(counts?.transports == 0)
        // Streams without transports go once idle (maxIdleTime 2 s, checked every 0.5 s).
        #expect(waitUntil(6) { target.engineCounts()?.streams == 0 })
        let bad = target.http.logs.lines.get().filter { $0.level >= .error }
        #expect(bad.isEmpty, "\(bad.prefix(3))")
        #expect(!target.http.logs.messages(containing: "rejected request").isEmpty)
        // The mutations left enough intact for the application to hear from some streams.
        #expect(target.seen.get().streams > 0)
        #expect(target.seen.get().strings > 0)

    }
}

/// What the hostile client sends to the socket listener: noise, policy requests, partial mode prefixes, and int32
/// frames (a socket hello, strings, vocabulary), mutated, with lying lengths now and then.
func fuzzSocketPayload(_ rng: inout SeededGenerator) -> [UInt8] {
    switch Int.random(in: 0..<6, using: &rng) {
    case 0: return (0..<Int.random(in: 1...700, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
    case 1: return Array("<policy-file-request/>\0".utf8)
    case 2: return Array("<int32/>\n".utf8.prefix(Int.random(in: 1...8, using: &rng)))
    default:
        let id =
            Bool.random(using: &rng) ? String(repeating: "s", count: 24) : "fresh\(rng.next() % 1000)xxxxxxxxxxxxxxx"
        var frames = [hs("id:\"\(id)\"", "tnum:\(Int.random(in: 0..<4, using: &rng))")]
        if Bool.random(using: &rng) { frames += ["0N", "s0 ", "s1 "] }
        frames += (0..<Int.random(in: 0...4, using: &rng)).map { _ in fuzzFrameVocabulary.randomElement(using: &rng)! }
        var bytes = Array("<int32/>\n".utf8)
        for frame in frames {
            var body = Array(frame.utf8)
            if Int.random(in: 0..<4, using: &rng) == 0 { fuzzMutate(&body, &rng) }
            var length = UInt32(body.count)
            switch Int.random(in: 0..<12, using: &rng) {
            case 0: length = 0x7FFF_FFFF
            case 1: length = 1_048_577
            case 2: length = length &+ UInt32.random(in: 1...3, using: &rng)
            default: break
            }
            bytes += [UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)]
            bytes += body
        }
        return bytes
    }
}

extension FuzzSocketTests {
    @Test(arguments: [11, 12])
    func hostileSocketClientsLeaveNoTransportBehind(seed: Int) throws {
        let target = try FuzzTarget(socket: true)
        defer { target.server.stop() }
        let port = target.server.socketPort
        var rng = SeededGenerator(seed: UInt64(seed) &* 0x2545_F491_4F6C_DD1D)
        var pool: [RawClient] = []
        for _ in 0..<150 {
            let c = try RawClient(port: port)
            c.setTimeout(millis: 300)
            try? c.send(fuzzSocketPayload(&rng))
            if Bool.random(using: &rng) { _ = c.fill(timeout: 0.002) }
            if Int.random(in: 0..<3, using: &rng) == 0 { c.abort() }
            pool.append(c)
            if pool.count > 30 { pool.remove(at: Int.random(in: 0..<pool.count, using: &rng)) }
        }
        pool.removeAll()
        #expect(waitUntil(5) { target.engineCounts()?.transports == 0 }, "\(String(describing: target.engineCounts()))")
        #expect(target.isHealthy())
        #expect(target.seen.get().streams > 0)
    }
}
