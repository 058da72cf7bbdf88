// The WebSocket transport (PROTOCOL.md 11.1) over real sockets: conformance cases W1-W14 against the demo
// application, the handshake's edge cases, RFC 6455 framing (fragments, control frames, masking, UTF-8, the size
// limit) and the close handshake. Run with MINERVA_TEST_THREADS=2 too (streams owned by the other loop).
import Glibc
import MinervaCore
import MinervaTestSupport
import Testing

@testable import MinervaHTTP
@testable import MinervaServer
@testable import minerva_demo

private func demoServer(
    _ configure: (inout MinervaEndpointConfiguration) -> Void = { _ in }
) throws -> MinervaTestServer {
    let demo = MinervaDemoApplication()
    return try MinervaTestServer(configure: configure, factory: demo.handlerFactory)
}

/// A WebSocket with a primary transport of the test stream (`HS{eeds:null}` answered by `C`).
private func primary(_ server: MinervaTestServer) throws -> RawClient {
    let client = try RawClient.webSocket(port: server.port)
    try client.sendMessages([hs("eeds:null")])
    #expect(try client.readMessages(1) == ["C"])
    return client
}

/// Waits until no engine tracks a transport any more.
private func transportsGone(_ server: MinervaTestServer) -> Bool {
    waitUntil(5) { server.total(\.transportCount) == 0 }
}

@Suite("WebSocket transport (PROTOCOL.md 11.1)", .serialized)
struct MinervaWebSocketTests {
    // MARK: Conformance cases

    @Test("W1: the upgrade with minerva.v2 gets 101, the right accept value and the subprotocol")
    func w1() throws {
        let server = try demoServer()
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        let reply = try client.webSocketHandshake()
        #expect(reply.status == 101)
        #expect(reply.header("Sec-WebSocket-Accept") == wsExampleAccept)
        #expect(reply.header("Sec-WebSocket-Protocol") == "minerva.v2")
        #expect(reply.header("Upgrade")?.lowercased() == "websocket")
        #expect(reply.header("Connection")?.lowercased() == "upgrade")
    }

    @Test("W2: HS{eeds:null} -> C")
    func w2() throws {
        let server = try demoServer()
        defer { server.stop() }
        _ = try primary(server)
    }

    @Test("W3: the SACK comes before the echoed string")
    func w3() throws {
        let server = try demoServer()
        defer { server.stop() }
        let client = try RawClient.webSocket(port: server.port)
        try client.sendMessages([hs("eeds:null"), "0N", "echo:hi "])
        #expect(try client.readMessages(4) == ["C", "|0A", "0N", "hi "])
    }

    @Test("W4: 500 echoes back to back come back once each, in order, numbered 0...499")
    func w4() throws {
        let server = try demoServer()
        defer { server.stop() }
        let client = try primary(server)
        try client.sendMessages(["0N"] + (0..<500).map { "echo:\($0) " })
        var strings: [String] = []
        var nextSeq = -1
        var sacks = 0
        while strings.count < 500 {
            let frame = try client.readMessages(1)[0]
            if frame.hasSuffix("A") {
                sacks += 1
            } else if frame.hasSuffix("N"), let n = Int(frame.dropLast()) {
                #expect(n == strings.count, "SeqNumFrame \(n) before string \(strings.count)")
                nextSeq = n
            } else if frame.hasSuffix(" ") {
                #expect(nextSeq == 0 || !strings.isEmpty)
                strings.append(frame)
            } else {
                Issue.record("unexpected frame \(frame)")
                break
            }
        }
        #expect(strings == (0..<500).map { "\($0) " })
        #expect(sacks >= 1)
        #expect(client.receivesNothing(for: 0.2))
    }

