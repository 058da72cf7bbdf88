// The server side of one Minerva stream (PROTOCOL.md 6): transports, primary selection, the send queue with
// pretend-acked, the shared receive window, resets, producers. Created and owned by MinervaServerEngine.

/// One stream, as the application sees it: send strings, reset, register a producer.
///
/// Every method must be called on the engine's thread (the event loop that owns the engine).
public final class ServerStream {
    /// The stream id. It is a secret: log ``StreamID/redacted``.
    public let streamID: StreamID
    /// The engine that owns this stream (nil once the engine is gone).
    public internal(set) weak var engine: MinervaServerEngine?
    /// Seconds without transports and without received data after which the stream is reset.
    public var maxIdleTime: Double {
        didSet {
            // Queued at the old time: a shorter time needs an earlier entry (the old one is dropped when popped).
            if maxIdleTime < oldValue, idleQueued, let engine {
                idleQueued = false
                engine.queueIfIdle(self)
            }
        }
    }
    /// The engine's time of the last received chunk or transport detach (PROTOCOL.md 6.7, 10.10).
    public internal(set) var lastReceived: Double

    // The fields are ordered so that no padding falls between them: a stream with no transport is mostly this
    // object, and a million idle streams are a million of them.
    var handler: (any MinervaStreamHandler)?
    @exclusivity(unchecked) var transports = TransportList()
    var primary: ServerTransport?
    @exclusivity(unchecked) var queue = SendQueue()
    @exclusivity(unchecked) var window: ReceiveWindow
    var lastSackSeenByServer = SACK.initial
    /// `pretendAcked`, with `Int64.min` for none (an optional would take 16 bytes).
    private var pretendAckedOrMin = Int64.min
    /// The highest sequence number written on any transport (for counting retransmissions).
    var highestWritten: Int64 = -1
    /// What few streams use (a producer, finish observers), allocated when first needed.
    private var extras: Extras?
    /// Whether the stream was reset; afterwards nothing can be sent.
    public internal(set) var isReset = false
    /// Whether the stream is in its engine's idle queue.
    var idleQueued = false
    var protocolBuilt = false
    var sendScheduled = false
    var primaryPaused = false

    private final class Extras {
        var finishObservers: [() -> Void] = []
        var producer: (any MinervaProducer)?
        var producerIsPush = false
    }

    private var ensuredExtras: Extras {
        if let extras { return extras }
        let made = Extras()
        extras = made
        return made
    }

    var pretendAcked: Int64? {
        get { pretendAckedOrMin == Int64.min ? nil : pretendAckedOrMin }
        set { pretendAckedOrMin = newValue ?? Int64.min }
    }

    var finishObservers: [() -> Void] {
        get { extras?.finishObservers ?? [] }
        set {
            if newValue.isEmpty && extras == nil { return }
            ensuredExtras.finishObservers = newValue
        }
    }

    var producer: (any MinervaProducer)? {
        get { extras?.producer }
        set {
            if newValue == nil && extras == nil { return }
            ensuredExtras.producer = newValue
        }
    }

    var producerIsPush: Bool {
        get { extras?.producerIsPush ?? false }
        set {
            if !newValue && extras == nil { return }
            ensuredExtras.producerIsPush = newValue
        }
    }

    init(streamID: StreamID, engine: MinervaServerEngine, now: Double) {
        self.streamID = streamID
        self.engine = engine
        self.maxIdleTime = engine.configuration.maxIdleTime
        self.lastReceived = now
        self.window = ReceiveWindow(limits: engine.configuration.receiveWindow)
    }

    /// The number of strings sent but not yet acknowledged by the client.
    public var queuedCount: Int { queue.count }
    /// The bytes of the strings sent but not yet acknowledged by the client.
    public var queuedBytes: Int { queue.queuedBytes }
    /// The memory the queued strings are counted at: their bytes plus ``SendQueue/costPerString`` each.
    public var queuedMemory: Int { queue.queuedMemory }
    /// The number of transports attached now.
    public var transportCount: Int { transports.count }

    // MARK: Application API

    /// Queues a string for the client; it is written when the I/O layer calls ``MinervaServerEngine/flush(now:)``
    /// (so a burst goes out in one write, and a reset before then discards it).
    /// - Parameter string: bytes in 0x20...0x7E.
    /// - Throws: ``MinervaStreamError/invalidString``, ``MinervaStreamError/streamIsReset``, or
    ///   ``MinervaStreamError/sendQueueFull`` (the stream was reset because too much is unacknowledged).
    public func send(_ string: [UInt8]) throws {
        guard RestrictedString.isValid(string) else { throw MinervaStreamError.invalidString }
        try enqueue(string)
    }

    /// Queues a string for the client (see ``send(_:)-([UInt8])``).
    /// - Parameter string: bytes in 0x20...0x7E, e.g. a borrowed slice received from the client.
    public func send(_ string: ArraySlice<UInt8>) throws {
        guard RestrictedString.isValid(string) else { throw MinervaStreamError.invalidString }
        try enqueue(Array(string))
    }

