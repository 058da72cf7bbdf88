// Property-based tests: a ClientStreamMachine and a MinervaServerEngine connected by a simulated network that
// loses transports, delivers HTTP requests twice, reorders uploads across transports, delays responses and lets
// the server kill transports (a small receive window provokes `rwin_overflow`). Whatever the script, once the
// network calms down every string arrives exactly once and in order, both ways, and every queue drains.

import MinervaTestSupport
import PropertyBased
import Testing

@testable import MinervaCore

/// The server application of the simulation: records what arrives, never resets.
private final class SimulatedApp: MinervaStreamHandler {
    var received: [String] = []
    var resets: [String] = []
    var stream: ServerStream?

    func streamStarted(_ stream: ServerStream) throws { self.stream = stream }

    func stringsReceived(_ strings: [ArraySlice<UInt8>], on stream: ServerStream) {
        received += strings.map { String(decoding: $0, as: UTF8.self) }
    }

    func streamReset(_ stream: ServerStream, reason: String, applicationLevel: Bool) { resets.append(reason) }
}

extension Array where Element == UInt8 {
    /// Whether `needle` occurs in the array.
    fileprivate func contains(subsequence needle: [UInt8]) -> Bool {
        guard count >= needle.count else { return false }
        return (0...(count - needle.count)).contains { self[$0..<($0 + needle.count)].elementsEqual(needle) }
    }
}

/// What travels from the server to the client on one transport, in order.
private enum Download {
    case bytes([UInt8])
    case end
}

/// A client transport as the network sees it.
private struct Connection {
    let mode: ClientTransportMode
    /// The server's handle once the first upload arrived.
    var handle: TransportHandle?
    /// Socket chunks (or the one HTTP body) not yet delivered to the server.
    var uploads: [[UInt8]] = []
    var downloads: [Download] = []
    var responseStarted = false
}

/// The simulation: both machines, the connections between them, and the clock.
private struct Network {
    var client: ClientStreamMachine
    let engine: MinervaServerEngine
    let app: SimulatedApp
    var now: Double = 0
    var connections: [Int64: Connection] = [:]
    var handles: [TransportHandle: Int64] = [:]
    /// Server transports of duplicated requests: their output goes nowhere.
    var ghosts: [TransportHandle] = []
    var nextHandle = 0
    var clientReceived: [String] = []
    var clientSent = 0
    var serverSent = 0
    var clientProblems: [String] = []
    var maxClientCache = 0
    /// What the run exercised (summed over all runs to show the network really misbehaves).
    var kills = 0
    var losses = 0
    var duplicates = 0

    init(endpoint: ClientEndpointKind, serverWindow: Int) {
        var configuration = ClientConfiguration(endpoint: endpoint)
        configuration.maxUndeliveredStrings = 8
        client = ClientStreamMachine(configuration: configuration, jitter: SeededGenerator(seed: 99))
        var serverConfiguration = ServerEngineConfiguration()
        serverConfiguration.receiveWindow = ReceiveWindowLimits(
            maxUndeliveredStrings: serverWindow, maxUndeliveredBytes: 1_048_576, overheadPerString: 30)
        let app = SimulatedApp()
        self.app = app
        engine = MinervaServerEngine(configuration: serverConfiguration, now: 0) { _ in app }
    }

    // MARK: Client side

    mutating func apply(_ actions: [ClientAction]) {
        for action in actions {
            switch action {
            case .openTransport(let request):
                var connection = Connection(mode: request.mode)
                connection.uploads = [request.body]
                connections[request.transportNumber] = connection
            case .write(let number, let bytes):
                connections[number]?.uploads.append(bytes)
            case .closeTransport(let number):
                if let connection = connections.removeValue(forKey: number), let handle = connection.handle {
                    handles[handle] = nil
                    engine.transportClosed(handle, now: now)
                    drainServer()
                }
            case .deliverStrings(let strings):
                clientReceived += strings.map { String(decoding: $0, as: UTF8.self) }
            case .streamReset(let reason, _):
                clientProblems.append("reset: " + String(decoding: reason, as: UTF8.self))
            case .disconnected:
                clientProblems.append("disconnected")
            case .nextDeadline:
                break
            }
        }
        maxClientCache = max(maxClientCache, client.cachedStringCount)
    }

    mutating func clientSends() {
        guard client.state == .started else { return }
        apply(try! client.sendString("c2s-\(clientSent)", now: now))
        clientSent += 1
    }

    mutating func serverSends() {
        guard let stream = app.stream, !stream.isReset else { return }
        try! stream.send("s2c-\(serverSent)")
        serverSent += 1
        engine.flush(now: now)
        drainServer()
    }

    // MARK: Network