    @Test("W5: after a client close, a new WebSocket gets the unacknowledged string again")
    func w5() throws {
        let server = try demoServer()
        defer { server.stop() }
        let client = try RawClient.webSocket(port: server.port)
        try client.sendMessages([hs("eeds:null"), "0N", "echo:hi "])
        #expect(try client.readMessages(4) == ["C", "|0A", "0N", "hi "])
        try client.send(wsClose(1000))
        #expect(try client.readMessages(1) == ["close 1000"])
        #expect(client.waitForClose(within: 5))
        #expect(transportsGone(server))
        let again = try RawClient.webSocket(port: server.port)
        try again.sendMessages([hs("-new", "eeds:null", "tnum:1")])
        #expect(try again.readMessages(3) == ["|0A", "0N", "hi "])
    }

    @Test("W6: an HTTP long-poll takes the stream over; the WebSocket ends with Y and close 1000")
    func w6() throws {
        let server = try demoServer()
        defer { server.stop() }
        let client = try RawClient.webSocket(port: server.port)
        try client.sendMessages([hs("eeds:null"), "0N", "echo:hi "])
        #expect(try client.readMessages(4) == ["C", "|0A", "0N", "hi "])
        let reply = try server.post(hh("-new", "eeds:null", "tnum:1") + "\n")
        #expect(reply.text == ";)]}^\n|0A\n0N\nhi \n|0A\n|-1T\n")
        #expect(try client.readMessagesUntilClose() == ["|0A", "|-1T", "Y", "close 1000"])
    }

    @Test("W7: a binary message -> close 1003")
    func w7() throws {
        let server = try demoServer()
        defer { server.stop() }
        let client = try RawClient.webSocket(port: server.port)
        try client.send(wsFrameBytes(opcode: 2, Array(hs("eeds:null").utf8)))
        #expect(try client.readMessages(1) == ["close 1003"])
        try client.send(wsClose(1003))
        #expect(client.waitForClose(within: 5))
    }

    @Test("W8: an unmasked frame -> close 1002")
    func w8() throws {
        let server = try demoServer()
        defer { server.stop() }
        let client = try RawClient.webSocket(port: server.port)
        try client.send(wsFrameBytes(opcode: 1, Array(hs("eeds:null").utf8), mask: nil))
        #expect(try client.readMessages(1) == ["close 1002"])
        try client.send(wsClose(1002))
        #expect(client.waitForClose(within: 5))
    }

    @Test("W9: the hello in three fragments -> C")
    func w9() throws {
        let server = try demoServer()
        defer { server.stop() }
        let client = try RawClient.webSocket(port: server.port)
        let hello = Array(hs("eeds:null").utf8)
        try client.send(
            wsFrameBytes(opcode: 1, Array(hello[..<10]), fin: false)
                + wsFrameBytes(opcode: 0, Array(hello[10..<40]), fin: false)
                + wsFrameBytes(opcode: 0, Array(hello[40...])))
        #expect(try client.readMessages(1) == ["C"])
    }

    @Test("W10: ping p -> pong p")
    func w10() throws {
        let server = try demoServer()
        defer { server.stop() }
        let client = try RawClient.webSocket(port: server.port)
        try client.send(wsFrameBytes(opcode: 9, Array("p".utf8)))
        let pong = try client.readWSFrame()
        #expect(pong.opcode == 10 && pong.text == "p" && pong.fin && !pong.masked)
    }

    @Test("W11: a message of 1048577 bytes after the hello -> frame_corruptionK, Y, close 1009")
    func w11() throws {
        let server = try demoServer()
        defer { server.stop() }
        let client = try primary(server)
        try client.send(wsFrameBytes(opcode: 1, [UInt8](repeating: UInt8(ascii: "a"), count: 1_048_577)))
        #expect(try client.readMessagesUntilClose() == ["|-1A", "|-1T", "frame_corruptionK", "Y", "close 1009"])
        try client.send(wsClose(1009))
        #expect(client.waitForClose(within: 5))
        #expect(transportsGone(server))
    }