    /// Queues a string for the client (see ``send(_:)-([UInt8])``).
    /// - Parameter string: characters U+0020...U+007E.
    public func send(_ string: String) throws {
        var string = string
        let bytes = string.withUTF8 { Array($0) }
        try send(bytes)
    }

    /// Queues a string for the client (see ``send(_:)-([UInt8])``).
    /// - Parameter string: bytes in 0x20...0x7E.
    public func send(_ string: some Collection<UInt8>) throws {
        try send(Array(string))
    }

    private func enqueue(_ string: [UInt8]) throws {
        guard !isReset else { throw MinervaStreamError.streamIsReset }
        let memoryBefore = queue.queuedMemory
        queue.append(string)
        guard let engine else { return }
        engine.counters.queuedBytes += string.count
        let withinBudget = engine.queuedMemoryGrew(by: queue.queuedMemory - memoryBefore)
        if queue.queuedMemory > engine.configuration.maxQueuedBytesPerStream {
            engine.reportReset(
                self, reason: "send queue limit exceeded", limit: "maxQueuedBytesPerStream",
                detail: "\(queue.count) strings, \(queue.queuedBytes) bytes queued")
            resetInternal(reason: "send queue limit exceeded")
            throw MinervaStreamError.sendQueueFull
        }
        if !withinBudget, engine.resetLargestQueue() === self { throw MinervaStreamError.sendQueueFull }
        engine.scheduleSend(self)
    }

    /// Resets the stream (application level): writes `reason|1!` on every transport, drops queued strings and
    /// calls ``MinervaStreamHandler/streamReset(_:reason:applicationLevel:)``.
    /// - Parameter reason: a restricted string of at most 255 bytes.
    /// - Throws: ``MinervaStreamError/streamIsReset`` or ``MinervaStreamError/invalidResetReason``.
    public func reset(reason: String) throws {
        guard !isReset else { throw MinervaStreamError.streamIsReset }
        guard RestrictedString.isValidResetReason(reason.utf8) else { throw MinervaStreamError.invalidResetReason }
        engine?.counters.resetsByApplication += 1
        performReset(reason: reason, applicationLevel: true, writeResetFrame: true)
    }

    /// Registers the producer to pause and resume (at most one).
    /// - Parameters:
    ///   - producer: the producer.
    ///   - streaming: true for a push producer (paused while there is no primary or it is backed up).
    /// - Throws: ``MinervaStreamError/producerAlreadyRegistered``.
    public func registerProducer(_ producer: any MinervaProducer, streaming: Bool) throws {
        guard self.producer == nil else { throw MinervaStreamError.producerAlreadyRegistered }
        self.producer = producer
        producerIsPush = streaming
        if streaming && (primaryPaused || primary == nil) { producer.pauseProducing() }
    }

    /// Calls `body` when the stream ends (at its reset, just before the handler's `streamReset`); at once if it
    /// already ended.
    /// - Parameter body: the completion callback.
    public func notifyFinish(_ body: @escaping () -> Void) {
        if isReset { body() } else { finishObservers.append(body) }
    }

    /// Unregisters the producer, if any.
    public func unregisterProducer() {
        producer = nil
    }

    // MARK: Engine side

    /// Resets with a reason chosen by Minerva (not application level).
    func resetInternal(reason: String, counted: Bool = false) {
        guard !isReset else { return }
        if !counted { engine?.counters.resetsOther += 1 }
        performReset(reason: reason, applicationLevel: false, writeResetFrame: true)
    }

    /// The peer sent a ResetFrame (PROTOCOL.md 6.8): close every transport gently, tell the application.
    func resetFromPeer(reason: String, applicationLevel: Bool) {
        guard !isReset else { return }
        engine?.counters.resetsByPeer += 1
        performReset(reason: reason, applicationLevel: applicationLevel, writeResetFrame: false)
    }

    private func performReset(reason: String, applicationLevel: Bool, writeResetFrame: Bool) {
        isReset = true
        sendScheduled = false
        engine?.counters.queuedBytes -= queue.queuedBytes
        engine?.queuedMemoryShrank(by: queue.queuedMemory)
        queue.removeAll()
        engine?.forget(self)
        for transport in transports {
            if writeResetFrame {
                engine?.writeReset(transport, reason: reason, applicationLevel: applicationLevel)
            } else {
                engine?.closeGently(transport)
            }
        }
        if let producer {
            self.producer = nil
            producer.stopProducing()
        }
        let observers = finishObservers
        finishObservers = []
        for observer in observers { observer() }
        let handler = self.handler
        self.handler = nil
        handler?.streamReset(self, reason: reason, applicationLevel: applicationLevel)
    }

    /// Applies a SACK from the client (PROTOCOL.md 6.5).
    /// - Returns: false for a bad SACK (the caller kills its transport with `acked_unsent_strings`).
    func processSACK(_ sack: SACK) -> Bool {
        let wasPretending = pretendAcked != nil
        pretendAcked = nil
        lastSackSeenByServer = sack
        let before = queue.queuedBytes
        let memoryBefore = queue.queuedMemory
        defer {
            engine?.counters.queuedBytes -= before - queue.queuedBytes
            engine?.queuedMemoryShrank(by: memoryBefore - queue.queuedMemory)
        }
        guard queue.process(sack) else { return false }
        if wasPretending { trySend() }
        return true
    }

