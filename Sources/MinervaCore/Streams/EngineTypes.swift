// The types the server engine (MinervaServerEngine) speaks to the I/O layer and to the application:
// transport handles and kinds, connection and transport info, the action outbox, the application's handler
// protocol, producers and errors.

/// A transport, named by the I/O layer (one HTTP request or one socket connection).
public struct TransportHandle: Hashable, Sendable, CustomStringConvertible {
    /// The I/O layer's number for the transport; any value unique among open transports.
    public var rawValue: Int

    /// Creates a handle.
    /// - Parameter rawValue: a number unique among the transports currently open.
    public init(_ rawValue: Int) { self.rawValue = rawValue }

    /// `T<number>`, for logs and tests.
    public var description: String { "T\(rawValue)" }
}

/// How a transport reaches the engine.
public enum TransportKind: Sendable, Equatable {
    /// An HTTP POST: the whole body arrives at once; the response carries the preamble `;)]}^\n`, `\n`-delimited
    /// frames, and Content-Length only when the first write is the whole body (PROTOCOL.md 3.1, 4.2).
    case http
    /// A socket (int32 mode, or a future WebSocket): frames arrive in chunks; output frames are int32-framed;
    /// terminations end with `Y` (PROTOCOL.md 3.2, 5.6).
    case socket
}

/// What the I/O layer knows about a connection when a transport opens.
public struct ConnectionInfo: Sendable {
    /// The local address of the connection, e.g. `127.0.0.1:8080` (the original's `host`).
    public var localAddress: String
    /// The peer's address.
    public var peerAddress: String
    /// The HTTP request headers (nil for int32 sockets). The engine keeps them only until the application has seen
    /// them: in ``StreamAuthorizationRequest`` and in the ``TransportInfo`` of
    /// ``MinervaStreamHandler/transportCreated(_:on:)``; later (``MinervaStreamHandler/transportDestroyed(_:on:)``)
    /// they are nil, unless ``ServerEngineConfiguration/keepsRequestHeaders`` is set. A copy the application keeps
    /// stays valid. When the I/O layer gave them as bytes
    /// (``MinervaServerEngine/openTransport(_:kind:connection:now:requestHeaders:)``), each read builds the Strings
    /// anew: headers become Strings only when the application asks.
    public var requestHeaders: [(name: String, value: String)]? {
        get { headerStrings ?? rawHeaders?.strings }
        set {
            headerStrings = newValue
            rawHeaders = nil
        }
    }
    /// The key under which new streams are rate limited (e.g. the peer's IP address without port); nil: no limit.
    public var rateLimitKey: String?
    private var headerStrings: [(name: String, value: String)]?
    /// The headers as bytes, kept by the engine's transport and refilled in place for its next request.
    package var rawHeaders: RawRequestHeaders?

    /// Creates connection info.
    public init(
        localAddress: String = "", peerAddress: String = "", requestHeaders: [(name: String, value: String)]? = nil,
        rateLimitKey: String? = nil
    ) {
        self.localAddress = localAddress
        self.peerAddress = peerAddress
        self.headerStrings = requestHeaders
        self.rateLimitKey = rateLimitKey
    }
}

/// HTTP request headers copied as bytes (name and value lengths, then the bytes, one header after the other), turned
/// into Strings only when read. Refilling keeps the storage, so a reused one costs no allocation.
public struct RawRequestHeaders: Sendable {
    private var bytes: [UInt8] = []

    /// An empty list.
    public init() {}

    /// Forgets every header, keeping the storage.
    public mutating func removeAll() { bytes.removeAll(keepingCapacity: true) }

    /// The bytes the storage can hold without growing.
    var capacity: Int { bytes.capacity }

    /// The bytes one header takes here (for ``reserveCapacity(_:)``).
    /// - Parameters:
    ///   - nameCount: the length of its name.
    ///   - valueCount: the length of its value.
    /// - Returns: the storage it needs.
    public static func storageSize(nameCount: Int, valueCount: Int) -> Int { 8 + nameCount + valueCount }

