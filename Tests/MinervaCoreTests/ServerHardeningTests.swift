// The engine's hardening hooks: the configurable frame limit (ServerEngineConfiguration.maxFrameLength) on HTTP
// bodies and int32 sockets, and the rejection reporter that hears of every kill frame and send-queue reset.
import MinervaTestSupport
import Testing

@testable import MinervaCore

/// A harness whose engine records its rejections.
private final class RejectionHarness {
    let h: Harness
    var rejections: [EngineRejection] = []

    init(_ configure: (inout ServerEngineConfiguration) -> Void = { _ in }) {
        var configuration = ServerEngineConfiguration()
        configure(&configuration)
        h = Harness(configuration: configuration)
        h.engine.rejectionReporter = { [unowned self] in self.rejections.append($0) }
    }

    /// The kill reasons reported so far.
    var killReasons: [KillReason] {
        rejections.compactMap {
            if case .transportKilled(let reason) = $0.action { return reason }
            return nil
        }
    }
}

/// `count` bytes of a string frame: `count - 1` letters and the type byte ` `.
private func stringFrame(bytes count: Int) -> String { String(repeating: "a", count: count - 1) + " " }

@Suite("Server engine hardening: frame limit and rejection reports")
struct ServerHardeningTests {
    @Test func theFrameLimitDefaultsToTheProtocolsAndIsClampedToIt() {
        #expect(ServerEngineConfiguration().maxFrameLength == 1_048_576)
        for (asked, used) in [(2_000_000, 1_048_576), (0, 1), (-5, 1), (4096, 4096)] {
            var configuration = ServerEngineConfiguration()
            configuration.maxFrameLength = asked
            let engine = MinervaServerEngine(configuration: configuration, now: 0) { _ in Recorder() }
            #expect(engine.maxFrameLength == used)
        }
    }

    @Test func anHTTPLineOverTheConfiguredLimitIsFrameCorruption() {
        let r = RejectionHarness { $0.maxFrameLength = 400 }
        let atLimit = r.h.post(hh("-eeds") + "\n" + stringFrame(bytes: 400) + "\n")
        #expect(r.h.responses[atLimit]!.body == ";)]}^\nC\n|0A\n|0A\n|-1T\n")
        #expect(r.h.app.allStrings == [String(repeating: "a", count: 399)])
        let over = r.h.post(hh("-eeds", "-new") + "\n" + stringFrame(bytes: 401) + "\n")
        #expect(r.h.responses[over]!.body == ";)]}^\nframe_corruptionK\n")
        #expect(r.h.app.allStrings.count == 1)
        #expect(r.killReasons == [.frameCorruption])
        #expect(r.rejections.first?.limit == "maxFrameLength")
        #expect(r.rejections.first?.detail.contains("line of 401 bytes") == true)
    }

    @Test func anInt32LengthOverTheConfiguredLimitIsFrameCorruption() {
        let r = RejectionHarness { $0.maxFrameLength = 400 }
        let t = r.h.socket()
        r.h.engine.socketBytesReceived(
            t, bytes: int32Frame(Array(hs().utf8)) + int32Frame(Array(stringFrame(bytes: 400).utf8)), now: 0)
        r.h.endTurn()
        #expect(r.h.out(t) == ["C", "|0A"])
        r.h.engine.socketBytesReceived(t, bytes: [0, 0, 0x01, 0x91], now: 0)  // 401
        r.h.endTurn()
        #expect(r.h.out(t) == ["|0A", "|-1T", "frame_corruptionK", "Y"])
        #expect(r.killReasons == [.frameCorruption])
        #expect(r.rejections.first?.detail.contains("length prefix 401") == true)
        #expect(r.rejections.first?.transport == t)
    }

