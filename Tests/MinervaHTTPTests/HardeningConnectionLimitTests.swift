// MinervaHTTPServerConfiguration.maxConnections over real sockets: at the limit a loop stops accepting (clients wait in
// the kernel's backlog), resumes when a connection closes, and logs one rate-limited warning.
import Glibc
import MinervaTestSupport
import Testing

@testable import MinervaHTTP
@testable import MinervaIO

private func helloRoute(_ router: MinervaHTTPRouter) {
    router.route("/hello") { _, response in response.send(status: 200, body: "hi") }
}

@Suite(.serialized) struct HardeningConnectionLimitTests {
    @Test func shareOfEachLoopIsRoundedUp() {
        var c = MinervaHTTPServerConfiguration()
        c.maxConnections = 10
        c.threads = 3
        #expect(c.maxConnectionsPerLoop == 4)
        c.threads = 1
        #expect(c.maxConnectionsPerLoop == 10)
        c.maxConnections = 0
        #expect(c.maxConnectionsPerLoop == 1)
        // The default leaves a reserve under the open-files limit (HTTPLimitDefaultsTests checks its size).
        #expect(MinervaHTTPServerConfiguration().maxConnections < MinervaHTTPServerConfiguration.openFilesLimit())
    }

    @Test func atTheLimitNewClientsWaitUntilAConnectionCloses() throws {
        let s = try TestServer(
            {
                $0.maxConnections = 2
                $0.shedAtConnectionLimit = false  // else the idle connections make room (HardeningDeadlineTests)
            }, logLevel: .trace, routes: helloRoute)
        defer { s.stop() }
        let a = try RawClient(port: s.port)
        let b = try RawClient(port: s.port)
        #expect(try a.request(get("/hello")).status == 200)
        #expect(try b.request(get("/hello")).status == 200)
        #expect(s.server.connectionCount == 2)
        // The third connect succeeds (the kernel's backlog) but nobody reads its request.
        let c = try RawClient(port: s.port, timeoutMillis: 300)
        try c.send(get("/hello"))
        #expect(throws: TestError.self) { try c.readResponse() }
        #expect(s.server.connectionCount == 2)
        #expect(try b.request(get("/hello")).status == 200)  // the open ones are still served
        a.close()  // its slot goes to the waiting client
        #expect(a.waitForClose())
        c.setTimeout(millis: 5000)
        #expect(try c.readResponse().status == 200)
        #expect(s.server.connectionCount == 2)
        #expect(s.logs.messages(containing: "connection limit reached").count == 1)
    }

    @Test func silentClientsHoldingEverySlotTimeOutAndTheWaitingOneIsServed() throws {
        let s = try TestServer(
            {
                $0.maxConnections = 2
                $0.headerTimeout = 0.3
            }, logLevel: .trace, routes: helloRoute)
        defer { s.stop() }
        let silent = try (0..<2).map { _ in try RawClient(port: s.port) }
        #expect(waitUntil { s.server.connectionCount == 2 })
        let waiting = try RawClient(port: s.port, timeoutMillis: 5000)
        try waiting.send(get("/hello"))
        let start = monotonicNow()
        #expect(try waiting.readResponse().status == 200)
        #expect(monotonicNow() - start >= 0.2)  // it had to wait for a slot
        for c in silent { #expect(c.waitForClose()) }
    }

    @Test func theLimitWarningIsRateLimited() throws {
        let s = try TestServer({ $0.maxConnections = 1 }, logLevel: .trace, routes: helloRoute)
        defer { s.stop() }
        for _ in 0..<5 {
            let c = try RawClient(port: s.port)
            #expect(try c.request(get("/hello")).status == 200)
            c.close()
            #expect(c.waitForClose())
            #expect(waitUntil { s.server.connectionCount == 0 })
        }
        #expect(s.logs.messages(containing: "connection limit reached").count == 1)
    }

    @Test func severalLoopsNeverExceedTheirShares() throws {
        let s = try TestServer(
            {
                $0.maxConnections = 3
                $0.threads = 2
                $0.shedAtConnectionLimit = false
            }, logLevel: .trace, routes: helloRoute)
        defer { s.stop() }
        var clients: [RawClient] = []
        for _ in 0..<8 {
            let c = try RawClient(port: s.port, timeoutMillis: 200)
            try c.send(get("/hello"))
            clients.append(c)
        }
        var answered = 0
        for c in clients where (try? c.readResponse())?.status == 200 { answered += 1 }
        #expect(answered >= 2)
        #expect(answered <= 4)
        #expect(s.server.connectionCount <= 4)
        clients.removeAll()
        #expect(waitUntil { s.server.connectionCount == 0 })
    }

    @Test func shutdownWorksWhileAcceptingIsPaused() throws {
        let s = try TestServer({ $0.maxConnections = 1 }, logLevel: .trace, routes: helloRoute)
        let a = try RawClient(port: s.port)
        #expect(try a.request(get("/hello")).status == 200)
        let waiting = try RawClient(port: s.port, timeoutMillis: 300)
        try waiting.send(get("/hello"))
        let start = monotonicNow()
        s.stop(grace: 0.2)
        #expect(monotonicNow() - start < 3)
        #expect(s.server.connectionCount == 0)
        #expect(a.waitForClose())
    }
}

@Suite struct HardeningRateLimitedLogTests {
    @Test func admitsABurstPerWindowAndCountsTheRest() {
        var log = RateLimitedLog(window: 1, linesPerWindow: 2)
        #expect(log.admit(now: 10) == 0)
        #expect(log.admit(now: 10.1) == 0)
        #expect(log.admit(now: 10.2) == nil)
        #expect(log.admit(now: 10.9) == nil)
        #expect(log.admit(now: 11.0) == 2)
        #expect(log.admit(now: 11.5) == 0)
    }
}
