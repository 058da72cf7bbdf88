// The server side of Minerva without I/O (PROTOCOL.md 5 and 6): the stream tracker, every transport's state
// machine, timers and the application callbacks. The I/O layer feeds it events (one method per event, each
// taking the current time) and drains the actions it produces.

/// The Minerva server's protocol engine: streams keyed by ``StreamID``, transports keyed by ``TransportHandle``.
///
/// How an I/O layer drives it (all on one thread, the engine's event loop):
/// 1. HTTP: when a POST to `io/` has its headers, ``openTransport(_:kind:connection:now:)`` with `.http`; when its
///    body is complete, ``httpBodyReceived(_:body:now:)``; if the client goes away, ``transportClosed(_:now:)``.
/// 2. Sockets: after mode detection chose int32 (``SocketModeDetector``), ``openTransport(_:kind:connection:now:)``
///    with `.socket`, then ``socketBytesReceived(_:bytes:now:)`` for the remainder and every later chunk
///    (or cut frames yourself and call ``framesReceived(_:frames:frameCorruption:now:)``); peer close ->
///    ``transportClosed(_:now:)``.
/// 3. After each event, carry out the actions (``drainBorrowedActions(_:)``, which lends the bytes of each write
///    without allocating, or ``takeActions()``): ``ServerAction/write(_:_:_:)``
///    (for HTTP, ``WriteKind/httpWholeBody`` means send `Content-Length` and end the response; the first
///    ``WriteKind/httpChunk`` carries the status line and headers of a streamed response), ``ServerAction/finish(_:)``,
///    ``ServerAction/close(_:)``. Nothing is sent on an HTTP request before its first write.
/// 4. Once per event-loop iteration, ``flush(now:)`` (strings the application sent are written then: a burst is one
///    write), then carry out the actions again.
/// 5. Wake at ``nextDeadline`` and call ``timersDue(now:)`` (heartbeats, `maxt`, socket close grace, idle streams).
/// 6. Report socket backpressure with ``transportWritable(_:_:)`` (pauses the stream's push producer).
///
/// The application sees streams through ``MinervaStreamHandler`` (built by `handlerFactory`) and ``ServerStream``.
/// Callbacks run synchronously inside engine calls and may re-enter the stream (send, reset). Not thread-safe.
public final class MinervaServerEngine {
    /// Limits and timings.
    public let configuration: ServerEngineConfiguration
    /// Builds the application handler of a new stream (called when its first transport attaches).
    public let handlerFactory: (ServerStream) -> any MinervaStreamHandler
    /// Receives application callback failures (an error thrown by a handler, and which callback).
    public var errorReporter: ((any Error, String) -> Void)?
    /// Hears of every transport the engine kills (all five kill reasons, including `stream_attach_failure` for the
    /// stream and rate limits) and every stream it resets for its send queue limit, for logging. Called
    /// synchronously inside engine calls; it must not call back into the engine.
    public var rejectionReporter: ((EngineRejection) -> Void)?
    /// Decides whether a new stream may be created, before anything of it exists: nil allows it; a reason refuses it,
    /// and the transport gets `reason|1!` (an application-level reset the client reports, PROTOCOL.md 6.8) then
    /// ends. A reason that is not a restricted string of at most 255 bytes is sent as `not authorized`. Runs on the
    /// engine's thread; the application handler is never built for a refused stream.
    public var streamAuthorizer: ((StreamAuthorizationRequest) -> String?)?
    /// The stream limit shared with other engines (several event loops); when set it replaces
    /// ``ServerEngineConfiguration/maxStreams`` for this engine. Set it before the first stream.
    public var streamBudget: MinervaStreamBudget?
    /// The queued-memory limit, shared with other engines when an endpoint sets it (before the first stream); by
    /// default this engine's own, from ``ServerEngineConfiguration/maxQueuedBytesTotal``.
    public var queuedMemoryBudget: MinervaQueuedMemoryBudget
    /// The memory queued on this engine's streams now (bytes plus ``SendQueue/costPerString`` per string).
    public private(set) var queuedMemory = 0
    /// The part of ``queuedMemoryBudget`` this engine holds (whole chunks, at least ``queuedMemory`` unless the
    /// budget is exhausted).
    private var reservedMemory = 0
    /// What this engine has done so far (streams, transports, strings, kills, resets), for metrics.
    public internal(set) var counters = EngineCounters()
    /// The frame limit in force: ``ServerEngineConfiguration/maxFrameLength`` clamped to 1...1,048,576.
    public let maxFrameLength: Int
    /// The time of the event being processed.
    public private(set) var now: Double

