// ClientStreamMachine against scripted server responses: PROTOCOL.md 9 group H (cases 102-108) and each
// reaction of 7.4-7.10 with the recommendations of 10.16, 10.17 and 10.21-10.24.

import MinervaTestSupport
import Testing

@testable import MinervaCore

private let preamble = ";)]}^\n"
/// A long-poll's normal termination with nothing to say.
private let quietEnd = preamble + "|-1A\n|-1T\n"

@Suite("Client group H")
struct ClientGroupHTests {
    @Test func case102_writeStringsThenStart() throws {
        var client = ClientDriver(.httpLongPoll)
        try client.send("c2s_0")
        try client.send("c2s_1")
        let opened = try client.start().opened
        #expect(opened.count == 1)
        #expect(opened.first?.role == .primary)
        #expect(opened.first?.lines == [originalHello(tnum: 0, new: true, primary: true), "0N", "c2s_0 ", "c2s_1 "])
        // An HTTP transport is never written to after its request: later strings go elsewhere.
        client.respond(0, preamble + "C\n", finish: false)
        try client.send("c2s_2")
        client.runTimers(until: client.now + 1)
        #expect(client.log.writes.isEmpty)
        #expect(client.log.opened.last?.role == .secondary)
        #expect(client.log.opened.last?.lines.dropFirst() == ["2N", "c2s_2 "])
    }

    @Test(arguments: ["\u{0}", "\u{ff}", "\n", "\u{1f}", "\u{7f}", "hello\tworld"])
    func case103_sendStringWithIllegalCharacters(_ string: String) throws {
        var machine = ClientStreamMachine(configuration: ClientConfiguration(endpoint: .httpLongPoll))
        #expect(throws: ClientStreamError.notRestricted) { try machine.sendString(string, now: 0) }
        #expect(machine.queuedStringCount == 0)
        _ = try machine.sendString(string, validate: false, now: 0)
        #expect(machine.queuedStringCount == 1)
    }

    @Test func case104_cannotSendOrResetAfterReset() throws {
        var client = ClientDriver(.httpLongPoll)
        try client.start()
        client.record(try client.machine.reset(reason: "bye", now: client.now))
        #expect(throws: ClientStreamError.alreadyReset) { try client.machine.sendString("x", now: 0) }
        #expect(throws: ClientStreamError.alreadyReset) { try client.machine.reset(reason: "again", now: 0) }
    }

    @Test func case105_streamAttachFailureEndsTheStream() throws {
        var client = ClientDriver(.httpLongPoll)
        try client.start()
        let actions = client.respond(0, preamble + "stream_attach_failureK\n")
        #expect(actions.resets.map { $0.reason } == ["stream penalty reached limit"])
        #expect(actions.resets.map { $0.applicationLevel } == [false])
        #expect(actions.disconnected)
        #expect(actions.opened.isEmpty)
        #expect(client.runTimers(until: client.now + 100).opened.isEmpty)
        #expect(client.machine.state == .disconnected)
    }

    @Test func case106_stringsThenPeerReset() throws {
        var client = ClientDriver(.httpLongPoll)
        try client.start()
        let actions = client.respond(0, preamble + "0N\nhi \nbye|1!\n", finish: false)
        #expect(actions.delivered == ["hi"])
        #expect(actions.resets.map { $0.reason } == ["bye"])
        #expect(actions.resets.map { $0.applicationLevel } == [true])
        #expect(actions.disconnected)
        // "hi" is delivered before the reset is reported.
        let deliverIndex = actions.firstIndex { if case .deliverStrings = $0 { true } else { false } }
        let resetIndex = actions.firstIndex { if case .streamReset = $0 { true } else { false } }
        #expect(deliverIndex! < resetIndex!)
        #expect(client.machine.state == .disconnected)
    }

