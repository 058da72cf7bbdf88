// Strict HTTP/1.1 (RFC 9112) over real sockets, enforced in the http-parser wrapper (Debian's http-parser is built
// non-strict): whitespace before a colon and other bytes outside a token in a field name, HTTP/1.1 without Host,
// versions other than 1.0 and 1.1, chunk data without its CRLF, and declared sizes over the body limit refused
// before the data arrives.
import Glibc
import MinervaTestSupport
import Testing

@testable import MinervaHTTP
@testable import MinervaIO

private func strictRoutes(_ router: MinervaHTTPRouter) {
    router.route("/hello") { _, response in response.send(status: 200, body: "hi") }
    router.route("/echo", methods: [.POST]) { request, response in
        response.send(status: 200, body: String(decoding: request.body, as: UTF8.self))
    }
}

@Suite("Hardening: strict HTTP/1.1", .serialized)
struct HardeningHTTPStrictTests {
    /// Sends `request` on a fresh connection; returns the status and whether the server then closed.
    private func answer(_ s: TestServer, _ request: String) throws -> (Int, Bool) {
        let c = try RawClient(port: s.port, timeoutMillis: 2000)
        let status = try c.request(request).status
        return (status, c.waitForClose())
    }

    @Test(arguments: [
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length : 5\r\n\r\nhello",
        "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "GET /hello HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n",
        "GET /hello HTTP/1.1\r\nHost: t\r\nX-A\tB: x\r\n\r\n",
        "GET /hello HTTP/1.1\r\nHost: t\r\nX(y): x\r\n\r\n",
        "GET /hello HTTP/1.1\r\nHost : t\r\n\r\n",
    ])
    func headerNamesMustBeTokens(_ request: String) throws {
        let s = try TestServer(logLevel: .trace, routes: strictRoutes)
        defer { s.stop() }
        let (status, closed) = try answer(s, request)
        #expect(status == 400)
        #expect(closed)
        #expect(s.logs.messages(containing: "rejected request: 400").count == 1)
    }

    @Test func validNamesStillPass() throws {
        let s = try TestServer(logLevel: .trace, routes: strictRoutes)
        defer { s.stop() }
        let c = try RawClient(port: s.port)
        let r = try c.request("GET /hello HTTP/1.1\r\nHost: t\r\nX-Odd!#$%&'*+.^_`|~9: v\r\n\r\n")
        #expect(r.status == 200)
        #expect(try c.request("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nok").text == "ok")
    }

