// The PROTOCOL.md 10.x recommendations the engine implements, its limits, producers, transport info and
// subprotocol dispatch (6.10, case 109 at the engine level).

import MinervaTestSupport
import Testing

@testable import MinervaCore

private let closeInit = ["|-1A", "|-1T", "Y"]

/// A producer that records what it was told.
final class ProducerRecorder: MinervaProducer {
    var events: [String] = []
    func pauseProducing() { events.append("pause") }
    func resumeProducing() { events.append("resume") }
    func stopProducing() { events.append("stop") }
}

/// A handler that implements only `stringReceived` and throws on `bad`.
final class PerStringHandler: MinervaStreamHandler {
    var strings: [String] = []
    var resets: [String] = []
    struct Bad: Error {}
    func streamStarted(_ stream: ServerStream) throws {}
    func stringReceived(_ string: ArraySlice<UInt8>, on stream: ServerStream) throws {
        let text = String(decoding: string, as: UTF8.self)
        strings.append(text)
        if text == "bad" { throw Bad() }
    }
    func streamReset(_ stream: ServerStream, reason: String, applicationLevel: Bool) { resets.append(reason) }
}

@Suite struct ServerRecommendationTests {
    // 10.6: strings followed by a failing frame in one batch: the kill is sent normally, the strings discarded.
    @Test(arguments: ["?", "bad\u{7f} ", "|5A", "C"])
    func rec10_6_failingBatchDiscardsPendingStrings(failing: String) {
        let h = Harness()
        let t = h.socket()
        h.send(t, [hs("eeds:null")])
        _ = h.out(t)
        h.send(t, ["string0 ", "string1 ", failing])
        let reason = failing == "|5A" ? "acked_unsent_stringsK" : "invalid_frame_type_or_argumentsK"
        let status = failing == "|5A" ? "|5T" : "|-1T"
        #expect(h.out(t) == ["|-1A", status, reason, "Y"])
        #expect(h.app.received.isEmpty)
        #expect(h.stream?.window.lastAck == -1)
        #expect(h.stream?.transportCount == 0)
    }

    // 10.7: a receive-window overflow followed by a ResetFrame: the overflow kill is sent, the reset ignored.
    @Test func rec10_7_overflowThenResetStopsAfterDelivery() {
        let h = Harness()
        let t = h.socket()
        h.send(t, [hs()])
        _ = h.out(t)
        h.send(t, ["string0 ", "2N", String(repeating: "x", count: 1_048_575) + " ", "bye|1!"])
        #expect(h.out(t) == ["|0A", "|-1T", "rwin_overflowK", "Y"])
        #expect(h.app.received == [["string0"]])
        #expect(h.app.resets.isEmpty)
        #expect(h.stream?.transportCount == 0)
        let t1 = h.socket()
        h.send(t1, [hs("-new", "seenack:\"|0\"")])
        #expect(h.out(t1).isEmpty)
        #expect(h.stream?.transportCount == 1)
    }

    // 10.9: a socket that does not close after `Y` is closed after the grace period.
    @Test func rec10_9_socketClosedAfterGracePeriod() {
        var configuration = ServerEngineConfiguration()
        configuration.socketCloseGracePeriod = 10
        let h = Harness(configuration: configuration)
        let t = h.socket()
        let t2 = h.socket()
        h.send(t, ["string0 "])
        #expect(h.out(t) == ["invalid_frame_type_or_argumentsK", "Y"])
        h.send(t2, ["?"])
        h.engine.transportClosed(t2, now: 1)
        h.advance(to: 9.9)
        #expect(h.closed.isEmpty)
        h.advance(to: 10)
        #expect(h.closed == [t])
        #expect(h.engine.transportCount == 0)
    }

    // 10.10: lastReceived is refreshed when a transport detaches (here a secondary that terminates at once).
    @Test func rec10_10_lastReceivedRefreshedOnDetach() {
        let h = afterCase80Harness()
        h.now = 100
        h.post(hh("-new", "-eeds") + "\nhello \n")
        #expect(h.stream?.lastReceived == 100)
        h.advance(to: 180)
        #expect(h.app.resets.isEmpty)
        h.advance(to: 240)
        #expect(h.app.resets.map(\.reason) == ["no activity from peer"])
    }