    @Test func case107_badPreambleOriginalBehaviour() throws {
        var client = ClientDriver(.httpLongPoll) { $0.badResponseSuggestsDelay = false }
        try client.start()
        let actions = client.respond(0, "C\n", finish: false)
        #expect(actions.closed == [0])
        #expect(actions.opened.map(\.transportNumber) == [1])  // replaced at once, no backoff
        #expect(client.machine.penaltyHalves == 0)
        // An undecodable first line (an HTML page) "had problems": the replacement waits.
        let html = client.respond(1, "<html>oops</html>\n", finish: false)
        #expect(html.closed == [1])
        #expect(html.opened.isEmpty)
    }

    @Test func case107_badPreambleBacksOff() throws {
        var client = ClientDriver(.httpLongPoll)
        try client.start()
        let actions = client.respond(0, "C\n", finish: false)
        #expect(actions.closed == [0])
        #expect(actions.opened.isEmpty)  // PROTOCOL.md 10.21: back off
        let deadline = try #require(client.machine.nextDeadline)
        #expect(deadline > client.now && deadline <= client.now + 4)
        #expect(client.advance(to: deadline).opened.map(\.transportNumber) == [1])
    }

    @Test func case108_streamCreatedDropsNew() throws {
        var client = ClientDriver(.httpLongPoll)
        #expect(try client.start().opened.first?.lines == [originalHello(tnum: 0, new: true, primary: true)])
        let actions = client.respond(0, preamble + "C\n|-1A\n|-1T\n")
        #expect(client.machine.streamKnownToServer)
        #expect(actions.opened.map(\.lines) == [[originalHello(tnum: 1, new: false, primary: true)]])
        #expect(client.machine.primaryTransportNumber == 1)
    }
}

@Suite("Client hellos and framing")
struct ClientHelloTests {
    @Test func secondaryHelloMatchesTheOriginal() throws {
        var client = ClientDriver(.httpLongPoll)
        try client.start()
        client.respond(0, preamble + "C\n|-1A\n|-1T\n")
        try client.send("up")
        let opened = client.runTimers(until: client.now + 1).opened
        #expect(opened.map(\.role) == [.secondary])
        #expect(opened.first?.lines == [originalHello(tnum: 2, new: false, primary: false), "0N", "up "])
    }

    @Test func streamingPrimaryHello() throws {
        var client = ClientDriver(.httpStreaming)
        let opened = try client.start().opened
        #expect(opened.first?.mode == .httpStreaming)
        #expect(opened.first?.lines == [originalHello(tnum: 0, new: true, ming: true, primary: true)])
    }

    @Test func socketPrimaryIsInt32Framed() throws {
        var client = ClientDriver(.socket)
        try client.send("a")
        let request = try #require(try client.start().opened.first)
        #expect(request.mode == .socket)
        #expect(request.body.starts(with: Array("<int32/>\n".utf8)))
        #expect(
            int32Frames(request.body) == [originalHello(tnum: 0, new: true, ming: true, primary: true), "0N", "a "])
    }

    @Test func helloCarriesSACKAndSeenAck() throws {
        var client = ClientDriver(.httpLongPoll)
        try client.send("x")
        try client.start()
        let actions = client.respond(0, preamble + "C\n0N\ns0 \n1N\ns1 \n|0A\n|-1T\n")
        #expect(actions.delivered == ["s0", "s1"])
        #expect(client.machine.queuedStringCount == 0)
        #expect(
            actions.opened.first?.lines == [
                originalHello(tnum: 1, new: false, primary: true, sack: "|1", seenack: "|0")
            ])
    }

    @Test func randomStreamIDs() {
        var seen = Set<StreamID>()
        for _ in 0..<200 {
            let id = StreamID.random()
            #expect(id.count == 26)
            #expect(id.bytes.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x7A).contains($0) })
            seen.insert(id)
        }
        #expect(seen.count == 200)
        var a = SeededGenerator(seed: 1)
        var b = SeededGenerator(seed: 1)
        #expect(StreamID.random(using: &a) == StreamID.random(using: &b))
        let machine = ClientStreamMachine(configuration: ClientConfiguration(endpoint: .socket))
        #expect(machine.streamID.count == 26)
    }
}