    /// Makes room for `byteCount` bytes of headers (sum their ``storageSize(nameCount:valueCount:)``), so that a list
    /// filled once holds no spare capacity (a long-lived transport keeps it).
    /// - Parameter byteCount: the storage wanted.
    public mutating func reserveCapacity(_ byteCount: Int) { bytes.reserveCapacity(byteCount) }

    /// Calls `body` with each header's name and value bytes, in order (valid only during the call).
    /// - Parameter body: receives a name and its value.
    public func forEach(_ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void) {
        bytes.withUnsafeBytes { raw in
            var i = 0
            func next() -> UnsafeRawBufferPointer {
                let n = Int(raw[i]) | Int(raw[i + 1]) << 8 | Int(raw[i + 2]) << 16 | Int(raw[i + 3]) << 24
                i += 4
                defer { i += n }
                return UnsafeRawBufferPointer(rebasing: raw[i..<(i + n)])
            }
            while i < raw.count {
                let name = next()
                body(name, next())
            }
        }
    }

    /// Appends one header.
    /// - Parameters:
    ///   - name: the header name's bytes.
    ///   - value: the header value's bytes.
    public mutating func append(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        appendLength(name.count)
        bytes.append(contentsOf: name)
        appendLength(value.count)
        bytes.append(contentsOf: value)
    }