    @Test("W12: a frame with a byte outside 0x20-0x7E -> invalid_frame_type_or_argumentsK, Y, close 1000")
    func w12() throws {
        let server = try demoServer()
        defer { server.stop() }
        let client = try primary(server)
        try client.sendMessages(["bad\u{01} "])
        #expect(
            try client.readMessagesUntilClose() == [
                "|-1A", "|-1T", "invalid_frame_type_or_argumentsK", "Y", "close 1000",
            ])
    }

    @Test("W13: Origin http://evil.example without allowed origins -> 403, no upgrade")
    func w13() throws {
        let server = try demoServer()
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        let reply = try client.webSocketHandshake(origin: "http://evil.example")
        #expect(reply.status == 403)
        #expect(reply.header("Sec-WebSocket-Accept") == nil)
        #expect(client.waitForClose(within: 5))
    }

    @Test("W14: reset_me:bye -> |0A, bye|1!, Y, close 1000")
    func w14() throws {
        let server = try demoServer()
        defer { server.stop() }
        let client = try primary(server)
        try client.sendMessages(["0N", "reset_me:bye "])
        #expect(try client.readMessagesUntilClose() == ["|0A", "bye|1!", "Y", "close 1000"])
        #expect(waitUntil(5) { server.total(\.streamCount) == 0 })
    }

    // MARK: Handshake

    @Test("a POST to ws is 405 with Allow: GET")
    func methodNotAllowed() throws {
        let server = try demoServer()
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        let reply = try client.webSocketHandshake(method: "POST", extra: "Content-Length: 0\r\n")
        #expect(reply.status == 405)
        #expect(reply.header("Allow") == "GET")
    }

    @Test("not an upgrade, or a bad key: 400")
    func badUpgrades() throws {
        let server = try demoServer()
        defer { server.stop() }
        let plain = try RawClient(port: server.port)
        #expect(try plain.request(get("/_minerva/ws")).status == 400)
        for key in ["", "short", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZR==", "dGhlIHNhbXBsZSBub25jZQ=!"] {
            let client = try RawClient(port: server.port)
            #expect(try client.webSocketHandshake(key: key).status == 400, "key \(key)")
        }
        let noUpgradeToken = try RawClient(port: server.port)
        let reply = try noUpgradeToken.request(
            "GET /_minerva/ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
                + "Sec-WebSocket-Key: \(wsExampleKey)\r\nSec-WebSocket-Version: 13\r\n\r\n")
        #expect(reply.status == 400)
    }

    @Test("a version other than 13: 426 with Sec-WebSocket-Version: 13")
    func wrongVersion() throws {
        let server = try demoServer()
        defer { server.stop() }
        for version in ["8", "14", ""] {
            let client = try RawClient(port: server.port)
            let reply = try client.webSocketHandshake(version: version)
            #expect(reply.status == 426, "version \(version)")
            #expect(reply.header("Sec-WebSocket-Version") == "13")
        }
    }

    @Test("subprotocols: minerva.v2 among others is selected, none is accepted, only others is 400")
    func subprotocols() throws {
        let server = try demoServer()
        defer { server.stop() }
        let among = try RawClient(port: server.port)
        let selected = try among.webSocketHandshake(subprotocol: "chat, minerva.v2")
        #expect(selected.status == 101 && selected.header("Sec-WebSocket-Protocol") == "minerva.v2")
        let none = try RawClient(port: server.port)
        let accepted = try none.webSocketHandshake(subprotocol: nil)
        #expect(accepted.status == 101 && accepted.header("Sec-WebSocket-Protocol") == nil)
        try none.sendMessages([hs("eeds:null")])
        #expect(try none.readMessages(1) == ["C"])
        let others = try RawClient(port: server.port)
        #expect(try others.webSocketHandshake(subprotocol: "chat, superchat").status == 400)
    }

    @Test("origins: same origin and listed origins pass; null and others get 403")
    func origins() throws {
        let server = try demoServer { $0.allowedOrigins = ["http://app.example"] }
        defer { server.stop() }
        func status(_ origin: String?, host: String = "test") throws -> Int {
            let client = try RawClient(port: server.port)
            return try client.webSocketHandshake(origin: origin, host: host).status
        }
        #expect(try status(nil) == 101)
        #expect(try status("http://test") == 101)
        #expect(try status("http://Site.Example:8080", host: "site.example:8080") == 101)
        #expect(try status("https://test") == 101)
        #expect(try status("http://app.example") == 101)
        #expect(try status("http://evil.example") == 403)
        #expect(try status("http://test.evil.example") == 403)
        #expect(try status("null") == 403)
    }

    @Test("WebSockets can be turned off: 404")
    func disabled() throws {
        let server = try demoServer { $0.webSockets = false }
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        #expect(try client.webSocketHandshake().status == 404)
    }

    @Test("the hello in the same packet as the handshake is the WebSocket's first message")
    func helloWithHandshake() throws {
        let server = try demoServer()
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        try client.send(
            Array(
                ("GET /_minerva/ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
                    + "Sec-WebSocket-Key: \(wsExampleKey)\r\nSec-WebSocket-Version: 13\r\n\r\n").utf8)
                + wsText(hs("eeds:null")) + wsText("0N") + wsText("echo:x "))
        #expect(try client.readHead().status == 101)
        #expect(try client.readMessages(4) == ["C", "|0A", "0N", "x "])
    }

    // MARK: Framing

    @Test("pings between the fragments of a message are answered; the message is whole")
    func pingBetweenFragments() throws {
        let server = try demoServer()
        defer { server.stop() }
        let client = try primary(server)
        try client.send(
            wsFrameBytes(opcode: 1, Array("echo:".utf8), fin: false) + wsFrameBytes(opcode: 9, Array("a".utf8))
                + wsFrameBytes(opcode: 0, Array("fr".utf8), fin: false) + wsFrameBytes(opcode: 9, [])
                + wsFrameBytes(opcode: 0, Array("ag ".utf8)))
        var frames: [WSFrame] = []
        for _ in 0..<5 { frames.append(try client.readWSFrame()) }
        #expect(frames.map(\.description) == ["pong a", "pong ", "|0A", "0N", "frag "])
    }

    @Test("a message sent one byte per write is decoded")
    func byteByByte() throws {
        let server = try demoServer()
        defer { server.stop() }
        let client = try RawClient.webSocket(port: server.port)
        for byte in wsText(hs("eeds:null")) + wsFrameBytes(opcode: 1, Array(String(repeating: "x", count: 300).utf8)) {
            try client.send([byte])
        }
        #expect(try client.readMessages(1) == ["C"])
        #expect(
            try client.readMessagesUntilClose() == [
                "|-1A", "|-1T", "invalid_frame_type_or_argumentsK", "Y", "close 1000",
            ])
    }

    @Test(
        "protocol errors close with 1002, no Minerva frames",
        arguments: [
            ("reserved bit", wsFrameBytes(opcode: 1, Array("x".utf8), rsv: 4)),
            ("reserved opcode", wsFrameBytes(opcode: 3, [])),
            ("control frame over 125 bytes", wsFrameBytes(opcode: 9, [UInt8](repeating: 0, count: 126))),
            ("fragmented ping", wsFrameBytes(opcode: 9, [], fin: false)),
            ("continuation without a message", wsFrameBytes(opcode: 0, Array("x".utf8))),
            ("new message inside a fragmented one", wsFrameBytes(opcode: 1, [], fin: false) + wsText("x")),
            ("close with a one-byte payload", wsFrameBytes(opcode: 8, [3])),
            ("close with code 1005", wsFrameBytes(opcode: 8, [0x03, 0xED])),
        ])
    func protocolErrors(_ name: String, _ bytes: [UInt8]) throws {
        let server = try demoServer()
        defer { server.stop() }
        let client = try primary(server)
        try client.send(bytes)
        #expect(try client.readMessages(1) == ["close 1002"], "\(name)")
        #expect(transportsGone(server), "\(name)")
        try client.send(wsClose(1002))
        #expect(client.waitForClose(within: 5))
    }

    @Test("a text message that is not UTF-8 -> close 1007; valid UTF-8 outside ASCII is a Minerva invalid frame")
    func utf8() throws {
        let server = try demoServer()
        defer { server.stop() }
        let client = try primary(server)
        try client.send(wsFrameBytes(opcode: 1, [0x65, 0x63, 0xC3, 0x28, 0x20]))
        #expect(try client.readMessages(1) == ["close 1007"])
        let other = try RawClient.webSocket(port: server.port)
        try other.sendMessages([hs("eeds:null", "id:\"yyyyyyyyyyyyyyyyyyyyyyyyyy\""), "0N", "echo:\u{e9} "])
        #expect(
            try other.readMessagesUntilClose() == [
                "C", "|-1A", "|-1T", "invalid_frame_type_or_argumentsK", "Y", "close 1000",
            ])
    }

    @Test("an over-long message before the hello -> frame_corruptionK, Y, close 1009")
    func tooLongFirst() throws {
        let server = try demoServer()
        defer { server.stop() }
        let client = try RawClient.webSocket(port: server.port)
        // Announced in the header: the server answers before the payload is sent at all.
        try client.send(Array(wsFrameBytes(opcode: 1, [UInt8](repeating: 65, count: 2_000_000))[..<14]))
        #expect(try client.readMessagesUntilClose() == ["frame_corruptionK", "Y", "close 1009"])
    }

    @Test("a fragmented message whose fragments add up to more than the limit -> close 1009")
    func tooLongFragments() throws {
        let server = try demoServer()
        defer { server.stop() }
        let client = try primary(server)
        let half = [UInt8](repeating: 65, count: 600_000)
        try client.send(wsFrameBytes(opcode: 1, half, fin: false) + wsFrameBytes(opcode: 0, half))
        #expect(try client.readMessagesUntilClose() == ["|-1A", "|-1T", "frame_corruptionK", "Y", "close 1009"])
    }

    @Test("a message of exactly the limit is accepted (and is one invalid frame here)")
    func exactlyTheLimit() throws {
        let server = try demoServer()
        defer { server.stop() }
        let client = try primary(server)
        var payload = Array("echo:".utf8) + [UInt8](repeating: 65, count: 1_048_576 - 6)
        payload.append(32)
        try client.send(wsFrameBytes(opcode: 1, payload))
        let reply = try client.readMessages(2, timeout: 10)
        #expect(reply[0] == "|0A")
        #expect(reply[1] == "0N")
        let echoed = try client.readWSFrame(timeout: 10)
        #expect(echoed.payload.count == 1_048_576 - 5)
    }

    // MARK: Server limits and shutdown

    @Test("WebSockets count against the HTTP connection limit and are never shed as idle")
    func connectionLimit() throws {
        let demo = MinervaDemoApplication()
        let server = try MinervaTestServer(
            http: {
                $0.maxConnections = 2
                $0.threads = 1
            }, factory: demo.handlerFactory)
        defer { server.stop() }
        let first = try primary(server)
        let second = try RawClient.webSocket(port: server.port)
        #expect(server.http.server.connectionCount == 2)
        // The third connect succeeds (the kernel's backlog) but is not served while both WebSockets are open.
        let third = try RawClient(port: server.port, timeoutMillis: 300)
        try third.send(get("/healthz"))
        #expect(third.receivesNothing(for: 0.5))
        try first.sendMessages(["0N", "echo:alive "])
        #expect(try first.readMessages(3) == ["|0A", "0N", "alive "])
        try second.send(wsClose(1000))
        #expect(try second.readMessages(1) == ["close 1000"])
        #expect(second.waitForClose(within: 5))
        #expect(waitUntil(5) { !third.buffer.isEmpty || third.fill(timeout: 0.1) })  // its turn came
    }

    @Test("a graceful shutdown ends each WebSocket's transport gently: SACK, StreamStatus, Y, close 1000")
    func shutdown() throws {
        let server = try demoServer()
        defer { server.stop() }
        let client = try primary(server)
        let start = monotonicNow()
        server.http.server.shutdown(gracePeriod: 30)
        #expect(try client.readMessagesUntilClose() == ["|-1A", "|-1T", "Y", "close 1000"])
        try client.send(wsClose(1000))
        #expect(client.waitForClose(within: 5))
        #expect(monotonicNow() - start < 5)
    }

    // MARK: Closing

    @Test("a client close is answered with the same code and detaches the transport; the stream lives on")
    func clientClose() throws {
        let server = try demoServer()
        defer { server.stop() }
        let client = try primary(server)
        try client.send(wsClose(4001))
        #expect(try client.readMessages(1) == ["close 4001"])
        #expect(client.waitForClose(within: 5))
        #expect(transportsGone(server))
        #expect(server.total(\.streamCount) == 1)
        let empty = try primary(server)  // `new` on an existing stream: C again
        try empty.send(wsFrameBytes(opcode: 8, []))
        let close = try empty.readWSFrame()
        #expect(close.opcode == 8 && close.payload.isEmpty)
    }

    @Test("after its close frame the server closes the TCP connection when the client's close arrives")
    func closeHandshake() throws {
        let server = try demoServer()
        defer { server.stop() }
        let client = try primary(server)
        try client.sendMessages(["reset_me:x "])
        #expect(try client.readMessagesUntilClose() == ["|0A", "x|1!", "Y", "close 1000"])
        #expect(client.receivesNothing(for: 0.2))  // waiting for the client's close frame
        try client.send(wsClose(1000))
        #expect(client.waitForClose(within: 2))
    }

    @Test("the server closes the TCP connection after the close timeout if the client never answers")
    func closeTimeout() throws {
        let server = try demoServer { $0.webSocketCloseTimeout = 0.3 }
        defer { server.stop() }
        let client = try primary(server)
        try client.sendMessages(["reset_me:x "])
        #expect(try client.readMessagesUntilClose() == ["|0A", "x|1!", "Y", "close 1000"])
        #expect(client.waitForClose(within: 5))
    }

    @Test("frames after the client's close are ignored; a TCP drop detaches the transport")
    func tcpDrop() throws {
        let server = try demoServer()
        defer { server.stop() }
        let client = try primary(server)
        #expect(server.total(\.transportCount) == 1)
        client.abort()
        #expect(transportsGone(server))
        #expect(server.total(\.streamCount) == 1)
    }

    @Test("a WebSocket that sends no hello is closed with 1008 after the socket mode timeout")
    func noHello() throws {
        let server = try demoServer { $0.socketModeTimeout = 0.3 }
        defer { server.stop() }
        let client = try RawClient.webSocket(port: server.port)
        #expect(try client.readMessages(1) == ["close 1008"])
        #expect(client.waitForClose(within: 8))
    }

    @Test("two WebSockets of one stream: the newer primary replaces the older, which ends with Y and close 1000")
    func replacedPrimary() throws {
        let server = try demoServer()
        defer { server.stop() }
        let first = try primary(server)
        let second = try RawClient.webSocket(port: server.port)
        try second.sendMessages([hs("-new", "eeds:null", "tnum:1")])
        #expect(try first.readMessagesUntilClose() == ["|-1A", "|-1T", "Y", "close 1000"])
        try second.sendMessages(["0N", "echo:still here "])
        #expect(try second.readMessages(3) == ["|0A", "0N", "still here "])
    }
}