    /// Delivers the next upload of a connection to the server; `twice` replays an HTTP request on a ghost.
    /// `corrupt` makes the server see an over-long frame instead: it kills the transport (`frame_corruption`).
    mutating func deliverUpload(_ number: Int64, twice: Bool = false, corrupt: Bool = false) {
        guard var connection = connections[number], !connection.uploads.isEmpty else { return }
        let chunk = connection.uploads.removeFirst()
        if connection.handle == nil {
            connection.handle = newHandle(for: connection.mode)
            handles[connection.handle!] = number
        }
        connections[number] = connection
        if corrupt {
            engine.framesReceived(connection.handle!, frames: [], frameCorruption: true, now: now)
            drainServer()
            return
        }
        feed(connection.handle!, chunk, http: connection.mode.isHTTP)
        if twice, connection.mode.isHTTP {
            duplicates += 1
            let ghost = newHandle(for: connection.mode)
            ghosts.append(ghost)
            feed(ghost, chunk, http: true)
        }
    }

    mutating func newHandle(for mode: ClientTransportMode) -> TransportHandle {
        nextHandle += 1
        let handle = TransportHandle(nextHandle)
        engine.openTransport(handle, kind: mode.isHTTP ? .http : .socket, connection: ConnectionInfo(), now: now)
        return handle
    }

    mutating func feed(_ handle: TransportHandle, _ chunk: [UInt8], http: Bool) {
        if http {
            engine.httpBodyReceived(handle, body: chunk, now: now)
        } else {
            let frames = int32Frames(chunk).map { ArraySlice($0.utf8) }
            engine.framesReceived(handle, frames: frames, now: now)
        }
        drainServer()
        engine.flush(now: now)
        drainServer()
    }

    static let killMarkers = [Array("rwin_overflowK".utf8), Array("frame_corruptionK".utf8)]

    mutating func drainServer() {
        for action in engine.takeActions() {
            switch action {
            case .write(let handle, let bytes, let kind):
                if Network.killMarkers.contains(where: { bytes.contains(subsequence: $0) }) { kills += 1 }
                guard let number = handles[handle] else { continue }
                connections[number]?.downloads.append(.bytes(bytes))
                if kind == .httpWholeBody { connections[number]?.downloads.append(.end) }
            case .finish(let handle), .close(let handle):
                guard let number = handles[handle] else { continue }
                connections[number]?.downloads.append(.end)
            }
        }
    }

    /// Delivers the next download of a connection to the client.
    mutating func deliverDownload(_ number: Int64) {
        guard var connection = connections[number], !connection.downloads.isEmpty else { return }
        let item = connection.downloads.removeFirst()
        let started = connection.responseStarted
        connection.responseStarted = true
        connections[number] = connection
        switch item {
        case .bytes(let bytes):
            if !started {
                let status: Int? = connection.mode.isHTTP ? 200 : nil
                apply(client.responseStarted(transportNumber: number, status: status, now: now))
            }
            apply(client.received(transportNumber: number, bytes: bytes, now: now))
        case .end:
            if let handle = connections.removeValue(forKey: number)?.handle {
                handles[handle] = nil
                engine.transportClosed(handle, now: now)
                drainServer()
            }
            apply(
                client.transportFinished(transportNumber: number, status: connection.mode.isHTTP ? 200 : nil, now: now))
        }
    }

    /// Both ends lose the transport.
    mutating func lose(_ number: Int64) {
        guard let connection = connections.removeValue(forKey: number) else { return }
        losses += 1
        if let handle = connection.handle {
            handles[handle] = nil
            engine.transportClosed(handle, now: now)
            drainServer()
        }
        apply(client.transportFailed(transportNumber: number, now: now))
    }

    mutating func closeGhost(_ index: Int) {
        guard !ghosts.isEmpty else { return }
        engine.transportClosed(ghosts.remove(at: index % ghosts.count), now: now)
        drainServer()
    }

    /// Moves the clock and runs both sides' timers.
    mutating func advance(by seconds: Double) {
        now += seconds
        engine.timersDue(now: now)
        drainServer()
        engine.flush(now: now)
        drainServer()
        if let deadline = client.nextDeadline, deadline <= now { apply(client.timersDue(now: now)) }
    }

    /// Runs one scripted step: `value` picks the action (units digit) and its target (the rest).
    mutating func step(_ value: Int) {
        let open = connections.keys.sorted()
        let target = open.isEmpty ? nil : open[(value / 10) % open.count]
        switch value % 10 {
        case 0, 1: clientSends()
        case 2, 3: serverSends()
        case 4: if let target { deliverUpload(target) }
        case 5:
            if let target { deliverUpload(target, twice: (value / 10) % 3 == 0, corrupt: (value / 10) % 3 == 1) }
        case 6, 7: if let target { deliverDownload(target) }
        case 8:
            if let target, (value / 10) % 2 == 0 {
                lose(target)
            } else {
                closeGhost(value / 10)
            }
        default: advance(by: Double(value / 10 % 50) * 0.1)
        }
    }