@Suite("Client reactions to S2C frames")
struct ClientReactionTests {
    /// A long-poll client whose stream exists at the server, with primary 1 open.
    private func established() throws -> ClientDriver {
        var client = ClientDriver(.httpLongPoll)
        try client.start()
        client.respond(0, preamble + "C\n|-1A\n|-1T\n")
        return client
    }

    @Test func sackRemovesAcknowledgedStringsAndIsRemembered() throws {
        var client = try established()
        try client.send("a")
        try client.send("b")
        try client.send("c")
        client.runTimers(until: client.now + 1)
        #expect(client.machine.queuedStringCount == 3)
        client.respond(2, preamble + "2|0A\n2|0T\n")
        #expect(client.machine.queuedStringCount == 1)
        #expect(client.machine.lastSackSeenByClient == SACK(ackNumber: 0, sackList: [2]))
        #expect(client.machine.lastSackSeenByServer == SACK(ackNumber: 0, sackList: [2]))
    }

    @Test func badSACKClosesWithProblems() throws {
        var client = try established()
        let actions = client.respond(1, preamble + "|5A\n", finish: false)
        #expect(actions.closed == [1])
        #expect(actions.opened.isEmpty)  // had problems: the replacement is delayed
        #expect(client.machine.penaltyHalves == 0)
    }

    @Test func youCloseItCloses() throws {
        var client = ClientDriver(.socket)
        try client.start()
        let actions = client.record(
            client.machine.received(transportNumber: 0, bytes: int32Bytes(["C", "|-1A", "|-1T", "Y"]), now: client.now))
        #expect(actions.closed == [0])
        #expect(actions.opened.map(\.transportNumber) == [1])  // frames were decoded, no problems: at once
    }

    @Test func commentsAndHeartbeatsAreIgnored() throws {
        var client = ClientDriver(.httpStreaming)
        try client.start()
        let actions = client.respond(0, preamble + "C\nbeat^\nanything^\n", finish: false)
        #expect(actions.closed.isEmpty)
        #expect(client.machine.openTransportNumbers == [0])
    }

    @Test(arguments: ["xC\n", "garbage\n", "-1N\n", "not_a_reasonK\n"])
    func undecodableFrameClosesWithProblems(_ line: String) throws {
        var client = try established()
        let actions = client.respond(1, preamble + line, finish: false)
        #expect(actions.closed == [1])
        #expect(actions.opened.isEmpty)
    }

    @Test func nonRestrictedStringClosesWithProblems() throws {
        var client = try established()
        let actions = client.respond(1, preamble + "0N\nok \nbad\u{7f} \n", finish: false)
        #expect(actions.delivered == ["ok"])  // collected strings are still delivered
        #expect(actions.closed == [1])
        #expect(actions.opened.isEmpty)
    }

    @Test func nonOKStatusIsAProblem() throws {
        var client = try established()
        let actions = client.record(client.machine.responseStarted(transportNumber: 1, status: 502, now: client.now))
        #expect(actions.closed == [1])
        #expect(actions.opened.isEmpty)
        // The original ignores the status: a 502 whose body decoded is replaced at once.
        var original = ClientDriver(.httpLongPoll) { $0.badResponseSuggestsDelay = false }
        try original.start()
        original.respond(0, preamble + "C\n|-1A\n|-1T\n")
        let headers = original.record(
            original.machine.responseStarted(transportNumber: 1, status: 502, now: original.now))
        #expect(headers.closed.isEmpty)
        let body = original.receive(1, quietEnd)
        #expect(body.closed.isEmpty)
        let end = original.record(
            original.machine.transportFinished(transportNumber: 1, status: 502, now: original.now))
        #expect(end.opened.map(\.transportNumber) == [2])
    }

    @Test func killFramesAddPenalty() throws {
        var client = try established()
        var actions = client.respond(1, preamble + "|-1A\n|-1T\nacked_unsent_stringsK\n")
        #expect(actions.resets.isEmpty)
        #expect(client.machine.penaltyHalves == 1)
        // PROTOCOL.md 10.22: the delay placeholder does not reset the penalty; the next kill reaches the limit.
        client.runTimers(until: client.now + 10)
        let next = try #require(client.log.opened.last)
        #expect(next.transportNumber == 2)
        actions = client.respond(next.transportNumber, preamble + "acked_unsent_stringsK\n")
        #expect(actions.resets.map { $0.reason } == ["stream penalty reached limit"])
        #expect(actions.disconnected)
    }