// MARK: - Several loops

/// A 26-character stream id owned by loop `owner` of a two-loop server.
private func id(ownedBy owner: Int, _ prefix: String) -> String {
    (0..<10_000).lazy.map { prefix + String(repeating: "w", count: 26 - prefix.count - String($0).count) + String($0) }
        .first { MinervaEndpoint.ownerIndex(of: StreamID($0)!, loopCount: 2) == owner }!
}

/// A keep-alive connection the server serves on loop `index` (new connections until the kernel picks it).
private func connection(onLoop index: Int, of server: MinervaTestServer) throws -> RawClient {
    for _ in 0..<200 {
        let client = try RawClient(port: server.port)
        if try client.request(get("/loop")).text == "\(index)" { return client }
        client.abort()
    }
    throw TestError("no connection landed on loop \(index)")
}

@Suite("WebSocket transport on several loops", .serialized)
struct MinervaWebSocketMultiLoopTests {
    private func server() throws -> MinervaTestServer {
        let demo = MinervaDemoApplication()
        return try MinervaTestServer(threads: 2, factory: demo.handlerFactory) { router in
            router.route("/loop") { _, response in
                response.send(status: 200, body: "\(response.eventLoop.indexInGroup)")
            }
        }
    }

    @Test(
        "a WebSocket on one loop for a stream of the other: echo, takeover by HTTP, close",
        arguments: [(0, 1), (1, 0), (0, 0)])
    func handedOver(_ connectionLoop: Int, _ owner: Int) throws {
        let server = try server()
        defer { server.stop() }
        let stream = id(ownedBy: owner, "ws\(connectionLoop)")
        let client = try connection(onLoop: connectionLoop, of: server)
        #expect(try client.webSocketHandshake().status == 101)
        try client.sendMessages([hs("eeds:null", "id:\"\(stream)\""), "0N", "echo:one "])
        #expect(try client.readMessages(4) == ["C", "|0A", "0N", "one "])
        try client.sendMessages(["echo_twice:two "])
        #expect(try client.readMessages(3) == ["|1A", "two ", "two "])
        let reply = try server.post(hh("-new", "eeds:null", "tnum:1", "id:\"\(stream)\"", "sack:\"|2\"") + "\n")
        #expect(reply.text == ";)]}^\n|1A\n|1A\n|2T\n")
        #expect(try client.readMessagesUntilClose() == ["|1A", "|2T", "Y", "close 1000"])
        try client.send(wsClose(1000))
        #expect(client.waitForClose(within: 5))
        #expect(waitUntil(5) { server.total(\.transportCount) == 0 })
        #expect(server.total(\.streamCount) == 1)
    }

