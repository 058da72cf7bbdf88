// The client side of a Minerva stream (PROTOCOL.md 7) as a pure state machine: events in (application calls,
// transport bytes, transport ends, timers), actions out (open/write/close transports, deliver strings, report
// resets, the next deadline). No I/O, no clock: every event carries `now` in seconds.
//
// Where the original client has a known weakness, PROTOCOL.md 10's recommendation is followed: CSPRNG stream ids
// (10.16, 10.17), bad responses back off (10.21, configurable), only real transports reset the penalty (10.22),
// retransmission starts from what is in flight on open transports (10.23), reset before start (10.24).

/// A transport-independent Minerva client stream.
///
/// Drive it with the event methods; each returns the actions to carry out, in order. Transports are named by
/// their transport number. After ``ClientAction/closeTransport(transportNumber:)`` or a transport's end, events
/// for that number are ignored.
///
/// An I/O layer carries out each action in order: ``ClientAction/openTransport(_:)`` starts an HTTP POST of
/// `body` to `…/io/` (`Content-Type: application/octet-stream`) or connects a socket and writes `body`;
/// it reports ``responseStarted(transportNumber:status:contentLength:now:)`` (headers, or the connection),
/// ``received(transportNumber:bytes:now:)`` for every chunk, and ``transportFinished(transportNumber:status:now:)``
/// or ``transportFailed(transportNumber:now:)`` at the end; it calls ``timersDue(now:)`` at the time of the last
/// ``ClientAction/nextDeadline(_:)``. The application's strings arrive in ``ClientAction/deliverStrings(_:)``.
public struct ClientStreamMachine: Sendable {
    /// The stream's life cycle (PROTOCOL.md 7.4).
    public enum State: Sendable, Equatable {
        /// Created; strings may be queued.
        case unstarted
        /// Transports come and go.
        case started
        /// The application reset the stream; the ResetFrame is on its way.
        case resetting
        /// Over.
        case disconnected
    }

    private enum Slot: Equatable {
        case empty
        case real(Int64)
        /// A delay placeholder (PROTOCOL.md 7.7) that expires at this time.
        case delay(until: Double)
    }

    private struct Transport {
        let number: Int64
        let role: ClientTransportRole
        let mode: ClientTransportMode
        let openedAt: Double
        var deadline: Double
        var splitter: ClientResponseSplitter
        var framesDecoded = 0
        var hadProblems = false
        var penaltyHalves = 0
        var sawPreamble = false
        /// Closed by its receive timeout.
        var timedOut = false
        /// Closed on purpose to make way for a WebSocket (no backoff).
        var replaced = false
        /// Sequence numbers of C2S strings written on this transport (ascending, merged).
        var written: [ClosedRange<Int64>] = []
        /// The last C2S sequence number written here (nil: none yet, so the next string needs a SeqNumFrame).
        var lastWritten: Int64?
        /// The last SACK written here (the hello's counts).
        var lastSackWritten: SACK?
        /// Number of the last S2C string received here.
        var peerSeqNum: Int64 = -1

        func carries(_ seq: Int64) -> Bool {
            written.contains { $0.contains(seq) }
        }
    }

    /// The stream id (a secret: log ``StreamID/redacted``).
    public let streamID: StreamID
    /// The configuration in force.
    public let configuration: ClientConfiguration
    /// Where the stream is in its life cycle.
    public private(set) var state: State = .unstarted
    /// The last SACK received in a SackFrame (sent as `seenack`).
    public private(set) var lastSackSeenByClient = SACK.initial
    /// The last SACK the server said it saw from us (StreamStatusFrame).
    public private(set) var lastSackSeenByServer = SACK.initial
    /// Whether the server is known to have the stream (`C` was received); hellos then omit `new`.
    public private(set) var streamKnownToServer = false
    /// Accumulated penalty in halves (PROTOCOL.md 7.7: the limit is 1, i.e. 2 halves).
    public private(set) var penaltyHalves = 0