    // 10.12: an application reset reason must be restricted and at most 255 bytes.
    @Test func rec10_12_resetReasonValidated() throws {
        let h = Harness()
        let t = h.socket()
        h.send(t, [hs()])
        let stream = h.stream!
        #expect(throws: MinervaStreamError.invalidResetReason) { try stream.reset(reason: "tab\there") }
        #expect(throws: MinervaStreamError.invalidResetReason) {
            try stream.reset(reason: String(repeating: "r", count: 256))
        }
        #expect(!stream.isReset)
        try h.app { try stream.reset(reason: String(repeating: "r", count: 255)) }
        #expect(h.out(t) == ["C", String(repeating: "r", count: 255) + "|1!", "Y"])
    }

    // 10.14: with per-string delivery, a throwing call does not lose the following strings.
    @Test func rec10_14_eachStringDeliveryIsolated() {
        let h = Harness()
        let handler = PerStringHandler()
        h.factory = { _ in handler }
        let t = h.socket()
        h.send(t, [hs(), "a ", "bad ", "c "])
        #expect(handler.strings == ["a", "bad", "c"])
        #expect(h.errors == ["stringReceived"])
        #expect(h.out(t) == ["C", "|2A"])
    }

    // 10.18: a `new` hello for a recently reset id gets stream_attach_failure, until the memory expires.
    @Test func rec10_18_recentlyResetIDNotRecreated() throws {
        var configuration = ServerEngineConfiguration()
        configuration.resetStreamMemory = 300
        let h = Harness(configuration: configuration)
        let t = h.socket()
        h.send(t, [hs()])
        try h.app { try h.stream!.reset(reason: "gone") }
        let t1 = h.socket()
        h.send(t1, [hs()])
        #expect(h.out(t1) == ["stream_attach_failureK", "Y"])
        h.advance(to: 301)
        let t2 = h.socket()
        h.send(t2, [hs()])
        #expect(h.out(t2) == ["C"])
        #expect(h.recorders.count == 2)
    }

    // 4.7: an HTTP streaming response is closed gently once it exceeds maxb.
    @Test func rec4_7_maxReceiveBytesEnforcedForHTTPStreaming() throws {
        let h = afterCase80Harness()
        let t = h.post(hh("-new", "eeds:null", "ming:1", "maxb:30") + "\n")
        try h.app { try h.stream!.send("0123456789") }
        #expect(h.responses[t]?.finished == false)
        try h.app { try h.stream!.send("0123456789") }
        #expect(h.responses[t]?.body == ";)]}^\n0N\n0123456789 \n0123456789 \n|-1A\n|-1T\n")
        #expect(h.responses[t]?.finished == true)
        #expect(h.stream?.queuedCount == 2)
    }

    @Test func limitOnStreams() {
        var configuration = ServerEngineConfiguration()
        configuration.maxStreams = 1
        let h = Harness(configuration: configuration)
        let t = h.socket()
        h.send(t, [hs()])
        let t1 = h.socket()
        h.send(t1, [hs("id:\"\(String(repeating: "y", count: 26))\"")])
        #expect(h.out(t1) == ["stream_attach_failureK", "Y"])
        #expect(h.engine.streamCount == 1)
    }

    @Test func limitOnTransportsPerStream() {
        var configuration = ServerEngineConfiguration()
        configuration.maxTransportsPerStream = 2
        let h = Harness(configuration: configuration)
        let handles = (0..<3).map { _ in h.socket() }
        for handle in handles { h.send(handle, [hs()]) }
        #expect(h.out(handles[2]) == ["invalid_frame_type_or_argumentsK", "Y"])
        #expect(h.stream?.transportCount == 2)
    }

    @Test func transportInfoAndCallbacks() {
        let h = Harness()
        let t = TransportHandle(99)
        let connection = ConnectionInfo(
            localAddress: "127.0.0.1:80", peerAddress: "127.0.0.1:5555", requestHeaders: [("Host", "example")])
        h.engine.openTransport(t, kind: .http, connection: connection, now: 0)
        var seen: [TransportInfo] = []
        final class InfoHandler: MinervaStreamHandler {
            var onCreated: (TransportInfo) -> Void = { _ in }
            var destroyed = 0
            func streamStarted(_ stream: ServerStream) throws {}
            func streamReset(_ stream: ServerStream, reason: String, applicationLevel: Bool) {}
            func transportCreated(_ info: TransportInfo, on stream: ServerStream) { onCreated(info) }
            func transportDestroyed(_ info: TransportInfo, on stream: ServerStream) { destroyed += 1 }
        }
        let handler = InfoHandler()
        handler.onCreated = { seen.append($0) }
        h.factory = { _ in handler }
        h.engine.httpBodyReceived(t, body: Array((hh("tnum:7", "eeds:null", "ming:1") + "\n").utf8), now: 0)
        #expect(seen.count == 1)
        #expect(seen.first?.transportNumber == 7)
        #expect(seen.first?.isPrimary == true)
        #expect(seen.first?.streamingFromPeer == false)
        #expect(seen.first?.streamingToPeer == true)
        #expect(seen.first?.connection.peerAddress == "127.0.0.1:5555")
        #expect(seen.first?.connection.requestHeaders?.first?.value == "example")
        h.engine.transportClosed(t, now: 1)
        #expect(handler.destroyed == 1)
    }

    @Test func pushProducerPausedAndResumed() throws {
        let h = Harness()
        let t0 = h.socket()
        h.send(t0, [hs()])
        let producer = ProducerRecorder()
        let stream = h.stream!
        try stream.registerProducer(producer, streaming: true)
        #expect(producer.events == ["pause"])
        #expect(throws: MinervaStreamError.producerAlreadyRegistered) {
            try stream.registerProducer(ProducerRecorder(), streaming: false)
        }
        let t1 = h.socket()
        h.send(t1, [hs("-new", "tnum:1", "eeds:null")])
        #expect(producer.events == ["pause", "resume"])
        h.engine.transportWritable(t1, false)
        h.engine.transportWritable(t1, true)
        #expect(producer.events == ["pause", "resume", "pause", "resume"])
        h.engine.transportClosed(t1, now: 0)
        #expect(producer.events.last == "pause")
        try h.app { try stream.reset(reason: "end") }
        #expect(producer.events.last == "stop")
    }

    @Test func case109_subprotocolDispatch() {
        let h = Harness()
        let chat = Recorder()
        h.factory = { _ in SubprotocolDispatcher(factories: ["chat": { _ in chat }]) }
        let t = h.socket()
        h.send(t, [hs(), "subprotocol:chat ", "hi "])
        h.send(t, ["there "])
        #expect(chat.started == 1)
        #expect(chat.received == [["hi"], ["there"]])
        h.send(t, ["bye|1!"])
        #expect(chat.resets.map(\.reason) == ["bye"])
    }

    @Test(arguments: [
        ("hello ", "no subprotocol; send a subprotocol:... string first"),
        ("subprotocol:nope ", "unknown subprotocol"),
    ])
    func case109_subprotocolRejected(first: String, reason: String) {
        let h = Harness()
        let chat = Recorder()
        h.factory = { _ in SubprotocolDispatcher(factories: ["chat": { _ in chat }]) }
        let t = h.socket()
        h.send(t, [hs(), first, "more "])
        #expect(h.out(t) == ["C", "|1A", reason + "|1!", "Y"])
        #expect(chat.started == 0)
        #expect(h.stream == nil)
    }

    @Test func httpUnterminatedTailOverLimitIsCorruption() {
        let h = Harness()
        let t = h.post(hh("eeds:null") + "\n" + String(repeating: "x", count: 1_048_577))
        #expect(h.responses[t]?.body == ";)]}^\nframe_corruptionK\n")
        let h2 = Harness()
        let t2 = h2.post(hh("eeds:null") + "\n" + String(repeating: "x", count: 1_048_576))
        #expect(h2.responses[t2]?.body == ";)]}^\nC\n|-1A\n|-1T\n")
    }

    private func afterCase80Harness() -> Harness {
        let h = Harness()
        h.post(hh("eeds:null") + "\n")
        return h
    }
}