    /// A send attempt (PROTOCOL.md 6.4).
    func trySend() {
        sendScheduled = false
        guard !isReset, !queue.isEmpty, let primary else { return }
        primary.writeStrings(queue, start: pretendAcked.map { $0 + 1 })
        engine?.flushIfIdle(primary)
    }

    /// Attaches a transport (PROTOCOL.md 6.2).
    func transportOnline(_ transport: ServerTransport, succeeds: SucceedsTransport) {
        transports.append(transport)
        transport.stream = self
        if !protocolBuilt, let engine {
            protocolBuilt = true
            let handler = engine.handlerFactory(self)
            self.handler = handler
            do {
                try handler.streamStarted(self)
            } catch {
                engine.report(error, in: "streamStarted")
                resetInternal(reason: "streamStarted raised uncaught exception")
                return
            }
        }
        if isReset { return }
        handler?.transportCreated(transport.info, on: self)
        engine?.forgetRequestHeaders(transport)
        if isReset || !transport.wantsStrings || transport.phase != .open || transport.terminating { return }
        if case .transport(let number) = succeeds, let old = primary, old.hasHello,
            old.transportNumber == number, old.ourSeqNum != -1
        {
            pretendAcked = old.ourSeqNum
        }
        newPrimary(transport)
        trySend()
    }

    private func newPrimary(_ transport: ServerTransport) {
        let old = primary
        primary = transport
        if let old {
            if primaryPaused && producerIsPush { producer?.resumeProducing() }
            primaryPaused = false
            engine?.closeGently(old)
        } else if producerIsPush {
            producer?.resumeProducing()
        }
    }

    /// Detaches a transport (PROTOCOL.md 6.2).
    func transportOffline(_ transport: ServerTransport) {
        guard transports.remove(transport) else { return }
        if transport === primary {
            primary = nil
            primaryPaused = false
            if producerIsPush { producer?.pauseProducing() }
        }
        if !isReset { handler?.transportDestroyed(transport.info, on: self) }
    }

    /// The primary's connection became backed up or writable again.
    func primaryBackpressure(paused: Bool) {
        guard paused != primaryPaused else { return }
        primaryPaused = paused
        guard producerIsPush, let producer else { return }
        if paused { producer.pauseProducing() } else { producer.resumeProducing() }
    }

    /// Hands a sorted batch of received strings to the window and the application (PROTOCOL.md 6.6).
    /// - Returns: true if the receive window overflowed.
    func stringsReceived(_ pairs: [(seq: Int64, bytes: ArraySlice<UInt8>)]) -> Bool {
        guard !isReset else { return false }
        // The engine's reused array (a fresh one if a delivery is already using it).
        var deliverable: [ArraySlice<UInt8>] = []
        if let engine { swap(&deliverable, &engine.deliverable) }
        defer {
            // A burst's capacity (260,000 strings in one body) is not kept (issue 12, memory amplification).
            deliverable.removeAllKeepingSmallCapacity()
            if let engine, engine.deliverable.capacity < deliverable.capacity {
                swap(&deliverable, &engine.deliverable)
            }
        }
        let hit = window.receive(pairs.lazy.map { ($0.seq, $0.bytes) }) { deliverable.append($0) }
        if let engine {
            engine.counters.stringsReceived += deliverable.count
            if window.cachedCount > 0 { engine.counters.sackHoles += 1 }
        }
        if !deliverable.isEmpty, let handler {
            // A copy of the reused buffer (no allocation unless the handler keeps the array).
            let strings = deliverable
            handler.stringsReceived(strings, on: self)
        }
        return hit && !isReset
    }
}

/// A stream's transports: the first one inline, the others (an upload beside the primary, a replacement during a
/// handover) in an array, so that a stream that never had two at once owns no array storage.
struct TransportList: Sequence {
    private var head: ServerTransport?
    private var rest: [ServerTransport] = []

    var count: Int { head == nil ? 0 : 1 + rest.count }
    var isEmpty: Bool { head == nil }
    var first: ServerTransport? { head }

    mutating func append(_ transport: ServerTransport) {
        if head == nil { head = transport } else { rest.append(transport) }
    }

    /// Removes `transport` (by identity); false if it is not in the list.
    mutating func remove(_ transport: ServerTransport) -> Bool {
        if head === transport {
            if rest.isEmpty {
                head = nil
            } else {
                head = rest.removeFirst()
            }
            return true
        }
        guard let index = rest.firstIndex(where: { $0 === transport }) else { return false }
        rest.remove(at: index)  // the storage stays: a stream that had an upload beside its primary gets another
        return true
    }

    struct Iterator: IteratorProtocol {
        fileprivate var head: ServerTransport?
        fileprivate var rest: IndexingIterator<[ServerTransport]>

        mutating func next() -> ServerTransport? {
            if let transport = head {
                head = nil
                return transport
            }
            return rest.next()
        }
    }

    func makeIterator() -> Iterator { Iterator(head: head, rest: rest.makeIterator()) }
}