    /// With no more loss: delivers everything in order and follows the clocks until both sides are done.
    mutating func settle(until finished: (Network) -> Bool = { $0.done }) {
        while !ghosts.isEmpty { closeGhost(0) }
        for _ in 0..<2000 {
            let moved = deliverEverything()
            if finished(self) { return }
            if !moved { advanceToNextDeadline() }
        }
    }

    /// Delivers every pending upload and download, connection by connection; returns whether anything moved.
    mutating func deliverEverything() -> Bool {
        var moved = false
        for number in connections.keys.sorted() {
            while connections[number]?.uploads.isEmpty == false {
                deliverUpload(number)
                moved = true
            }
            while connections[number]?.downloads.isEmpty == false {
                deliverDownload(number)
                moved = true
            }
        }
        return moved
    }

    /// Lets time pass to the next deadline of either side (at most 30 s).
    mutating func advanceToNextDeadline() {
        let next = min(client.nextDeadline ?? .infinity, engine.nextDeadline, now + 30)
        advance(by: max(0.001, next - now))
    }

    /// Ends the stream from one side, then lets the network deliver until the client has disconnected.
    mutating func reset(byClient: Bool) {
        if byClient {
            apply(try! client.reset(reason: "bye", now: now))
        } else {
            // Let the client's waiting primary reach the server first, or the reset has no transport to go on
            // (then the client learns it as `stream_attach_failure`, PROTOCOL.md 6.8).
            for _ in 0..<100 {
                if deliverEverything() { continue }
                // The client may be waiting out a backoff delay with no transport open: let time pass until one
                // is attached at the server.
                if (app.stream?.transportCount ?? 0) > 0 { break }
                advanceToNextDeadline()
            }
            #expect((app.stream?.transportCount ?? 0) > 0, "no transport attached when the server resets")
            try! app.stream?.reset(reason: "bye")
            drainServer()
            engine.flush(now: now)
            drainServer()
        }
        settle { $0.client.state == .disconnected && $0.engine.transportCount == 0 }
    }

    var done: Bool {
        app.received.count == clientSent && clientReceived.count == serverSent && client.queuedStringCount == 0
            && (app.stream?.queuedCount ?? 0) == 0
    }
}

@Suite("Client and server over a lossy network")
struct PropertyClientServerTests {
    private static let script = Gen.int(in: 0...9999).array(of: 20...300)

    /// Runs one scripted scenario and checks it; returns what it exercised.
    @discardableResult
    private func check(_ endpoint: ClientEndpointKind, script: [Int], serverWindow: Int) -> (Int, Int, Int) {
        var network = Network(endpoint: endpoint, serverWindow: serverWindow)
        network.apply(try! network.client.start(now: 0))
        for value in script { network.step(value) }
        network.settle()
        #expect(network.clientProblems == [])
        #expect(network.app.resets == [])
        #expect(network.app.received == (0..<network.clientSent).map { "c2s-\($0)" })
        #expect(network.clientReceived == (0..<network.serverSent).map { "s2c-\($0)" })
        #expect(network.client.queuedStringCount == 0)
        #expect(network.client.cachedStringCount == 0)
        #expect(network.app.stream?.queuedCount ?? 0 == 0)
        #expect(network.maxClientCache <= 8)
        #expect(network.client.openTransportNumbers.count <= 3)
        // Either side ends the stream; both learn it, and nothing is left open.
        network.reset(byClient: script.count % 2 == 0)
        #expect(network.clientProblems == ["reset: bye", "disconnected"])
        #expect(network.app.resets == ["bye"])
        #expect(network.engine.streamCount == 0)
        #expect(network.engine.transportCount == 0)
        #expect(network.client.openTransportNumbers.isEmpty)
        return (network.kills, network.losses, network.duplicates)
    }

    /// Runs the property for one endpoint kind and checks that the network did lose, duplicate and kill.
    private func run(_ endpoint: ClientEndpointKind, canDuplicate: Bool) async {
        var kills = 0
        var losses = 0
        var duplicates = 0
        await propertyCheck(count: 200, input: Self.script, Gen.int(in: 2...50)) { script, window in
            let (k, l, d) = check(endpoint, script: script, serverWindow: window)
            kills += k
            losses += l
            duplicates += d
        }
        #expect(kills > 0)
        #expect(losses > 0)
        #expect(duplicates > 0 || !canDuplicate)
    }

    @Test func httpLongPoll() async { await run(.httpLongPoll, canDuplicate: true) }

    @Test func httpStreaming() async { await run(.httpStreaming, canDuplicate: true) }

    @Test func socket() async { await run(.socket, canDuplicate: false) }
}