@Suite struct ServerEngineAPITests {
    @Test func notifyFinishFiresAtReset() throws {
        let h = Harness()
        let t = h.socket()
        h.send(t, [hs()])
        let stream = h.stream!
        var fired = 0
        stream.notifyFinish { fired += 1 }
        #expect(fired == 0)
        h.send(t, ["x|0!"])
        #expect(fired == 1)
        stream.notifyFinish { fired += 1 }
        #expect(fired == 2)
    }

    @Test func drainActionsKeepsOrderAndEmpties() {
        let engine = MinervaServerEngine(now: 0) { _ in Recorder() }
        let t = TransportHandle(1)
        engine.openTransport(t, kind: .http, connection: ConnectionInfo(), now: 0)
        engine.httpBodyReceived(t, body: Array("{}H\n".utf8), now: 0)
        var seen: [ServerAction] = []
        engine.drainActions { seen.append($0) }
        #expect(seen == [.write(t, Array(";)]}^\ninvalid_frame_type_or_argumentsK\n".utf8), .httpWholeBody)])
        #expect(!engine.hasActions)
        #expect(engine.transportCount == 0)
    }

    @Test func nextDeadlineTracksTimers() {
        var configuration = ServerEngineConfiguration()
        configuration.idleCheckInterval = 60
        let h = Harness(configuration: configuration)
        #expect(h.engine.nextDeadline == 60)
        let t = h.socket()
        h.send(t, [hs("maxia:5")])
        #expect(h.engine.nextDeadline == 5)
        h.advance(to: 5)
        #expect(h.engine.nextDeadline == 10)
        var manual = ServerEngineConfiguration()
        manual.idleCheckInterval = 0
        let engine = MinervaServerEngine(configuration: manual, now: 0) { _ in Recorder() }
        #expect(engine.nextDeadline == .infinity)
    }
}

