// PROTOCOL.md 9 group F over real sockets: POST <prefix>io/ bodies, exact response bytes, Content-Length versus
// chunked, headers of 4.2, peer abort; plus routing, the client script and CORS.
import Glibc
import MinervaTestSupport
import Testing

@testable import MinervaHTTP
@testable import MinervaIO
@testable import MinervaServer
@testable import minerva_demo

private let noCacheHeaders: [(String, String)] = [
    ("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate"), ("Pragma", "no-cache"), ("Expires", "-1"),
    ("Content-Type", "text/plain"), ("X-XSS-Protection", "1; mode=block"), ("X-Content-Type-Options", "nosniff"),
]

/// Creates the stream `ID` as case 80 does and checks that response.
private func case80(_ server: MinervaTestServer) throws {
    let reply = try server.post(hh("eeds:null") + "\n")
    #expect(reply.text == ";)]}^\nC\n|-1A\n|-1T\n")
    #expect(reply.header("Content-Length") == "18")
}

@Suite("Minerva HTTP endpoint (PROTOCOL.md 9 group F)", .serialized)
struct MinervaEndpointTests {
    @Test("77: body frames passed to the protocol; long-poll has Content-Length 21, CRLF tolerated")
    func case77() throws {
        for newline in ["\n", "\r\n"] {
            let server = try MinervaTestServer()
            defer { server.stop() }
            let client = try RawClient(port: server.port)
            let body = [hh("eeds:null"), "string0 ", "string1 ", "string2 "].map { $0 + newline }.joined()
            try client.post(body)
            let reply = try client.readResponse()
            #expect(reply.status == 200)
            #expect(reply.text == ";)]}^\nC\n|2A\n|2A\n|-1T\n")
            #expect(reply.header("Content-Length") == "21")
            #expect(reply.header("Transfer-Encoding") == nil)
            #expect(server.recording.all.contains("strings string0,string1,string2"))
        }
    }

    @Test("77 streaming: ming:1 writes C and the SACK and stays open (chunked)")
    func case77Streaming() throws {
        let server = try MinervaTestServer()
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        try client.post(hh("eeds:null", "ming:1") + "\nstring0 \nstring1 \nstring2 \n")
        let head = try client.readHead()
        #expect(head.headers.contains { $0 == ("Transfer-Encoding", "chunked") })
        #expect(!head.headers.contains { $0.0 == "Content-Length" })
        #expect(try client.readChunks(totalling: 12) == ";)]}^\nC\n|2A\n")
        #expect(client.receivesNothing(for: 0.2))
    }

    @Test("78: a final line without newline is ignored")
    func case78() throws {
        let server = try MinervaTestServer()
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        try client.post(hh("eeds:null", "ming:1") + "\nstring0 \nstring1 ")
        _ = try client.readHead()
        #expect(try client.readChunks(totalling: 12) == ";)]}^\nC\n|0A\n")
        #expect(client.receivesNothing(for: 0.2))
        #expect(server.recording.all.filter { $0.hasPrefix("strings") } == ["strings string0"])
    }

    @Test("79: S2C strings already queued; long-poll gets them with Content-Length 42")
    func case79() throws {
        let server = try MinervaTestServer()
        defer { server.stop() }
        try case80(server)
        _ = server.withStream { stream in
            try? stream.send("string0")
            try? stream.send("string1")
        }
        let reply = try server.post(hh("eeds:null") + "\nstring0 \n")
        #expect(reply.text == ";)]}^\nC\n0N\nstring0 \nstring1 \n|0A\n|0A\n|-1T\n")
        #expect(reply.header("Content-Length") == "42")
    }

    @Test("79 streaming: no Content-Length, and a later send is appended")
    func case79Streaming() throws {
        let server = try MinervaTestServer()
        defer { server.stop() }
        try case80(server)
        _ = server.withStream { stream in
            try? stream.send("string0")
            try? stream.send("string1")
        }
        let client = try RawClient(port: server.port)
        try client.post(hh("eeds:null", "ming:1") + "\nstring0 \n")
        let head = try client.readHead()
        #expect(!head.headers.contains { $0.0 == "Content-Length" })
        let expected = ";)]}^\nC\n0N\nstring0 \nstring1 \n|0A\n"
        #expect(try client.readChunks(totalling: expected.utf8.count) == expected)
        _ = server.withStream { try? $0.send("extraString") }
        #expect(try client.readChunks(totalling: 13) == "extraString \n")
    }