    private var jitter: any RandomNumberGenerator & Sendable
    private var sendQueue = SendQueue()
    private var window: ClientReceiveWindow
    private var nextTransportNumber: Int64 = 0
    private var transports: [Int64: Transport] = [:]
    private var primary = Slot.empty
    private var secondary = Slot.empty
    private var primaryDelayCount = 0
    private var secondaryDelayCount = 0
    private var resettingTransport: Int64?
    private var sendAttemptAt: Double?
    private var actions: [ClientAction] = []
    private var reportedDeadline: Double?
    /// ``ClientEndpointKind/auto``: whether the next primary is a WebSocket.
    private var useWebSocket = true
    /// ``ClientEndpointKind/auto``: WebSockets in a row that failed before their first frame.
    private var webSocketFailures = 0
    /// ``ClientEndpointKind/auto``: when to try WebSocket again.
    private var webSocketRetryAt: Double?
    /// When the penalty limit was reached while other transports were still open: the stream is reset for the
    /// penalty once they are gone or at this time, whichever comes first. One of them may carry the server's own
    /// reset (a poll sent just after the server reset the stream gets `stream_attach_failure` and may be answered
    /// first), which then wins.
    private var penaltyResetAt: Double?
    /// How long a penalty reset waits for the other open transports.
    static let penaltyResetGrace = 1.0

    /// Creates a stream (unstarted).
    /// - Parameters:
    ///   - configuration: endpoint kind and tunables.
    ///   - streamID: the id; nil generates 26 base-36 characters from the system CSPRNG.
    ///   - jitter: the random source for backoff jitter (tests pass a seeded one).
    public init(
        configuration: ClientConfiguration, streamID: StreamID? = nil,
        jitter: any RandomNumberGenerator & Sendable = SystemRandomNumberGenerator()
    ) {
        self.configuration = configuration
        self.streamID = streamID ?? StreamID.random()
        self.jitter = jitter
        self.window = ClientReceiveWindow(
            maxUndeliveredStrings: configuration.maxUndeliveredStrings,
            maxUndeliveredBytes: configuration.maxUndeliveredBytes)
    }

    // MARK: Introspection

    /// The number of C2S strings not yet acknowledged by the server.
    public var queuedStringCount: Int { sendQueue.count }
    /// The bytes of the C2S strings not yet acknowledged.
    public var queuedBytes: Int { sendQueue.queuedBytes }
    /// The number of S2C strings cached above a gap.
    public var cachedStringCount: Int { window.cachedCount }
    /// The SACK of S2C strings received so far.
    public var receiveSACK: SACK { window.sack }
    /// The numbers of the transports currently open, ascending.
    public var openTransportNumbers: [Int64] { transports.keys.sorted() }
    /// The number of the open primary transport, if any.
    public var primaryTransportNumber: Int64? {
        if case .real(let number) = primary { return number }
        return nil
    }
    /// How the open primary transport is carried, if there is one.
    public var primaryTransportMode: ClientTransportMode? {
        if case .real(let number) = primary { return transports[number]?.mode }
        return nil
    }
    /// The number of the open secondary transport, if any.
    public var secondaryTransportNumber: Int64? {
        if case .real(let number) = secondary { return number }
        return nil
    }
    /// When ``timersDue(now:)`` must be called next, if ever.
    public var nextDeadline: Double? {
        var result = sendAttemptAt
        func consider(_ time: Double) { result = min(result ?? time, time) }
        for transport in transports.values { consider(transport.deadline) }
        if case .delay(let until) = primary { consider(until) }
        if case .delay(let until) = secondary { consider(until) }
        if let at = webSocketRetryAt { consider(at) }
        if let at = penaltyResetAt { consider(at) }
        return result
    }

    // MARK: Application events

    /// Starts the stream: opens the first primary, which carries every string queued so far.
    /// - Parameter now: the current time in seconds.
    /// - Returns: the actions to carry out.
    /// - Throws: ``ClientStreamError/alreadyStarted`` or ``ClientStreamError/alreadyReset``.
    public mutating func start(now: Double) throws(ClientStreamError) -> [ClientAction] {
        switch state {
        case .unstarted: break
        case .started: throw .alreadyStarted
        case .resetting, .disconnected: throw .alreadyReset
        }
        state = .started
        openPrimary(now: now)
        return finish()
    }