    // `@exclusivity(unchecked)` on the containers touched on every request (here, in ServerTransport and ServerStream):
    // the engine is confined to one thread and never accesses one of them while a mutation of it is in progress (the
    // whole test suite passed with the dynamic checks on before they were turned off). Those checks cost about as
    // much as the engine's own work per request.
    @exclusivity(unchecked) private var streams: [StreamID: ServerStream] = [:]
    @exclusivity(unchecked) var transports: [TransportHandle: ServerTransport] = [:]
    private var recentlyReset: [StreamID: Double] = [:]
    @exclusivity(unchecked) private var pendingSends: [ServerStream] = []
    /// The strings of one delivery to an application (reused between deliveries, by every stream).
    @exclusivity(unchecked) var deliverable: [ArraySlice<UInt8>] = []
    @exclusivity(unchecked) private var sendingNow: [ServerStream] = []
    /// The outbox: actions in order, the bytes of their writes in `outboxBytes`. Both are swapped with the spare pair
    /// while an outbox is carried out, so nothing is allocated once they have grown.
    @exclusivity(unchecked) private var outbox: [PendingAction] = []
    @exclusivity(unchecked) private var outboxBytes: [UInt8] = []
    @exclusivity(unchecked) private var spareOutbox: [PendingAction] = []
    @exclusivity(unchecked) private var spareOutboxBytes: [UInt8] = []
    /// Transports that ended, for reuse by the next ones (taken only when nothing else holds them).
    @exclusivity(unchecked) private var transportPool: [ServerTransport] = []
    private static let transportPoolLimit = 256
    /// The storage of forgotten request headers, refilled by the next requests' headers (no allocation per request).
    @exclusivity(unchecked) private var spareHeaders: [RawRequestHeaders] = []
    private static let spareHeadersLimit = 256
    private static let keptHeadersCapacity = 16_384
    /// Cuts HTTP bodies into frames in its reused storage (`nil` while a body is being processed).
    @exclusivity(unchecked) private var bodyDecoder: NewlineFrameDecoder?
    @exclusivity(unchecked) private var timers = DeadlineHeap<TransportTimer>()
    /// The timer heap's size above which its dead entries are swept (see `schedule`).
    private var timerSweepAt = MinervaServerEngine.timerSweepFloor
    static let timerSweepFloor = 4_096
    /// Streams that may be idle, each at most once (``ServerStream/idleQueued``), by the time they would expire: the
    /// idle check pops only the due ones (O(expired streams) per check, never a scan of all streams).
    @exclusivity(unchecked) private var idleStreams = DeadlineHeap<ServerStream>()
    private var nextIdleCheck: Double
    private var creationBuckets: [String: (tokens: Double, time: Double)] = [:]
    /// The transport whose hello is being handled, and the stream id it named (for the log of a refusal or a kill).
    /// (A handle, not a weak reference: that would give every transport a side-table allocation.)
    private var helloTransport: TransportHandle?
    private var helloStreamID: StreamID?

    /// Creates an engine.
    /// - Parameters:
    ///   - configuration: limits and timings.
    ///   - now: the current time in seconds (any origin; all later times use the same clock).
    ///   - handlerFactory: builds the application handler of each stream.
    public init(
        configuration: ServerEngineConfiguration = ServerEngineConfiguration(), now: Double,
        handlerFactory: @escaping (ServerStream) -> any MinervaStreamHandler
    ) {
        self.configuration = configuration
        queuedMemoryBudget = MinervaQueuedMemoryBudget(limit: configuration.maxQueuedBytesTotal)
        self.handlerFactory = handlerFactory
        self.now = now
        self.nextIdleCheck = MinervaServerEngine.idleCheck(after: now, configuration.idleCheckInterval)
        maxFrameLength = min(max(1, configuration.maxFrameLength), MinervaCore.maxFrameLength)
    }

    // MARK: Outputs

    /// An action in the outbox; a write's bytes are a range of `outboxBytes`.
    private enum PendingAction {
        case write(TransportHandle, Range<Int>, WriteKind)
        case finish(TransportHandle)
        case close(TransportHandle)
    }

    /// Returns and clears the actions produced so far, in order (each write's bytes copied into a new array).
    public func takeActions() -> [ServerAction] {
        var result: [ServerAction] = []
        drainActions { result.append($0) }
        return result
    }

    /// Passes each action produced so far to `body`, in order (each write's bytes copied into a new array), and
    /// clears the outbox. `body` may call back into the engine: actions produced meanwhile wait for the next drain.
    /// - Parameter body: carries out one action.
    public func drainActions(_ body: (ServerAction) -> Void) {
        drainBorrowedActions({ action in
            switch action {
            case .write(let handle, let bytes, let kind): body(.write(handle, Array(bytes), kind))
            case .finish(let handle): body(.finish(handle))
            case .close(let handle): body(.close(handle))
            }
        })
    }

    /// Passes each action produced so far to `body`, in order, lending the bytes of each write from the engine's
    /// reused outbox (no allocation once it has grown), and clears the outbox. `body` may call back into the engine:
    /// actions produced meanwhile go to a second outbox and wait for the next drain.
    /// - Parameter body: carries out one action.
    /// - Warning: the bytes of a write are valid only during the call of `body` that receives them.
    public func drainBorrowedActions(_ body: (BorrowedServerAction) -> Void) {
        guard !outbox.isEmpty else { return }
        // Moved out (actions produced meanwhile go to the spare pair, which is empty), carried out, then kept as the
        // spare pair: the two pairs alternate without allocating.
        var actions = outbox
        var bytes = outboxBytes
        outbox = spareOutbox
        outboxBytes = spareOutboxBytes
        spareOutbox = []
        spareOutboxBytes = []
        bytes.withUnsafeBytes { bytes in
            for action in actions {
                switch action {
                case .write(let handle, let range, let kind):
                    body(.write(handle, UnsafeRawBufferPointer(rebasing: bytes[range]), kind))
                case .finish(let handle): body(.finish(handle))
                case .close(let handle): body(.close(handle))
                }
            }
        }
        actions.removeAll(keepingCapacity: true)
        if bytes.capacity > 1_048_576 {
            bytes = []  // a large burst's worth is not kept
        } else {
            bytes.removeAll(keepingCapacity: true)
        }
        if spareOutbox.capacity < actions.capacity {
            spareOutbox = actions
            spareOutboxBytes = bytes
        }
    }

    /// Whether actions are waiting in the outbox.
    public var hasActions: Bool { !outbox.isEmpty }

    /// The earliest time at which ``timersDue(now:)`` has work (it may be early, never late); infinity if none.
    public var nextDeadline: Double {
        let idle = configuration.idleCheckInterval > 0 ? idleStreams.first?.deadline ?? .infinity : .infinity
        return min(timers.first?.deadline ?? .infinity, nextIdleCheck, idle)
    }

    /// Whether strings sent by the application wait for ``flush(now:)``.
    public var needsFlush: Bool { !pendingSends.isEmpty }

    /// The number of live streams.
    public var streamCount: Int { streams.count }
    /// The number of transports the engine still tracks (open, or sockets waiting to be closed).
    public var transportCount: Int { transports.count }

