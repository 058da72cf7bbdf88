// The HTTP server over real sockets on 127.0.0.1:0. Every wait is bounded; every server is stopped in defer.
import Glibc
import MinervaTestSupport
import Testing

@testable import MinervaHTTP
@testable import MinervaIO

private func echoRoutes(_ router: MinervaHTTPRouter) {
    router.route("/hello") { _, response in
        response.setHeader("Content-Type", "text/plain")
        response.end("hello")
    }
    router.route("/echo", methods: [.POST, .PUT]) { request, response in
        response.setHeader("Content-Type", "application/octet-stream")
        response.end(request.body)
    }
    router.mount("/path/") { request, response in
        response.end(request.path + "|" + (request.query ?? "-") + "|" + (request.header("x-tag") ?? "-"))
    }
}

@Suite(.serialized) struct HTTPServerTests {
    @Test func getHeadNotFoundAndMethodNotAllowed() throws {
        let s = try TestServer(routes: echoRoutes)
        defer { s.stop() }
        let c = try RawClient(port: s.port)
        let ok = try c.request(get("/hello"))
        #expect(ok.status == 200)
        #expect(ok.text == "hello")
        #expect(ok.header("Content-Length") == "5")
        #expect(ok.header("Date")?.hasSuffix("GMT") == true)
        let head = try c.request("HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n", isHead: true)
        #expect(head.status == 200)
        #expect(head.header("Content-Length") == "5")
        #expect(try c.request(get("/missing")).status == 404)
        let wrong = try c.request("DELETE /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(wrong.status == 405)
        #expect(wrong.header("Allow") == "GET, HEAD")
        let routed = try c.request(get("/path/a/b?q=1", "X-Tag: seven\r\n"))
        #expect(routed.text == "/path/a/b|q=1|seven")
    }

    @Test func keepAliveRules() throws {
        let s = try TestServer(routes: echoRoutes)
        defer { s.stop() }
        let c11 = try RawClient(port: s.port)
        for _ in 0..<3 { #expect(try c11.request(get("/hello")).text == "hello") }
        #expect(s.server.connectionCount == 1)

        let c10 = try RawClient(port: s.port)
        let r10 = try c10.request("GET /hello HTTP/1.0\r\n\r\n")
        #expect(r10.header("Connection") == "close")
        #expect(c10.waitForClose())

        let c10k = try RawClient(port: s.port)
        let r = try c10k.request("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        #expect(r.header("Connection") == "keep-alive")
        #expect(try c10k.request("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").text == "hello")

        let close = try RawClient(port: s.port)
        #expect(try close.request(get("/hello", "Connection: close\r\n")).header("Connection") == "close")
        #expect(close.waitForClose())
    }

    @Test func pipelinedRequestsAnsweredInOrder() throws {
        let s = try TestServer(routes: echoRoutes)
        defer { s.stop() }
        let c = try RawClient(port: s.port)
        let paths = (0..<20).map { "/path/\($0)" }
        try c.send(paths.map { get($0) }.joined() + "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nlast")
        for p in paths { #expect(try c.readResponse().text == p + "|-|-") }
        #expect(try c.readResponse().text == "last")
    }

    @Test func pipelinedBehindASlowResponse() throws {
        let s = try TestServer(routes: { router in
            echoRoutes(router)
            router.route("/later") { _, response in
                response.eventLoop.schedule(after: 0.05) { response.end("later") }
            }
        })
        defer { s.stop() }
        let c = try RawClient(port: s.port)
        try c.send(get("/later") + get("/hello") + get("/later") + get("/path/x"))
        #expect(try c.readResponse().text == "later")
        #expect(try c.readResponse().text == "hello")
        #expect(try c.readResponse().text == "later")
        #expect(try c.readResponse().text == "/path/x|-|-")
    }

    @Test func requestBodies() throws {
        let s = try TestServer(routes: echoRoutes)
        defer { s.stop() }
        let c = try RawClient(port: s.port)
        let chunked = try c.request(
            "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n"
        )
        #expect(chunked.text == "abc0123456789")
        let big = [UInt8]((0..<200_000).map { UInt8($0 % 251) })
        try c.send("PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: \(big.count)\r\n\r\n")
        try c.send(big)
        #expect(try c.readResponse().body == big)
        // Expect: 100-continue: the interim answer comes before the body is sent.
        try c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
        #expect(try c.readResponse().status == 100)
        try c.send("hi")
        #expect(try c.readResponse().text == "hi")
    }

    @Test(arguments: [
        ("GET /\(String(repeating: "u", count: 600)) HTTP/1.1\r\n\r\n", 414),
        ("GET / HTTP/1.1\r\nX-Big: \(String(repeating: "h", count: 3000))\r\n\r\n", 431),
        ("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n", 413),
        (
            "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n\(String(repeating: "c", count: 4096))\r\n0\r\n\r\n",
            413
        ),
        ("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nNo colon here\r\n\r\n", 400),
        ("\u{7}GARBAGE\r\n\r\n", 400),
    ])
    func limitAnswersThenClose(input: String, status: Int) throws {
        let s = try TestServer(
            { c in
                c.maxURLBytes = 512
                c.maxHeaderBytes = 2048
                c.maxBodyBytes = 4000
            }, logLevel: .trace, routes: echoRoutes)
        defer { s.stop() }
        let c = try RawClient(port: s.port)
        #expect(try c.request(get("/hello")).status == 200)
        try c.send(input)
        let r = try c.readResponse()
        #expect(r.status == status)
        #expect(r.header("Connection") == "close")
        #expect(c.waitForClose())
        // One log line per rejection, naming the status and the peer.
        let lines = s.logs.messages(containing: "rejected request: \(status)")
        #expect(lines.count == 1)
        #expect(lines.first?.contains("peer=127.0.0.1:") == true)
    }

    @Test func slowlorisHeaderTimeout() throws {
        let s = try TestServer({ c in c.headerTimeout = 0.3 }, routes: echoRoutes)
        defer { s.stop() }
        let c = try RawClient(port: s.port)
        let start = monotonicNow()
        for piece in ["GET /hello HT", "TP/1.1\r\n", "X-A: 1\r\n"] {
            try c.send(piece)
            usleep(100_000)
        }
        let r = try c.readResponse()
        #expect(r.status == 408)
        #expect(c.waitForClose())
        #expect(monotonicNow() - start < 3)
        // A connection that sends nothing at all is closed too.
        let silent = try RawClient(port: s.port)
        #expect(silent.waitForClose())
    }

    @Test func stalledRequestBodyTimesOut() throws {
        let s = try TestServer({ c in c.bodyTimeout = 0.3 }, logLevel: .trace, routes: echoRoutes)
        defer { s.stop() }
        let c = try RawClient(port: s.port)
        try c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly a part")
        #expect(try c.readResponse().status == 408)
        #expect(c.waitForClose())
        #expect(s.logs.messages(containing: "rejected request: 408").count == 1)
    }

    @Test func idleKeepAliveTimeout() throws {
        let s = try TestServer({ c in c.idleTimeout = 0.3 }, routes: echoRoutes)
        defer { s.stop() }
        let c = try RawClient(port: s.port)
        #expect(try c.request(get("/hello")).status == 200)
        #expect(c.waitForClose())
        #expect(waitUntil { s.server.connectionCount == 0 })
    }

    @Test func clientClosingMidResponseIsNoticed() throws {
        let closed = Locked(0)
        let s = try TestServer(routes: { router in
            router.route("/forever") { _, response in
                response.write("first part\n")
                response.onClose = { closed.update { $0 += 1 } }
            }
        })
        defer { s.stop() }
        let c = try RawClient(port: s.port)
        try c.send(get("/forever"))
        c.fill()
        c.abort()  // an RST; a clean half-close (FIN) gets the whole response instead
        #expect(waitUntil { closed.get() == 1 })
        #expect(waitUntil { s.server.connectionCount == 0 })
    }

    @Test func longPollAnsweredLaterWithExactLength() throws {
        let s = try TestServer(routes: { router in
            router.route("/poll") { _, response in
                response.eventLoop.schedule(after: 0.1) {
                    response.status = 200
                    response.setHeader("Content-Type", "text/plain")
                    response.end(";)]}^\n")
                }
            }
        })
        defer { s.stop() }
        let c = try RawClient(port: s.port)
        let r = try c.request(get("/poll"))
        #expect(r.header("Content-Length") == "6")
        #expect(r.header("Transfer-Encoding") == nil)
        #expect(r.text == ";)]}^\n")
    }

    @Test func streamedResponsesChunkedOrCloseDelimited() throws {
        let s = try TestServer(routes: { router in
            router.route("/stream") { _, response in
                var n = 0
                let timer = response.eventLoop.schedule(after: 0.01, repeating: 0.01) {}
                timer.cancel()
                func step() {
                    n += 1
                    if n > 3 {
                        response.end()
                        return
                    }
                    response.write("part\(n);")
                    response.eventLoop.schedule(after: 0.01) { step() }
                }
                step()
            }
        })
        defer { s.stop() }
        let c = try RawClient(port: s.port)
        let r11 = try c.request(get("/stream"))
        #expect(r11.header("Transfer-Encoding") == "chunked")
        #expect(r11.text == "part1;part2;part3;")
        let c10 = try RawClient(port: s.port)
        let r10 = try c10.request("GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        #expect(r10.header("Connection") == "close")
        #expect(r10.header("Content-Length") == nil)
        #expect(r10.text == "part1;part2;part3;")
    }

    @Test func slowReaderPausesTheProducer() throws {
        let total = 8 * 1024 * 1024
        let chunk = [UInt8](repeating: UInt8(ascii: "x"), count: 16 * 1024)
        let stats = Locked((maxBuffered: 0, pauses: 0, written: 0))
        let s = try TestServer(
            { c in
                c.highWaterMark = 128 * 1024
                c.lowWaterMark = 32 * 1024
            },
            routes: { router in
                router.route("/big") { _, response in
                    response.writeHead(contentLength: total)
                    var written = 0
                    func produce() {
                        while written < total {
                            guard response.isWritable else {
                                stats.update { $0.pauses += 1 }
                                return  // onWritable calls us again
                            }
                            response.write(chunk)
                            written += chunk.count
                            stats.update { $0.maxBuffered = max($0.maxBuffered, response.bufferedBytes) }
                        }
                        stats.update { $0.written = written }
                        response.end()
                    }
                    response.onWritable = { produce() }
                    produce()
                }
            })
        defer { s.stop() }
        let c = try RawClient(port: s.port, receiveBuffer: 16 * 1024)
        try c.send(get("/big"))
        usleep(300_000)  // the client reads nothing for a while: the server must stop producing
        let pausedEarly = stats.get().pauses
        #expect(pausedEarly >= 1)
        #expect(stats.get().written == 0)
        let r = try c.readResponse()
        #expect(r.body.count == total)
        let final = stats.get()
        #expect(final.written == total)
        #expect(final.maxBuffered <= 128 * 1024 + chunk.count)
        #expect(try c.request(get("/missing")).status == 404)
    }

    @Test func writeStallTimeoutClosesAndNotifies() throws {
        let closed = Locked(false)
        let s = try TestServer(
            { c in c.writeTimeout = 0.3 },
            routes: { router in
                router.route("/flood") { _, response in
                    response.onClose = { closed.update { $0 = true } }
                    let block = [UInt8](repeating: 0x61, count: 1 << 20)
                    for _ in 0..<16 { response.write(block) }
                }
            })
        defer { s.stop() }
        let c = try RawClient(port: s.port, receiveBuffer: 4096)
        try c.send(get("/flood"))
        #expect(waitUntil(5) { closed.get() })
    }

    @Test func fiveThousandConcurrentKeepAliveConnections() throws {
        let s = try TestServer({ c in c.backlog = 8192 }, routes: echoRoutes)
        defer { s.stop(grace: 1) }
        var clients: [RawClient] = []
        clients.reserveCapacity(5000)
        for _ in 0..<5000 { clients.append(try RawClient(port: s.port, timeoutMillis: 10_000)) }
        for round in 0..<2 {
            for c in clients { try c.send(get("/path/\(round)")) }
            var ok = 0
            for c in clients where try c.readResponse().text == "/path/\(round)|-|-" { ok += 1 }
            #expect(ok == 5000)
        }
        #expect(s.server.connectionCount == 5000)
    }

    @Test func gracefulShutdownLetsInFlightResponsesFinish() throws {
        let s = try TestServer(routes: { router in
            echoRoutes(router)
            router.route("/slow") { _, response in
                response.eventLoop.schedule(after: 0.3) { response.end("done") }
            }
        })
        let idle = try RawClient(port: s.port)
        #expect(try idle.request(get("/hello")).status == 200)
        let busy = try RawClient(port: s.port)
        try busy.send(get("/slow"))
        usleep(50_000)
        let started = monotonicNow()
        s.server.shutdown(gracePeriod: 5)
        #expect(idle.waitForClose())
        let r = try busy.readResponse()
        #expect(r.text == "done")
        #expect(r.header("Connection") == "close")
        #expect(busy.waitForClose())
        s.server.waitUntilStopped()
        #expect(monotonicNow() - started < 3)
        #expect(connectTCP(host: "127.0.0.1", port: s.port) < 0)
    }

    @Test func shutdownDeadlineClosesStragglers() throws {
        let closed = Locked(false)
        let s = try TestServer(routes: { router in
            router.route("/never") { _, response in response.onClose = { closed.update { $0 = true } } }
        })
        let c = try RawClient(port: s.port)
        try c.send(get("/never"))
        usleep(50_000)
        let started = monotonicNow()
        s.server.shutdown(gracePeriod: 0.2)
        s.server.waitUntilStopped()
        #expect(closed.get())
        #expect(c.waitForClose())
        #expect(monotonicNow() - started < 2)
    }

    @Test func staticContentAndConditionalGet() throws {
        let content = MinervaStaticContent(text: "body text", contentType: "text/plain", cacheControl: "max-age=60")
        let large = MinervaStaticContent(
            bytes: [UInt8](repeating: 7, count: 100_000), contentType: "application/x-test")
        let s = try TestServer(routes: { router in
            router.route("/s", content.handler)
            router.route("/large", large.handler)
        })
        defer { s.stop() }
        let c = try RawClient(port: s.port)
        let r = try c.request(get("/s"))
        #expect(r.text == "body text")
        #expect(r.header("Cache-Control") == "max-age=60")
        #expect(r.header("Content-Type") == "text/plain")
        let etag = try #require(r.header("ETag"))
        #expect(try c.request(get("/s", "If-None-Match: \"other\", \(etag)\r\n")).status == 304)
        #expect(try c.request(get("/s", "If-None-Match: \"other\"\r\n")).status == 200)
        #expect(try c.request(get("/large")).body == [UInt8](repeating: 7, count: 100_000))
    }

    @Test func executeFromAnotherThreadAndTimers() throws {
        let s = try TestServer(routes: echoRoutes)
        defer { s.stop() }
        let loop = s.server.eventLoops[0]
        let events = Locked<[String]>([])
        loop.execute {
            loop.schedule(after: 0.05) { events.update { $0.append("once") } }
            let cancelled = loop.schedule(after: 0.02) { events.update { $0.append("cancelled") } }
            cancelled.cancel()
            var ticks = 0
            var repeating: MinervaLoopTimer?
            repeating = loop.schedule(after: 0.01, repeating: 0.01) {
                ticks += 1
                events.update { $0.append("tick") }
                if ticks == 3 { repeating?.cancel() }
            }
        }
        #expect(waitUntil { events.get().contains("once") })
        usleep(100_000)
        let seen = events.get()
        #expect(seen.filter { $0 == "tick" }.count == 3)
        #expect(!seen.contains("cancelled"))
    }
}

@Suite struct StaticDirectoryTests {
    @Test func traversalIsRejected() {
        let h = MinervaStaticDirectoryHandler(root: "/srv", urlPrefix: "/static/")
        func rel(_ p: String) -> String? { h.relativePath(forRequestPath: Array(p.utf8)) }
        #expect(rel("/static/a/b.js") == "a/b.js")
        #expect(rel("/static/") == "index.html")
        #expect(rel("/static/dir/") == "dir/index.html")
        #expect(rel("/static/../etc/passwd") == nil)
        #expect(rel("/static/a/%2e%2e/%2E%2E/x") == nil)
        #expect(rel("/static/a/..%2fb") == nil)
        #expect(rel("/static/.hidden") == nil)
        #expect(rel("/static/a%00b") == nil)
        #expect(rel("/static/a%5c..%5cb") == nil)
        #expect(rel("/other/x") == nil)
    }

    @Test func servesFilesFromDisk() throws {
        let dir = "/tmp/minerva-static-\(getpid())"
        mkdir(dir, 0o755)
        let file = fopen(dir + "/page.html", "w")
        fputs("<p>hi</p>", file)
        fclose(file)
        defer {
            unlink(dir + "/page.html")
            rmdir(dir)
        }
        let handler = MinervaStaticDirectoryHandler(root: dir, urlPrefix: "/static/")
        let s = try TestServer(routes: { router in router.mount("/static/", handler.handler) })
        defer { s.stop() }
        let c = try RawClient(port: s.port)
        let r = try c.request(get("/static/page.html"))
        #expect(r.text == "<p>hi</p>")
        #expect(r.header("Content-Type") == "text/html; charset=utf-8")
        #expect(try c.request(get("/static/../page.html")).status == 404)
        #expect(try c.request(get("/static/nothere.html")).status == 404)
    }

    @Test func httpRequestKnowsBothAddresses() throws {
        let s = try TestServer(routes: { router in
            router.route("/who") { request, response in
                response.end("\(request.remoteAddress?.description ?? "-") \(request.localAddress?.description ?? "-")")
            }
        })
        defer { s.stop() }
        let c = try RawClient(port: s.port)
        let text = try c.request(get("/who")).text
        let clientPort = MinervaSocketAddress.of(fd: c.fd, peer: false)!.port
        #expect(text == "127.0.0.1:\(clientPort) 127.0.0.1:\(s.port)")
    }
}