    /// Queues a string for the server; it is sent after the coalescing delay (or with the first primary).
    /// - Parameters:
    ///   - bytes: the string (restricted: 0x20...0x7E).
    ///   - validate: false queues it unchecked (the original's `validate=false`).
    ///   - now: the current time in seconds.
    /// - Returns: the actions to carry out (a new deadline at most).
    /// - Throws: ``ClientStreamError/notRestricted``; ``ClientStreamError/alreadyReset`` after a reset.
    public mutating func sendString(
        _ bytes: [UInt8], validate: Bool = true, now: Double
    ) throws(ClientStreamError) -> [ClientAction] {
        guard state == .unstarted || state == .started else { throw .alreadyReset }
        if validate, !RestrictedString.isValid(bytes) { throw .notRestricted }
        sendQueue.append(bytes)
        if state == .started, sendAttemptAt == nil {
            sendAttemptAt = now + configuration.sendCoalescingDelay
        }
        return finish()
    }

    /// Queues a string for the server (convenience over ``sendString(_:validate:now:)``).
    /// - Parameters:
    ///   - string: the string (restricted).
    ///   - validate: false queues it unchecked.
    ///   - now: the current time in seconds.
    /// - Returns: the actions to carry out.
    /// - Throws: as ``sendString(_:validate:now:)``.
    public mutating func sendString(
        _ string: String, validate: Bool = true, now: Double
    ) throws(ClientStreamError) -> [ClientAction] {
        try sendString(Array(string.utf8), validate: validate, now: now)
    }

    /// Resets the stream (PROTOCOL.md 7.10): the ResetFrame `reason|1!` goes on the socket primary, or on a
    /// dedicated transport after closing the others; the application is told at once. Before ``start(now:)``
    /// the stream is simply ended locally (10.24).
    /// - Parameters:
    ///   - reason: a restricted string of at most 255 bytes.
    ///   - now: the current time in seconds.
    /// - Returns: the actions to carry out.
    /// - Throws: ``ClientStreamError/alreadyReset``, ``ClientStreamError/invalidResetReason``.
    public mutating func reset(reason: [UInt8], now: Double) throws(ClientStreamError) -> [ClientAction] {
        guard state == .unstarted || state == .started else { throw .alreadyReset }
        guard RestrictedString.isValidResetReason(reason) else { throw .invalidResetReason }
        if state == .unstarted {
            actions.append(.streamReset(reason: reason, applicationLevel: true))
            disconnect()
            return finish()
        }
        state = .resetting
        sendAttemptAt = nil
        if case .real(let number) = primary, var transport = transports[number], !transport.mode.isHTTP {
            var bytes: [UInt8] = []
            appendUnsentStrings(to: &transport, &bytes)
            append(.reset(reason: reason[...], applicationLevel: true), mode: transport.mode, to: &bytes)
            transports[number] = transport
            resettingTransport = number
            actions.append(.write(transportNumber: number, bytes: bytes))
            if case .real(let other) = secondary { close(other, now: now) }
        } else {
            for number in transports.keys.sorted() { close(number, now: now) }
            primary = .empty
            secondary = .empty
            let mode: ClientTransportMode =
                configuration.endpoint == .socket
                ? .socket : configuration.endpoint == .webSocket ? .webSocket : .httpLongPoll
            let number = open(role: .resetting, mode: mode, now: now) { machine, transport, body in
                machine.appendUnsentStrings(to: &transport, &body)
                machine.append(.reset(reason: reason[...], applicationLevel: true), mode: mode, to: &body)
            }
            resettingTransport = number
        }
        actions.append(.streamReset(reason: reason, applicationLevel: true))
        return finish()
    }