    /// The live stream with this id, if any.
    public func stream(_ id: StreamID) -> ServerStream? { streams[id] }

    // MARK: Events

    /// A transport opened: an HTTP request whose body will follow, or a socket in int32 mode.
    /// - Parameters:
    ///   - handle: the I/O layer's name for it, unique among open transports.
    ///   - kind: HTTP or socket.
    ///   - connection: addresses and request headers, reported to the application.
    ///   - now: the current time.
    public func openTransport(_ handle: TransportHandle, kind: TransportKind, connection: ConnectionInfo, now: Double) {
        open(handle, kind: kind, connection: connection, now: now, hasRequestHeaders: false) { _ in }
    }

    /// A transport opened, with its HTTP request headers given as bytes: they are copied into storage the engine
    /// reuses and become Strings only if the application reads ``ConnectionInfo/requestHeaders``.
    /// - Parameters:
    ///   - handle: the I/O layer's name for it, unique among open transports.
    ///   - kind: HTTP or socket.
    ///   - connection: addresses (its `requestHeaders` are replaced by those `requestHeaders` appends).
    ///   - now: the current time.
    ///   - requestHeaders: appends the request's headers to the (emptied) list it is given; called at once.
    public func openTransport(
        _ handle: TransportHandle, kind: TransportKind, connection: ConnectionInfo, now: Double,
        requestHeaders: (inout RawRequestHeaders) -> Void
    ) {
        open(handle, kind: kind, connection: connection, now: now, hasRequestHeaders: true, requestHeaders)
    }

    /// A transport opened, with its request headers already copied (shared with `headers`, not copied again).
    /// - Parameters:
    ///   - handle: the I/O layer's name for it, unique among open transports.
    ///   - kind: HTTP or socket.
    ///   - connection: addresses (its `requestHeaders` are replaced by `headers`).
    ///   - now: the current time.
    ///   - headers: the request headers.
    public func openTransport(
        _ handle: TransportHandle, kind: TransportKind, connection: ConnectionInfo, now: Double,
        headers: RawRequestHeaders
    ) {
        var connection = connection
        connection.rawHeaders = headers
        open(handle, kind: kind, connection: connection, now: now, hasRequestHeaders: false) { _ in }
    }

    private func open(
        _ handle: TransportHandle, kind: TransportKind, connection: ConnectionInfo, now: Double,
        hasRequestHeaders: Bool, _ requestHeaders: (inout RawRequestHeaders) -> Void
    ) {
        self.now = now
        if kind == .http { counters.httpTransportsOpened += 1 } else { counters.socketTransportsOpened += 1 }
        if let previous = transports[handle] {
            // A socket waiting for its grace-period close may be replaced; anything else is an I/O-layer bug.
            precondition(previous.phase == .closing, "transport handle reused while open")
            previous.phase = .gone
            retire(previous)
        }
        let transport: ServerTransport
        var storage = hasRequestHeaders ? spareHeaders.popLast() : nil
        if var reused = transportPool.popLast(), isKnownUniquelyReferenced(&reused) {
            reused.reuse(
                handle: handle, kind: kind, connection: connection, hasRequestHeaders: hasRequestHeaders,
                storage: &storage, requestHeaders: requestHeaders)
            transport = reused
        } else {
            transport = ServerTransport(handle: handle, kind: kind, connection: connection)
            if hasRequestHeaders { transport.fillRequestHeaders(storage: &storage, requestHeaders) }
        }
        transports[handle] = transport
    }

    /// Forgets a transport's request headers once the application has seen them (``transportCreated``), unless
    /// ``ServerEngineConfiguration/keepsRequestHeaders``; their storage is kept for the next request's headers.
    func forgetRequestHeaders(_ transport: ServerTransport) {
        guard !configuration.keepsRequestHeaders, let headers = transport.takeRequestHeaders() else { return }
        if spareHeaders.count < Self.spareHeadersLimit && headers.capacity <= Self.keptHeadersCapacity {
            spareHeaders.append(headers)
        }
    }

    /// Keeps an ended transport for reuse (it is reused only once nothing else holds it), without a large buffer.
    private func retire(_ transport: ServerTransport) {
        guard transportPool.count < Self.transportPoolLimit else { return }
        if transport.buffer.capacity > ServerTransport.keptBufferCapacity { transport.buffer = [] }
        if let box = transport.int32Decoder, box.decoder.bufferedByteCount > 0 {
            box.decoder = Int32FrameDecoder(maxLength: maxFrameLength)
        }
        transportPool.append(transport)
    }

    /// Frames were received on a transport: for a socket, the frames of one received chunk; for HTTP, the
    /// frames of the whole body (``httpBodyReceived(_:body:now:)`` splits a body for you).
    /// - Parameters:
    ///   - handle: the transport.
    ///   - frames: each frame without delimiter or length prefix, in order.
    ///   - frameCorruption: the chunk could not be split (an over-long frame): none of `frames` is processed and
    ///     the transport is killed with `frame_corruption`.
    ///   - now: the current time.
    public func framesReceived<Frames: Collection<ArraySlice<UInt8>>>(
        _ handle: TransportHandle, frames: Frames, frameCorruption: Bool = false, now: Double
    ) {
        receive(handle, frames, corruption: frameCorruption ? "frame longer than the frame limit" : nil, now: now)
    }

    /// One message of a message-framed socket transport (a WebSocket, PROTOCOL.md 11.1) arrived: it carries exactly
    /// one frame and is processed as a batch of its own. Not generic, so the I/O layer's per-message call costs no
    /// unspecialised generic code.
    /// - Parameters:
    ///   - handle: the transport, opened with ``TransportKind/socket``.
    ///   - frame: the frame (the whole message).
    ///   - now: the current time.
    public func messageReceived(_ handle: TransportHandle, frame: ArraySlice<UInt8>, now: Double) {
        receive(handle, CollectionOfOne(frame), corruption: nil, now: now)
    }

