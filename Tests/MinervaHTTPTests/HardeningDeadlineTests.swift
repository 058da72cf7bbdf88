// Deadlines that bound a whole request, over real sockets: the head within `headerTimeout` and the body within
// `bodyTimeout` in total however slowly they trickle in, idle keep-alive connections closed at `idleTimeout`, and at
// the connection limit idle and slow connections shed so that a new client gets through.
import CShims
import Glibc
import Testing

@testable import MinervaHTTP
@testable import MinervaIO
@testable import MinervaServer

private func deadlineRoutes(_ router: MinervaHTTPRouter) {
    router.route("/hello") { _, response in response.send(status: 200, body: "hi") }
    router.route("/echo", methods: [.POST]) { request, response in
        response.send(status: 200, body: "\(request.body.count)")
    }
    router.route("/held") { _, response in response.write("held\n") }
}

/// Sends `prefix`, then one byte of `filler` every `interval` seconds until a response arrives or `atMost`
/// seconds pass. Returns the response (nil if none came) and the seconds from the first trickled byte.
private func trickle(
    _ c: TestClient, prefix: String, filler: UInt8 = UInt8(ascii: "x"), interval: Double, atMost: Double
) throws -> (ClientResponse?, Double) {
    try c.send(prefix)
    _ = cshims_set_timeouts(c.fd, Int32(interval * 1000))
    let start = monotonicNow()
    while monotonicNow() - start < atMost {
        _ = try? c.send([filler])
        if (try? c.fill()) == true {
            _ = cshims_set_timeouts(c.fd, 2000)
            return (try c.readResponse(), monotonicNow() - start)
        }
    }
    return (nil, monotonicNow() - start)
}

/// Resets the connection (SO_LINGER 0, then close: the kernel sends an RST) and releases the client.
func resetConnection(_ client: inout TestClient?) {
    guard let c = client else { return }
    var option = linger(l_onoff: 1, l_linger: 0)
    setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
    client = nil  // deinit closes the descriptor
}

@Suite("Hardening: total deadlines and shedding at the connection limit", .serialized)
struct HardeningDeadlineTests {
    @Test func bodyTrickledByteByByteGets408AtTheTotalBodyTimeout() throws {
        let s = try CapturedServer({ $0.bodyTimeout = 1.0 }, routes: deadlineRoutes)
        defer { s.stop() }
        let c = try TestClient(port: s.port)
        let (response, elapsed) = try trickle(
            c, prefix: "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n", interval: 0.3, atMost: 4)
        #expect(response?.status == 408)
        #expect(elapsed >= 0.9)  // the whole bodyTimeout was granted
        #expect(elapsed < 2.5)  // 1 s plus timer slack, a trickle interval and a loaded machine (before: never)
        #expect(c.waitForClose())
        #expect(s.logs.messages(containing: "rejected request: 408").count == 1)
    }

    @Test func chunkedBodyTrickledGets408AtTheTotalBodyTimeout() throws {
        let s = try CapturedServer({ $0.bodyTimeout = 1.0 }, routes: deadlineRoutes)
        defer { s.stop() }
        let c = try TestClient(port: s.port)
        let (response, elapsed) = try trickle(
            c, prefix: "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n186A0\r\n",
            interval: 0.3, atMost: 4)
        #expect(response?.status == 408)
        #expect(elapsed < 2.5)
        #expect(c.waitForClose())
    }

    @Test func headTrickledByteByByteGets408AtTheTotalHeaderTimeout() throws {
        let s = try CapturedServer({ $0.headerTimeout = 1.0 }, routes: deadlineRoutes)
        defer { s.stop() }
        let c = try TestClient(port: s.port)
        let (response, elapsed) = try trickle(
            c, prefix: "GET /hello HTTP/1.1\r\nHost: t\r\nX-Slow: ", interval: 0.2, atMost: 4)
        #expect(response?.status == 408)
        #expect(elapsed < 2.5)
        #expect(c.waitForClose())
    }

    @Test func headOnAKeepAliveConnectionHasItsOwnTotalHeaderTimeout() throws {
        let s = try CapturedServer({ $0.headerTimeout = 1.0 }, routes: deadlineRoutes)
        defer { s.stop() }
        let c = try TestClient(port: s.port)
        #expect(try c.request(get("/hello")).status == 200)
        let (response, elapsed) = try trickle(
            c, prefix: "GET /hello HTTP/1.1\r\nHost: t\r\nX-Slow: ", interval: 0.2, atMost: 4)
        #expect(response?.status == 408)
        #expect(elapsed < 2.5)
    }