    @Test func aPenaltyResetWaitsForTheOtherOpenTransportWhichMayCarryTheServersReset() throws {
        // The server reset the stream while a poll sent just after it got stream_attach_failure, and that answer came
        // first: the upload still open carries the real reason.
        var client = try established()
        try client.send("reset_me:go away")
        client.runTimers(until: client.now + 0.1)
        let upload = try #require(client.log.opened.last { $0.transportNumber != 1 })
        var actions = client.respond(1, preamble + "stream_attach_failureK\n")
        #expect(actions.resets.isEmpty)
        #expect(actions.opened.isEmpty)
        actions = client.respond(upload.transportNumber, preamble + "go away|1!\n")
        #expect(actions.resets.map { $0.reason } == ["go away"])
        #expect(actions.resets.map { $0.applicationLevel } == [true])
    }

    @Test func aPenaltyResetHappensAfterTheGraceWhenNoResetArrives() throws {
        var client = try established()
        try client.send("x")
        client.runTimers(until: client.now + 0.1)
        var actions = client.respond(1, preamble + "stream_attach_failureK\n")
        #expect(actions.resets.isEmpty)
        actions = client.runTimers(until: client.now + ClientStreamMachine.penaltyResetGrace + 0.1)
        #expect(actions.resets.map { $0.reason } == ["stream penalty reached limit"])
        #expect(client.machine.state == .disconnected)
    }

    @Test func penaltyResetsAfterACleanTransport() throws {
        var client = try established()
        client.respond(1, preamble + "acked_unsent_stringsK\n")
        client.runTimers(until: client.now + 10)
        let second = try #require(client.log.opened.last)
        client.respond(second.transportNumber, quietEnd)
        #expect(client.machine.penaltyHalves == 0)
        let third = try #require(client.log.opened.last)
        client.respond(third.transportNumber, preamble + "acked_unsent_stringsK\n")
        #expect(client.machine.state == .started)
    }

    @Test func otherKillReasonsAddNoPenalty() throws {
        var client = try established()
        client.respond(1, preamble + "|-1A\n|-1T\nrwin_overflowK\n")
        #expect(client.machine.penaltyHalves == 0)
        #expect(client.machine.state == .started)
    }

    @Test func outOfOrderStringsWaitForTheGap() throws {
        var client = ClientDriver(.httpStreaming)
        try client.start()
        var actions = client.respond(0, preamble + "C\n2N\ntwo \n0N\nzero \n", finish: false)
        #expect(actions.delivered == ["zero"])
        #expect(client.machine.receiveSACK == SACK(ackNumber: 0, sackList: [2]))
        actions = client.receive(0, "1N\none \n2N\ntwo \n")
        #expect(actions.delivered == ["one", "two"])
        #expect(client.machine.cachedStringCount == 0)
    }

    @Test func receiveWindowOverflowClosesTheTransport() throws {
        var client = ClientDriver(.httpStreaming) { $0.maxUndeliveredStrings = 2 }
        try client.start()
        let actions = client.respond(0, preamble + "C\n5N\na \nb \nc \n", finish: false)
        #expect(actions.closed == [0])
        #expect(client.machine.cachedStringCount == 2)
    }

    @Test func streamingAcknowledgesThroughASecondary() throws {
        var client = ClientDriver(.httpStreaming)
        try client.start()
        // `C` triggers a send attempt at once, and the new SACK needs a secondary.
        let opened = client.respond(0, preamble + "C\n0N\nhello \n", finish: false).opened
        #expect(opened.map(\.role) == [.secondary])
        #expect(opened.first?.lines == [originalHello(tnum: 1, new: false, primary: false, sack: "|0")])
        // The server saw the SACK: nothing more to send.
        client.respond(1, preamble + "|-1A\n|0T\n")
        #expect(client.runTimers(until: client.now + 1).opened.isEmpty)
    }