    /// A message-framed socket transport announced a message of `length` bytes, over ``maxFrameLength``, of which
    /// nothing was kept: `frame_corruption` (PROTOCOL.md 11.1, W11).
    /// - Parameters:
    ///   - handle: the transport.
    ///   - length: the announced length.
    ///   - now: the current time.
    public func messageTooLong(_ handle: TransportHandle, length: Int, now: Double) {
        receive(
            handle, DecodedFrames.empty,
            corruption: "message of \(length) bytes over the frame limit of \(maxFrameLength)",
            now: now)
    }

    /// ``framesReceived(_:frames:frameCorruption:now:)`` with the framing failure's explanation, for the log.
    private func receive<Frames: Collection<ArraySlice<UInt8>>>(
        _ handle: TransportHandle, _ frames: Frames, corruption: String?, now: Double
    ) {
        self.now = now
        guard let transport = transports[handle], transport.phase == .open, !transport.terminating,
            !(transport.isHTTP && transport.hasHello)  // one body per HTTP transport
        else { return }
        transport.busy = true
        if let corruption {
            kill(transport, .frameCorruption, corruption, limit: "maxFrameLength")
        } else if !transport.hasHello {
            if frames.isEmpty {
                if transport.isHTTP {  // PROTOCOL.md 10.8
                    kill(transport, .invalidFrameTypeOrArguments, "HTTP body without a complete frame")
                }
            } else {
                handleHelloBatch(transport, frames)
            }
        } else {
            processFrames(transport, frames[...])
        }
        transport.busy = false
        if let stream = transport.stream { stream.lastReceived = now }
        flush(transport)
    }

    /// The whole body of an HTTP request arrived: it is split into `\n`-terminated frames (`\r\n` tolerated, an
    /// unterminated last line ignored, a line over ``maxFrameLength`` is `frame_corruption`) and processed as one
    /// batch.
    /// A body without any complete frame is answered with `invalid_frame_type_or_arguments` (PROTOCOL.md 10.8).
    /// - Parameters:
    ///   - handle: the transport, opened with ``TransportKind/http``.
    ///   - body: the request body.
    ///   - now: the current time.
    public func httpBodyReceived(_ handle: TransportHandle, body: some Sequence<UInt8>, now: Double) {
        receiveBody(handle, body, now: now)
    }

    /// ``httpBodyReceived(_:body:now:)`` for a body lent by the I/O layer (e.g. a view into its read buffer), copied
    /// once into the engine's reused storage.
    /// - Parameters:
    ///   - handle: the transport, opened with ``TransportKind/http``.
    ///   - body: the request body, valid during the call.
    ///   - now: the current time.
    public func httpBodyReceived(_ handle: TransportHandle, body: UnsafeRawBufferPointer, now: Double) {
        receiveBody(handle, body, now: now)
    }

    private func receiveBody(_ handle: TransportHandle, _ body: some Sequence<UInt8>, now: Double) {
        // The decoder's storage is reused for every body: frames are cut as ranges of it (one copy of the body, no
        // allocation once it has grown). A body arriving while another is processed gets a decoder of its own.
        var decoder: NewlineFrameDecoder
        if let reused = bodyDecoder {
            decoder = reused
            bodyDecoder = nil
        } else {
            decoder = NewlineFrameDecoder(maxLength: maxFrameLength)
        }
        decoder.reset()
        decoder.append(body)
        switch decoder.finish() {
        case .success(let frames):
            receive(handle, frames, corruption: nil, now: now)
        case .failure(let error):
            receive(handle, DecodedFrames.empty, corruption: corruptionDetail(error), now: now)
        }
        bodyDecoder = decoder
    }

    /// Bytes arrived on a socket transport in int32 mode (after the `<int32/>\n` prefix, which the I/O layer's
    /// mode detection consumes): the frames they complete are processed as one batch. A length prefix over
    /// ``maxFrameLength`` kills the transport with `frame_corruption` (no frame of that chunk is processed).
    /// - Parameters:
    ///   - handle: the transport, opened with ``TransportKind/socket``.
    ///   - bytes: the received chunk.
    ///   - now: the current time.
    public func socketBytesReceived(_ handle: TransportHandle, bytes: some Sequence<UInt8>, now: Double) {
        guard let transport = transports[handle], transport.kind == .socket, transport.phase == .open,
            !transport.terminating
        else { return }
        let box: Int32DecoderBox
        if let existing = transport.int32Decoder {
            box = existing
        } else {
            box = Int32DecoderBox(maxLength: maxFrameLength)
            transport.int32Decoder = box
        }
        let result = box.decoder.receive(bytes)
        switch result {
        case .success(let frames):
            if !frames.isEmpty { receive(handle, frames, corruption: nil, now: now) }
        case .failure(let error):
            receive(handle, DecodedFrames.empty, corruption: corruptionDetail(error), now: now)
        }
    }

    /// The peer closed the connection or aborted the HTTP request: the transport detaches silently.
    /// - Parameters:
    ///   - handle: the transport (unknown handles are ignored).
    ///   - now: the current time.
    public func transportClosed(_ handle: TransportHandle, now: Double) {
        self.now = now
        guard let transport = transports.removeValue(forKey: handle) else { return }
        transport.phase = .gone
        transport.terminating = true
        detach(transport)
        retire(transport)
    }

    /// Closes every open transport gently (SACK, StreamStatus, and `Y` on sockets) without resetting any stream:
    /// for a server that is shutting down, so clients reconnect at once instead of waiting for their requests to
    /// time out. Carry out the resulting actions as usual.
    /// - Parameter now: the current time.
    public func closeAllTransports(now: Double) {
        self.now = now
        for transport in transports.values { closeGently(transport) }
    }