    @Test func headDeadlineRunsWhileEarlierOutputIsBlocked() throws {
        let big = String(repeating: "b", count: 8 << 20)
        let s = try CapturedServer(
            {
                $0.headerTimeout = 1.0
                $0.highWaterMark = 64 << 20  // no output backpressure: the second head is parsed at once
                $0.lowWaterMark = 32 << 20
            },
            routes: { router in router.route("/big") { _, response in response.send(status: 200, body: big) } })
        defer { s.stop() }
        let c = try TestClient(port: s.port, timeoutMillis: 5000, receiveBuffer: 65536)
        // The answer to the first request fills the socket; the second head stays unfinished meanwhile.
        try c.send(get("/big") + "GET /big HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        usleep(1_500_000)
        let first = try c.readResponse()
        #expect(first.body.count == 8 << 20)
        let drained = monotonicNow()
        #expect(try c.readResponse().status == 408)
        #expect(monotonicNow() - drained < 0.5)  // already queued: the deadline ran while the output was blocked
        #expect(c.waitForClose())
    }

    @Test func bodyInPiecesWithinTheTimeoutIsServed() throws {
        let s = try CapturedServer({ $0.bodyTimeout = 2.0 }, routes: deadlineRoutes)
        defer { s.stop() }
        let c = try TestClient(port: s.port)
        try c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n")
        for _ in 0..<5 {
            usleep(100_000)
            try c.send("ab")
        }
        let r = try c.readResponse()
        #expect(r.status == 200)
        #expect(r.text == "10")
    }

    @Test func idleKeepAliveConnectionIsClosedAtTheIdleTimeout() throws {
        let s = try CapturedServer({ $0.idleTimeout = 0.5 }, routes: deadlineRoutes)
        defer { s.stop() }
        let c = try TestClient(port: s.port, timeoutMillis: 3000)
        #expect(try c.request(get("/hello")).status == 200)
        let start = monotonicNow()
        #expect(c.waitForClose())
        let elapsed = monotonicNow() - start
        #expect(elapsed >= 0.4)
        #expect(elapsed < 3)
        #expect(waitUntil { s.server.connectionCount == 0 })
    }

    @Test func atTheLimitAnIdleKeepAliveConnectionIsShedForANewClient() throws {
        let s = try CapturedServer({ $0.maxConnections = 4 }, routes: deadlineRoutes)
        defer { s.stop() }
        let idle = try (0..<4).map { _ in try TestClient(port: s.port, timeoutMillis: 2000) }
        for c in idle { #expect(try c.request(get("/hello")).status == 200) }
        #expect(s.server.connectionCount == 4)
        let start = monotonicNow()
        let fifth = try TestClient(port: s.port, timeoutMillis: 2000)
        #expect(try fifth.request(get("/hello")).status == 200)
        #expect(monotonicNow() - start < 1)  // before: it waited in the backlog
        #expect(idle[0].waitForClose())  // the longest idle one made room
        #expect(s.server.connectionCount <= 4)
        #expect(try idle[1].request(get("/hello")).status == 200)  // the others are untouched
        #expect(s.logs.messages(containing: "closing an idle connection for a new client").count == 1)
    }

    @Test func atTheLimitASlowRequestIsShedForANewClient() throws {
        let s = try CapturedServer(
            {
                $0.maxConnections = 4
                $0.shedSlowRequestsAfter = 0.3
            }, routes: deadlineRoutes)
        defer { s.stop() }
        let slow = try (0..<4).map { _ in try TestClient(port: s.port, timeoutMillis: 2000) }
        for c in slow { try c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc") }
        #expect(waitUntil { s.server.connectionCount == 4 })
        usleep(400_000)
        let start = monotonicNow()
        let fifth = try TestClient(port: s.port, timeoutMillis: 2000)
        #expect(try fifth.request(get("/hello")).status == 200)
        #expect(monotonicNow() - start < 1)
        // One of them made room (they all started in the same loop turn, so which one is the loop's order).
        var closed = 0
        for c in slow {
            _ = cshims_set_timeouts(c.fd, 200)
            if c.waitForClose() { closed += 1 }
        }
        #expect(closed == 1)
        #expect(s.logs.messages(containing: "closing a slow connection for a new client").count == 1)
    }

    @Test func atTheLimitBusyConnectionsAreNotShed() throws {
        let s = try CapturedServer({ $0.maxConnections = 2 }, routes: deadlineRoutes)
        defer { s.stop() }
        var busy: [TestClient?] = try (0..<2).map { _ in try TestClient(port: s.port) }
        for c in busy {
            try c!.send(get("/held"))
            try c!.fill()
        }
        // Connections with a response in progress are never shed: the waiting client stays in the backlog.
        let waiting = try TestClient(port: s.port, timeoutMillis: 300)
        try waiting.send(get("/hello"))
        #expect(throws: TestError.self) { try waiting.readResponse() }
        #expect(s.server.connectionCount == 2)
        resetConnection(&busy[0])
        _ = cshims_set_timeouts(waiting.fd, 3000)
        #expect(try waiting.readResponse().status == 200)
    }
}

@Suite("Hardening: half-closed clients", .serialized)
struct HardeningHalfCloseTests {
    private static func routes(_ closes: Shared<Int>) -> (MinervaHTTPRouter) -> Void {
        { router in
            router.route("/stream") { _, response in
                response.onClose = { closes.update { $0 += 1 } }
                response.write("first\n")
                response.eventLoop.schedule(after: 0.3) {
                    response.write("second\n")
                    response.end()
                }
            }
            router.route("/later") { _, response in
                response.eventLoop.schedule(after: 0.2) { response.send(status: 200, body: "later") }
            }
            router.route("/hello") { _, response in response.send(status: 200, body: "hi") }
            router.route("/forever") { _, response in
                response.onClose = { closes.update { $0 += 1 } }
                response.write("first part\n")
            }
        }
    }

    @Test func halfClosedClientGetsTheWholeChunkedResponse() throws {
        let closes = Shared(0)
        let s = try CapturedServer(routes: Self.routes(closes))
        defer { s.stop() }
        let c = try TestClient(port: s.port, timeoutMillis: 3000)
        try c.send(get("/stream"))
        _ = cshims_shutdown_write(c.fd)
        let r = try c.readResponse()
        #expect(r.status == 200)
        #expect(r.header("Transfer-Encoding") == "chunked")
        #expect(r.text == "first\nsecond\n")  // readResponse needs the final 0\r\n\r\n
        #expect(c.waitForClose())
        #expect(waitUntil { s.server.connectionCount == 0 })
    }

    @Test func halfClosedClientGetsEveryPipelinedAnswer() throws {
        let s = try CapturedServer(routes: Self.routes(Shared(0)))
        defer { s.stop() }
        let c = try TestClient(port: s.port, timeoutMillis: 3000)
        try c.send(get("/later") + get("/hello") + get("/later"))
        _ = cshims_shutdown_write(c.fd)
        #expect(try c.readResponse().text == "later")
        #expect(try c.readResponse().text == "hi")
        #expect(try c.readResponse().text == "later")
        #expect(c.waitForClose())
    }

    @Test func halfCloseWithNothingInFlightClosesAfterTheAnswers() throws {
        let s = try CapturedServer(routes: Self.routes(Shared(0)))
        defer { s.stop() }
        let c = try TestClient(port: s.port, timeoutMillis: 3000)
        #expect(try c.request(get("/hello")).status == 200)
        _ = cshims_shutdown_write(c.fd)
        #expect(c.waitForClose())
        #expect(waitUntil { s.server.connectionCount == 0 })
    }

    @Test func resetDuringAHeldResponseIsNoticedAtOnce() throws {
        let closes = Shared(0)
        let s = try CapturedServer(routes: Self.routes(closes))
        defer { s.stop() }
        var c: TestClient? = try TestClient(port: s.port)
        try c!.send(get("/forever"))
        try c!.fill()
        let start = monotonicNow()
        resetConnection(&c)
        #expect(waitUntil(2) { closes.get() == 1 })
        #expect(monotonicNow() - start < 1)
        #expect(waitUntil { s.server.connectionCount == 0 })
    }
}