    @Test("WebSocket-level errors and over-long messages on a handed-over WebSocket")
    func errorsHandedOver() throws {
        let server = try server()
        defer { server.stop() }
        let first = try connection(onLoop: 0, of: server)
        #expect(try first.webSocketHandshake().status == 101)
        try first.sendMessages([hs("eeds:null", "id:\"\(id(ownedBy: 1, "e"))\"")])
        #expect(try first.readMessages(1) == ["C"])
        try first.send(wsFrameBytes(opcode: 2, [1]))
        #expect(try first.readMessages(1) == ["close 1003"])
        #expect(waitUntil(5) { server.total(\.transportCount) == 0 })
        let second = try connection(onLoop: 0, of: server)
        #expect(try second.webSocketHandshake().status == 101)
        try second.sendMessages([hs("eeds:null", "id:\"\(id(ownedBy: 1, "f"))\"")])
        #expect(try second.readMessages(1) == ["C"])
        try second.send(wsFrameBytes(opcode: 1, [UInt8](repeating: 65, count: 1_048_577)))
        #expect(try second.readMessagesUntilClose() == ["|-1A", "|-1T", "frame_corruptionK", "Y", "close 1009"])
        second.abort()
        #expect(waitUntil(5) { server.total(\.transportCount) == 0 })
    }
}
