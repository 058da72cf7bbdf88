// Property-based robustness of ClientStreamMachine alone: random (valid and invalid) server frames, statuses,
// transport ends, timers and application calls never break its invariants, and everything it sends decodes.

import MinervaTestSupport
import PropertyBased
import Testing

@testable import MinervaCore

/// S2C frames the fuzzer picks from: valid, invalid, and hostile ones.
private let vocabulary = [
    ";)]}^", "C", "|-1A", "|0A", "0|2A", "|9A", "|-1T", "|3T", "0N", "1N", "2N", "7N", "s ", "t ", "beat^", "Y",
    "stream_attach_failureK", "acked_unsent_stringsK", "rwin_overflowK", "bye|0!", "garbage", "\u{7f} ", "", "xC",
]

/// Checks the machine's invariants and the actions of one event; records what was opened.
private struct Observer {
    var opened: [Int64: ClientTransportMode] = [:]
    var lastOpened: Int64 = -1
    var sawCreated = false
    var disconnected = false

    mutating func check(_ actions: [ClientAction], _ machine: ClientStreamMachine) {
        for action in actions {
            switch action {
            case .openTransport(let request):
                #expect(!disconnected)
                #expect(request.transportNumber == lastOpened + 1)
                lastOpened = request.transportNumber
                opened[request.transportNumber] = request.mode
                checkHello(request, machine)
            case .write(let number, _):
                #expect(opened[number] == .socket)
            case .closeTransport(let number):
                #expect(opened[number] != nil)
            case .disconnected:
                #expect(!disconnected)
                disconnected = true
            case .deliverStrings(let strings):
                #expect(strings.allSatisfy { RestrictedString.isValid($0) })
            case .streamReset, .nextDeadline:
                break
            }
        }
        let open = machine.openTransportNumbers
        #expect(open.allSatisfy { opened[$0] != nil })
        #expect(machine.cachedStringCount <= machine.configuration.maxUndeliveredStrings)
        switch machine.state {
        case .started:
            #expect(open.count <= 2)
            // There is always a primary: a real one, or a placeholder with a deadline.
            #expect(machine.primaryTransportNumber != nil || machine.nextDeadline != nil)
        case .resetting:
            #expect(open.count <= 1)
        case .disconnected:
            #expect(disconnected)
            #expect(open.isEmpty)
            #expect(machine.nextDeadline == nil)
        case .unstarted:
            #expect(open.isEmpty)
        }
    }

    /// The first frame of every transport is a valid hello for this stream and transport.
    private func checkHello(_ request: ClientTransportRequest, _ machine: ClientStreamMachine) {
        let first: [UInt8]
        if request.mode == .socket {
            first = Array(int32Frames(request.body).first?.utf8 ?? "".utf8)
        } else {
            first = Array(request.body.prefix { $0 != UInt8(ascii: "\n") })
        }
        guard case .success(.hello(let hello)) = Frame.decode(first[...], direction: .clientToServer) else {
            Issue.record("transport \(request.transportNumber) does not start with a valid hello")
            return
        }
        #expect(hello.transportNumber == request.transportNumber)
        #expect(hello.streamID == machine.streamID)
        #expect(hello.wantsStrings == (request.role == .primary))
        #expect(hello.requestNewStream == !machine.streamKnownToServer)
        #expect(hello.streamingResponse == (request.mode != .httpLongPoll))
        #expect(hello.maxInactivity == (request.mode == .httpLongPoll ? 0 : 10))
    }
}

@Suite("Client fuzzed by a hostile server")
struct PropertyClientFuzzTests {
    private static let events = Gen.int(in: 0...99_999).array(of: 1...200)

    private func run(_ endpoint: ClientEndpointKind, _ events: [Int]) {
        var machine = ClientStreamMachine(
            configuration: ClientConfiguration(endpoint: endpoint), jitter: SeededGenerator(seed: 3))
        var observer = Observer()
        var now = 0.0
        observer.check(try! machine.start(now: now), machine)
        var sent = 0
        for value in events {
            let open = machine.openTransportNumbers
            let target = open.isEmpty ? Int64(value % 3) : open[(value / 100) % open.count]
            var actions: [ClientAction] = []
            switch value % 100 {
            case 0..<15:
                if machine.state == .started {
                    actions = try! machine.sendString("up\(sent)", now: now)
                    sent += 1
                }
            case 15..<55:
                var frames: [String] = []
                var seed = value / 100
                for _ in 0..<(1 + seed % 4) {
                    frames.append(vocabulary[seed % vocabulary.count])
                    seed /= 7
                }
                if (value / 100) % 5 != 0 { frames.insert(";)]}^", at: 0) }
                let bytes =
                    observer.opened[target] == .socket
                    ? int32Bytes(frames) : Array(frames.map { $0 + "\n" }.joined().utf8)
                actions = machine.received(transportNumber: target, bytes: bytes, now: now)
            case 55..<62:
                actions = machine.responseStarted(
                    transportNumber: target, status: value % 7 == 0 ? 500 : 200, contentLength: value % 5000, now: now)
            case 62..<70:
                actions = machine.transportFinished(transportNumber: target, status: 200, now: now)
            case 70..<75:
                actions = machine.transportFailed(transportNumber: target, now: now)
            case 75..<97:
                now += Double(value / 100 % 400) * 0.1
                actions = machine.timersDue(now: now)
            case 97, 98:
                actions = (try? machine.reset(reason: "fuzz", now: now)) ?? []
            default:
                actions = machine.dispose()
            }
            observer.check(actions, machine)
        }
    }

    @Test func httpLongPoll() async {
        await propertyCheck(count: 150, input: Self.events) { run(.httpLongPoll, $0) }
    }

    @Test func httpStreaming() async {
        await propertyCheck(count: 150, input: Self.events) { run(.httpStreaming, $0) }
    }

    @Test func socket() async {
        await propertyCheck(count: 150, input: Self.events) { run(.socket, $0) }
    }
}