    /// The connection of a transport became backed up (`false`) or writable again (`true`); pauses or resumes
    /// the stream's push producer if the transport is the primary.
    public func transportWritable(_ handle: TransportHandle, _ writable: Bool) {
        guard let transport = transports[handle], let stream = transport.stream, stream.primary === transport
        else { return }
        stream.primaryBackpressure(paused: !writable)
    }

    /// Runs every timer due at `now`: heartbeats, `maxt`, socket close grace periods, the idle check.
    /// - Parameter now: the current time.
    public func timersDue(now: Double) {
        self.now = now
        while let entry = timers.first, entry.deadline <= now {
            _ = timers.pop()
            guard let transport = transports[entry.payload.handle] else { continue }
            switch entry.payload.kind {
            case .heartbeat:
                transport.heartbeatQueued = false
                let deadline = transport.heartbeatDeadline
                guard deadline < .infinity, transport.phase == .open, !transport.terminating
                else { continue }
                if deadline > now {
                    schedule(transport, .heartbeat, at: deadline)
                    transport.heartbeatQueued = true
                } else {
                    transport.append(.comment(ServerTransport.beat[...]))
                    flush(transport)
                }
            case .maxOpenTime:
                guard transport.maxOpenDeadline <= now else { continue }
                transport.maxOpenDeadline = .infinity
                if transport.stream != nil, !transport.terminating {
                    closeGently(transport)
                }
            case .socketClose:
                guard transport.closeDeadline <= now, transport.phase == .closing
                else { continue }
                transports[entry.payload.handle] = nil
                transport.phase = .gone
                outbox.append(.close(entry.payload.handle))
                retire(transport)
            }
        }
        if configuration.idleCheckInterval > 0 {
            resetExpiredStreams(limit: max(1, configuration.maxIdleResetsPerTurn))
        }
        if nextIdleCheck <= now {
            nextIdleCheck = MinervaServerEngine.idleCheck(after: now, configuration.idleCheckInterval)
            forgetExpiredMemory()
        }
    }

    /// End of an event-loop turn: write the strings the application sent since the last flush (PROTOCOL.md 6.4;
    /// the original waits 1 ms).
    /// - Parameter now: the current time.
    public func flush(now: Double) {
        self.now = now
        while !pendingSends.isEmpty {
            // Swap buffers (no allocation): sends scheduled meanwhile go to the other one.
            swap(&pendingSends, &sendingNow)
            for stream in sendingNow where stream.sendScheduled {
                stream.trySend()
            }
            sendingNow.removeAll(keepingCapacity: true)
        }
    }

    /// Resets every stream idle for its ``ServerStream/maxIdleTime`` by now, however many (PROTOCOL.md 6.7), and drops
    /// expired bookkeeping. With ``ServerEngineConfiguration/idleCheckInterval`` above 0, ``timersDue(now:)`` does this
    /// by itself as streams expire, at most ``ServerEngineConfiguration/maxIdleResetsPerTurn`` per call.
    public func resetIdleStreams() {
        resetExpiredStreams(limit: .max)
        forgetExpiredMemory()
    }

    /// Drops remembered reset ids and rate-limit buckets that no longer matter (the periodic housekeeping).
    private func forgetExpiredMemory() {
        recentlyReset = recentlyReset.filter { $0.value > now }
        // Buckets that refilled completely are the same as absent ones.
        let rate = configuration.maxNewStreamsPerKeyPerSecond
        creationBuckets = creationBuckets.filter { $0.value.tokens + (now - $0.value.time) * rate < rate }
    }

    // MARK: Batch processing (PROTOCOL.md 5.2, 5.3)

    private func decode(_ bytes: ArraySlice<UInt8>) -> Frame? {
        if case .success(let frame) = Frame.decode(bytes, direction: .clientToServer) { return frame }
        return nil
    }

    private func handleHelloBatch<Frames: Collection<ArraySlice<UInt8>>>(_ transport: ServerTransport, _ frames: Frames)
    {
        guard let first = frames.first, case .hello(var hello) = decode(first) else {
            kill(transport, .invalidFrameTypeOrArguments, "first frame is not a valid hello")
            return
        }
        // 1. Sanitise and store.
        if transport.kind == .socket {
            hello.streamingResponse = true
            hello.maxReceiveBytes = maxProtocolInteger
            hello.maxOpenTime = nil
        }
        transport.store(hello)
        helloTransport = transport.handle
        helloStreamID = hello.streamID
        defer { helloTransport = nil }
        if transport.isHTTP, let maxOpenTime = hello.maxOpenTime {
            let deadline = now + Double(maxOpenTime)
            transport.maxOpenDeadline = deadline
            schedule(transport, .maxOpenTime, at: deadline)
        }
        // 2. Find or create the stream.
        let stream: ServerStream
        if let existing = streams[hello.streamID] {
            guard existing.transports.count < configuration.maxTransportsPerStream else {
                kill(
                    transport, .invalidFrameTypeOrArguments, "too many transports on the stream",
                    limit: "maxTransportsPerStream")
                return
            }
            stream = existing
        } else {
            let rememberedReset = recentlyReset[hello.streamID].map { $0 > now } ?? false
            if !hello.requestNewStream {
                kill(transport, .streamAttachFailure, "hello for an unknown stream without new")
                return
            }
            if rememberedReset {
                kill(transport, .streamAttachFailure, "new stream with the id of a recently reset stream")
                return
            }
            if let streamAuthorizer,
                let refusal = streamAuthorizer(
                    StreamAuthorizationRequest(hello: hello, connection: transport.connection, kind: transport.kind))
            {
                refuse(transport, reason: refusal)
                return
            }
            if let streamBudget {
                guard streamBudget.take() else {
                    kill(transport, .streamAttachFailure, "stream limit reached", limit: "maxStreams")
                    return
                }
            } else if streams.count >= configuration.maxStreams {
                kill(transport, .streamAttachFailure, "stream limit reached", limit: "maxStreams")
                return
            }
            if !takeCreationToken(transport.connection.rateLimitKey) {
                streamBudget?.release()
                kill(
                    transport, .streamAttachFailure, "new-stream rate limit of the address reached",
                    limit: "maxNewStreamsPerKeyPerSecond")
                return
            }
            stream = ServerStream(streamID: hello.streamID, engine: self, now: now)
            streams[hello.streamID] = stream
            counters.streamsCreated += 1
            queueIfIdle(stream)  // so that a stream whose first transport is refused below still expires
        }
        // 3. Initial frames.
        if hello.requestNewStream { transport.append(.streamCreated) }
        if !stream.window.sackEquals(hello.lastSackSeenByClient) { transport.append(.sack(stream.window.sack)) }
        // 4. The hello's SACK, before attaching.
        if let sack = hello.sack {
            let previous = stream.lastSackSeenByServer
            guard stream.processSACK(sack) else {
                kill(transport, .ackedUnsentStrings, "the hello's SACK acknowledges strings never sent")
                stream.lastSackSeenByServer = previous  // not kept (see processFrames)
                return
            }
        }
        // 5. Attach.
        stream.transportOnline(transport, succeeds: hello.succeedsTransport)
        if transport.terminating || transport.phase != .open { return }
        // 6. The rest of the batch, then pending output.
        processFrames(transport, frames.dropFirst())
        flush(transport)
        if transport.terminating || transport.phase != .open { return }
        // 7. HTTP transports that do not want strings are done.
        if transport.isHTTP && !hello.wantsStrings {
            closeGently(transport)
            return
        }
        // 8. The first heartbeat.
        if hello.maxInactivity > 0 { transport.append(.comment(ServerTransport.beat[...])) }
        // 9. Pending output (the caller flushes).
    }

