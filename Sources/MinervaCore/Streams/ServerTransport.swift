// One server transport (PROTOCOL.md 5): an HTTP request or a socket carrying frames for one stream. It owns
// the output buffer and the per-transport sequence state; the engine drives it.

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

    // The engine reuses ended transports: every stored property is set again in `reuse`.
    private(set) var handle: TransportHandle
    private(set) var kind: TransportKind
    @exclusivity(unchecked) private(set) var connection: ConnectionInfo
    var phase = Phase.open
    @exclusivity(unchecked) var hello: HelloFrame?
    weak var stream: ServerStream?

    // 5.1
    var ourSeqNum: Int64 = -1
    var peerSeqNum: Int64 = -1
    var rememberedStart = Int64.max  // +infinity; an absent start is Int64.min
    var sackDirty = false
    var terminating = false
    /// True while the engine is processing this transport's received bytes (flushes are deferred).
    var busy = false

    @exclusivity(unchecked) var buffer: [UInt8] = []
    var wroteAnything = false
    var bytesWritten: Int64 = 0
    @exclusivity(unchecked) var pending: [(seq: Int64, bytes: ArraySlice<UInt8>)] = []
    /// Cuts a socket's byte stream into frames (sockets only).
    @exclusivity(unchecked) var int32Decoder: Int32FrameDecoder

    // Timers (absolute times); the engine's heap holds at most one entry per kind.
    var heartbeatDeadline: Double?
    var heartbeatQueued = false
    var maxOpenDeadline: Double?
    var closeDeadline: Double?

    init(handle: TransportHandle, kind: TransportKind, connection: ConnectionInfo, maxFrameLength: Int) {
        self.handle = handle
        self.kind = kind
        self.connection = connection
        int32Decoder = Int32FrameDecoder(maxLength: maxFrameLength)
    }

    /// Makes an ended transport (one nothing else holds) new again, keeping its buffers' storage.
    /// - Parameters:
    ///   - requestHeaders: fills the request headers if `hasRequestHeaders` (a non-escaping closure: no allocation).
    func reuse(
        handle: TransportHandle, kind: TransportKind, connection: ConnectionInfo, hasRequestHeaders: Bool,
        requestHeaders: (inout RawRequestHeaders) -> Void
    ) {
        self.handle = handle
        self.kind = kind
        // The previous request's header storage: once the old info is overwritten, `headers` is its only holder
        // (unless the application kept a TransportInfo), so refilling it allocates nothing.
        var headers = self.connection.rawHeaders ?? RawRequestHeaders()
        self.connection = connection
        phase = .open
        hello = nil
        stream = nil
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
        if kind == .socket { int32Decoder = Int32FrameDecoder(maxLength: int32Decoder.maxLength) }
        heartbeatDeadline = nil
        heartbeatQueued = false
        maxOpenDeadline = nil
        closeDeadline = nil
        if hasRequestHeaders {
            headers.removeAll()
            requestHeaders(&headers)
            self.connection.rawHeaders = headers
        }
    }

    /// Sets the connection's request headers to those `fill` appends.
    func fillRequestHeaders(_ fill: (inout RawRequestHeaders) -> Void) {
        var headers = RawRequestHeaders()
        fill(&headers)
        connection.rawHeaders = headers
    }

    var isHTTP: Bool { kind == .http }
    var wantsStrings: Bool { hello?.wantsStrings ?? false }
    var streamingResponse: Bool { hello?.streamingResponse ?? (kind == .socket) }

    var info: TransportInfo {
        TransportInfo(
            transportNumber: hello?.transportNumber ?? -1, isPrimary: wantsStrings,
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