    @Test("80: a fresh stream's first long-poll is finished with Content-Length 18")
    func case80Test() throws {
        let server = try MinervaTestServer()
        defer { server.stop() }
        try case80(server)
        #expect(server.recording.all.prefix(2) == ["started", "created 0"])
    }

    @Test("81: strings sent while a long-poll waits finish it (Content-Length 37); streaming stays open")
    func case81() throws {
        for streaming in [false, true] {
            let server = try MinervaTestServer()
            defer { server.stop() }
            try case80(server)
            let client = try RawClient(port: server.port)
            try client.post(hh("-new", "eeds:null", "ming:\(streaming ? 1 : 0)") + "\n")
            #expect(client.receivesNothing(for: 0.2))
            _ = server.withStream { stream in
                try? stream.send("string0")
                try? stream.send("string1")
            }
            if streaming {
                let head = try client.readHead()
                #expect(!head.headers.contains { $0.0 == "Content-Length" })
                let expected = ";)]}^\n0N\nstring0 \nstring1 \n"
                #expect(try client.readChunks(totalling: expected.utf8.count) == expected)
                #expect(client.receivesNothing(for: 0.1))
            } else {
                let reply = try client.readResponse()
                #expect(reply.text == ";)]}^\n0N\nstring0 \nstring1 \n|-1A\n|-1T\n")
                #expect(reply.header("Content-Length") == "37")
            }
        }
    }

    @Test("82: the headers of 4.2, exactly; an empty body is answered as 10.8 recommends")
    func case82() throws {
        let server = try MinervaTestServer()
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        try client.post(hh("eeds:null") + "\n")
        let reply = try client.readResponse()
        let names = Set(noCacheHeaders.map(\.0))
        let minervaHeaders = reply.headers.filter { names.contains($0.0) }
        #expect(minervaHeaders.map(\.0) == noCacheHeaders.map(\.0))
        #expect(minervaHeaders.map(\.1) == noCacheHeaders.map(\.1))
        #expect(reply.header("Access-Control-Allow-Origin") == nil)
        for body in ["", "string0 "] {
            try client.post(body)
            let empty = try client.readResponse()
            #expect(empty.text == ";)]}^\ninvalid_frame_type_or_argumentsK\n")
        }
    }

    @Test("83: a client that aborts a streaming request detaches its transport at once")
    func case83() throws {
        let server = try MinervaTestServer()
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        try client.post(hh("eeds:null", "ming:1") + "\n")
        _ = try client.readHead()
        #expect(try client.readChunks(totalling: 8) == ";)]}^\nC\n")
        #expect(server.withStream { $0.transportCount } == 1)
        client.abort()
        #expect(waitUntil { server.recording.all.contains("destroyed 0") })
        #expect(server.withStream { $0.transportCount } == 0)
        #expect(server.total(\.transportCount) == 0)
    }

    @Test("84: a transport that does not want strings is closed at once (Content-Length 16)")
    func case84() throws {
        for ming in [0, 1] {
            let server = try MinervaTestServer()
            defer { server.stop() }
            try case80(server)
            let reply = try server.post(hh("-new", "-eeds", "ming:\(ming)") + "\n")
            #expect(reply.text == ";)]}^\n|-1A\n|-1T\n")
            #expect(reply.header("Content-Length") == "16")
        }
    }

    @Test("85: maxt closes a waiting primary gently when it expires")
    func case85() throws {
        let server = try MinervaTestServer()
        defer { server.stop() }
        try case80(server)
        let client = try RawClient(port: server.port)
        let start = monotonicNow()
        try client.post(hh("new:false", "tnum:1", "eeds:null", "maxt:1") + "\n")
        #expect(client.receivesNothing(for: 0.5))
        let reply = try client.readResponse(timeout: 3)
        #expect(reply.text == ";)]}^\n|-1A\n|-1T\n")
        #expect(monotonicNow() - start >= 0.9)
    }