    private func processFrames(_ transport: ServerTransport, _ frames: some Sequence<ArraySlice<UInt8>>) {
        guard let stream = transport.stream else { return }
        for bytes in frames {
            if transport.terminating || transport.phase != .open { break }
            guard let frame = decode(bytes) else {
                failBatch(transport, .invalidFrameTypeOrArguments, "undecodable frame")
                return
            }
            switch frame {
            case .string(let string):
                guard RestrictedString.isValid(string) else {
                    failBatch(transport, .invalidFrameTypeOrArguments, "string with bytes outside 0x20...0x7E")
                    return
                }
                guard transport.peerSeqNum < maxProtocolInteger else {
                    // Its number would be above 2^53, which no SACK may carry (PROTOCOL.md 2.2).
                    failBatch(transport, .invalidFrameTypeOrArguments, "string numbered above 2^53")
                    return
                }
                transport.peerSeqNum &+= 1
                transport.pending.append((transport.peerSeqNum, string))
            case .seqNum(let number):
                transport.peerSeqNum = number - 1
            case .sack(let sack):
                let previous = stream.lastSackSeenByServer
                guard stream.processSACK(sack) else {
                    failBatch(transport, .ackedUnsentStrings, "SACK acknowledges strings never sent")
                    // Reported in the StreamStatus above, not kept: a rejected SACK can hold a megabyte of list, and
                    // the stream outlives the request (issue 12).
                    stream.lastSackSeenByServer = previous
                    return
                }
            case .reset(let reason, let applicationLevel):
                deliverPending(transport)
                if transport.terminating { return }  // PROTOCOL.md 10.7
                stream.resetFromPeer(
                    reason: String(decoding: reason, as: UTF8.self), applicationLevel: applicationLevel)
                return
            case .hello:
                deliverPending(transport)
                kill(transport, .invalidFrameTypeOrArguments, "a second hello")
                return
            default:
                failBatch(transport, .invalidFrameTypeOrArguments, "frame type not allowed from the client")
                return
            }
        }
        deliverPending(transport)
    }

    /// Kills the transport and discards the strings of the failing batch (PROTOCOL.md 5.2, 10.6).
    private func failBatch(_ transport: ServerTransport, _ reason: KillReason, _ detail: String) {
        transport.pending.removeAll()
        kill(transport, reason, detail)
    }

    private func deliverPending(_ transport: ServerTransport) {
        guard !transport.pending.isEmpty, let stream = transport.stream else {
            transport.pending.removeAllKeepingSmallCapacity()
            return
        }
        if !isSorted(transport.pending) {
            // Stable: repeated numbers keep their arrival order (PROTOCOL.md 5.2 recommendation).
            transport.pending = transport.pending.enumerated()
                .sorted { ($0.element.seq, $0.offset) < ($1.element.seq, $1.offset) }.map(\.element)
        }
        transport.sackDirty = true
        let overflow = stream.stringsReceived(transport.pending)
        // Keeps the storage for the next batch (and releases the slices of the received bytes).
        transport.pending.removeAllKeepingSmallCapacity()
        if overflow {
            kill(transport, .rwinOverflow, "receive window overflow", limit: "receiveWindow")
        }
        if !transport.terminating, transport.phase == .open, transport.sackDirty, transport.stream === stream {
            transport.appendSACK(of: stream)
        }
    }

    private func isSorted(_ pairs: [(seq: Int64, bytes: ArraySlice<UInt8>)]) -> Bool {
        var previous = Int64.min
        for pair in pairs {
            if pair.seq < previous { return false }
            previous = pair.seq
        }
        return true
    }

    // MARK: Termination and output (PROTOCOL.md 5.5, 5.6)

    /// The stream id a transport's hello named, redacted, for the log: its stream's, or while its hello is being
    /// handled, the hello's.
    private func redactedStreamID(of transport: ServerTransport) -> String? {
        if let stream = transport.stream { return stream.streamID.redacted }
        if helloTransport == transport.handle, let helloStreamID { return helloStreamID.redacted }
        return nil
    }

