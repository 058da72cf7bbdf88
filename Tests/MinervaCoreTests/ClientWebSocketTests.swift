// ClientStreamMachine over WebSocket (PROTOCOL.md 11.1) and the `auto` endpoint's switching between WebSocket and
// HTTP streaming, with scripted server frames. WebSocket transports speak length-prefixed frames to the I/O layer.
import MinervaCore
import MinervaTestSupport
import Testing

private let preamble = ";)]}^\n"

@Suite("Client over WebSocket, and auto switching")
struct ClientWebSocketTests {
    @Test func webSocketPrimaryCarriesHelloAndStringsLengthPrefixed() throws {
        var client = ClientDriver(.webSocket)
        try client.send("a")
        let request = try #require(try client.start().opened.first)
        #expect(request.mode == .webSocket)
        #expect(request.role == .primary)
        // No `<int32/>` prefix: each length-prefixed frame becomes one text message.
        #expect(
            int32Frames(request.body) == [originalHello(tnum: 0, new: true, ming: true, primary: true), "0N", "a "])
        client.record(client.machine.responseStarted(transportNumber: 0, status: nil, now: client.now))
        client.record(
            client.machine.received(transportNumber: 0, bytes: int32Bytes(["C", "|0A", "0N", "hi "]), now: client.now))
        #expect(client.log.delivered == ["hi"])
        client.runTimers(until: client.now + 1)
        let writes = client.log.writes
        #expect(writes.map(\.0) == [0])
        #expect(int32Frames(writes.first?.1 ?? []) == ["|0A"])  // the SACK goes on the WebSocket
        #expect(client.machine.primaryTransportMode == .webSocket)
        #expect(client.log.opened.count == 1)  // never a secondary
    }

    @Test func forcedWebSocketBacksOffAndNeverUsesHTTP() throws {
        var client = ClientDriver(.webSocket)
        try client.start()
        client.record(client.machine.transportFailed(transportNumber: 0, now: client.now))
        client.runTimers(until: client.now + 60)
        #expect(client.log.opened.count > 1)
        #expect(client.log.opened.allSatisfy { $0.mode == .webSocket })
    }

    @Test func autoFallsBackToStreamingAtOnceWhenTheUpgradeFails() throws {
        var client = ClientDriver(.auto)
        try client.send("a")
        try client.start()
        let actions = client.record(client.machine.transportFailed(transportNumber: 0, now: client.now))
        let http = try #require(actions.opened.first)
        #expect(http.mode == .httpStreaming)
        #expect(http.lines == [originalHello(tnum: 1, new: true, ming: true, primary: true), "0N", "a "])
        #expect(client.machine.primaryTransportMode == .httpStreaming)
    }

    @Test func autoFallsBackWhenTheWebSocketIsSilentUntilTheFallbackTimeout() throws {
        var client = ClientDriver(.auto)
        try client.start()
        client.record(client.machine.responseStarted(transportNumber: 0, status: nil, now: client.now + 1))
        #expect(client.machine.nextDeadline == client.now + 5)  // the upgrade alone does not extend it
        let actions = client.advance(to: client.now + 5)
        #expect(actions.closed == [0])
        #expect(actions.opened.map(\.mode) == [.httpStreaming])
    }

    @Test func autoRetriesWebSocketLaterAndTheHTTPPrimaryMakesWayWithoutLoss() throws {
        var client = ClientDriver(.auto) { $0.webSocketRetryDelay = 10 }
        try client.start()
        client.record(client.machine.transportFailed(transportNumber: 0, now: client.now))
        let start = client.now
        try client.send("b")
        client.receive(1, preamble + "C\n0N\nx \n")  // `C`: a secondary carries `b` and the SACK
        client.runTimers(until: start + 9.9)
        #expect(client.log.opened.map(\.mode) == [.webSocket, .httpStreaming, .httpLongPoll])
        let secondary = try #require(client.log.opened.last)
        // The upload never completes (lost with the switch): the WebSocket must carry `b` again.
        let actions = client.advance(to: start + 10)
        #expect(actions.closed == [1])
        let ws = try #require(actions.opened.first)
        #expect(ws.mode == .webSocket)
        #expect(int32Frames(ws.body).first == originalHello(tnum: 3, new: false, ming: true, primary: true, sack: "|0"))
        client.record(client.machine.transportFailed(transportNumber: secondary.transportNumber, now: client.now))
        client.record(
            client.machine.received(transportNumber: 3, bytes: int32Bytes(["0N", "x ", "y "]), now: client.now))
        #expect(client.log.delivered == ["x", "y"])  // the retransmitted x is not delivered twice
        client.runTimers(until: client.now + 1)
        let writes = client.log.writes
        #expect(writes.flatMap { int32Frames($0.1) }.contains("b "))
    }

    @Test func retryDelayDoublesWithFailuresInARow() throws {
        var client = ClientDriver(.auto) { $0.webSocketRetryDelay = 5 }
        try client.start()
        client.record(client.machine.transportFailed(transportNumber: 0, now: client.now))
        client.receive(1, preamble + "C\n")
        let t0 = client.now
        client.advance(to: t0 + 5)  // the HTTP primary makes way for a WebSocket, which fails again
        let ws = try #require(client.log.opened.last)
        #expect(ws.mode == .webSocket)
        client.record(client.machine.transportFailed(transportNumber: ws.transportNumber, now: client.now))
        let http = try #require(client.log.opened.last)
        #expect(http.mode == .httpStreaming)
        client.receive(http.transportNumber, preamble)
        client.advance(to: t0 + 14.9)
        #expect(client.log.opened.last?.transportNumber == http.transportNumber)
        client.advance(to: t0 + 15)
        #expect(client.log.opened.last?.mode == .webSocket)
    }

    @Test func aWorkingWebSocketThatClosesIsReplacedByAWebSocketAtOnce() throws {
        var client = ClientDriver(.auto)
        try client.start()
        client.record(client.machine.received(transportNumber: 0, bytes: int32Bytes(["C", "beat^"]), now: client.now))
        let actions = client.record(client.machine.transportFinished(transportNumber: 0, now: client.now))
        #expect(actions.opened.map(\.mode) == [.webSocket])
    }

    @Test func resetOnAWebSocketPrimaryGoesOnIt() throws {
        var client = ClientDriver(.auto)
        try client.start()
        client.record(client.machine.received(transportNumber: 0, bytes: int32Bytes(["C"]), now: client.now))
        let actions = client.record(try client.machine.reset(reason: "bye", now: client.now))
        #expect(actions.opened.isEmpty)
        #expect(int32Frames(actions.writes.first?.1 ?? []) == ["bye|1!"])
    }
}
