// Drives ClientStreamMachine with scripted server responses: records every action, and finds the transports
// it opened, what it wrote and what it delivered.

import MinervaCore
import MinervaTestSupport

/// The stream id the client tests use: 26 x `c`.
let clientTestID = StreamID(String(repeating: "c", count: 26))!

/// A client machine plus the log of everything it asked for.
struct ClientDriver {
    var machine: ClientStreamMachine
    var log: [ClientAction] = []
    var now: Double = 1000

    init(_ endpoint: ClientEndpointKind, configure: (inout ClientConfiguration) -> Void = { _ in }) {
        var configuration = ClientConfiguration(endpoint: endpoint)
        configure(&configuration)
        machine = ClientStreamMachine(
            configuration: configuration, streamID: clientTestID, jitter: SeededGenerator(seed: 7))
    }

    /// Records and returns `actions`.
    @discardableResult
    mutating func record(_ actions: [ClientAction]) -> [ClientAction] {
        log += actions
        return actions
    }

    @discardableResult
    mutating func start() throws -> [ClientAction] { record(try machine.start(now: now)) }

    @discardableResult
    mutating func send(_ string: String) throws -> [ClientAction] {
        record(try machine.sendString(string, now: now))
    }

    /// Delivers a whole HTTP response (status 200) to a transport and finishes it.
    @discardableResult
    mutating func respond(_ transport: Int64, _ body: String, finish: Bool = true) -> [ClientAction] {
        var actions = machine.responseStarted(transportNumber: transport, status: 200, now: now)
        actions += machine.received(transportNumber: transport, bytes: bytes(body), now: now)
        if finish { actions += machine.transportFinished(transportNumber: transport, status: 200, now: now) }
        return record(actions)
    }

    @discardableResult
    mutating func receive(_ transport: Int64, _ body: String) -> [ClientAction] {
        record(machine.received(transportNumber: transport, bytes: bytes(body), now: now))
    }

    /// Advances the clock and runs the timers.
    @discardableResult
    mutating func advance(to time: Double) -> [ClientAction] {
        now = time
        return record(machine.timersDue(now: now))
    }

    /// Runs timers until the machine's deadline passes `limit` or nothing is scheduled.
    @discardableResult
    mutating func runTimers(until limit: Double) -> [ClientAction] {
        var all: [ClientAction] = []
        while let deadline = machine.nextDeadline, deadline <= limit {
            all += advance(to: max(now, deadline))
        }
        return all
    }
}

extension [ClientAction] {
    /// The transports opened, in order.
    var opened: [ClientTransportRequest] {
        compactMap { if case .openTransport(let request) = $0 { return request } else { return nil } }
    }

    /// The transports closed by the client, in order.
    var closed: [Int64] {
        compactMap { if case .closeTransport(let number) = $0 { return number } else { return nil } }
    }

    /// Every string delivered, in order, as text.
    var delivered: [String] {
        flatMap { action -> [String] in
            if case .deliverStrings(let list) = action { return list.map { String(decoding: $0, as: UTF8.self) } }
            return []
        }
    }

    /// The resets reported.
    var resets: [(reason: String, applicationLevel: Bool)] {
        compactMap { action in
            if case .streamReset(let reason, let level) = action {
                return (String(decoding: reason, as: UTF8.self), level)
            }
            return nil
        }
    }

    /// The socket writes, as (transport, bytes).
    var writes: [(Int64, [UInt8])] {
        compactMap { if case .write(let number, let bytes) = $0 { return (number, bytes) } else { return nil } }
    }

    /// Whether `disconnected` was reported.
    var disconnected: Bool { contains(.disconnected) }
}

extension ClientTransportRequest {
    /// The body as text (HTTP bodies are ASCII).
    var text: String { String(decoding: body, as: UTF8.self) }
    /// The body's lines (HTTP), without the `\n`s.
    var lines: [String] { text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init) }
}

/// The hello line the original client sends (PROTOCOL.md 7.3), for comparisons.
func originalHello(
    tnum: Int, new: Bool, ming: Bool = false, primary: Bool, sack: String = "|-1", seenack: String = "|-1"
) -> String {
    var json = "{\"tnum\":\(tnum),\"ver\":2,\"format\":2,"
    if new { json += "\"new\":true," }
    json += "\"id\":\"\(String(repeating: "c", count: 26))\",\"ming\":\(ming),"
    if ming { json += "\"pad\":4096," }
    json += "\"maxb\":300000,"
    if primary { json += "\"maxt\":\(ming ? 3580 : 25)," }
    json += "\"maxia\":\(ming ? 10 : 0),\"tcpack\":false,"
    if primary { json += "\"eeds\":null," }
    json += "\"sack\":\"\(sack)\",\"seenack\":\"\(seenack)\"}H"
    return json
}