    /// Resets the stream (convenience over ``reset(reason:now:)``).
    /// - Parameters:
    ///   - reason: a restricted string of at most 255 bytes.
    ///   - now: the current time in seconds.
    /// - Returns: the actions to carry out.
    /// - Throws: as ``reset(reason:now:)``.
    public mutating func reset(reason: String, now: Double) throws(ClientStreamError) -> [ClientAction] {
        try reset(reason: Array(reason.utf8), now: now)
    }

    /// Closes every transport without sending anything and ends the stream (no reset is reported).
    /// - Returns: the actions to carry out (nothing if already disconnected).
    public mutating func dispose() -> [ClientAction] {
        if state != .disconnected { disconnect() }
        return finish()
    }

    // MARK: Transport events

    /// The HTTP response headers arrived, or the socket connected: a sign of life.
    /// - Parameters:
    ///   - transportNumber: the transport.
    ///   - status: the HTTP status (nil for sockets); anything but 200 closes the transport as "had problems"
    ///     (PROTOCOL.md 10.21) unless ``ClientConfiguration/badResponseSuggestsDelay`` is false (the original
    ///     ignores the status).
    ///   - contentLength: the response's Content-Length, if valid (sets a long-poll's receive timeout).
    ///   - now: the current time in seconds.
    /// - Returns: the actions to carry out.
    public mutating func responseStarted(
        transportNumber: Int64, status: Int?, contentLength: Int? = nil, now: Double
    ) -> [ClientAction] {
        guard var transport = transports[transportNumber] else { return finish() }
        if let status, status != 200, configuration.badResponseSuggestsDelay {
            transport.hadProblems = true
            transports[transportNumber] = transport
            close(transportNumber, now: now)
            return finish()
        }
        if transport.mode == .httpLongPoll {
            let bytes = Double(contentLength ?? 500_000)
            transport.deadline = now + configuration.maxServerJank + bytes / configuration.downloadSpeed
        } else if transport.mode == .webSocket {
            // The upgrade succeeded; the first frame must still arrive before the deadline set at opening.
        } else {
            transport.deadline = now + signOfLifeTimeout
        }
        transports[transportNumber] = transport
        return finish()
    }

    /// Bytes of a response body (HTTP) or of the connection (socket) arrived.
    /// - Parameters:
    ///   - transportNumber: the transport.
    ///   - bytes: the bytes, in order, exactly as received.
    ///   - now: the current time in seconds.
    /// - Returns: the actions to carry out.
    public mutating func received(
        transportNumber: Int64, bytes: some Sequence<UInt8>, now: Double
    ) -> [ClientAction] {
        guard transports[transportNumber] != nil else { return finish() }
        transports[transportNumber]!.splitter.append(bytes)
        if transports[transportNumber]!.mode != .httpLongPoll {
            transports[transportNumber]!.deadline = now + signOfLifeTimeout
        }
        if state == .resetting {
            drainWhileResetting(transportNumber, now: now)
        } else {
            process(transportNumber, now: now)
        }
        return finish()
    }

    /// The HTTP response ended (or the server closed the socket).
    /// - Parameters:
    ///   - transportNumber: the transport.
    ///   - status: the HTTP status if known; anything but 200 counts as "had problems" (PROTOCOL.md 10.21).
    ///   - now: the current time in seconds.
    /// - Returns: the actions to carry out.
    public mutating func transportFinished(transportNumber: Int64, status: Int? = nil, now: Double) -> [ClientAction] {
        guard var transport = transports[transportNumber] else { return finish() }
        if let status, status != 200, configuration.badResponseSuggestsDelay {
            transport.hadProblems = true
            transports[transportNumber] = transport
        }
        gone(transportNumber, now: now)
        return finish()
    }

    /// The transport failed (connection error, reset, request aborted by the network).
    /// - Parameters:
    ///   - transportNumber: the transport.
    ///   - now: the current time in seconds.
    /// - Returns: the actions to carry out.
    public mutating func transportFailed(transportNumber: Int64, now: Double) -> [ClientAction] {
        if transports[transportNumber] != nil { gone(transportNumber, now: now) }
        return finish()
    }

    private mutating func resetForPenalty() {
        penaltyResetAt = nil
        actions.append(.streamReset(reason: Array("stream penalty reached limit".utf8), applicationLevel: false))
        disconnect()
    }

