// MinervaClientStream against a real MinervaHTTPServer + MinervaEndpoint running the demo protocol, over long-poll,
// HTTP streaming, socket mode, WebSocket and auto (WebSocket falling back to HTTP) (127.0.0.1, port 0, bounded
// waits).
import Foundation
import MinervaClient
import MinervaCore
import MinervaServer
import MinervaTestSupport
import Testing

@testable import MinervaHTTP
@testable import MinervaIO

private let allTransports: [ClientEndpointKind] = [.httpLongPoll, .httpStreaming, .socket, .webSocket, .auto]

@Suite("MinervaClientStream against the demo server", .serialized)
struct MinervaClientStreamTests {
    @Test("echo: round trip; onStarted fires", arguments: allTransports)
    func echo(transport: ClientEndpointKind) throws {
        try withDemoStream(transport) { _, client, recorded in
            try recorded.send(["echo:hello there"])
            try recorded.start()
            #expect(try recorded.waitForStrings(1) == ["hello there"])
            try recorded.send(["echo:second", "what?"])
            #expect(try recorded.waitForStrings(3) == ["hello there", "second", "unknown_message_type"])
            #expect(recorded.started.get())
            #expect(recorded.resets.get().isEmpty)
            try client.sync { recorded.stream.dispose() }
            #expect(waitUntil(5) { recorded.disconnected.get() })
        }
    }

    @Test("500 strings each way arrive in order, exactly once", arguments: allTransports)
    func manyInOrder(transport: ClientEndpointKind) throws {
        try withDemoStream(transport) { _, _, recorded in
            try recorded.start()
            let expected = (0..<500).map { "n\($0)" }
            // In bursts, some while earlier ones are still in flight.
            for start in stride(from: 0, to: 500, by: 50) {
                try recorded.send(expected[start..<(start + 50)].map { "echo:" + $0 })
                usleep(2000)
            }
            let received = try recorded.waitForStrings(500, timeout: 30)
            #expect(received == expected)
            #expect(waitUntil(5) { (try? recorded.inspect { $0.unacknowledgedCount }) == 0 })
        }
    }

    @Test("echo_twice: answers twice", arguments: allTransports)
    func echoTwice(transport: ClientEndpointKind) throws {
        try withDemoStream(transport) { _, _, recorded in
            try recorded.start()
            try recorded.send(["echo_twice:twice"])
            #expect(try recorded.waitForStrings(2) == ["twice", "twice"])
            try recorded.send(["echo:after"])
            #expect(try recorded.waitForStrings(3) == ["twice", "twice", "after"])
        }
    }

    @Test("reset_me: reaches onReset as an application-level reset, then onDisconnect", arguments: allTransports)
    func serverReset(transport: ClientEndpointKind) throws {
        try withDemoStream(transport) { server, client, recorded in
            try recorded.start()
            try recorded.send(["echo:before"])
            #expect(try recorded.waitForStrings(1) == ["before"])
            // (A string sent in the same server turn as the reset would be lost with it: the server's behaviour.)
            try recorded.send(["reset_me:go away"])
            #expect(waitUntil(10) { !recorded.resets.get().isEmpty })
            let resets = recorded.resets.get()
            #expect(resets.count == 1)
            #expect(resets.first?.0 == "go away")
            #expect(resets.first?.1 == true)
            #expect(recorded.strings.get() == ["before"])
            #expect(waitUntil(5) { recorded.disconnected.get() })
            #expect(throws: ClientStreamError.alreadyReset) { try client.sync { try recorded.stream.send("x") } }
        }
    }

    @Test("client reset: onReset at once, the server hears the reason", arguments: allTransports)
    func clientReset(transport: ClientEndpointKind) throws {
        try withDemoStream(transport) { server, client, recorded in
            try recorded.start()
            try recorded.send(["echo:one"])
            #expect(try recorded.waitForStrings(1) == ["one"])
            try client.sync { try recorded.stream.reset(reason: "done here") }
            #expect(recorded.resets.get().first?.0 == "done here")
            #expect(recorded.resets.get().first?.1 == true)
            #expect(waitUntil(10) { recorded.disconnected.get() })
            #expect(waitUntil(5) { server.total(\.streamCount) == 0 })
        }
    }