    @Test func longPollDoesNotOpenASecondaryForItsSACK() throws {
        var client = ClientDriver(.httpLongPoll)
        try client.start()
        let actions = client.respond(0, preamble + "C\n0N\nhello \n|-1A\n|-1T\n")
        #expect(actions.opened.map(\.role) == [.primary])
        #expect(actions.opened.first?.lines.first == originalHello(tnum: 1, new: false, primary: true, sack: "|0"))
        #expect(client.runTimers(until: client.now + 1).opened.isEmpty)
    }

    @Test func streamCreatedOnAStreamingPrimarySendsAtOnce() throws {
        var client = ClientDriver(.httpStreaming)
        try client.start()
        try client.send("early")
        // Before `C`, no secondary can be made.
        #expect(client.runTimers(until: client.now + 1).opened.isEmpty)
        let actions = client.respond(0, preamble + "C\n", finish: false)
        #expect(actions.opened.map(\.role) == [.secondary])
        #expect(actions.opened.first?.lines.dropFirst() == ["0N", "early "])
    }

    @Test func socketWritesStringsAndSACKsOnThePrimary() throws {
        var client = ClientDriver(.socket)
        try client.start()
        client.record(client.machine.received(transportNumber: 0, bytes: int32Bytes(["C"]), now: client.now))
        #expect(client.log.writes.isEmpty)  // nothing to send yet
        client.record(client.machine.received(transportNumber: 0, bytes: int32Bytes(["0N", "in "]), now: client.now))
        try client.send("out")
        let writes = client.runTimers(until: client.now + 1).writes
        #expect(writes.count == 1)
        #expect(writes.first?.0 == 0)
        #expect(int32Frames(writes.first?.1 ?? []) == ["|0A", "0N", "out "])
        try client.send("more")
        let next = client.runTimers(until: client.now + 1).writes
        #expect(int32Frames(next.first?.1 ?? []) == ["more "])  // contiguous: no SeqNumFrame
    }
}

@Suite("Client timeouts, backoff, retransmission")
struct ClientTimingTests {
    @Test func requestTimeouts() throws {
        var plain = ClientDriver(.httpLongPoll)
        try plain.start()
        #expect(plain.machine.nextDeadline == plain.now + 36.5)
        var secure = ClientDriver(.httpLongPoll) { $0.secure = true }
        try secure.start()
        #expect(secure.machine.nextDeadline == secure.now + 42.5)
        var socket = ClientDriver(.socket)
        try socket.start()
        #expect(socket.machine.nextDeadline == socket.now + 8)
        socket.record(socket.machine.responseStarted(transportNumber: 0, status: nil, now: socket.now + 1))
        #expect(socket.machine.nextDeadline == socket.now + 1 + 13.5)
    }

    @Test func longPollHeadersSetTheDownloadTimeout() throws {
        var client = ClientDriver(.httpLongPoll)
        try client.start()
        client.record(client.machine.responseStarted(transportNumber: 0, status: 200, contentLength: 3072, now: 1010))
        #expect(client.machine.nextDeadline == 1013.0)
        client.record(client.machine.responseStarted(transportNumber: 0, status: 200, contentLength: nil, now: 1010))
        #expect(client.machine.nextDeadline == 1012.0 + 500_000.0 / 3072.0)
    }

    @Test func secondaryTimeoutAndSignOfLife() throws {
        var client = ClientDriver(.httpStreaming)
        try client.start()
        client.respond(0, preamble + "C\n", finish: false)
        #expect(client.machine.nextDeadline == client.now + 13.5)
        try client.send("x")
        client.advance(to: client.now + 0.006)
        #expect(client.machine.secondaryTransportNumber == 1)
        // The secondary's 11.5 s is earlier than the primary's 13.5 s.
        #expect(client.machine.nextDeadline == client.now + 11.5)
    }