    /// Handles everything due at `now`: receive timeouts, delay placeholders, the coalesced send attempt, a penalty
    /// reset that waited for the other transports.
    /// - Parameter now: the current time in seconds.
    /// - Returns: the actions to carry out.
    public mutating func timersDue(now: Double) -> [ClientAction] {
        if let at = penaltyResetAt, at <= now {
            if state == .started { resetForPenalty() } else { penaltyResetAt = nil }
            return finish()
        }
        for number in transports.keys.sorted() {
            guard var transport = transports[number], transport.deadline <= now else { continue }
            transport.hadProblems = true
            transport.timedOut = true
            transports[number] = transport
            close(number, now: now)
        }
        if let at = webSocketRetryAt, at <= now {
            webSocketRetryAt = nil
            useWebSocket = true
            // A working HTTP primary makes way (without loss: unacknowledged strings follow the new primary).
            if state == .started, case .real(let number) = primary, transports[number]?.mode.isHTTP == true {
                transports[number]!.replaced = true
                close(number, now: now)
            }
        }
        if state == .started, case .delay(let until) = primary, until <= now {
            primary = .empty
            openPrimary(now: now)
        }
        if case .delay(let until) = secondary, until <= now {
            secondary = .empty
            if state == .started { sendAttempt(now: now) }
        }
        if let at = sendAttemptAt, at <= now { sendAttempt(now: now) }
        return finish()
    }

    // MARK: Receiving

    private var signOfLifeTimeout: Double {
        configuration.maxServerJank + configuration.rttVariance + Double(configuration.heartbeatInterval)
    }

    /// Decodes and reacts to every complete frame of a transport (PROTOCOL.md 7.8).
    private mutating func process(_ number: Int64, now: Double) {
        guard var transport = transports[number] else { return }
        var collected: [(Int64, [UInt8])] = []
        var shouldClose = false
        var peerReset: (reason: [UInt8], applicationLevel: Bool)?
        var sendNow = false
        frames: while let next = transport.splitter.next() {
            guard case .success(let line) = next,
                case .success(let frame) = Frame.decode(line, direction: .serverToClient)
            else {
                transport.hadProblems = true
                shouldClose = true
                break
            }
            transport.framesDecoded += 1
            if transport.mode == .webSocket { webSocketFailures = 0 }
            if transport.mode.isHTTP, !transport.sawPreamble {
                if case .comment(let text) = frame, text.elementsEqual(";)]}".utf8) {
                    transport.sawPreamble = true
                    continue
                }
                if configuration.badResponseSuggestsDelay { transport.hadProblems = true }
                shouldClose = true
                break
            }
            switch frame {
            case .string(let payload):
                guard RestrictedString.isValid(payload) else {
                    transport.hadProblems = true
                    shouldClose = true
                    break frames
                }
                transport.peerSeqNum += 1
                collected.append((transport.peerSeqNum, Array(payload)))
            case .seqNum(let seq):
                transport.peerSeqNum = seq - 1
            case .sack(let sack):
                lastSackSeenByClient = sack
                guard sendQueue.process(sack) else {
                    transport.hadProblems = true
                    shouldClose = true
                    break frames
                }
            case .streamStatus(let sack):
                lastSackSeenByServer = sack
            case .streamCreated:
                streamKnownToServer = true
                if transport.mode != .httpLongPoll { sendNow = true }
            case .comment:
                break
            case .youCloseIt:
                shouldClose = true
                break frames
            case .transportKill(let reason):
                transport.hadProblems = true
                switch reason {
                case .streamAttachFailure: transport.penaltyHalves += 2
                case .ackedUnsentStrings: transport.penaltyHalves += 1
                default: break
                }
                shouldClose = true
                break frames
            case .reset(let reason, let applicationLevel):
                peerReset = (Array(reason), applicationLevel)
                break frames
            case .hello:
                transport.hadProblems = true
                shouldClose = true
                break frames
            }
        }
        transports[number] = transport
        if !collected.isEmpty {
            collected.sort { $0.0 < $1.0 }
            let (deliverable, limitHit) = window.receive(collected)
            if !deliverable.isEmpty { actions.append(.deliverStrings(deliverable)) }
            if limitHit { shouldClose = true }
            // A streaming transport acknowledges through a secondary (or the socket) soon; a long-poll's
            // successor carries the SACK in its hello.
            if transport.mode != .httpLongPoll, sendAttemptAt == nil {
                sendAttemptAt = now + configuration.sendCoalescingDelay
            }
        }
        if let peerReset {
            actions.append(.streamReset(reason: peerReset.reason, applicationLevel: peerReset.applicationLevel))
            disconnect()
            return
        }
        if shouldClose { close(number, now: now) }
        if sendNow, state == .started { sendAttempt(now: now) }
    }

