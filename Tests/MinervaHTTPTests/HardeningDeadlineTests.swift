// Deadlines that bound a whole request, over real sockets: the head within `headerTimeout` and the body within
// `bodyTimeout` in total however slowly they trickle in, idle keep-alive connections closed at `idleTimeout`, and at
// the connection limit idle and slow connections shed so that a new client gets through.
import Glibc
import MinervaTestSupport
import Testing

@testable import MinervaHTTP
@testable import MinervaIO

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
    _ c: RawClient, prefix: String, filler: UInt8 = UInt8(ascii: "x"), interval: Double, atMost: Double
) throws -> (HTTPReply?, Double) {
    try c.send(prefix)
    c.setTimeout(millis: Int32(interval * 1000))  // a send blocked by a full window waits one interval at most
    let start = monotonicNow()
    while monotonicNow() - start < atMost {
        _ = try? c.send([filler])
        if c.fill(timeout: interval) {
            c.setTimeout(millis: 2000)
            return (try c.readResponse(), monotonicNow() - start)
        }
    }
    return (nil, monotonicNow() - start)
}

@Suite("Hardening: total deadlines and shedding at the connection limit", .serialized)
struct HardeningDeadlineTests {
    @Test func bodyTrickledByteByByteGets408AtTheTotalBodyTimeout() throws {
        let s = try TestServer({ $0.bodyTimeout = 1.0 }, logLevel: .trace, routes: deadlineRoutes)
        defer { s.stop() }
        let c = try RawClient(port: s.port)
        let (response, elapsed) = try trickle(
            c, prefix: "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n", interval: 0.3, atMost: 4)
        #expect(response?.status == 408)
        #expect(elapsed >= 0.9)  // the whole bodyTimeout was granted
        #expect(elapsed < 2.5)  // 1 s plus timer slack, a trickle interval and a loaded machine (before: never)
        #expect(c.waitForClose())
        #expect(s.logs.messages(containing: "rejected request: 408").count == 1)
    }

    @Test func chunkedBodyTrickledGets408AtTheTotalBodyTimeout() throws {
        let s = try TestServer({ $0.bodyTimeout = 1.0 }, logLevel: .trace, routes: deadlineRoutes)
        defer { s.stop() }
        let c = try RawClient(port: s.port)
        let (response, elapsed) = try trickle(
            c, prefix: "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n186A0\r\n",
            interval: 0.3, atMost: 4)
        #expect(response?.status == 408)
        #expect(elapsed < 2.5)
        #expect(c.waitForClose())
    }

    @Test func headTrickledByteByByteGets408AtTheTotalHeaderTimeout() throws {
        let s = try TestServer({ $0.headerTimeout = 1.0 }, logLevel: .trace, routes: deadlineRoutes)
        defer { s.stop() }
        let c = try RawClient(port: s.port)
        let (response, elapsed) = try trickle(
            c, prefix: "GET /hello HTTP/1.1\r\nHost: t\r\nX-Slow: ", interval: 0.2, atMost: 4)
        #expect(response?.status == 408)
        #expect(elapsed < 2.5)
        #expect(c.waitForClose())
    }

    @Test func headOnAKeepAliveConnectionHasItsOwnTotalHeaderTimeout() throws {
        let s = try TestServer({ $0.headerTimeout = 1.0 }, logLevel: .trace, routes: deadlineRoutes)
        defer { s.stop() }
        let c = try RawClient(port: s.port)
        #expect(try c.request(get("/hello")).status == 200)
        let (response, elapsed) = try trickle(
            c, prefix: "GET /hello HTTP/1.1\r\nHost: t\r\nX-Slow: ", interval: 0.2, atMost: 4)
        #expect(response?.status == 408)
        #expect(elapsed < 2.5)
    }

    @Test func headDeadlineRunsWhileEarlierOutputIsBlocked() throws {
        let big = String(repeating: "b", count: 8 << 20)
        let s = try TestServer(
            {
                $0.headerTimeout = 1.0
                $0.highWaterMark = 64 << 20  // no output backpressure: the second head is parsed at once
                $0.lowWaterMark = 32 << 20
            }, logLevel: .trace,
            routes: { router in router.route("/big") { _, response in response.send(status: 200, body: big) } })
        defer { s.stop() }
        let c = try RawClient(port: s.port, timeoutMillis: 5000, receiveBuffer: 65536)
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
        let s = try TestServer({ $0.bodyTimeout = 2.0 }, logLevel: .trace, routes: deadlineRoutes)
        defer { s.stop() }
        let c = try RawClient(port: s.port)
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
        let s = try TestServer({ $0.idleTimeout = 0.5 }, logLevel: .trace, routes: deadlineRoutes)
        defer { s.stop() }
        let c = try RawClient(port: s.port, timeoutMillis: 3000)
        #expect(try c.request(get("/hello")).status == 200)
        let start = monotonicNow()
        #expect(c.waitForClose())
        let elapsed = monotonicNow() - start
        #expect(elapsed >= 0.4)
        #expect(elapsed < 3)
        #expect(waitUntil { s.server.connectionCount == 0 })
    }