    @Test func timeoutClosesAndBacksOff() throws {
        var client = ClientDriver(.httpLongPoll)
        try client.start()
        let actions = client.advance(to: client.now + 36.5)
        #expect(actions.closed == [0])
        // It lived 36.5 s, longer than any backoff: replaced at once.
        #expect(actions.opened.map(\.transportNumber) == [1])
        // The timeout counted as a problem (count 1); quick failures now back off 2-6 s (count 2), then 4-8 s
        // (count capped at 3).
        var delays: [Double] = []
        for transport in Int64(1)...4 {
            let failed = client.record(client.machine.transportFailed(transportNumber: transport, now: client.now))
            #expect(failed.opened.isEmpty)
            let start = client.now
            let opened = client.runTimers(until: client.now + 20).opened
            #expect(opened.map(\.transportNumber) == [transport + 1])
            delays.append(client.now - start)
        }
        #expect(delays[0] >= 2 && delays[0] < 6)
        for delay in delays.dropFirst() { #expect(delay >= 4 && delay < 8) }
    }

    @Test func backoffCountResetsAfterAGoodTransport() throws {
        var client = ClientDriver(.httpLongPoll)
        try client.start()
        client.record(client.machine.transportFailed(transportNumber: 0, now: client.now))
        client.runTimers(until: client.now + 10)
        let next = try #require(client.log.opened.last)
        #expect(next.transportNumber == 1)
        let actions = client.respond(next.transportNumber, quietEnd)
        #expect(actions.opened.count == 1)  // immediate
    }

    @Test func coalescesABurstIntoOneRequest() throws {
        var client = ClientDriver(.httpLongPoll)
        try client.start()
        client.respond(0, preamble + "C\n|-1A\n|-1T\n")
        for index in 0..<5 { try client.send("s\(index)") }
        #expect(client.log.opened.count == 2)
        let opened = client.runTimers(until: client.now + 1).opened
        #expect(opened.count == 1)
        #expect(opened.first?.lines.dropFirst() == ["0N", "s0 ", "s1 ", "s2 ", "s3 ", "s4 "])
    }

    @Test func lostSecondaryIsRetransmittedOnTheNextSecondary() throws {
        var client = ClientDriver(.httpLongPoll)
        try client.start()
        client.respond(0, preamble + "C\n|-1A\n|-1T\n")
        try client.send("a")
        client.runTimers(until: client.now + 1)
        try client.send("b")
        client.runTimers(until: client.now + 1)
        #expect(client.log.opened.count == 3)  // b waits for the open secondary
        // The secondary dies having decoded nothing; PROTOCOL.md 10.23: its strings are no longer in flight.
        client.record(client.machine.transportFailed(transportNumber: 2, now: client.now))
        client.runTimers(until: client.now + 10)
        let retry = try #require(client.log.opened.last)
        #expect(retry.role == .secondary)
        #expect(retry.transportNumber == 3)
        #expect(retry.lines.dropFirst() == ["0N", "a ", "b "])
    }

    @Test func lostPrimaryIsRetransmittedOnTheNextPrimary() throws {
        var client = ClientDriver(.httpLongPoll)
        try client.send("a")
        try client.start()
        client.record(client.machine.transportFailed(transportNumber: 0, now: client.now))
        client.runTimers(until: client.now + 10)
        let retry = try #require(client.log.opened.last)
        #expect(retry.lines == [originalHello(tnum: 1, new: true, primary: true), "0N", "a "])
    }

    @Test func stringsInFlightAreNotDuplicated() throws {
        var client = ClientDriver(.httpLongPoll)
        try client.start()
        client.respond(0, preamble + "C\n|-1A\n|-1T\n")
        try client.send("a")
        client.runTimers(until: client.now + 1)
        // The primary ends while the secondary still carries "a": the new primary does not repeat it.
        let actions = client.respond(1, quietEnd)
        #expect(actions.opened.map(\.role) == [.primary])
        #expect(actions.opened.first?.lines.count == 1)
    }
}

@Suite("Client reset and dispose")
struct ClientResetTests {
    @Test func resetOverHTTPUsesADedicatedTransport() throws {
        var client = ClientDriver(.httpLongPoll)
        try client.start()
        client.respond(0, preamble + "C\n|-1A\n|-1T\n")
        let actions = client.record(try client.machine.reset(reason: "done", now: client.now))
        #expect(actions.closed == [1])
        #expect(actions.opened.map(\.role) == [.resetting])
        #expect(actions.opened.first?.lines == [originalHello(tnum: 2, new: false, primary: false), "done|1!"])
        #expect(actions.resets.map { $0.reason } == ["done"])
        #expect(actions.resets.map { $0.applicationLevel } == [true])
        #expect(!actions.disconnected)
        #expect(client.machine.state == .resetting)
        let end = client.respond(2, quietEnd)
        #expect(end.disconnected)
        #expect(end.opened.isEmpty)
        #expect(client.machine.state == .disconnected)
    }