    /// While resetting, only an end of the transport that carries the ResetFrame matters.
    private mutating func drainWhileResetting(_ number: Int64, now: Double) {
        guard var transport = transports[number] else { return }
        var shouldClose = false
        while let next = transport.splitter.next() {
            guard case .success(let line) = next,
                case .success(let frame) = Frame.decode(line, direction: .serverToClient)
            else {
                shouldClose = true
                break
            }
            if case .youCloseIt = frame { shouldClose = true }
            if case .transportKill = frame { shouldClose = true }
            if shouldClose { break }
        }
        transports[number] = transport
        if shouldClose { close(number, now: now) }
    }

    // MARK: Transports coming and going

    /// Closes a transport on the client's initiative.
    private mutating func close(_ number: Int64, now: Double) {
        guard transports[number] != nil else { return }
        actions.append(.closeTransport(transportNumber: number))
        gone(number, now: now)
    }

    /// A transport is gone (PROTOCOL.md 7.7): penalty, backoff and replacement.
    private mutating func gone(_ number: Int64, now: Double) {
        guard let transport = transports.removeValue(forKey: number) else { return }
        if primary == .real(number) { primary = .empty }
        if secondary == .real(number) { secondary = .empty }
        if number == resettingTransport {
            if state == .resetting { disconnect() }
            return
        }
        guard state == .started else { return }
        var suggestsDelay = (transport.hadProblems || transport.framesDecoded == 0) && !transport.replaced
        if configuration.endpoint == .auto, transport.mode == .webSocket,
            transport.framesDecoded == 0 || transport.timedOut
        {
            // Upgrade refused, closed before the first frame, or silent: HTTP at once, WebSocket again later.
            useWebSocket = false
            suggestsDelay = false
            let factor = Double(1 << min(webSocketFailures, 5))
            webSocketFailures += 1
            if webSocketRetryAt == nil { webSocketRetryAt = now + configuration.webSocketRetryDelay * factor }
        }
        if transport.penaltyHalves == 0 {
            penaltyHalves = 0
        } else {
            penaltyHalves += transport.penaltyHalves
        }
        if penaltyHalves >= 2 || penaltyResetAt != nil {
            if transports.isEmpty {
                resetForPenalty()
            } else if penaltyResetAt == nil {
                penaltyResetAt = now + Self.penaltyResetGrace
            }
            return
        }
        let duration = now - transport.openedAt
        switch transport.role {
        case .primary:
            primaryDelayCount = suggestsDelay ? primaryDelayCount + 1 : 0
            let delay = backoff(count: primaryDelayCount, duration: duration)
            if delay > 0 {
                primary = .delay(until: now + delay)
            } else {
                openPrimary(now: now)
            }
        case .secondary:
            secondaryDelayCount = suggestsDelay ? secondaryDelayCount + 1 : 0
            let delay = backoff(count: secondaryDelayCount, duration: duration)
            // A WebSocket primary (it replaced an HTTP one) carries what the lost upload carried, at once.
            if delay > 0, primaryTransportMode?.isHTTP != false {
                secondary = .delay(until: now + delay)
            } else {
                sendAttempt(now: now)
            }
        case .resetting:
            break
        }
    }