    private mutating func appendLength(_ length: Int) {
        withUnsafeBytes(of: UInt32(truncatingIfNeeded: length).littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// The headers as Strings, in order (allocates).
    public var strings: [(name: String, value: String)] {
        var result: [(name: String, value: String)] = []
        bytes.withUnsafeBytes { raw in
            var i = 0
            func next() -> String {
                let n = Int(raw[i]) | Int(raw[i + 1]) << 8 | Int(raw[i + 2]) << 16 | Int(raw[i + 3]) << 24
                i += 4
                defer { i += n }
                return String(decoding: UnsafeRawBufferPointer(rebasing: raw[i..<(i + n)]), as: UTF8.self)
            }
            while i < raw.count {
                let name = next()
                result.append((name, next()))
            }
        }
        return result
    }
}

/// What the application learns about a transport (PROTOCOL.md 5.7, with both addresses per 10.11).
public struct TransportInfo: Sendable {
    /// The client's number for the transport (`tnum`).
    public var transportNumber: Int64
    /// Whether the transport wants S2C strings (the hello had `eeds`).
    public var isPrimary: Bool
    /// Whether the peer streams to us (true for sockets, false for HTTP).
    public var streamingFromPeer: Bool
    /// Whether we stream to the peer (`ming` after sanitising).
    public var streamingToPeer: Bool
    /// The local and peer addresses and the HTTP request headers (the headers only in
    /// ``MinervaStreamHandler/transportCreated(_:on:)``, unless ``ServerEngineConfiguration/keepsRequestHeaders``:
    /// copy what you need of them then).
    public var connection: ConnectionInfo
}

/// How the I/O layer must write one chunk of bytes.
public enum WriteKind: Sendable, Equatable {
    /// Socket bytes (int32-framed frames).
    case socket
    /// The complete HTTP response body: send status and headers with `Content-Length` = the byte count, the
    /// bytes, and finish the response. No ``ServerAction/finish(_:)`` follows.
    case httpWholeBody
    /// A piece of a streamed HTTP response (no Content-Length; the first one carries status and headers).
    case httpChunk
}

/// One thing the I/O layer must do, in order.
public enum ServerAction: Sendable, Equatable {
    /// Write `bytes` on the transport.
    case write(TransportHandle, [UInt8], WriteKind)
    /// Finish the streamed HTTP response of the transport (after its last ``WriteKind/httpChunk``).
    case finish(TransportHandle)
    /// Close the socket (the peer did not close it within the grace period after `Y`, PROTOCOL.md 10.9).
    case close(TransportHandle)
}

/// One thing the I/O layer must do, with the bytes of a write lent by the engine
/// (``MinervaServerEngine/drainBorrowedActions(_:)``).
///
/// - Warning: the bytes of ``write(_:_:_:)`` are valid only during the call that hands out the action.
public enum BorrowedServerAction {
    /// Write `bytes` on the transport (see ``ServerAction/write(_:_:_:)``).
    case write(TransportHandle, UnsafeRawBufferPointer, WriteKind)
    /// Finish the streamed HTTP response of the transport (see ``ServerAction/finish(_:)``).
    case finish(TransportHandle)
    /// Close the socket (see ``ServerAction/close(_:)``).
    case close(TransportHandle)
}

/// The application's side of one stream (PROTOCOL.md 6.9). Every method is called synchronously by the engine
/// and may re-enter the stream (``ServerStream/send(_:)-(String)``, ``ServerStream/reset(reason:)``).
public protocol MinervaStreamHandler: AnyObject {
    /// The stream's first transport attached. Throwing resets the stream with
    /// `streamStarted raised uncaught exception` (not application level).
    func streamStarted(_ stream: ServerStream) throws
    /// Strings arrived, in order. The default calls ``stringReceived(_:on:)`` for each, isolating failures.
    /// - Warning: the slices are borrowed: copy what you keep beyond the call.
    func stringsReceived(_ strings: [ArraySlice<UInt8>], on stream: ServerStream)
    /// One string arrived (used by the default ``stringsReceived(_:on:)``); a thrown error is reported and the
    /// remaining strings are still delivered (PROTOCOL.md 10.14).
    func stringReceived(_ string: ArraySlice<UInt8>, on stream: ServerStream) throws
    /// The stream ended; called exactly once, last.
    func streamReset(_ stream: ServerStream, reason: String, applicationLevel: Bool)
    /// A transport attached to the stream.
    func transportCreated(_ info: TransportInfo, on stream: ServerStream)
    /// A transport detached from the stream (not called after a reset).
    func transportDestroyed(_ info: TransportInfo, on stream: ServerStream)
}

extension MinervaStreamHandler {
    /// Delivers each string to ``stringReceived(_:on:)``, reporting failures and stopping if the stream resets.
    public func stringsReceived(_ strings: [ArraySlice<UInt8>], on stream: ServerStream) {
        for string in strings {
            if stream.isReset { return }
            do {
                try stringReceived(string, on: stream)
            } catch {
                stream.engine?.report(error, in: "stringReceived")
            }
        }
    }

    /// Does nothing.
    public func stringReceived(_ string: ArraySlice<UInt8>, on stream: ServerStream) throws {}
    /// Does nothing.
    public func transportCreated(_ info: TransportInfo, on stream: ServerStream) {}
    /// Does nothing.
    public func transportDestroyed(_ info: TransportInfo, on stream: ServerStream) {}
}

/// A producer of S2C strings that the stream pauses and resumes (PROTOCOL.md 6.9).
public protocol MinervaProducer: AnyObject {
    /// Stop sending for now (no primary transport, or its connection is backed up). Push producers only.
    func pauseProducing()
    /// Sending is welcome again.
    func resumeProducing()
    /// The stream ended; never send again.
    func stopProducing()
}

/// An error thrown by the application API of ``ServerStream``.
public struct MinervaStreamError: Error, Hashable, Sendable, CustomStringConvertible {
    private enum Code: Hashable, Sendable {
        case invalidString, streamIsReset, invalidResetReason, producerAlreadyRegistered, sendQueueFull
    }
    private let code: Code

    /// The string contains a byte outside 0x20...0x7E (PROTOCOL.md 1).
    public static let invalidString = MinervaStreamError(code: .invalidString)
    /// The stream was reset; nothing can be sent or reset any more.
    public static let streamIsReset = MinervaStreamError(code: .streamIsReset)
    /// A reset reason must be a restricted string of at most 255 bytes (PROTOCOL.md 10.12).
    public static let invalidResetReason = MinervaStreamError(code: .invalidResetReason)
    /// A producer is already registered on this stream.
    public static let producerAlreadyRegistered = MinervaStreamError(code: .producerAlreadyRegistered)
    /// The send queue exceeded its byte limit; the stream was reset (PROTOCOL.md 10.13).
    public static let sendQueueFull = MinervaStreamError(code: .sendQueueFull)

    /// A short English description.
    public var description: String {
        switch code {
        case .invalidString: return "string contains bytes outside 0x20...0x7E"
        case .streamIsReset: return "stream is reset"
        case .invalidResetReason: return "reset reason must be restricted and at most 255 bytes"
        case .producerAlreadyRegistered: return "a producer is already registered"
        case .sendQueueFull: return "send queue limit exceeded; stream reset"
        }
    }
}

/// What an application sees when it decides whether a new stream may be created (``MinervaServerEngine/streamAuthorizer``).
public struct StreamAuthorizationRequest: Sendable {
    /// The hello of the transport that would create the stream (its stream id is a secret: log it redacted).
    public let hello: HelloFrame
    /// The connection: addresses, the HTTP request headers (cookies, `Authorization`, `Origin`; nil for int32 sockets),
    /// the rate-limit key.
    public let connection: ConnectionInfo
    /// HTTP or socket (int32 or WebSocket).
    public let kind: TransportKind

    /// The first value of a request header (case-insensitive name), if the request had headers.
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return connection.requestHeaders?.first { $0.name.lowercased() == lower }?.value
    }
}

/// The engine's limits and timings. Times are seconds.
public struct ServerEngineConfiguration: Sendable {
    /// Receive window limits per stream (original: 50 strings, 1 MiB, estimate 30 + bytes).
    public var receiveWindow = ReceiveWindowLimits.server
    /// Default idle time after which a stream without transports is reset (original: 120).
    public var maxIdleTime: Double = 120
    /// Period of the housekeeping that forgets expired reset ids and rate-limit buckets (original: 60, its idle
    /// check). Above 0, idle streams are also reset as they expire, exactly `maxIdleTime` after their last activity (the
    /// original checked every 60 s, so up to 180 s); 0 or less disables both (call
    /// ``MinervaServerEngine/resetIdleStreams()`` yourself).
    public var idleCheckInterval: Double = 60
    /// The most idle streams reset by one timer run; the rest wait for the next event-loop turn, so that many
    /// streams expiring together do not stall the loop (about 1-3 µs each, plus the application's `streamReset`).
    public var maxIdleResetsPerTurn = 1_000
    /// The most streams at once; a `new` hello beyond it gets `stream_attach_failure`. An endpoint applies it to all
    /// its event loops together (``MinervaStreamBudget``). The default holds a million idle streams (about
    /// 0.6 GB); lower it on a smaller machine.
    public var maxStreams = 1_000_000
    /// The most new streams per second per ``ConnectionInfo/rateLimitKey`` (a token bucket holding one second's
    /// worth); a `new` hello beyond it gets `stream_attach_failure`. 0 disables the limit.
    public var maxNewStreamsPerKeyPerSecond: Double = 100
    /// The most transports attached to one stream; a hello beyond it gets `invalid_frame_type_or_arguments`.
    public var maxTransportsPerStream = 16
    /// The most memory the strings queued for sending on one stream may hold, counted as their bytes plus
    /// ``SendQueue/costPerString`` (80) each; exceeding it resets the stream (PROTOCOL.md 10.13).
    public var maxQueuedBytesPerStream = 16 * 1_048_576
    /// The most memory the strings queued on all streams together may hold, counted the same way. When a string
    /// would exceed it, the stream with the most queued memory (on the engine where it happened) is reset with
    /// `queued memory limit exceeded`, and ``ServerStream/send(_:)-([UInt8])`` throws
    /// ``MinervaStreamError/sendQueueFull`` if that stream is the sender. An endpoint applies it to all its event
    /// loops together (``MinervaQueuedMemoryBudget``). The default, 1 GiB, is 64 streams at the per-stream limit.
    public var maxQueuedBytesTotal = 1 << 30
    /// Seconds after writing `Y` before the engine closes a socket the peer did not close (PROTOCOL.md 10.9).
    public var socketCloseGracePeriod: Double = 30
    /// Seconds a reset stream's id is remembered, so a `new` hello for it fails (PROTOCOL.md 10.18).
    public var resetStreamMemory: Double = 300
    /// Whether HTTP streaming responses are closed gently once they exceed `maxb` (PROTOCOL.md 4.7).
    public var enforceMaxReceiveBytes = true
    /// Whether a transport keeps its HTTP request headers (``ConnectionInfo/requestHeaders``) for its whole life.
    /// Off by default: the engine drops them once the application has seen them (the stream authorizer and
    /// ``MinervaStreamHandler/transportCreated(_:on:)``), so that a long-lived transport (a WebSocket, a held
    /// long-poll) does not hold a copy of its request's headers; ``MinervaStreamHandler/transportDestroyed(_:on:)``
    /// then sees nil. Turn it on to read them later from a transport's ``TransportInfo``.
    public var keepsRequestHeaders = false
    /// The longest frame accepted, in bytes without delimiter or length prefix, on HTTP bodies and sockets; a
    /// longer one kills the transport with `frame_corruption`. The default is also the maximum: the protocol's
    /// 1 MiB (``MinervaCore/maxFrameLength``); the engine clamps other values to 1...1,048,576.
    public var maxFrameLength = MinervaCore.maxFrameLength