    @Test func resetOverSocketWritesOnThePrimary() throws {
        var client = ClientDriver(.socket)
        try client.start()
        client.record(client.machine.received(transportNumber: 0, bytes: int32Bytes(["C"]), now: client.now))
        try client.send("last")
        let actions = client.record(try client.machine.reset(reason: "done", now: client.now))
        #expect(actions.writes.map { $0.0 } == [0])
        #expect(int32Frames(actions.writes.first?.1 ?? []) == ["0N", "last ", "done|1!"])
        #expect(actions.opened.isEmpty)
        let end = client.record(
            client.machine.received(transportNumber: 0, bytes: int32Bytes(["|0A", "|-1T", "Y"]), now: client.now))
        #expect(end.closed == [0])
        #expect(end.disconnected)
    }

    @Test func resetTransportTimeoutStillDisconnects() throws {
        var client = ClientDriver(.httpLongPoll)
        try client.start()
        client.record(try client.machine.reset(reason: "x", now: client.now))
        let actions = client.runTimers(until: client.now + 60)
        #expect(actions.disconnected)
        #expect(actions.opened.isEmpty)
    }

    @Test func resetBeforeStart() throws {
        var client = ClientDriver(.httpLongPoll)
        try client.send("never")
        let actions = client.record(try client.machine.reset(reason: "early", now: 0))
        #expect(actions.opened.isEmpty)
        #expect(actions.resets.map { $0.reason } == ["early"])
        #expect(actions.disconnected)
        #expect(throws: ClientStreamError.alreadyReset) { try client.machine.start(now: 0) }
    }

    @Test func invalidResetReasons() throws {
        var client = ClientDriver(.httpLongPoll)
        try client.start()
        #expect(throws: ClientStreamError.invalidResetReason) { try client.machine.reset(reason: "tab\there", now: 0) }
        let long = String(repeating: "r", count: 256)
        #expect(throws: ClientStreamError.invalidResetReason) { try client.machine.reset(reason: long, now: 0) }
        #expect(client.machine.state == .started)
    }

    @Test func disposeClosesEverythingSilently() throws {
        var client = ClientDriver(.httpLongPoll)
        try client.start()
        client.respond(0, preamble + "C\n|-1A\n|-1T\n")
        try client.send("x")
        client.runTimers(until: client.now + 1)
        let actions = client.record(client.machine.dispose())
        #expect(Set(actions.closed) == [1, 2])
        #expect(actions.resets.isEmpty)
        #expect(actions.disconnected)
        #expect(client.machine.dispose().isEmpty)
        #expect(throws: ClientStreamError.alreadyStarted) {
            var started = ClientStreamMachine(configuration: ClientConfiguration(endpoint: .socket))
            _ = try started.start(now: 0)
            _ = try started.start(now: 0)
        }
    }

    @Test func eventsForUnknownTransportsAreIgnored() throws {
        var client = ClientDriver(.httpLongPoll)
        try client.start()
        #expect(client.receive(42, preamble).isEmpty)
        #expect(client.record(client.machine.transportFailed(transportNumber: 42, now: client.now)).isEmpty)
        #expect(client.machine.openTransportNumbers == [0])
    }
}