    /// Seconds to wait before replacing a transport: 2 s x min(count, 3), +-2 s jitter, minus its lifetime.
    private mutating func backoff(count: Int, duration: Double) -> Double {
        guard count > 0 else { return 0 }
        let jitterMilliseconds = Int.random(in: -2000..<2000, using: &jitter)
        let milliseconds = Double(2000 * min(count, 3) + jitterMilliseconds) - duration * 1000
        return max(0, milliseconds) / 1000
    }

    /// Ends the stream: every transport closed, queues dropped, `disconnected` reported.
    private mutating func disconnect() {
        for number in transports.keys.sorted() {
            actions.append(.closeTransport(transportNumber: number))
        }
        transports.removeAll()
        primary = .empty
        secondary = .empty
        resettingTransport = nil
        sendAttemptAt = nil
        sendQueue.removeAll()
        state = .disconnected
        actions.append(.disconnected)
    }

    // MARK: Sending

    private mutating func openPrimary(now: Double) {
        let mode: ClientTransportMode
        switch configuration.endpoint {
        case .httpLongPoll: mode = .httpLongPoll
        case .httpStreaming: mode = .httpStreaming
        case .socket: mode = .socket
        case .webSocket: mode = .webSocket
        case .auto: mode = useWebSocket ? .webSocket : .httpStreaming
        }
        let number = open(role: .primary, mode: mode, now: now) { machine, transport, body in
            machine.appendUnsentStrings(to: &transport, &body)
        }
        primary = .real(number)
    }

    /// Opens a transport: numbers it, writes its hello, lets `fill` add frames, and emits the open action.
    private mutating func open(
        role: ClientTransportRole, mode: ClientTransportMode, now: Double,
        fill: (inout ClientStreamMachine, inout Transport, inout [UInt8]) -> Void
    ) -> Int64 {
        let number = nextTransportNumber
        nextTransportNumber += 1
        let timeout: Double
        if mode == .webSocket && configuration.endpoint == .auto {
            timeout = configuration.webSocketFallbackTimeout
        } else if !mode.isHTTP {
            timeout = 2 * configuration.rttGuess + configuration.maxServerJank
        } else {
            let c: Double = configuration.secure ? 3 : 1
            let d = role == .primary && mode == .httpLongPoll ? Double(configuration.longPollDuration) : 0
            timeout = configuration.rttGuess * (1.5 + c) + 2 * configuration.maxServerJank + d
        }
        var transport = Transport(
            number: number, role: role, mode: mode, openedAt: now, deadline: now + timeout,
            splitter: ClientResponseSplitter(lengthPrefixed: !mode.isHTTP))
        var body: [UInt8] = []
        if mode == .socket { body.append(contentsOf: "<int32/>\n".utf8) }
        append(.hello(hello(for: transport)), mode: mode, to: &body)
        transport.lastSackWritten = window.sack
        fill(&self, &transport, &body)
        transports[number] = transport
        actions.append(
            .openTransport(ClientTransportRequest(transportNumber: number, role: role, mode: mode, body: body)))
        return number
    }

    /// The hello of a transport, byte-compatible with the original client's (PROTOCOL.md 7.3).
    private func hello(for transport: Transport) -> HelloFrame {
        let streaming = transport.mode != .httpLongPoll
        var hello = HelloFrame(
            transportNumber: transport.number, streamID: streamID, streamingResponse: streaming,
            maxInactivity: streaming ? configuration.heartbeatInterval : 0, lastSackSeenByClient: lastSackSeenByClient)
        hello.httpFormat = 2
        hello.requestNewStream = !streamKnownToServer
        if streaming { hello.needPaddingBytes = configuration.streamingPadding }
        hello.maxReceiveBytes = configuration.maxReceiveBytes
        if transport.role == .primary {
            hello.maxOpenTime = streaming ? configuration.streamingDuration : configuration.longPollDuration
            hello.succeedsTransport = .none
        }
        hello.useMyTcpAcks = false
        hello.sack = window.sack
        return hello
    }

