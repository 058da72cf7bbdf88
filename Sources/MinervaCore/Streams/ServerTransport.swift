// One server transport (PROTOCOL.md 5): an HTTP request or a socket carrying frames for one stream. It owns
// the output buffer and the per-transport sequence state; the engine drives it.

/// An int32 socket's frame decoder, apart from its transport (which most often needs none).
final class Int32DecoderBox {
    @exclusivity(unchecked) var decoder: Int32FrameDecoder

    init(maxLength: Int) { decoder = Int32FrameDecoder(maxLength: maxLength) }
}

/// The state of one transport, internal to the engine.
final class ServerTransport {
    enum Phase {
        /// Receiving frames; may be attached to a stream.
        case open
        /// A socket that wrote its last frame (`Y`) and waits for the peer to close.
        case closing
        /// Finished; the engine forgot it.
        case gone
    }

    static let preamble: [UInt8] = Array(";)]}^\n".utf8)
    static let beat: [UInt8] = Array("beat".utf8)

    /// The most output buffer capacity kept between flushes (and for the transport's reuse).
    static let keptBufferCapacity = 16_384

    // The engine reuses ended transports: every stored property is set again in `reuse`. Words first, then the
    // 4-byte and 1-byte fields together (an idle WebSocket keeps one of these: no padding between fields).
    private(set) var handle: TransportHandle
    @exclusivity(unchecked) private(set) var connection: ConnectionInfo
    weak var stream: ServerStream?

    // What the engine keeps of the hello (not the whole HelloFrame: an idle transport holds only these).
    /// `tnum` (-1 before the hello).
    var transportNumber: Int64 = -1
    /// `maxb` (HTTP streaming responses).
    var maxReceiveBytes: Int64 = maxProtocolInteger

    // 5.1
    var ourSeqNum: Int64 = -1
    var peerSeqNum: Int64 = -1
    var rememberedStart = Int64.max  // +infinity; an absent start is Int64.min

    @exclusivity(unchecked) var buffer: [UInt8] = []
    var bytesWritten: Int64 = 0
    @exclusivity(unchecked) var pending: [(seq: Int64, bytes: ArraySlice<UInt8>)] = []
    /// Cuts an int32 socket's byte stream into frames: made by its first bytes (a WebSocket, whose messages arrive
    /// whole, and an HTTP transport never need one).
    @exclusivity(unchecked) var int32Decoder: Int32DecoderBox?

    // Timers (absolute times; infinity: none); the engine's heap holds at most one entry per kind.
    var heartbeatDeadline = Double.infinity
    var maxOpenDeadline = Double.infinity
    var closeDeadline = Double.infinity

    /// `maxia`: heartbeat interval in seconds (0...600; 0: none).
    var maxInactivity: Int32 = 0
    private(set) var kind: TransportKind
    var phase = Phase.open
    /// Whether the hello arrived.
    var hasHello = false
    /// The hello's `eeds` was present: the transport wants S2C strings.
    var wantsStrings = false
    /// `ming` after sanitising (always true for sockets).
    var streamingResponse: Bool
    var sackDirty = false
    var terminating = false
    /// True while the engine is processing this transport's received bytes (flushes are deferred).
    var busy = false
    var wroteAnything = false
    var heartbeatQueued = false

    init(handle: TransportHandle, kind: TransportKind, connection: ConnectionInfo) {
        self.handle = handle
        self.kind = kind
        self.connection = connection
        streamingResponse = kind == .socket
    }

    /// Keeps what the engine needs of the (sanitised) hello.
    func store(_ hello: HelloFrame) {
        hasHello = true
        wantsStrings = hello.wantsStrings
        streamingResponse = hello.streamingResponse
        maxInactivity = Int32(clamping: hello.maxInactivity)
        transportNumber = hello.transportNumber
        maxReceiveBytes = hello.maxReceiveBytes
    }