    @Test("send rejects unrestricted strings with a clear error")
    func restricted() throws {
        let client = LoopThread()
        defer { client.stop() }
        let configuration = MinervaClientConfiguration(host: "127.0.0.1", port: 9, transport: .httpLongPoll)
        let error = try client.sync { () -> ClientStreamError? in
            let stream = MinervaClientStream(configuration: configuration, on: client.loop)
            do {
                try stream.send("tab\there")
                return nil
            } catch {
                return error as? ClientStreamError
            }
        }
        #expect(error == .notRestricted)
        #expect(error?.description.contains("0x20") == true)
    }

    @Test("HTTP streaming with a tiny maxb: the server ends transports mid-stream, nothing is lost")
    func streamingRotation() throws {
        try withDemoStream(
            .httpStreaming,
            configure: { configuration in
                configuration.stream.maxReceiveBytes = 600
            }
        ) { _, _, recorded in
            try recorded.start()
            let expected = (0..<300).map { "s\($0)-" + String(repeating: "x", count: 20) }
            for start in stride(from: 0, to: 300, by: 30) {
                try recorded.send(expected[start..<(start + 30)].map { "echo:" + $0 })
                usleep(3000)
            }
            #expect(try recorded.waitForStrings(300, timeout: 60) == expected)
            let opened = try recorded.inspect { $0.transportsOpened }
            #expect(opened > 3)
            #expect(recorded.resets.get().isEmpty)
        }
    }

    @Test("the server closes idle kept-alive connections: requests go out on new ones, nothing is lost")
    func keepAliveClosedByServer() throws {
        try withDemoStream(
            .httpLongPoll, http: { $0.idleTimeout = 0.2 },
            configure: { configuration in
                configuration.stream.longPollDuration = 1
            }
        ) { _, _, recorded in
            try recorded.start()
            var expected: [String] = []
            for round in 0..<6 {
                let batch = (0..<5).map { "r\(round)-\($0)" }
                expected += batch
                try recorded.send(batch.map { "echo:" + $0 })
                #expect(try recorded.waitForStrings(expected.count, timeout: 20) == expected)
                usleep(300_000)
            }
            #expect(recorded.resets.get().isEmpty)
        }
    }

    @Test("long-poll reuses kept-alive connections")
    func keepAliveReuse() throws {
        try withDemoStream(.httpLongPoll) { _, _, recorded in
            try recorded.start()
            var expected: [String] = []
            for round in 0..<20 {
                expected.append("k\(round)")
                try recorded.send(["echo:k\(round)"])
                #expect(try recorded.waitForStrings(expected.count) == expected)
            }
            let (transports, connections) = try recorded.inspect { ($0.transportsOpened, $0.connectionsOpened) }
            #expect(transports >= 20)
            #expect(connections < transports)
        }
    }

    @Test(
        "echo round-trip time, measured on the client loop (printed, not asserted)",
        arguments: allTransports, [0.006, 0])
    func roundTripTiming(transport: ClientEndpointKind, coalescingDelay: Double) throws {
        try withDemoStream(
            transport,
            configure: { configuration in
                configuration.stream.sendCoalescingDelay = coalescingDelay
            }
        ) { _, client, recorded in
            try recorded.start()
            try recorded.send(["echo:warm"])
            _ = try recorded.waitForStrings(1)
            let rounds = 500
            let elapsed = Locked<Double?>(nil)
            let received = Locked(0)
            // Each echo is sent from the callback of the previous one: no polling in the measured path.
            try client.sync {
                let stream = recorded.stream
                let began = Date()
                var count = 0
                stream.onString = { string in
                    guard string == "t\(count)" else { return }
                    count += 1
                    received.set(count)
                    if count == rounds {
                        elapsed.set(Date().timeIntervalSince(began))
                    } else {
                        try? stream.send("echo:t\(count)")
                    }
                }
                try stream.send("echo:t0")
            }
            #expect(waitUntil(60) { elapsed.get() != nil })
            #expect(received.get() == rounds)
            if let total = elapsed.get() {
                print(
                    "MinervaClient echo round trip over \(transport), coalescing delay \(coalescingDelay) s: "
                        + "\(Int(total / Double(rounds) * 1_000_000)) us (\(rounds) rounds)")
            }
        }
    }
}