    /// Appends one frame with the transport's framing: `\n` after it (HTTP) or a 4-byte length before it.
    private func append(_ frame: Frame, mode: ClientTransportMode, to body: inout [UInt8]) {
        if !mode.isHTTP {
            let lengthAt = body.count
            body.append(contentsOf: [0, 0, 0, 0])
            frame.encode(into: &body)
            let length = UInt32(body.count - lengthAt - 4)
            for index in 0..<4 { body[lengthAt + index] = UInt8(truncatingIfNeeded: length >> (24 - 8 * index)) }
        } else {
            frame.encode(into: &body)
            body.append(UInt8(ascii: "\n"))
        }
    }

    /// Whether a queued string is carried by no open transport (PROTOCOL.md 10.23).
    private func isUnsent(_ seq: Int64, besides transport: Transport?) -> Bool {
        if let transport, transport.carries(seq) { return false }
        return !transports.values.contains { $0.number != transport?.number && $0.carries(seq) }
    }

    /// Whether some queued string is carried by no open transport.
    private var hasUnsentStrings: Bool {
        var found = false
        sendQueue.forEach(from: 0) { seq, _ in
            if !found, isUnsent(seq, besides: nil) { found = true }
        }
        return found
    }

    /// Writes every queued string that no open transport carries, with SeqNumFrames where not contiguous.
    private func appendUnsentStrings(to transport: inout Transport, _ body: inout [UInt8]) {
        var chosen: [(Int64, [UInt8])] = []
        sendQueue.forEach(from: 0) { seq, bytes in
            if isUnsent(seq, besides: transport) { chosen.append((seq, bytes)) }
        }
        for (seq, bytes) in chosen {
            if transport.lastWritten.map({ $0 + 1 != seq }) ?? true {
                append(.seqNum(seq), mode: transport.mode, to: &body)
            }
            append(.string(bytes[...]), mode: transport.mode, to: &body)
            transport.lastWritten = seq
            if let last = transport.written.last, last.upperBound + 1 == seq {
                transport.written[transport.written.count - 1] = last.lowerBound...seq
            } else {
                transport.written.append(seq...seq)
            }
        }
    }

    /// Sends what needs sending (PROTOCOL.md 7.4): on the socket primary directly, else on a new secondary.
    private mutating func sendAttempt(now: Double) {
        sendAttemptAt = nil
        guard state == .started else { return }
        let sack = window.sack
        let needStrings = hasUnsentStrings
        let sackWritten = [primary, secondary].contains { slot in
            if case .real(let number) = slot { return transports[number]?.lastSackWritten == sack }
            return false
        }
        let needSACK = sack != lastSackSeenByServer && !sackWritten
        guard needStrings || needSACK else { return }
        if case .real(let number) = primary, var transport = transports[number], !transport.mode.isHTTP {
            var bytes: [UInt8] = []
            if needSACK {
                append(.sack(sack), mode: transport.mode, to: &bytes)
                transport.lastSackWritten = sack
            }
            appendUnsentStrings(to: &transport, &bytes)
            transports[number] = transport
            actions.append(.write(transportNumber: number, bytes: bytes))
            return
        }
        // A socket or WebSocket endpoint waiting for its next primary: that primary carries everything.
        guard configuration.endpoint != .socket, configuration.endpoint != .webSocket else { return }
        guard configuration.endpoint != .auto || !useWebSocket else { return }
        // An HTTP secondary only once the server has the stream; `C` or the next primary triggers sending.
        guard streamKnownToServer, secondary == .empty else { return }
        let number = open(role: .secondary, mode: .httpLongPoll, now: now) { machine, transport, body in
            machine.appendUnsentStrings(to: &transport, &body)
        }
        secondary = .real(number)
    }

    /// Reports the deadline if it changed, and hands out the collected actions.
    private mutating func finish() -> [ClientAction] {
        let deadline = state == .disconnected ? nil : nextDeadline
        if deadline != reportedDeadline {
            reportedDeadline = deadline
            actions.append(.nextDeadline(deadline))
        }
        let result = actions
        actions.removeAll()
        return result
    }
}
