import MinervaCore
import Testing

// PROTOCOL.md 8 and 9 group G (QAN).

/// A helper wired to recorders.
final class QANHarness {
    var sent: [String] = []
    var fatals: [QANFatalError] = []
    var logs: [String] = []
    var handler: (QANIncoming) throws -> Void = { _ in }
    var failSends = false
    var helper: QANHelper!

    struct SendFailure: Error {}

    init() {
        helper = QANHelper(
            send: { [unowned self] string in
                if self.failSends { throw SendFailure() }
                self.sent.append(String(decoding: string, as: UTF8.self))
            },
            bodyReceived: { [unowned self] incoming in try self.handler(incoming) },
            fatalError: { [unowned self] in self.fatals.append($0) },
            log: { [unowned self] in self.logs.append($0) })
    }

    /// Feeds a received string.
    @discardableResult
    func receive(_ string: String) -> Bool { helper.handleString(ArraySlice(string.utf8)) }

    /// Asks and records the outcome in `outcomes[qid]`.
    func ask(_ body: String, into outcomes: Box) throws -> Int64 {
        var assigned: Int64 = 0
        assigned = try helper.ask(Array(body.utf8)) { outcomes.values[assigned] = $0 }
        return assigned
    }
}

/// Outcomes by qid (a reference the completions write into).
final class Box {
    var values: [Int64: QANOutcome] = [:]
}

/// The text of a body.
func text(_ body: ArraySlice<UInt8>) -> String { String(decoding: body, as: UTF8.self) }

@Test func case92_qanFrameEncoding() {
    let table: [(QANFrame, String)] = [
        (.notification(body: slice("blah")), "blah#"), (.question(body: slice("blah"), qid: 0), "blah|0Q"),
        (.question(body: slice("blah"), qid: 100), "blah|100Q"),
        (.okayAnswer(body: slice("blah"), qid: 100), "blah|100K"),
        (.knownErrorAnswer(body: slice("blah"), qid: 100), "blah|100E"),
        (.unknownErrorAnswer(body: slice("blah"), qid: 100), "blah|100U"), (.cancellation(qid: 100), "100C"),
    ]
    for (frame, string) in table {
        #expect(String(decoding: frame.encoded, as: UTF8.self) == string)
        #expect(QANFrame.decode(slice(string)) == frame)
    }
}

@Test func case93_qanFrameDecoding() {
    #expect(QANFrame.decode(slice("blah|10Q")) == .question(body: slice("blah"), qid: 10))
    #expect(QANFrame.decode(slice("blah|10K")) == .okayAnswer(body: slice("blah"), qid: 10))
    #expect(QANFrame.decode(slice("blah|10E")) == .knownErrorAnswer(body: slice("blah"), qid: 10))
    #expect(QANFrame.decode(slice("blah|10U")) == .unknownErrorAnswer(body: slice("blah"), qid: 10))
    #expect(QANFrame.decode(slice("10C")) == .cancellation(qid: 10))
    #expect(QANFrame.decode(slice("blah#")) == .notification(body: slice("blah")))
    #expect(QANFrame.decode(slice("a|b#")) == .notification(body: slice("a|b")))
    #expect(QANFrame.decode(slice("a|b|7Q")) == .question(body: slice("a|b"), qid: 7))
    #expect(QANFrame.decode(slice("|9007199254740992K")) == .okayAnswer(body: [], qid: maxProtocolInteger))
    for invalid in [
        "", "whatX", "blah|10X", "1x0C", "C", "blah|1x0Q", "Q", "blahQ", "blah|Q", "blah|-1Q",
        "blah|01Q", "9007199254740993C", "blah|9007199254740993K",
    ] {
        #expect(QANFrame.decode(slice(invalid)) == nil, "\(invalid)")
    }
}

@Test func case94_ask() throws {
    let peer = QANHarness()
    let outcomes = Box()
    #expect(try peer.ask("what?", into: outcomes) == 1)
    #expect(peer.sent == ["what?|1Q"])
    #expect(!peer.receive("answer with wrong qid|100K"))
    #expect(peer.fatals.map { $0.message } == ["Received an answer with invalid qid: 100"])
    #expect(peer.fatals.first?.resetReason == "QANHelper said: Received an answer with invalid qid: 100")
    #expect(try peer.ask("and?", into: outcomes) == 2)
    #expect(try peer.ask("or?", into: outcomes) == 3)
    peer.receive("no.|1K")
    #expect(outcomes.values[1] == .answer(slice("no.")))
    peer.receive("bad|2E")
    #expect(outcomes.values[2] == .knownError(slice("bad")))
    peer.receive("worse|3U")
    #expect(outcomes.values[3] == .unknownError(slice("worse")))
    // A second answer for an answered question is an invalid qid.
    #expect(!peer.receive("again|1K"))
    #expect(peer.fatals.count == 2)
    #expect(peer.helper.outstandingQuestionCount == 0)
    // An undecodable string.
    #expect(!peer.receive("not qan"))
    #expect(peer.fatals.last?.resetReason == "Bad QAN frame.  Did peer send a non-QAN string?")
}