@Suite("MinervaClientStream through a proxy that kills its transports", .serialized)
struct MinervaClientKilledTransportTests {
    @Test(
        "transports killed (RST) while 300 strings flow each way: all arrive once, in order (server window 50 or 2)",
        arguments: allTransports, [50, 2])
    func killedTransports(transport: ClientEndpointKind, serverWindow: Int) throws {
        // A window of 2 makes gaps left by killed requests overflow it (rwin_overflow kills), recovered as well.
        let server = try demoServer(engine: { $0.engine.receiveWindow.maxUndeliveredStrings = serverWindow })
        defer { server.stop() }
        var configuration = server.clientConfiguration(transport)
        let proxy = try KillingProxy(targetPort: configuration.port)
        defer { proxy.stop() }
        configuration.port = proxy.port
        let client = LoopThread()
        defer { client.stop() }
        let recorded = try RecordedStream(configuration, on: client)
        try recorded.start()
        let expected = (0..<300).map { "k\($0)" }
        var kills = 0
        for start in stride(from: 0, to: 300, by: 30) {
            try recorded.send(expected[start..<(start + 30)].map { "echo:" + $0 })
            usleep(5000)
            kills += try proxy.killAll()
        }
        #expect(try recorded.waitForStrings(300, timeout: 90) == expected)
        #expect(kills > 0)
        #expect(recorded.resets.get().isEmpty)
        #expect(waitUntil(30) { (try? recorded.inspect { $0.unacknowledgedCount }) == 0 })
        print("killed-transport test over \(transport), server window \(serverWindow): \(kills) pairs killed")
    }
}

@Suite("MinervaClientStream auto: WebSocket and HTTP", .serialized)
struct MinervaClientAutoTests {
    @Test("auto uses a WebSocket when it works")
    func autoUsesWebSocket() throws {
        try withDemoStream(.auto) { _, _, recorded in
            try recorded.start()
            try recorded.send(["echo:ws"])
            #expect(try recorded.waitForStrings(1) == ["ws"])
            #expect(try recorded.inspect { $0.primaryTransportMode } == .webSocket)
            #expect(try recorded.inspect { $0.transportsOpened } == 1)
        }
    }

    @Test(
        "WebSockets killed mid-stream and refused for a while: HTTP streaming, then WebSocket again; 600 strings once each, in order"
    )
    func killedWebSocketsSwitchToHTTPAndBack() throws {
        let server = try demoServer()
        defer { server.stop() }
        var configuration = server.clientConfiguration(.auto)
        configuration.stream.webSocketRetryDelay = 0.3
        let proxy = try KillingProxy(targetPort: configuration.port)
        defer { proxy.stop() }
        configuration.port = proxy.port
        let client = LoopThread()
        defer { client.stop() }
        let recorded = try RecordedStream(configuration, on: client)
        try recorded.start()
        let expected = (0..<600).map { "w\($0)" }
        let mode = { try? recorded.inspect { $0.primaryTransportMode } }
        try recorded.send(expected[0..<200].map { "echo:" + $0 })
        _ = try recorded.waitForStrings(100)
        #expect(mode() == .webSocket)
        proxy.refusingUpgrades.set(true)
        #expect(try proxy.killAll() > 0)
        try recorded.send(expected[200..<400].map { "echo:" + $0 })
        #expect(waitUntil(20) { mode() == .httpStreaming })
        _ = try recorded.waitForStrings(300, timeout: 30)
        #expect(proxy.refusedUpgrades.get() > 0)
        proxy.refusingUpgrades.set(false)
        #expect(waitUntil(30) { mode() == .webSocket })
        try recorded.send(expected[400..<600].map { "echo:" + $0 })
        #expect(try recorded.waitForStrings(600, timeout: 30) == expected)
        #expect(recorded.resets.get().isEmpty)
        #expect(waitUntil(10) { (try? recorded.inspect { $0.unacknowledgedCount }) == 0 })
    }
}