    @Test func everyKillReasonIsReportedWithARedactedStreamID() {
        let r = RejectionHarness {
            $0.receiveWindow = ReceiveWindowLimits(
                maxUndeliveredStrings: 2, maxUndeliveredBytes: 1_048_576, overheadPerString: 30)
        }
        r.h.post(hh("-eeds", "-new") + "\n")  // unknown stream without new
        let t1 = r.h.socket()
        r.h.send(t1, [hs(), "?"])
        let t2 = r.h.socket()
        r.h.send(t2, [hs("-new"), "|5A"])
        let t3 = r.h.socket()
        r.h.send(t3, [hs("-new"), "1N", "a ", "b ", "c "])
        let t4 = r.h.socket()
        r.h.send(t4, [hs("-new")], corrupted: true)
        #expect(
            r.killReasons == [
                .streamAttachFailure, .invalidFrameTypeOrArguments, .ackedUnsentStrings, .rwinOverflow,
                .frameCorruption,
            ])
        #expect(Set(r.killReasons) == Set(KillReason.allCases))
        let id = StreamID(testStreamID)!
        for rejection in r.rejections.dropLast() {
            #expect(rejection.redactedStreamID == id.redacted)
        }
        #expect(r.rejections.last?.redactedStreamID == nil)  // killed before its hello was read
        for rejection in r.rejections {
            #expect(!rejection.description.contains(testStreamID))
            #expect(!rejection.detail.isEmpty)
        }
        #expect(r.rejections[3].limit == "receiveWindow")
    }

    @Test func streamLimitAndRateLimitRefusalsNameTheirLimit() {
        let r = RejectionHarness {
            $0.maxStreams = 1
            $0.maxNewStreamsPerKeyPerSecond = 1
        }
        func open(_ key: String) -> TransportHandle {
            let handle = TransportHandle(100 + r.rejections.count * 10 + key.count)
            let info = ConnectionInfo(peerAddress: key + ":1", rateLimitKey: key)
            r.h.engine.openTransport(handle, kind: .socket, connection: info, now: 0)
            return handle
        }
        let first = open("10.0.0.1")
        r.h.send(first, [hs()])
        #expect(r.h.out(first) == ["C"])
        let tooMany = open("10.0.0.22")
        r.h.send(tooMany, [hs("id:\"\(String(repeating: "y", count: 26))\"")])
        #expect(r.h.out(tooMany) == ["stream_attach_failureK", "Y"])
        #expect(r.rejections.last?.limit == "maxStreams")
        #expect(r.rejections.last?.peerAddress == "10.0.0.22:1")
        r.h.app { try? r.h.stream?.reset(reason: "done") }  // frees the stream slot; 10.0.0.1 has no token left
        let rated = open("10.0.0.1")
        r.h.send(rated, [hs("id:\"\(String(repeating: "z", count: 26))\"")])
        #expect(r.h.out(rated) == ["stream_attach_failureK", "Y"])
        #expect(r.rejections.last?.limit == "maxNewStreamsPerKeyPerSecond")
        #expect(r.killReasons == [.streamAttachFailure, .streamAttachFailure])
    }

    @Test func aSendQueueOverflowResetIsReported() throws {
        let r = RejectionHarness { $0.maxQueuedBytesPerStream = 10 }
        r.h.post(hh("-eeds") + "\n")
        #expect(throws: MinervaStreamError.sendQueueFull) { try r.h.stream!.send("01234567890") }
        #expect(r.rejections.count == 1)
        #expect(r.rejections.first?.action == .streamReset("send queue limit exceeded"))
        #expect(r.rejections.first?.limit == "maxQueuedBytesPerStream")
        #expect(r.rejections.first?.redactedStreamID == StreamID(testStreamID)!.redacted)
    }

    @Test func tinyStringsAreCountedAtWhatTheyCost() throws {
        // 1,000 bytes allow 12 one-byte strings (81 each), not 1,000.
        let r = RejectionHarness { $0.maxQueuedBytesPerStream = 1_000 }
        r.h.post(hh("-eeds") + "\n")
        let stream = r.h.stream!
        for _ in 0..<12 { try stream.send("x") }
        #expect(stream.queuedBytes == 12)
        #expect(throws: MinervaStreamError.sendQueueFull) { try stream.send("x") }
        #expect(r.rejections.first?.limit == "maxQueuedBytesPerStream")
    }

    @Test func nothingIsReportedForAGoodExchange() {
        let r = RejectionHarness()
        let t = r.h.socket()
        r.h.send(t, [hs(), "0N", "hi "])
        #expect(r.h.app.allStrings == ["hi"])
        r.h.post(hh("-new", "tnum:1", "-eeds") + "\n")
        #expect(r.rejections.isEmpty)
    }
}