    /// The defaults described on each property.
    public init() {}
}

/// A transport the engine killed or a stream it reset because of bad input or a limit: one event for the I/O layer's
/// log (``MinervaServerEngine/rejectionReporter``). It never carries a full stream id.
public struct EngineRejection: Sendable, CustomStringConvertible {
    /// What the engine did.
    public enum Action: Sendable, Equatable {
        /// It wrote a transport kill frame with this reason and ended the transport.
        case transportKilled(KillReason)
        /// It reset the stream with this reason (the send queue limit).
        case streamReset(String)
        /// It refused to create a stream for this reason (the application's authorizer said no).
        case streamRefused(String)
    }

    /// What the engine did.
    public var action: Action
    /// The transport concerned (nil for a stream reset).
    public var transport: TransportHandle?
    /// The peer's address, as the I/O layer gave it in ``ConnectionInfo`` ("" if unknown).
    public var peerAddress: String
    /// The stream's id redacted (``StreamID/redacted``), if the transport named or had a stream.
    public var redactedStreamID: String?
    /// The ``ServerEngineConfiguration`` property whose limit was hit (e.g. `maxStreams`), or nil for a protocol
    /// violation.
    public var limit: String?
    /// A short English explanation.
    public var detail: String

    /// Creates an event.
    public init(
        action: Action, transport: TransportHandle?, peerAddress: String, redactedStreamID: String?, limit: String?,
        detail: String
    ) {
        self.action = action
        self.transport = transport
        self.peerAddress = peerAddress
        self.redactedStreamID = redactedStreamID
        self.limit = limit
        self.detail = detail
    }

    /// The kill reason, or `reset` and the reset reason, then the detail.
    public var description: String {
        switch action {
        case .transportKilled(let reason): return "\(reason.rawValue): \(detail)"
        case .streamReset(let reason): return "reset (\(reason)): \(detail)"
        case .streamRefused(let reason): return "refused (\(reason)): \(detail)"
        }
    }
}