    @Test func atTheLimitAnIdleKeepAliveConnectionIsShedForANewClient() throws {
        let s = try TestServer({ $0.maxConnections = 4 }, logLevel: .trace, routes: deadlineRoutes)
        defer { s.stop() }
        let idle = try (0..<4).map { _ in try RawClient(port: s.port, timeoutMillis: 2000) }
        for c in idle { #expect(try c.request(get("/hello")).status == 200) }
        #expect(s.server.connectionCount == 4)
        let start = monotonicNow()
        let fifth = try RawClient(port: s.port, timeoutMillis: 2000)
        #expect(try fifth.request(get("/hello")).status == 200)
        #expect(monotonicNow() - start < 1)  // before: it waited in the backlog
        #expect(idle[0].waitForClose())  // the longest idle one made room
        #expect(s.server.connectionCount <= 4)
        #expect(try idle[1].request(get("/hello")).status == 200)  // the others are untouched
        #expect(s.logs.messages(containing: "closing an idle connection for a new client").count == 1)
    }

    @Test func atTheLimitASlowRequestIsShedForANewClient() throws {
        let s = try TestServer(
            {
                $0.maxConnections = 4
                $0.shedSlowRequestsAfter = 0.3
            }, logLevel: .trace, routes: deadlineRoutes)
        defer { s.stop() }
        let slow = try (0..<4).map { _ in try RawClient(port: s.port, timeoutMillis: 2000) }
        for c in slow { try c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc") }
        #expect(waitUntil { s.server.connectionCount == 4 })
        usleep(400_000)
        let start = monotonicNow()
        let fifth = try RawClient(port: s.port, timeoutMillis: 2000)
        #expect(try fifth.request(get("/hello")).status == 200)
        #expect(monotonicNow() - start < 1)
        // One of them made room (they all started in the same loop turn, so which one is the loop's order).
        var closed = 0
        for c in slow where c.waitForClose(within: 0.2) { closed += 1 }
        #expect(closed == 1)
        #expect(s.logs.messages(containing: "closing a slow connection for a new client").count == 1)
    }

    @Test func aClientArrivingBeforeTheSlowRequestsAreOldEnoughIsServedOnceTheyAre() throws {
        // The slow-POST attack: every slot is taken by bodies younger than the shedding age when the new client
        // arrives. Accepting must not stay paused until a connection closes (the body deadline, 10 s here).
        let s = try TestServer(
            {
                $0.maxConnections = 4
                $0.shedSlowRequestsAfter = 0.3
                $0.bodyTimeout = 10
            }, logLevel: .trace, routes: deadlineRoutes)
        defer { s.stop() }
        let slow = try (0..<4).map { _ in try RawClient(port: s.port, timeoutMillis: 2000) }
        for c in slow { try c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc") }
        #expect(waitUntil { s.server.connectionCount == 4 })
        let fifth = try RawClient(port: s.port, timeoutMillis: 3000)
        try fifth.send(get("/hello"))
        #expect(try fifth.readResponse().status == 200)
        var closed = 0
        for c in slow where c.waitForClose(within: 0.2) { closed += 1 }
        #expect(closed == 1)
    }

    @Test func atTheLimitBusyConnectionsAreNotShed() throws {
        let s = try TestServer({ $0.maxConnections = 2 }, logLevel: .trace, routes: deadlineRoutes)
        defer { s.stop() }
        let busy = try (0..<2).map { _ in try RawClient(port: s.port) }
        for c in busy {
            try c.send(get("/held"))
            #expect(c.fill())
        }
        // Connections with a response in progress are never shed: the waiting client stays in the backlog.
        let waiting = try RawClient(port: s.port, timeoutMillis: 300)
        try waiting.send(get("/hello"))
        #expect(throws: TestError.self) { try waiting.readResponse() }
        #expect(s.server.connectionCount == 2)
        busy[0].abort()  // an RST
        waiting.setTimeout(millis: 3000)
        #expect(try waiting.readResponse().status == 200)
    }
}