@Test func askFailuresDoNotUseUpQids() throws {
    let peer = QANHarness()
    let outcomes = Box()
    peer.failSends = true
    #expect(throws: QANHarness.SendFailure.self) { try peer.ask("x", into: outcomes) }
    peer.failSends = false
    #expect(throws: QANUsageError.invalidBody) { try peer.helper.ask([0x0A]) { _ in } }
    #expect(try peer.ask("y", into: outcomes) == 1)
    #expect(peer.sent == ["y|1Q"])
    try peer.helper.notify(Array("note|with bar".utf8))
    #expect(peer.sent.last == "note|with bar#")
    #expect(throws: QANUsageError.invalidBody) { try peer.helper.notify([0x7F]) }
}

@Test func case95_questionReceived() {
    let peer = QANHarness()
    var bodies: [String] = []
    peer.handler = { incoming in
        guard case .question(let body, let responder) = incoming else { return }
        bodies.append(text(body))
        responder.answer(Array("chilly".utf8))
    }
    peer.receive("the weather?|1Q")
    peer.receive("how about now?|2Q")
    #expect(bodies == ["the weather?", "how about now?"])
    #expect(peer.sent == ["chilly|1K", "chilly|2K"])
    #expect(peer.helper.pendingAnswerCount == 0)
}

@Test func case96_answersInCompletionOrder() {
    let peer = QANHarness()
    var responders: [Int64: QANResponder] = [:]
    peer.handler = { incoming in
        if case .question(_, let responder) = incoming { responders[responder.qid] = responder }
    }
    peer.receive("the weather?|1Q")
    peer.receive("how about now?|2Q")
    peer.receive("and tomorrow?|3Q")
    #expect(peer.sent.isEmpty)
    responders[2]?.answer(Array("sunny".utf8))
    responders[1]?.answer(Array("hurricane".utf8))
    responders[3]?.fail(knownError: Array("no forecast".utf8))
    #expect(peer.sent == ["sunny|2K", "hurricane|1K", "no forecast|3E"])
    #expect(responders[1]?.answer(Array("again".utf8)) == false)
    #expect(peer.sent.count == 3)
}

@Test func case97_duplicateQuestionQid() {
    let peer = QANHarness()
    var bodies: [String] = []
    peer.handler = { incoming in
        if case .question(let body, _) = incoming { bodies.append(text(body)) }
    }
    peer.receive("what?|1Q")
    #expect(!peer.receive("where?|1Q"))
    #expect(peer.fatals.map { $0.resetReason } == ["QANHelper said: Received Question with duplicate qid: 1"])
    #expect(bodies == ["what?"])
}

@Test func case98_theyCancel() {
    let peer = QANHarness()
    var responders: [Int64: QANResponder] = [:]
    peer.handler = { incoming in
        guard case .question(_, let responder) = incoming else { return }
        responders[responder.qid] = responder
        switch responder.qid {
        case 2: responder.onCancel = { responder.fail(knownError: Array("okay, you'll never know".utf8)) }
        case 4: responder.onCancel = { responder.answer(Array("maybe a little warm".utf8)) }
        case 3: responder.onCancel = { Issue.record("3 was not cancelled") }
        default: break
        }
    }
    for qid in 1...4 { peer.receive("weather?|\(qid)Q") }
    peer.receive("2C")
    peer.receive("4C")
    peer.receive("1C")
    responders[3]?.fail(knownError: Array("weather station is broken".utf8))
    #expect(
        peer.sent == [
            "okay, you'll never know|2E", "maybe a little warm|4K", "CancelledError|1U", "weather station is broken|3E",
        ])
    #expect(responders[1]?.isCancelled == true && responders[3]?.isCancelled == false)
    // Answers after a cancellation are not sent again; cancelling an answered question does nothing.
    #expect(responders[1]?.answer(Array("late".utf8)) == false)
    peer.receive("3C")
    #expect(peer.sent.count == 4)
}