    @Test func http11WithoutHostIs400() throws {
        let s = try TestServer(logLevel: .trace, routes: strictRoutes)
        defer { s.stop() }
        let (status, closed) = try answer(s, "GET /hello HTTP/1.1\r\nX: y\r\n\r\n")
        #expect(status == 400)
        #expect(closed)
        let (twice, _) = try answer(s, "GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        #expect(twice == 400)
        // HTTP/1.0 needs no Host.
        let c = try RawClient(port: s.port)
        #expect(try c.request("GET /hello HTTP/1.0\r\n\r\n").status == 200)
    }

    @Test(arguments: ["HTTP/9.9", "HTTP/2.0", "HTTP/1.2", "HTTP/0.9", "HTTP/3.1"])
    func unknownVersionsAre505(_ version: String) throws {
        let s = try TestServer(logLevel: .trace, routes: strictRoutes)
        defer { s.stop() }
        let (status, closed) = try answer(s, "GET /hello \(version)\r\nHost: t\r\n\r\n")
        #expect(status == 505)
        #expect(closed)
    }

    @Test(arguments: [
        "5\r\nhelloXY0\r\n\r\n",  // no CRLF at all
        "5\r\nhello\n0\r\n\r\n",  // LF only
        "5\r\nhello\rX0\r\n\r\n",  // CR then junk
        "5\r\nhelloworld\r\n0\r\n\r\n",  // more data than declared
    ])
    func chunkDataMustEndWithCRLF(_ body: String) throws {
        let s = try TestServer(logLevel: .trace, routes: strictRoutes)
        defer { s.stop() }
        let (status, closed) = try answer(
            s, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
        #expect(status == 400)
        #expect(closed)
    }

    @Test func chunkCRLFSplitAcrossReadsIsChecked() throws {
        let s = try TestServer(logLevel: .trace, routes: strictRoutes)
        defer { s.stop() }
        let good = try RawClient(port: s.port)
        try good.send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc")
        usleep(50_000)
        try good.send("\r")
        usleep(50_000)
        try good.send("\n2\r\nde\r\n0\r\n\r\n")
        #expect(try good.readResponse().text == "abcde")
        let bad = try RawClient(port: s.port)
        try bad.send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r")
        usleep(50_000)
        try bad.send("X2\r\nde\r\n0\r\n\r\n")
        #expect(try bad.readResponse().status == 400)
        #expect(bad.waitForClose())
    }

    @Test func declaredChunkOverTheBodyLimitIs413BeforeItsData() throws {
        let s = try TestServer({ $0.maxBodyBytes = 1000 }, logLevel: .trace, routes: strictRoutes)
        defer { s.stop() }
        let c = try RawClient(port: s.port, timeoutMillis: 2000)
        // 3 MB declared, not one byte of it sent.
        try c.send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2DC6C0\r\n")
        #expect(try c.readResponse().status == 413)
        #expect(c.waitForClose())
        // The second chunk that would cross the limit is refused at its size line too.
        let d = try RawClient(port: s.port, timeoutMillis: 2000)
        try d.send(
            "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n"
                + String(repeating: "a", count: 600) + "\r\n258\r\n")
        #expect(try d.readResponse().status == 413)
        // Up to the limit is fine.
        let e = try RawClient(port: s.port)
        let r = try e.request(
            "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3E8\r\n"
                + String(repeating: "b", count: 1000) + "\r\n0\r\n\r\n")
        #expect(r.status == 200)
        #expect(r.body.count == 1000)
    }

    @Test func contentLengthOverTheBodyLimitIs413BeforeTheBody() throws {
        let s = try TestServer({ $0.maxBodyBytes = 1000 }, logLevel: .trace, routes: strictRoutes)
        defer { s.stop() }
        let c = try RawClient(port: s.port, timeoutMillis: 2000)
        try c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3000000\r\n\r\n")
        #expect(try c.readResponse().status == 413)
        #expect(c.waitForClose())
    }

    @Test func decoderRejectsEachLeniencyAtEverySplitPoint() {
        let cases: [(String, Int)] = [
            ("POST / HTTP/1.1\r\nHost: t\r\nContent-Length : 5\r\n\r\nhello", 400),
            ("GET / HTTP/1.1\r\nHost: t\r\nBad Name: v\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\n\r\n", 400),
            ("GET / HTTP/9.9\r\nHost: t\r\n\r\n", 505),
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY0\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n10000\r\n", 413),
        ]
        for (text, status) in cases {
            let input = Array(text.utf8)
            for split in 0...input.count {
                let result = decodeStrict([input[..<split], input[split...]])
                #expect(result.failures == [status], "split \(split) of \(text.debugDescription)")
                #expect(result.requests == 0)
            }
        }
    }
}

/// Feeds `pieces` to a request decoder (limits: 4 KiB head, 1 KiB body); returns requests seen and failures.
private func decodeStrict(_ pieces: [ArraySlice<UInt8>]) -> (requests: Int, failures: [Int]) {
    final class Sink: HTTPRequestDecoderDelegate {
        var requests = 0
        var failures: [Int] = []
        func decoderDidReceiveRequest(_ decoder: HTTPRequestDecoder) -> Bool {
            requests += 1
            return true
        }
        func decoderWantsContinue(_ decoder: HTTPRequestDecoder) {}
        func decoderDidFail(_ decoder: HTTPRequestDecoder, status: Int) { failures.append(status) }
    }
    let decoder = HTTPRequestDecoder(
        limits: HTTPDecoderLimits(maxHeaderBytes: 4096, maxHeaderCount: 50, maxURLBytes: 1024, maxBodyBytes: 1024))
    let sink = Sink()
    for piece in pieces { piece.withUnsafeBytes { decoder.feed($0, delegate: sink) } }
    return (sink.requests, sink.failures)
}
