// HTTP limits checked over real sockets where only the decoder was checked before (header count, buffered
// pipelined input), and the rate limit on rejection log lines (HTTPServerTests checks each rejection's line).
import CShims
import Glibc
import Testing

@testable import MinervaServer

@Suite("Hardening: HTTP limits over sockets", .serialized)
struct HardeningHTTPLimitTests {
    private static func routes(_ router: HTTPRouter) {
        router.route("/hello") { _, response in response.send(status: 200, body: "hi") }
    }

    @Test func headerCountOverTheLimitIs431() throws {
        let s = try CapturedServer({ $0.maxHeaderCount = 10 }, routes: Self.routes)
        defer { s.stop() }
        let ok = try TestClient(port: s.port)
        let nine = (0..<9).map { "H\($0): v\r\n" }.joined()
        #expect(try ok.request(get("/hello", nine)).status == 200)
        let c = try TestClient(port: s.port)
        let many = (0..<11).map { "H\($0): v\r\n" }.joined()
        #expect(try c.request(get("/hello", many)).status == 431)
        #expect(c.waitForClose())
    }

    @Test func rejectionLinesAreRateLimited() throws {
        let s = try CapturedServer({ $0.maxURLBytes = 64 }, routes: Self.routes)
        defer { s.stop() }
        let long = "GET /\(String(repeating: "u", count: 100)) HTTP/1.1\r\n\r\n"
        let start = monotonicNow()
        for _ in 0..<40 {
            let c = try TestClient(port: s.port)
            #expect(try c.request(long).status == 414)
        }
        let elapsed = monotonicNow() - start
        let logged = s.logs.messages(containing: "rejected request: 414").count
        #expect(logged >= 1)
        #expect(logged <= 20 * (Int(elapsed) + 2))  // 20 per one-second window
        if elapsed < 0.5 { #expect(logged == 20) }
    }

    @Test func pipelinedInputBehindAHeldResponseStopsBeingRead() throws {
        let held = Shared<HTTPResponse?>(nil)
        let s = try CapturedServer(
            { $0.maxBufferedInputBytes = 16 * 1024 },
            routes: { router in
                router.route("/hold") { _, response in held.update { $0 = response } }
                Self.routes(router)
            })
        defer { s.stop() }
        let c = try TestClient(port: s.port, timeoutMillis: 200)
        try c.send(get("/hold"))
        #expect(waitUntil { held.get() != nil })
        // 64 MiB of pipelined requests: far more than the kernel's socket buffers. If the server kept reading
        // while /hold is unanswered, it would hold all of it; it must stop reading, so the send times out.
        let one = Array(get("/hello").utf8)
        var chunk: [UInt8] = []
        while chunk.count < 1 << 20 { chunk += one }
        var sent = 0
        var blocked = false
        while sent < 64 << 20 {
            do {
                try c.send(chunk)
                sent += chunk.count
            } catch {
                blocked = true
                break
            }
        }
        #expect(blocked)
        #expect(s.server.connectionCount == 1)
    }
}

@Suite("Hardening: HTTP output backpressure", .serialized)
struct HardeningHTTPBackpressureTests {
    @Test func aPipeliningClientThatNeverReadsStopsBeingRead() throws {
        let s = try CapturedServer(
            {
                $0.highWaterMark = 64 * 1024
                $0.lowWaterMark = 16 * 1024
            },
            routes: { router in
                router.route("/hello") { _, response in
                    response.send(status: 200, body: String(repeating: "r", count: 200))
                }
            })
        defer { s.stop() }
        let c = try TestClient(port: s.port, timeoutMillis: 200, receiveBuffer: 4096)
        // 64 MiB of small pipelined GETs, never reading an answer: every answer is bigger than its request, so a
        // server that kept reading would buffer more than 64 MiB of output. It must stop reading instead.
        let one = Array(get("/hello").utf8)
        var chunk: [UInt8] = []
        while chunk.count < 1 << 20 { chunk += one }
        var sent = 0
        var blocked = false
        while sent < 64 << 20 {
            do {
                try c.send(chunk)
                sent += chunk.count
            } catch {
                blocked = true
                break
            }
        }
        #expect(blocked, "sent \(sent) bytes")
        // Reading resumes as the client reads: the first answers arrive intact.
        _ = cshims_set_timeouts(c.fd, 5000)
        for _ in 0..<100 { #expect(try c.readResponse().status == 200) }
    }
}