@Test func case99_handlerThrows() {
    struct Boom: Error {}
    let peer = QANHarness()
    peer.handler = { _ in throw Boom() }
    peer.receive("what?|1Q")
    #expect(peer.sent == ["Uncaught exception|1U"])
    #expect(peer.logs.count == 1)
    peer.receive("hey#")
    #expect(peer.sent.count == 1)
    #expect(peer.logs.count == 2)
    // A thrown known error is sent as E.
    peer.handler = { _ in throw QANKnownError("no idea") }
    peer.receive("why?|2Q")
    #expect(peer.sent.last == "no idea|2E")
    // A non-restricted answer body becomes an unknown error.
    peer.handler = { incoming in
        if case .question(_, let responder) = incoming { responder.answer([0x0A]) }
    }
    peer.receive("how?|3Q")
    #expect(peer.sent.last == "Uncaught exception|3U")
}

@Test func case100_weCancel() throws {
    let peer = QANHarness()
    let outcomes = Box()
    let qid = try peer.ask("going to the theater?", into: outcomes)
    #expect(peer.sent == ["going to the theater?|1Q"])
    #expect(peer.helper.cancel(qid))
    #expect(peer.sent.last == "1C")
    #expect(outcomes.values[1] == .cancelled)
    #expect(!peer.helper.cancel(qid))
    #expect(peer.receive("nope|1K"))
    #expect(outcomes.values[1] == .cancelled)
    #expect(peer.fatals.isEmpty)
    #expect(peer.helper.outstandingQuestionCount == 0)
}

@Test func case101_failAllAndUnknownCancellations() throws {
    let peer = QANHarness()
    let outcomes = Box()
    _ = try peer.ask("one?", into: outcomes)
    _ = try peer.ask("two?", into: outcomes)
    _ = try peer.ask("three?", into: outcomes)
    peer.helper.cancel(3)
    peer.helper.failAll(reason: "just because")
    #expect(outcomes.values[1] == .questionFailed(reason: "just because"))
    #expect(outcomes.values[2] == .questionFailed(reason: "just because"))
    #expect(outcomes.values[3] == .cancelled)  // settled before: skipped (PROTOCOL.md 10.15)
    peer.receive("no|1K")
    peer.receive("what?|2E")
    #expect(outcomes.values[1] == .questionFailed(reason: "just because"))
    #expect(peer.fatals.isEmpty)
    let sentBefore = peer.sent
    peer.receive("1C")
    peer.receive("1C")
    peer.receive("2C")
    #expect(peer.sent == sentBefore && peer.fatals.isEmpty)
}

@Test func notificationsReachTheHandler() throws {
    let peer = QANHarness()
    var notes: [String] = []
    peer.handler = { incoming in
        if case .notification(let body) = incoming { notes.append(text(body)) }
    }
    peer.receive("a|b#")
    peer.receive("#")
    #expect(notes == ["a|b", ""])
    #expect(peer.sent.isEmpty)
}

@Test func twoHelpersTalkToEachOther() throws {
    // A loopback: each helper's sends are the other's received strings.
    var left: QANHelper!
    var right: QANHelper!
    left = QANHelper(
        send: { right.handleString(ArraySlice($0)) }, bodyReceived: { _ in }, fatalError: { Issue.record("\($0)") })
    right = QANHelper(
        send: { left.handleString(ArraySlice($0)) },
        bodyReceived: { incoming in
            if case .question(let body, let responder) = incoming { responder.answer(Array(body.reversed())) }
        }, fatalError: { Issue.record("\($0)") })
    var results: [String] = []
    for question in ["abc", "hello world", ""] {
        try left.ask(Array(question.utf8)) { outcome in
            if case .answer(let body) = outcome { results.append(text(body)) }
        }
    }
    #expect(results == ["cba", "dlrow olleh", ""])
}

@Test func askingFromASynchronousCompletionGetsANewQid() throws {
    var helper: QANHelper!
    var sent: [String] = []
    helper = QANHelper(
        send: { string in
            let text = String(decoding: string, as: UTF8.self)
            sent.append(text)
            if text == "first|1Q" { helper.handleString(slice("ok|1K")) }
        }, bodyReceived: { _ in }, fatalError: { Issue.record("\($0)") })
    var nested: Int64 = 0
    let first = try helper.ask(Array("first".utf8)) { _ in
        nested = (try? helper.ask(Array("second".utf8)) { _ in }) ?? 0
    }
    #expect(first == 1 && nested == 2)
    #expect(sent == ["first|1Q", "second|2Q"])
}