@Suite struct ServerEngineEdgeTests {
    @Test func waitingLongPollGetsResetWithContentLength() throws {
        let h = Harness()
        h.post(hh("eeds:null") + "\n")
        let t = h.post(hh("-new", "eeds:null") + "\n")
        try h.app { try h.stream!.reset(reason: "bye") }
        #expect(h.responses[t]?.body == ";)]}^\nbye|1!\n")
        #expect(h.responses[t]?.contentLength == 13)
    }

    @Test func maxOpenTimeZeroClosesOnNextTimerRun() {
        let h = Harness()
        h.post(hh("eeds:null") + "\n")
        let t = h.post(hh("-new", "eeds:null", "maxt:0") + "\n")
        #expect(h.responses[t]?.writes == 0)
        #expect(h.engine.nextDeadline == 0)
        h.advance(to: 0)
        #expect(h.responses[t]?.body == ";)]}^\n|-1A\n|-1T\n")
    }

    @Test func httpBadSackKilledAttached() throws {
        let h = Harness()
        let t = h.post(hh("eeds:null", "ming:1") + "\n|0A\n")
        #expect(h.responses[t]?.body == ";)]}^\nC\n|-1A\n|0T\nacked_unsent_stringsK\n")
        #expect(h.responses[t]?.contentLength == 39)  // killed before the first write: the whole body
        #expect(h.stream != nil)
    }

    @Test func socketHandleReusedAfterGraceWait() {
        let h = Harness()
        let t = h.socket()
        h.send(t, ["?"])
        #expect(h.out(t) == ["invalid_frame_type_or_argumentsK", "Y"])
        h.engine.openTransport(t, kind: .socket, connection: ConnectionInfo(), now: 1)
        h.send(t, [hs()])
        #expect(h.out(t) == ["C"])
        h.advance(to: 100)
        #expect(h.closed.isEmpty)
    }