    @Test("86: the application resets while strings are delivered to a secondary")
    func case86() throws {
        for suffix in ["", "client's reason|1!\n"] {
            let server = try MinervaTestServer(makeHandler: { handler in
                handler.onStrings = { _, stream in try? stream.reset(reason: "reset forced by mock protocol") }
            })
            defer { server.stop() }
            try case80(server)
            let reply = try server.post(hh("new:false", "-eeds") + "\nstring0 \nstring1 \nstring2 \n" + suffix)
            #expect(reply.text == ";)]}^\n|2A\nreset forced by mock protocol|1!\n")
            #expect(server.recording.all.last == "reset reset forced by mock protocol true")
        }
    }

    @Test("87: an unknown stream without new gets stream_attach_failure (Content-Length 29)")
    func case87() throws {
        let server = try MinervaTestServer()
        defer { server.stop() }
        let reply = try server.post(hh("-new", "eeds:null") + "\n")
        #expect(reply.text == ";)]}^\nstream_attach_failureK\n")
        #expect(reply.header("Content-Length") == "29")
    }

    @Test("88: a line of 1048577 bytes is frame_corruption and no frame of the body is processed")
    func case88() throws {
        let server = try MinervaTestServer()
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        let long = [UInt8](repeating: UInt8(ascii: "a"), count: 1_048_577)
        try client.post(Array((hh("eeds:null") + "\n").utf8) + long + [10])
        let reply = try client.readResponse()
        #expect(reply.text == ";)]}^\nframe_corruptionK\n")
        #expect(server.recording.all.isEmpty)
        #expect(server.total(\.streamCount) == 0)
    }

    @Test("89: {}H is invalid_frame_type_or_arguments (Content-Length 39)")
    func case89() throws {
        let server = try MinervaTestServer()
        defer { server.stop() }
        let reply = try server.post("{}H\n")
        #expect(reply.text == ";)]}^\ninvalid_frame_type_or_argumentsK\n")
        #expect(reply.header("Content-Length") == "39")
    }

    @Test("90: a long-poll with maxia returns at once with beat^")
    func case90() throws {
        let server = try MinervaTestServer()
        defer { server.stop() }
        try case80(server)
        let client = try RawClient(port: server.port)
        try client.post(hh("-new", "eeds:null", "maxia:5") + "\n")
        let reply = try client.readResponse(timeout: 1)
        #expect(reply.text == ";)]}^\nbeat^\n|-1A\n|-1T\n")
    }