@Suite("MinervaClientStream usage")
struct MinervaClientUsageTests {
    @Test("the DocC example: set up on a thread, then run the loop there until onDisconnect")
    func docExample() throws {
        let server = try demoServer()
        defer { server.stop() }
        let log = Locked<[String]>([])
        let finished = Locked(false)
        let configuration = server.clientConfiguration(.httpStreaming)
        let thread = Thread {
            let loop = MinervaEventLoop()
            let stream = MinervaClientStream(configuration: configuration, on: loop)
            stream.onString = { text in
                log.update { $0.append("got \(text)") }
                try? stream.reset(reason: "done")
            }
            stream.onReset = { reason, applicationLevel in
                log.update { $0.append("reset \(reason) \(applicationLevel)") }
            }
            stream.onDisconnect = { loop.stop() }
            do {
                try stream.send("echo:hello")
                try stream.start()
            } catch {
                log.update { $0.append("error \(error)") }
                return
            }
            loop.run()
            finished.set(true)
        }
        thread.start()
        #expect(waitUntil(10) { finished.get() })
        #expect(log.get() == ["got hello", "reset done true"])
    }
}

@Suite("MinervaClientStream when the server misbehaves or is gone", .serialized)
struct MinervaClientFailureTests {
    @Test("a wrong endpoint path (404): transports are retried with backoff, nothing is delivered, dispose ends it")
    func notFound() throws {
        try withDemoStream(
            .httpLongPoll,
            configure: { configuration in
                configuration.path = "/nowhere/"
                configuration.stream.rttGuess = 0.05
                configuration.stream.rttVariance = 0.05
            }
        ) { _, client, recorded in
            try recorded.send(["echo:lost"])
            try recorded.start()
            #expect(waitUntil(10) { ((try? recorded.inspect { $0.transportsOpened }) ?? 0) >= 2 })
            #expect(recorded.strings.get().isEmpty)
            #expect(!recorded.started.get())
            try client.sync { recorded.stream.dispose() }
            #expect(waitUntil(5) { recorded.disconnected.get() })
            #expect(recorded.resets.get().isEmpty)
        }
    }

    @Test("nothing listening: connects fail, the stream keeps trying until disposed", arguments: allTransports)
    func nothingListening(transport: ClientEndpointKind) throws {
        let client = LoopThread()
        defer { client.stop() }
        let port = try client.sync { () -> Int in
            let listener = try client.loop.listenTCP(host: "127.0.0.1", port: 0) { $0.abort() }
            defer { listener.close() }
            return listener.localAddress.port
        }
        var configuration = MinervaClientConfiguration(host: "127.0.0.1", port: port, transport: transport)
        configuration.stream.rttGuess = 0.05
        configuration.stream.rttVariance = 0.05
        let recorded = try RecordedStream(configuration, on: client)
        try recorded.start()
        #expect(waitUntil(10) { ((try? recorded.inspect { $0.transportsOpened }) ?? 0) >= 2 })
        #expect(try recorded.inspect { $0.state } == .started)
        try client.sync { recorded.stream.dispose() }
        #expect(waitUntil(5) { recorded.disconnected.get() })
    }
}