    /// Kill with reason R: `[SACK StreamStatus] R K [Y]`, reported to ``rejectionReporter``.
    func kill(_ transport: ServerTransport, _ reason: KillReason, _ detail: String, limit: String? = nil) {
        guard transport.phase == .open, !transport.terminating else { return }
        counters.countKill(reason)
        if let rejectionReporter {
            rejectionReporter(
                EngineRejection(
                    action: .transportKilled(reason), transport: transport.handle,
                    peerAddress: transport.connection.peerAddress, redactedStreamID: redactedStreamID(of: transport),
                    limit: limit, detail: detail))
        }
        transport.appendSACKAndStatus()
        transport.append(.transportKill(reason))
        if transport.kind == .socket { transport.append(.youCloseIt) }
        transport.terminating = true
        flushIfIdle(transport)
    }

    /// Refuses the stream a transport's hello would create: `reason|1!` then `[Y]`; no stream exists.
    private func refuse(_ transport: ServerTransport, reason: String) {
        let reason = RestrictedString.isValidResetReason(reason.utf8) ? reason : "not authorized"
        counters.streamsRefused += 1
        rejectionReporter?(
            EngineRejection(
                action: .streamRefused(reason), transport: transport.handle,
                peerAddress: transport.connection.peerAddress,
                redactedStreamID: redactedStreamID(of: transport), limit: nil, detail: "refused by the authorizer"))
        let bytes = Array(reason.utf8)
        transport.append(.reset(reason: bytes[...], applicationLevel: true))
        if transport.kind == .socket { transport.append(.youCloseIt) }
        transport.terminating = true
        flushIfIdle(transport)
    }

    /// Close gently: `SACK StreamStatus [Y]`.
    func closeGently(_ transport: ServerTransport) {
        guard transport.phase == .open, !transport.terminating else { return }
        transport.appendSACKAndStatus()
        if transport.kind == .socket { transport.append(.youCloseIt) }
        transport.terminating = true
        flushIfIdle(transport)
    }

    /// A server-side reset: `[SACK if dirty] reason|flag! [Y]`.
    func writeReset(_ transport: ServerTransport, reason: String, applicationLevel: Bool) {
        guard transport.phase == .open, !transport.terminating else { return }
        if transport.sackDirty, let stream = transport.stream { transport.appendSACK(of: stream) }
        let bytes = Array(reason.utf8)
        transport.append(.reset(reason: bytes[...], applicationLevel: applicationLevel))
        if transport.kind == .socket { transport.append(.youCloseIt) }
        transport.terminating = true
        flushIfIdle(transport)
    }

    func flushIfIdle(_ transport: ServerTransport) {
        if !transport.busy { flush(transport) }
    }

    /// Writes the transport's pending output (PROTOCOL.md 5.5).
    private func flush(_ transport: ServerTransport) {
        guard transport.phase == .open else { return }
        if !transport.buffer.isEmpty && !transport.streamingResponse && !transport.terminating {
            transport.appendSACKAndStatus()
            if transport.kind == .socket { transport.append(.youCloseIt) }
            transport.terminating = true
        }
        var wholeBody = false
        if !transport.buffer.isEmpty {
            let start = outboxBytes.count
            outboxBytes.append(contentsOf: transport.buffer)
            let range = start..<outboxBytes.count
            if transport.buffer.capacity > ServerTransport.keptBufferCapacity {
                transport.buffer = []  // a burst's worth is not kept for the transport's life
            } else {
                transport.buffer.removeAll(keepingCapacity: true)
            }
            transport.bytesWritten += Int64(range.count)
            switch transport.kind {
            case .http:
                wholeBody = !transport.wroteAnything && transport.terminating
                outbox.append(.write(transport.handle, range, wholeBody ? .httpWholeBody : .httpChunk))
            case .socket:
                outbox.append(.write(transport.handle, range, .socket))
            }
            transport.wroteAnything = true
            if !transport.terminating, transport.maxInactivity > 0 {
                let deadline = now + Double(transport.maxInactivity)
                transport.heartbeatDeadline = deadline
                if !transport.heartbeatQueued {
                    transport.heartbeatQueued = true
                    schedule(transport, .heartbeat, at: deadline)
                }
            }
        }
        if transport.terminating {
            transport.heartbeatDeadline = .infinity
            transport.maxOpenDeadline = .infinity
            switch transport.kind {
            case .http:
                transport.phase = .gone
                transports[transport.handle] = nil
                if !wholeBody { outbox.append(.finish(transport.handle)) }
            case .socket:
                transport.phase = .closing
                let deadline = now + configuration.socketCloseGracePeriod
                transport.closeDeadline = deadline
                schedule(transport, .socketClose, at: deadline)
            }
            detach(transport)
            if transport.kind == .http { retire(transport) }
        } else if configuration.enforceMaxReceiveBytes, transport.isHTTP, transport.streamingResponse,
            transport.bytesWritten > transport.maxReceiveBytes
        {
            closeGently(transport)  // PROTOCOL.md 4.7 recommendation
        }
    }

    private func detach(_ transport: ServerTransport) {
        guard let stream = transport.stream else { return }
        transport.stream = nil
        stream.lastReceived = now  // PROTOCOL.md 10.10 recommendation
        stream.transportOffline(transport)
        queueIfIdle(stream)
    }

    /// What a framing failure was, against the limit in force, for the rejection report.
    private func corruptionDetail(_ error: FramingError) -> String {
        let what: String
        switch error.code {
        case .lineTooLong: what = "line of \(error.length) bytes"
        case .remainderTooLong: what = "unterminated remainder of \(error.length) bytes"
        case .lengthPrefixTooLarge: what = "length prefix \(error.length)"
        }
        return what + " over the frame limit of \(maxFrameLength)"
    }

    private static func idleCheck(after now: Double, _ interval: Double) -> Double {
        interval > 0 ? now + interval : .infinity
    }