    @Test func secondaryUploadKeepsPrimaryAndAcks() throws {
        let h = Harness()
        let primary = h.post(hh("eeds:null", "ming:1") + "\n")
        let upload = h.post(hh("-new", "tnum:1", "-eeds") + "\n0N\nhello \nworld \n")
        #expect(h.responses[upload]?.body == ";)]}^\n|1A\n|1A\n|-1T\n")
        #expect(h.responses[primary]?.finished == false)
        #expect(h.app.allStrings == ["hello", "world"])
        #expect(h.app.created == [0, 1])
        #expect(h.app.destroyed == [1])
    }
}

@Suite struct ServerRateLimitTests {
    @Test func newStreamsPerKeyPerSecondLimited() {
        var configuration = ServerEngineConfiguration()
        configuration.maxNewStreamsPerKeyPerSecond = 2
        let h = Harness(configuration: configuration)
        var handle = 100
        func hello(_ index: Int, key: String?) -> [String] {
            handle += 1
            let t = TransportHandle(handle)
            h.engine.openTransport(t, kind: .socket, connection: ConnectionInfo(rateLimitKey: key), now: h.now)
            let id = String(repeating: "a", count: 20) + String(index)
            h.send(t, [hs("id:\"\(id)\"")])
            return h.out(t)
        }
        #expect(hello(1, key: "10.0.0.1") == ["C"])
        #expect(hello(2, key: "10.0.0.1") == ["C"])
        #expect(hello(3, key: "10.0.0.1") == ["stream_attach_failureK", "Y"])
        #expect(hello(4, key: "10.0.0.2") == ["C"])
        #expect(hello(5, key: nil) == ["C"])
        h.now = 0.5
        #expect(hello(6, key: "10.0.0.1") == ["C"])
        #expect(hello(7, key: "10.0.0.1") == ["stream_attach_failureK", "Y"])
        #expect(h.engine.streamCount == 5)
    }
}

@Suite struct ServerReentrancyTests {
    /// A handler that resets the stream when a transport goes away.
    final class ResetOnDestroy: MinervaStreamHandler {
        var resets: [String] = []
        func streamStarted(_ stream: ServerStream) throws {}
        func streamReset(_ stream: ServerStream, reason: String, applicationLevel: Bool) { resets.append(reason) }
        func transportDestroyed(_ info: TransportInfo, on stream: ServerStream) {
            try? stream.send("late")
            try? stream.reset(reason: "old primary gone")
        }
    }

    @Test func resetInsideTransportDestroyedDuringPrimaryReplacement() {
        let h = Harness()
        let handler = ResetOnDestroy()
        h.factory = { _ in handler }
        let t0 = h.socket()
        h.send(t0, [hs("eeds:null")])
        let t1 = h.socket()
        h.send(t1, [hs("-new", "tnum:1", "eeds:null"), "string0 "])
        #expect(h.out(t0) == ["C", "|-1A", "|-1T", "Y"])
        #expect(h.out(t1) == ["old primary gone|1!", "Y"])
        #expect(handler.resets == ["old primary gone"])
        #expect(h.stream == nil)
        #expect(h.engine.transportCount == 2)  // both sockets wait for the peer (or the grace period)
    }

    @Test func sendInsideTransportCreatedReachesNewPrimary() {
        let h = Harness()
        final class Greeter: MinervaStreamHandler {
            func streamStarted(_ stream: ServerStream) throws {}
            func streamReset(_ stream: ServerStream, reason: String, applicationLevel: Bool) {}
            func transportCreated(_ info: TransportInfo, on stream: ServerStream) {
                try? stream.send("hi\(info.transportNumber)")
            }
        }
        h.factory = { _ in Greeter() }
        let t0 = h.socket()
        h.send(t0, [hs("eeds:null")])
        #expect(h.out(t0) == ["C", "0N", "hi0 "])
    }
}