    /// Makes an ended transport (one nothing else holds) new again, keeping its buffers' storage.
    /// - Parameters:
    ///   - requestHeaders: fills the request headers if `hasRequestHeaders` (a non-escaping closure: no allocation).
    ///   - storage: header storage to refill (a forgotten list's), instead of this transport's own; taken (set to
    ///     nil) so that it is uniquely held when emptied.
    func reuse(
        handle: TransportHandle, kind: TransportKind, connection: ConnectionInfo, hasRequestHeaders: Bool,
        storage: inout RawRequestHeaders?, requestHeaders: (inout RawRequestHeaders) -> Void
    ) {
        self.handle = handle
        self.kind = kind
        // The previous request's header storage: once the old info is overwritten, `headers` is its only holder
        // (unless the application kept a TransportInfo), so refilling it allocates nothing.
        var headers = storage ?? self.connection.rawHeaders ?? RawRequestHeaders()
        storage = nil
        self.connection = connection
        phase = .open
        stream = nil
        hasHello = false
        wantsStrings = false
        streamingResponse = kind == .socket
        maxInactivity = 0
        transportNumber = -1
        maxReceiveBytes = maxProtocolInteger
        ourSeqNum = -1
        peerSeqNum = -1
        rememberedStart = Int64.max
        sackDirty = false
        terminating = false
        busy = false
        buffer.removeAll(keepingCapacity: true)
        wroteAnything = false
        bytesWritten = 0
        pending.removeAllKeepingSmallCapacity()
        if kind == .socket, let box = int32Decoder { box.decoder = Int32FrameDecoder(maxLength: box.decoder.maxLength) }
        heartbeatDeadline = .infinity
        heartbeatQueued = false
        maxOpenDeadline = .infinity
        closeDeadline = .infinity
        if hasRequestHeaders {
            headers.removeAll()
            requestHeaders(&headers)
            self.connection.rawHeaders = headers
        }
    }

    /// Sets the connection's request headers to those `fill` appends.
    /// - Parameters:
    ///   - storage: storage to refill (emptied first), or nil for new storage; taken (set to nil).
    ///   - fill: appends the headers.
    func fillRequestHeaders(storage: inout RawRequestHeaders?, _ fill: (inout RawRequestHeaders) -> Void) {
        var headers = storage ?? RawRequestHeaders()
        storage = nil
        headers.removeAll()
        fill(&headers)
        connection.rawHeaders = headers
    }

    /// Forgets the connection's request headers (the application saw them when the transport attached), returning
    /// their storage as bytes, if any, for a later transport to refill.
    func takeRequestHeaders() -> RawRequestHeaders? {
        let headers = connection.rawHeaders
        connection.requestHeaders = nil
        return headers
    }

    var isHTTP: Bool { kind == .http }

    var info: TransportInfo {
        TransportInfo(
            transportNumber: transportNumber, isPrimary: wantsStrings,
            streamingFromPeer: kind == .socket, streamingToPeer: streamingResponse, connection: connection)
    }

    /// Appends one frame to the output buffer, with the preamble first on HTTP and the mode's framing.
    func append(_ frame: Frame) {
        switch kind {
        case .http:
            if buffer.isEmpty && !wroteAnything { buffer.append(contentsOf: ServerTransport.preamble) }
            frame.encodeLine(into: &buffer)
        case .socket:
            frame.encodeLengthPrefixed(into: &buffer)
        }
    }

    /// Appends `SACK(current C2S)` and marks the SACK clean.
    func appendSACK(of stream: ServerStream) {
        append(.sack(stream.window.sack))
        sackDirty = false
    }

    /// Appends the termination frames of an attached transport: SACK, StreamStatus (PROTOCOL.md 5.6).
    func appendSACKAndStatus() {
        if let stream {
            appendSACK(of: stream)
            append(.streamStatus(stream.lastSackSeenByServer))
        }
    }

    /// Writes S2C strings from the queue (PROTOCOL.md 5.4, steps 1-3); the caller flushes.
    /// - Parameters:
    ///   - queue: the stream's send queue.
    ///   - start: the first sequence number wanted, or nil for "from the beginning".
    func writeStrings(_ queue: SendQueue, start: Int64?) {
        guard phase == .open, !terminating, let stream else { return }
        if sackDirty { appendSACK(of: stream) }
        let start = start ?? Int64.min
        if start < rememberedStart {
            ourSeqNum = -1
            rememberedStart = start
        }
        let from = max(start, ourSeqNum &+ 1)
        var written = 0
        var firstTime = 0
        queue.forEach(from: from) { seq, bytes in
            if ourSeqNum == -1 || seq != ourSeqNum + 1 { append(.seqNum(seq)) }
            append(.string(bytes[...]))
            ourSeqNum = seq
            written += 1
            if seq > stream.highestWritten {
                stream.highestWritten = seq
                firstTime += 1
            }
        }
        if written > 0, let engine = stream.engine {
            engine.counters.stringsSent += firstTime
            engine.counters.stringsRetransmitted += written - firstTime
        }
    }
}