    /// Takes one stream-creation token from the key's bucket.
    private func takeCreationToken(_ key: String?) -> Bool {
        let rate = configuration.maxNewStreamsPerKeyPerSecond
        guard rate > 0, let key else { return true }
        var bucket = creationBuckets[key] ?? (tokens: rate, time: now)
        bucket.tokens = min(rate, bucket.tokens + (now - bucket.time) * rate)
        bucket.time = now
        guard bucket.tokens >= 1 else {
            creationBuckets[key] = bucket
            return false
        }
        bucket.tokens -= 1
        creationBuckets[key] = bucket
        return true
    }

    private func schedule(_ transport: ServerTransport, _ kind: TransportTimer.Kind, at deadline: Double) {
        timers.push(TransportTimer(handle: transport.handle, kind: kind), at: deadline)
        // A closed transport's entries are dropped lazily, when they come due (up to `maxt` later). At thousands of
        // polls per second that is hundreds of thousands of dead entries (the soak saw 160,000 for 19,000
        // transports), so once the heap has doubled since the last sweep and is over 4 entries per transport, the
        // dead ones go in one O(n) pass (about 1 ms per 100,000); the doubling keeps it amortized O(1) per push.
        if timers.count > timerSweepAt, timers.count > 4 * transports.count {
            timers.removeAll { transports[$0.payload.handle] == nil }
            timerSweepAt = max(Self.timerSweepFloor, 2 * timers.count)
        }
    }

    /// Queues a stream for the idle check if it has no transport and is not queued yet (PROTOCOL.md 6.7).
    func queueIfIdle(_ stream: ServerStream) {
        guard !stream.idleQueued, !stream.isReset, stream.transports.isEmpty else { return }
        stream.idleQueued = true
        idleStreams.push(stream, at: stream.lastReceived + stream.maxIdleTime)
    }

    /// Resets the idle streams that expired by `now`, at most `limit` of them; streams found busy leave the queue (the
    /// next detach queues them again) and streams whose time moved are queued again at their new time.
    private func resetExpiredStreams(limit: Int) {
        var budget = limit
        while let top = idleStreams.first, top.deadline <= now {
            let stream = top.payload
            guard !stream.isReset, stream.transports.isEmpty else {
                _ = idleStreams.pop()
                stream.idleQueued = false
                continue
            }
            let expiry = stream.lastReceived + stream.maxIdleTime
            if expiry > now {
                _ = idleStreams.pop()
                idleStreams.push(stream, at: expiry)
                continue
            }
            guard budget > 0 else { return }
            budget -= 1
            _ = idleStreams.pop()
            stream.idleQueued = false
            counters.resetsIdle += 1
            stream.resetInternal(reason: "no activity from peer", counted: true)
        }
    }

    /// The number of streams in the idle queue (each stream at most once). For tests and metrics.
    public var idleQueueCount: Int { idleStreams.count }
    /// The number of entries in the transport timer heap (live and stale). For tests and metrics.
    public var transportTimerCount: Int { timers.count }

    // MARK: Called by streams

    func scheduleSend(_ stream: ServerStream) {
        guard !stream.sendScheduled else { return }
        stream.sendScheduled = true
        pendingSends.append(stream)
    }

    /// Removes a reset stream from the tracker and remembers its id (PROTOCOL.md 6.1, 10.18).
    func forget(_ stream: ServerStream) {
        if streams[stream.streamID] === stream {
            streams[stream.streamID] = nil
            streamBudget?.release()
            if configuration.resetStreamMemory > 0 {
                recentlyReset[stream.streamID] = now + configuration.resetStreamMemory
            }
        }
    }

    /// Counts memory newly queued on a stream against ``queuedMemoryBudget``.
    /// - Returns: false when the budget could not cover it (the string stays queued; the caller resets a stream).
    func queuedMemoryGrew(by bytes: Int) -> Bool {
        queuedMemory += bytes
        while queuedMemory > reservedMemory {
            guard queuedMemoryBudget.reserveChunk() else { return false }
            reservedMemory += queuedMemoryBudget.chunk
        }
        return true
    }

    /// Counts memory no longer queued (acknowledged, or dropped by a reset), giving back chunks beyond two spare.
    func queuedMemoryShrank(by bytes: Int) {
        queuedMemory -= bytes
        let chunk = queuedMemoryBudget.chunk
        while reservedMemory - queuedMemory > 2 * chunk {
            reservedMemory -= chunk
            queuedMemoryBudget.releaseChunk()
        }
    }

    /// The budget is exhausted: resets the stream with the most queued memory on this engine (one scan of the
    /// streams, only when the limit is hit) and returns it.
    func resetLargestQueue() -> ServerStream? {
        var largest: ServerStream?
        for stream in streams.values where !stream.isReset {
            if stream.queuedMemory > (largest?.queuedMemory ?? 0) { largest = stream }
        }
        guard let largest else { return nil }
        reportReset(
            largest, reason: "queued memory limit exceeded", limit: "maxQueuedBytesTotal",
            detail:
                "\(largest.queuedMemory) of \(queuedMemory) bytes queued on this loop; limit \(queuedMemoryBudget.limit) for all"
        )
        largest.resetInternal(reason: "queued memory limit exceeded")
        return largest
    }

    /// Reports a stream reset for a limit (the send queue's) to ``rejectionReporter``.
    func reportReset(_ stream: ServerStream, reason: String, limit: String, detail: String) {
        guard let rejectionReporter else { return }
        let transport = stream.primary ?? stream.transports.first
        rejectionReporter(
            EngineRejection(
                action: .streamReset(reason), transport: transport?.handle,
                peerAddress: transport?.connection.peerAddress ?? "", redactedStreamID: stream.streamID.redacted,
                limit: limit, detail: detail))
    }

    /// Reports an error thrown by an application callback.
    public func report(_ error: any Error, in callback: String) {
        errorReporter?(error, callback)
    }
}