/// The queued-memory budget across all streams (issue 12 item 2): many streams each under the per-stream limit cannot
/// together exceed it; the stream holding the most is reset, the others go on.
@Suite struct QueuedMemoryBudgetTests {
    /// A harness whose engine has two streams, `big` and `small`, on separate socket transports.
    private func twoStreams(total: Int) -> (Harness, [EngineRejection], ServerStream, ServerStream) {
        var configuration = ServerEngineConfiguration()
        configuration.maxQueuedBytesTotal = total
        let h = Harness(configuration: configuration)
        h.send(h.socket(), [hs("id:\"aaaaaaaaaaaaaaaaaaaaaaaaaa\"")])
        h.send(h.socket(), [hs("id:\"bbbbbbbbbbbbbbbbbbbbbbbbbb\"")])
        let big = h.engine.stream(StreamID(String(repeating: "a", count: 26))!)!
        let small = h.engine.stream(StreamID(String(repeating: "b", count: 26))!)!
        return (h, [], big, small)
    }

    @Test func theLargestQueueIsResetWhenTheTotalIsExceeded() throws {
        // 6,400 bytes of budget, reserved in 100-byte chunks. Strings are never acknowledged here (no SACK).
        let (h, _, big, small) = twoStreams(total: 6_400)
        var rejections: [EngineRejection] = []
        h.engine.rejectionReporter = { rejections.append($0) }
        let string = String(repeating: "x", count: 920)  // 1,000 bytes of queued memory each
        try small.send(string)
        for _ in 0..<5 { try big.send(string) }
        #expect(h.engine.queuedMemory == 6_000)
        #expect(rejections.isEmpty)
        // The seventh string takes the total over 6,400: the stream holding the most (big, 5,000) is reset, even
        // though the string is small's.
        try small.send(string)
        #expect(big.isReset)
        #expect(!small.isReset)
        #expect(rejections.count == 1)
        #expect(rejections.first?.action == .streamReset("queued memory limit exceeded"))
        #expect(rejections.first?.limit == "maxQueuedBytesTotal")
        #expect(h.engine.queuedMemory == 2_000)
        // What big held is given back: small can queue again.
        try small.send(string)
        try small.send(string)
        #expect(!small.isReset)
        #expect(small.queuedMemory == 4_000)
    }

    @Test func theSenderIsToldWhenItIsTheLargest() throws {
        let (h, _, big, small) = twoStreams(total: 6_400)
        let string = String(repeating: "x", count: 920)
        try small.send(string)
        for _ in 0..<5 { try big.send(string) }
        #expect(throws: MinervaStreamError.sendQueueFull) { try big.send(string) }
        #expect(big.isReset)
        #expect(!small.isReset)
        #expect(h.engine.queuedMemory == 1_000)
    }

    @Test func acknowledgedStringsGiveTheBudgetBack() throws {
        let (h, _, _, _) = twoStreams(total: 6_400)
        h.engine.queuedMemoryBudget = MinervaQueuedMemoryBudget(limit: 6_400)
        let t = h.socket()
        h.send(t, [hs("id:\"cccccccccccccccccccccccccc\"")])
        let stream = h.engine.stream(StreamID(String(repeating: "c", count: 26))!)!
        let string = String(repeating: "x", count: 920)
        for round in 0..<20 {
            for _ in 0..<5 { try stream.send(string) }
            h.endTurn()
            // The client acknowledges everything sent so far: the queue empties, the budget is given back.
            h.send(t, ["|\(round * 5 + 4)A"])
            #expect(stream.queuedMemory == 0)
        }
        #expect(!stream.isReset)
        #expect(h.engine.queuedMemory == 0)
        #expect(h.engine.queuedMemoryBudget.reserved <= 3 * h.engine.queuedMemoryBudget.chunk)
    }

    @Test func twoEnginesShareOneBudget() throws {
        let shared = MinervaQueuedMemoryBudget(limit: 6_400)
        let (h1, _, big1, _) = twoStreams(total: 1 << 30)
        let (h2, _, big2, _) = twoStreams(total: 1 << 30)
        h1.engine.queuedMemoryBudget = shared
        h2.engine.queuedMemoryBudget = shared
        let string = String(repeating: "x", count: 920)
        for _ in 0..<3 { try big1.send(string) }
        for _ in 0..<3 { try big2.send(string) }
        #expect(shared.reserved >= 6_000)
        #expect(!big1.isReset && !big2.isReset)
        // 7,000 bytes would be over the shared 6,400: the engine where it happens resets its largest.
        #expect(throws: MinervaStreamError.sendQueueFull) { try big2.send(string) }
        #expect(big2.isReset)
        #expect(!big1.isReset)
        #expect(shared.reserved >= 3_000 && shared.reserved <= 3_000 + 2 * 2 * shared.chunk)
    }
}
