// Half-closed clients over real sockets: a client that sends its FIN (shutdown of its write side) after its requests
// still gets every answer, then the close; a reset is noticed at once.
import Glibc
import MinervaTestSupport
import Testing

@testable import MinervaHTTP
@testable import MinervaIO

@Suite("Hardening: half-closed clients", .serialized)
struct HardeningHalfCloseTests {
    private static func routes(_ closes: Locked<Int>) -> (MinervaHTTPRouter) -> Void {
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
        let closes = Locked(0)
        let s = try TestServer(logLevel: .trace, routes: Self.routes(closes))
        defer { s.stop() }
        let c = try RawClient(port: s.port, timeoutMillis: 3000)
        try c.send(get("/stream"))
        c.close()  // FIN: a half-close
        let r = try c.readResponse()
        #expect(r.status == 200)
        #expect(r.header("Transfer-Encoding") == "chunked")
        #expect(r.text == "first\nsecond\n")  // readResponse needs the final 0\r\n\r\n
        #expect(c.waitForClose())
        #expect(waitUntil { s.server.connectionCount == 0 })
    }

    @Test func halfClosedClientGetsEveryPipelinedAnswer() throws {
        let s = try TestServer(logLevel: .trace, routes: Self.routes(Locked(0)))
        defer { s.stop() }
        let c = try RawClient(port: s.port, timeoutMillis: 3000)
        try c.send(get("/later") + get("/hello") + get("/later"))
        c.close()  // FIN: a half-close
        #expect(try c.readResponse().text == "later")
        #expect(try c.readResponse().text == "hi")
        #expect(try c.readResponse().text == "later")
        #expect(c.waitForClose())
    }

    @Test func halfCloseWithNothingInFlightClosesAfterTheAnswers() throws {
        let s = try TestServer(logLevel: .trace, routes: Self.routes(Locked(0)))
        defer { s.stop() }
        let c = try RawClient(port: s.port, timeoutMillis: 3000)
        #expect(try c.request(get("/hello")).status == 200)
        c.close()  // FIN: a half-close
        #expect(c.waitForClose())
        #expect(waitUntil { s.server.connectionCount == 0 })
    }

    @Test func resetDuringAHeldResponseIsNoticedAtOnce() throws {
        let closes = Locked(0)
        let s = try TestServer(logLevel: .trace, routes: Self.routes(closes))
        defer { s.stop() }
        let c = try RawClient(port: s.port)
        try c.send(get("/forever"))
        #expect(c.fill())
        let start = monotonicNow()
        c.abort()  // an RST
        #expect(waitUntil(2) { closes.get() == 1 })
        #expect(monotonicNow() - start < 1)
        #expect(waitUntil { s.server.connectionCount == 0 })
    }
}