    @Test("91: routing: io and io/ alike, io/extra 404, GET and HEAD 405 with Allow, query ignored")
    func case91() throws {
        let server = try MinervaTestServer()
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        try client.post("{}H\n", path: "/_minerva/io")
        #expect(try client.readResponse().text == ";)]}^\ninvalid_frame_type_or_argumentsK\n")
        try client.post("{}H\n", path: "/_minerva/io/?x=1")
        #expect(try client.readResponse().text == ";)]}^\ninvalid_frame_type_or_argumentsK\n")
        try client.post("{}H\n", path: "/_minerva/io/extra")
        #expect(try client.readResponse().status == 404)
        try client.send("GET /_minerva/io/ HTTP/1.1\r\nHost: t\r\n\r\n")
        let get = try client.readResponse()
        #expect(get.status == 405)
        #expect(get.header("Allow") == "POST")
        try client.send("HEAD /_minerva/io/ HTTP/1.1\r\nHost: t\r\n\r\n")
        let head = try client.readHead()
        #expect(head.status == 405)
        try client.send("GET /_minerva/minerva-client.js HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        #expect(client.waitForClose(within: 5))
        #expect(String(decoding: client.buffer, as: UTF8.self).hasPrefix("HTTP/1.1 404"))
    }

    @Test("the endpoint mounts at any prefix beside other routes")
    func otherPrefix() throws {
        let server = try MinervaTestServer(configure: { $0.prefix = "/deep/minerva/" })
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        try client.post(hh("eeds:null") + "\n", path: "/deep/minerva/io/")
        #expect(try client.readResponse().text == ";)]}^\nC\n|-1A\n|-1T\n")
        try client.post("{}H\n")
        #expect(try client.readResponse().status == 404)
    }

    @Test("minerva-client.js is served from the configured file with caching headers")
    func clientScript() throws {
        let path = "/tmp/minerva-endpoint-test-\(getpid()).js"
        let script = "var Minerva = {};\n"
        let file = fopen(path, "w")!
        fputs(script, file)
        fclose(file)
        defer { unlink(path) }
        let server = try MinervaTestServer(configure: {
            $0.servesClientScript = true
            $0.clientScriptPath = path
        })
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        try client.send("GET /_minerva/minerva-client.js HTTP/1.1\r\nHost: t\r\n\r\n")
        let reply = try client.readResponse()
        #expect(reply.status == 200)
        #expect(reply.text == script)
        #expect(reply.header("Cache-Control") == "public, max-age=300")
        #expect(reply.header("Content-Type") == "text/javascript; charset=utf-8")
        let etag = try #require(reply.header("ETag"))
        try client.send("GET /_minerva/minerva-client.js HTTP/1.1\r\nHost: t\r\nIf-None-Match: \(etag)\r\n\r\n")
        #expect(try client.readResponse().status == 304)
    }

    @Test("by default the client compiled into the binary is served, byte for byte Client/minerva-client.js")
    func embeddedClientScript() throws {
        let source = try #require(readSourceFile("Client/minerva-client.js"))
        #expect(Array(MinervaEndpoint.embeddedClientScript.utf8) == source, "run scripts/embed-client.py")
        let server = try MinervaTestServer(configure: { $0.servesClientScript = true })
        defer { server.stop() }
        #expect(server.endpoint.servesClientScript)
        let client = try RawClient(port: server.port)
        try client.send("GET /_minerva/minerva-client.js HTTP/1.1\r\nHost: t\r\n\r\n")
        let reply = try client.readResponse()
        #expect(reply.status == 200)
        #expect(reply.body == source)
        #expect(reply.header("Content-Type") == "text/javascript; charset=utf-8")
    }

    @Test("servesClientScript false, or a missing file, answers 404")
    func noClientScript() throws {
        for configure: @Sendable (inout MinervaEndpointConfiguration) -> Void in [
            { $0.servesClientScript = false }, { $0.clientScriptPath = "/nonexistent/minerva-client.js" },
        ] {
            let server = try MinervaTestServer(configure: configure)
            defer { server.stop() }
            let client = try RawClient(port: server.port)
            try client.send("GET /_minerva/minerva-client.js HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(try client.readResponse().status == 404)
        }
    }

    @Test("the demo's chat page compiled into the binary is Client/demo/chat.html")
    func embeddedChatPage() throws {
        let source = try #require(readSourceFile("Client/demo/chat.html"))
        #expect(Array(EmbeddedPages.chatPage.utf8) == source, "run scripts/embed-client.py")
    }

    @Test("CORS: allowed origins get Access-Control-Allow-Origin and a preflight answer; others do not")
    func cors() throws {
        let server = try MinervaTestServer(configure: { $0.allowedOrigins = ["http://good.example"] })
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        try client.send(
            "OPTIONS /_minerva/io/ HTTP/1.1\r\nHost: t\r\nOrigin: http://good.example\r\n"
                + "Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n\r\n")
        let preflight = try client.readResponse()
        #expect(preflight.status == 204)
        #expect(preflight.header("Access-Control-Allow-Origin") == "http://good.example")
        #expect(preflight.header("Access-Control-Allow-Methods") == "POST, OPTIONS")
        #expect(preflight.header("Access-Control-Allow-Headers") == "content-type")
        try client.post(hh("eeds:null") + "\n", extraHeaders: "Origin: http://good.example\r\n")
        let post = try client.readResponse()
        #expect(post.header("Access-Control-Allow-Origin") == "http://good.example")
        #expect(post.text == ";)]}^\nC\n|-1A\n|-1T\n")
        try client.post("{}H\n", extraHeaders: "Origin: http://evil.example\r\n")
        let foreign = try client.readResponse()
        #expect(foreign.status == 403)
        #expect(foreign.header("Access-Control-Allow-Origin") == nil)
        #expect(foreign.header("Access-Control-Allow-Credentials") == nil)
        try client.send("OPTIONS /_minerva/io/ HTTP/1.1\r\nHost: t\r\nOrigin: http://evil.example\r\n\r\n")
        let refused = try client.readResponse()
        #expect(refused.status == 403)
        #expect(refused.header("Access-Control-Allow-Origin") == nil)
    }

    @Test("no allowed origins: no CORS headers, OPTIONS is 405")
    func noCORS() throws {
        let server = try MinervaTestServer()
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        try client.post("{}H\n", extraHeaders: "Origin: http://good.example\r\n")
        #expect(try client.readResponse().header("Access-Control-Allow-Origin") == nil)
        try client.send("OPTIONS /_minerva/io/ HTTP/1.1\r\nHost: t\r\nOrigin: http://good.example\r\n\r\n")
        #expect(try client.readResponse().status == 405)
    }

    @Test("a POST from a foreign origin is refused before it reaches a stream; same-origin and native ones pass")
    func originEnforcement() throws {
        let server = try MinervaTestServer()
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        for origin in ["http://evil.example", "null", "http://test.evil.example", "http://testx", "ftp://test"] {
            try client.post(hh("eeds:null") + "\n0N\nhi \n", extraHeaders: "Origin: \(origin)\r\n")
            let reply = try client.readResponse()
            #expect(reply.status == 403)
            #expect(reply.text == "Origin not allowed\n")
        }
        #expect(server.total(\.streamCount) == 0)
        #expect(server.recording.all.isEmpty)
        // Same origin: RawClient sends `Host: test`, under either scheme (a TLS-terminating proxy in front).
        // Any port: a proxy in front may rewrite Host to the server's address while Origin names the proxy's.
        for (index, origin) in ["http://test", "HTTPS://TEST", "http://test:8443"].enumerated() {
            try client.post(hh("-eeds", "tnum:\(index)") + "\n", extraHeaders: "Origin: \(origin)\r\n")
            #expect(try client.readResponse().status == 200)
        }
        try client.post(hh("-new", "tnum:3", "-eeds") + "\n")  // no Origin: a native client
        #expect(try client.readResponse().status == 200)
        #expect(server.total(\.streamCount) == 1)
        let lenient = try MinervaTestServer(configure: { $0.enforcesOrigins = false })
        defer { lenient.stop() }
        let other = try RawClient(port: lenient.port)
        try other.post(hh("eeds:null") + "\n", extraHeaders: "Origin: http://evil.example\r\n")
        #expect(try other.readResponse().status == 200)
    }

    @Test("credentials: Access-Control-Allow-Credentials only when configured, for allowed origins")
    func corsCredentials() throws {
        let server = try MinervaTestServer(configure: {
            $0.allowedOrigins = ["http://app.example"]
            $0.allowsCredentials = true
        })
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        try client.send(
            "OPTIONS /_minerva/io/ HTTP/1.1\r\nHost: t\r\nOrigin: http://app.example\r\n"
                + "Access-Control-Request-Method: POST\r\n\r\n")
        #expect(try client.readResponse().header("Access-Control-Allow-Credentials") == "true")
        try client.post(hh("eeds:null") + "\n", extraHeaders: "Origin: http://app.example\r\n")
        let post = try client.readResponse()
        #expect(post.header("Access-Control-Allow-Credentials") == "true")
        #expect(post.header("Access-Control-Allow-Origin") == "http://app.example")
        let plain = try MinervaTestServer(configure: { $0.allowedOrigins = ["http://app.example"] })
        defer { plain.stop() }
        let other = try RawClient(port: plain.port)
        try other.post(hh("eeds:null") + "\n", extraHeaders: "Origin: http://app.example\r\n")
        #expect(try other.readResponse().header("Access-Control-Allow-Credentials") == nil)
    }

    @Test("a domain pattern (*.localhost) allows the domain and every name under it, with credentials, on any Host")
    func corsDomainPattern() throws {
        let server = try MinervaTestServer(configure: {
            $0.allowedOrigins = ["http://*.localhost"]
            $0.allowsCredentials = true
        })
        defer { server.stop() }
        // The page is http://localhost:PORT, the %random% endpoint http://mlXXXX.localhost:PORT/_minerva/.
        for origin in ["http://localhost:8080", "http://ml0a1b2c3d.localhost:8080", "http://A.B.LocalHost"] {
            let client = try RawClient(port: server.port)
            try client.post(hh("eeds:null") + "\n", extraHeaders: "Origin: \(origin)\r\n")  // Host: test
            let post = try client.readResponse()
            #expect(post.status == 200, "\(origin)")
            #expect(post.header("Access-Control-Allow-Origin") == origin)
            #expect(post.header("Access-Control-Allow-Credentials") == "true")
        }
        for origin in ["https://ml0.localhost", "http://evillocalhost", "http://localhost.evil", "null"] {
            let client = try RawClient(port: server.port)
            try client.post(hh("eeds:null") + "\n", extraHeaders: "Origin: \(origin)\r\n")
            let post = try client.readResponse()
            #expect(post.status == 403, "\(origin)")
            #expect(post.header("Access-Control-Allow-Origin") == nil)
        }
        let preflight = try RawClient(port: server.port)
        try preflight.send(
            "OPTIONS /_minerva/io/ HTTP/1.1\r\nHost: ml2.localhost\r\nOrigin: http://www.localhost:3000\r\n"
                + "Access-Control-Request-Method: POST\r\n\r\n")
        let answer = try preflight.readResponse()
        #expect(answer.status == 204)
        #expect(answer.header("Access-Control-Allow-Origin") == "http://www.localhost:3000")
    }

    @Test("origin patterns: scheme and port when given, never a look-alike domain")
    func originPatterns() throws {
        let any = try #require(OriginPattern("*.Example.com"))
        #expect(any.matches("http://example.com") && any.matches("https://a.b.example.com:444"))
        #expect(!any.matches("http://badexample.com") && !any.matches("http://example.com.evil"))
        #expect(!any.matches("ftp://a.example.com") && !any.matches("http://a.example.com/x.example.com"))
        #expect(!any.matches("http://x@a.example.com") && !any.matches("example.com"))
        let strict = try #require(OriginPattern("https://*.example.com:8443"))
        #expect(strict.matches("https://a.example.com:8443"))
        #expect(!strict.matches("https://a.example.com") && !strict.matches("http://a.example.com:8443"))
        for entry in ["*", "null", "http://app.example", "ftp://*.example.com", "*.", "http://*.*.example", "a.*.b"] {
            #expect(OriginPattern(entry) == nil, "\(entry)")
        }
    }

    @Test("transport info carries both addresses and the request headers")
    func transportInfo() throws {
        let infos = Locked<[TransportInfo]>([])
        final class InfoHandler: MinervaStreamHandler {
            let infos: Locked<[TransportInfo]>
            init(_ infos: Locked<[TransportInfo]>) { self.infos = infos }
            func streamStarted(_ stream: ServerStream) throws {}
            func streamReset(_ stream: ServerStream, reason: String, applicationLevel: Bool) {}
            func transportCreated(_ info: TransportInfo, on stream: ServerStream) { infos.update { $0.append(info) } }
        }
        let server = try MinervaTestServer(factory: { _, _ in InfoHandler(infos) })
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        try client.post(hh("eeds:null") + "\n", extraHeaders: "X-Test: yes\r\n")
        _ = try client.readResponse()
        let info = try #require(infos.get().first)
        #expect(info.connection.localAddress == "127.0.0.1:\(server.port)")
        #expect(info.connection.peerAddress.hasPrefix("127.0.0.1:"))
        #expect(info.connection.requestHeaders?.contains { $0.name == "X-Test" && $0.value == "yes" } == true)
        #expect(info.isPrimary && !info.streamingFromPeer && !info.streamingToPeer)
    }

    @Test("a burst of sends in one loop turn leaves in one long-poll response; a reset in the same turn drops it")
    func coalescing() throws {
        let server = try MinervaTestServer()
        defer { server.stop() }
        try case80(server)
        let client = try RawClient(port: server.port)
        try client.post(hh("-new", "eeds:null") + "\n")
        #expect(client.receivesNothing(for: 0.1))
        _ = server.withStream { stream in
            for i in 0..<5 { try? stream.send("s\(i)") }
        }
        let reply = try client.readResponse()
        #expect(reply.text == ";)]}^\n0N\ns0 \ns1 \ns2 \ns3 \ns4 \n|-1A\n|-1T\n")
        try client.post(hh("-new", "eeds:null", "sack:\"|4\"", "seenack:\"|-1\"") + "\n")
        #expect(client.receivesNothing(for: 0.1))
        _ = server.withStream { stream in
            try? stream.send("lost")
            try? stream.reset(reason: "bye")
        }
        #expect(try client.readResponse().text == ";)]}^\nbye|1!\n")
    }
}

/// A file of this source tree, by its path from the repository root.
private func readSourceFile(_ relative: String) -> [UInt8]? {
    var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)  // Tests/MinervaServerTests/MinervaEndpointTests.swift
    let path = parts.joined(separator: "/") + "/" + relative
    guard let file = fopen(path, "r") else { return nil }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = fread(&buffer, 1, buffer.count, file)
        if n <= 0 { break }
        bytes += buffer[0..<n]
    }
    return bytes
}
