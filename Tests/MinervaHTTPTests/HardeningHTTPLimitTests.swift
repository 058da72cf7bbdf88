// HTTP limits checked over real sockets where only the decoder was checked before (header count, buffered
// pipelined input), and the rate limit on rejection log lines (HTTPServerTests checks each rejection's line).
import Glibc
import MinervaTestSupport
import Testing

@testable import MinervaHTTP
@testable import MinervaIO

/// Sends copies of `request` in 1 MiB writes until `atMost` bytes went out or a send times out (the server
/// stopped reading and the kernel's buffers are full). Returns whether it blocked, and the bytes sent.
private func sendPipelinedUntilBlocked(_ c: RawClient, request: String, atMost: Int) -> (Bool, Int) {
    let one = Array(request.utf8)
    var chunk: [UInt8] = []
    while chunk.count < 1 << 20 { chunk += one }
    var sent = 0
    while sent < atMost {
        guard (try? c.send(chunk)) != nil else { return (true, sent) }
        sent += chunk.count
    }
    return (false, sent)
}

/// Reads until EOF (or a read error or timeout) and counts `HTTP/1.1 200 ` status lines, fast enough to keep up
/// with a server answering tens of thousands of pipelined requests. Returns the count and whether EOF was seen.
private func countOKResponses(_ c: RawClient) -> (Int, Bool) {
    let pattern = Array("HTTP/1.1 200 ".utf8)
    var matched = 0
    var count = 0
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(c.fd, $0.baseAddress!, $0.count) }
        if n <= 0 { return (count, n == 0) }
        for byte in chunk[..<n] {
            if byte == pattern[matched] {
                matched += 1
                if matched == pattern.count {
                    count += 1
                    matched = 0
                }
            } else {
                matched = byte == pattern[0] ? 1 : 0
            }
        }
    }
}

@Suite("Hardening: HTTP limits over sockets", .serialized)
struct HardeningHTTPLimitTests {
    private static func routes(_ router: MinervaHTTPRouter) {
        router.route("/hello") { _, response in response.send(status: 200, body: "hi") }
    }

    @Test func headerCountOverTheLimitIs431() throws {
        let s = try TestServer({ $0.maxHeaderCount = 10 }, logLevel: .trace, routes: Self.routes)
        defer { s.stop() }
        let ok = try RawClient(port: s.port)
        let nine = (0..<9).map { "H\($0): v\r\n" }.joined()
        #expect(try ok.request(get("/hello", nine)).status == 200)
        let c = try RawClient(port: s.port)
        let many = (0..<11).map { "H\($0): v\r\n" }.joined()
        #expect(try c.request(get("/hello", many)).status == 431)
        #expect(c.waitForClose())
    }

    @Test func rejectionLinesAreRateLimited() throws {
        let s = try TestServer({ $0.maxURLBytes = 64 }, logLevel: .trace, routes: Self.routes)
        defer { s.stop() }
        let long = "GET /\(String(repeating: "u", count: 100)) HTTP/1.1\r\n\r\n"
        let start = monotonicNow()
        for _ in 0..<40 {
            let c = try RawClient(port: s.port)
            #expect(try c.request(long).status == 414)
        }
        let elapsed = monotonicNow() - start
        let logged = s.logs.messages(containing: "rejected request: 414").count
        #expect(logged >= 1)
        #expect(logged <= 20 * (Int(elapsed) + 2))  // 20 per one-second window
        if elapsed < 0.5 { #expect(logged == 20) }
    }

    @Test func pipelinedInputBehindAHeldResponseStopsBeingRead() throws {
        let held = Locked<MinervaHTTPResponse?>(nil)
        let s = try TestServer(
            { $0.maxBufferedInputBytes = 16 * 1024 }, logLevel: .trace,
            routes: { router in
                router.route("/hold") { _, response in held.update { $0 = response } }
                Self.routes(router)
            })
        defer { s.stop() }
        let c = try RawClient(port: s.port, timeoutMillis: 200)
        try c.send(get("/hold"))
        #expect(waitUntil { held.get() != nil })
        // 64 MiB of pipelined requests: far more than the kernel's socket buffers. If the server kept reading
        // while /hold is unanswered, it would hold all of it; it must stop reading, so the send times out.
        let (blocked, sent) = sendPipelinedUntilBlocked(c, request: get("/hello"), atMost: 64 << 20)
        #expect(blocked, "sent \(sent) bytes")
        #expect(s.server.connectionCount == 1)
    }
}

@Suite("Hardening: HTTP output backpressure", .serialized)
struct HardeningHTTPBackpressureTests {
    @Test(.disabled(if: skipLoadSensitive, "MINERVA_SKIP_LOAD_SENSITIVE: a 5 s read timeout per answer chunk"))
    func aPipeliningClientThatNeverReadsStopsBeingRead() throws {
        let s = try TestServer(
            {
                $0.highWaterMark = 64 * 1024
                $0.lowWaterMark = 16 * 1024
            }, logLevel: .trace,
            routes: { router in
                router.route("/hello") { _, response in
                    response.send(status: 200, body: String(repeating: "r", count: 200))
                }
            })
        defer { s.stop() }
        let c = try RawClient(port: s.port, timeoutMillis: 200)
        // 64 MiB of small pipelined GETs, never reading an answer: every answer is bigger than its request, so a
        // server that kept reading would buffer more than 64 MiB of output. It must stop reading instead.
        let (blocked, sent) = sendPipelinedUntilBlocked(c, request: get("/hello"), atMost: 64 << 20)
        #expect(blocked, "sent \(sent) bytes")
        // Reading resumes as the client reads, and no request is lost: every one that went out is answered before
        // the server closes. (A send that timed out may have sent part of its chunk: those requests count too.)
        c.setTimeout(millis: 5000)
        c.close()
        let (answered, sawEOF) = countOKResponses(c)
        #expect(answered >= sent / get("/hello").utf8.count)
        #expect(sawEOF)
    }
}

@Suite("Hardening: chunked framing floods", .serialized)
struct HardeningChunkedFloodTests {
    /// Chunk extensions, chunk-size lines and trailers are not body bytes, so `maxBodyBytes` does not bound them:
    /// extensions and size lines count against the head limit, trailers against http-parser's own 80 KiB cap
    /// (they are not stored). Each flood must end in 431, never be read for ever.
    @Test(arguments: [
        "1;" + String(repeating: "e", count: 200_000) + "\r\na\r\n0\r\n\r\n",
        String(repeating: "0", count: 200_000) + "1\r\na\r\n0\r\n\r\n",
        "1\r\na\r\n0\r\n" + (0..<200_000).map { "T\($0): v\r\n" }.joined() + "\r\n",
    ])
    func floodsOfChunkFramingAre431(body: String) throws {
        let s = try TestServer({ $0.maxHeaderBytes = 2048 }, logLevel: .trace, routes: { _ in })
        defer { s.stop() }
        let c = try RawClient(port: s.port, timeoutMillis: 2000)
        try? c.send("POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
        #expect(try c.readResponse().status == 431)
        #expect(c.waitForClose())
    }
}
