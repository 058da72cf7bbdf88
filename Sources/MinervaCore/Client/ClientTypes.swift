// The vocabulary of the client stream state machine (PROTOCOL.md 7): its configuration, the transports it asks
// the I/O layer to open, the actions it returns and the errors its application-facing calls throw.

/// How a client reaches the server: the transport the primary uses (PROTOCOL.md 7.1).
public enum ClientEndpointKind: Sendable, Equatable {
    /// HTTP POST with long-poll primaries (`ming:false`), the original compiled client's only mode.
    case httpLongPoll
    /// HTTP POST with streaming primaries (`ming:true`); secondaries are still plain requests.
    case httpStreaming
    /// A TCP connection in int32 mode (`<int32/>\n` then length-prefixed frames): the primary can write
    /// after it started, so there are no secondaries.
    case socket
    /// A WebSocket to `<path>ws` (PROTOCOL.md 11.1), socket semantics: no secondaries.
    case webSocket
    /// WebSocket first; HTTP streaming when the upgrade fails, the socket closes before its first frame or stays
    /// silent, and WebSocket again after ``ClientConfiguration/webSocketRetryDelay`` (doubling after each failure).
    case auto
}

/// What one transport is for.
public enum ClientTransportRole: Sendable, Equatable {
    /// Wants S2C strings (`eeds:null`); there is at most one.
    case primary
    /// Uploads only (no `eeds`); HTTP only, at most one.
    case secondary
    /// Carries the client's ResetFrame (no `eeds`), PROTOCOL.md 7.10.
    case resetting
}

/// How a transport frames its bytes and how long it stays open.
public enum ClientTransportMode: Sendable, Equatable {
    /// One POST whose response ends after the server's first write (`ming:false`).
    case httpLongPoll
    /// One POST whose response stays open and streams frames (`ming:true`).
    case httpStreaming
    /// A TCP connection in int32 mode; the client can keep writing on it.
    case socket
    /// A WebSocket (one frame per text message); the client can keep writing on it.
    case webSocket

    /// Whether this is an HTTP request (frames `\n`-terminated, response starts with the preamble).
    public var isHTTP: Bool { self == .httpLongPoll || self == .httpStreaming }
}

/// Tunables of a client stream; the defaults are the original client's (PROTOCOL.md 7.6).
public struct ClientConfiguration: Sendable {
    /// The endpoint kind.
    public var endpoint: ClientEndpointKind
    /// Whether the endpoint URL is `https://` (a longer request timeout, PROTOCOL.md 7.6).
    public var secure: Bool = false
    /// Seconds a long-poll primary asks the server to hold it open (`maxt`, 25).
    public var longPollDuration: Int64 = 25
    /// Seconds a streaming/socket primary asks to stay open (`maxt`, 3580).
    public var streamingDuration: Int64 = 3580
    /// Heartbeat interval asked of the server on streaming transports (`maxia`, 10 s).
    public var heartbeatInterval: Int = 10
    /// `maxb` sent in every hello (300000).
    public var maxReceiveBytes: Int64 = 300_000
    /// `pad` sent on streaming transports (4096; the server ignores it).
    public var streamingPadding: Int = 4096
    /// Round-trip time guess in seconds (3).
    public var rttGuess: Double = 3
    /// Round-trip variance in seconds (1.5).
    public var rttVariance: Double = 1.5
    /// Download speed guess in bytes per second (3072).
    public var downloadSpeed: Double = 3072
    /// The most the server may lag in seconds (2).
    public var maxServerJank: Double = 2
    /// Delay in seconds before queued strings are sent, so a burst goes in one request (0.006, the original's;
    /// `MinervaClientStream` uses 0: a burst sent in one event-loop turn still goes in one request).
    public var sendCoalescingDelay: Double = 0.006
    /// The most strings the receive window caches above a gap (50).
    public var maxUndeliveredStrings: Int = 50
    /// The most estimated bytes (21 + 2 x length per string) the receive window caches (1048576).
    public var maxUndeliveredBytes: Int = 1_048_576
    /// Whether a non-200 response or a bad preamble counts as "had problems" (backoff): PROTOCOL.md 10.21's
    /// recommendation (true). False reproduces the original: close and replace at once.
    public var badResponseSuggestsDelay: Bool = true
    /// ``ClientEndpointKind/auto``: seconds a WebSocket may take to deliver its first frame before the stream falls
    /// back to HTTP streaming (5; the server writes a heartbeat right after the hello).
    public var webSocketFallbackTimeout: Double = 5
    /// ``ClientEndpointKind/auto``: seconds after a WebSocket failure before WebSocket is tried again (10); doubles
    /// with each failure in a row, up to 32 times.
    public var webSocketRetryDelay: Double = 10

    /// Creates a configuration with the original client's defaults.
    /// - Parameter endpoint: how the client reaches the server.
    public init(endpoint: ClientEndpointKind) {
        self.endpoint = endpoint
    }
}

/// A transport the I/O layer must open.
public struct ClientTransportRequest: Sendable, Equatable {
    /// The transport's number (`tnum`); later events name the transport by it.
    public var transportNumber: Int64
    /// What the transport is for.
    public var role: ClientTransportRole
    /// How it is carried.
    public var mode: ClientTransportMode
    /// The exact bytes to send: for HTTP the whole POST body (hello line and frames, `\n` after each); for a
    /// socket the first bytes to write after connecting (`<int32/>\n` and length-prefixed frames); for a WebSocket
    /// length-prefixed frames (4-byte big-endian length, then the frame), each to be sent as one text message. The
    /// I/O layer hands a WebSocket's received messages to the machine in the same length-prefixed form.
    public var body: [UInt8]
}

/// One thing the I/O layer or the application must do, returned by ``ClientStreamMachine``'s event methods in
/// the order they must happen.
public enum ClientAction: Sendable, Equatable {
    /// Open a transport and send its first bytes.
    case openTransport(ClientTransportRequest)
    /// Write more bytes on an open socket or WebSocket transport (length-prefixed frames, as in the request body).
    case write(transportNumber: Int64, bytes: [UInt8])
    /// Abort or close the transport; the machine has already forgotten it (later events for it are ignored).
    case closeTransport(transportNumber: Int64)
    /// Hand these strings, in order, to the application.
    case deliverStrings([[UInt8]])
    /// The stream was reset (by the peer, by ``ClientStreamMachine/reset(reason:now:)``, or internally).
    case streamReset(reason: [UInt8], applicationLevel: Bool)
    /// The stream is over; no transport is open and no further action will come.
    case disconnected
    /// Call ``ClientStreamMachine/timersDue(now:)`` at this time (seconds, same clock as `now`); nil: no timer.
    case nextDeadline(Double?)
}

/// An error thrown by ``ClientStreamMachine``'s application-facing calls.
public struct ClientStreamError: Error, Hashable, Sendable, CustomStringConvertible {
    private enum Code: Hashable, Sendable {
        case notRestricted, alreadyReset, alreadyStarted, invalidResetReason
    }
    private let code: Code

    /// The string contains a byte outside 0x20...0x7E.
    public static let notRestricted = ClientStreamError(code: .notRestricted)
    /// The stream was already reset or disposed.
    public static let alreadyReset = ClientStreamError(code: .alreadyReset)
    /// `start` was called twice.
    public static let alreadyStarted = ClientStreamError(code: .alreadyStarted)
    /// The reset reason is not restricted or longer than 255 bytes (PROTOCOL.md 10.12).
    public static let invalidResetReason = ClientStreamError(code: .invalidResetReason)

    /// A short explanation.
    public var description: String {
        switch code {
        case .notRestricted: return "string contains a byte outside 0x20...0x7E"
        case .alreadyReset: return "stream already reset or disposed"
        case .alreadyStarted: return "stream already started"
        case .invalidResetReason: return "reset reason must be a restricted string of at most 255 bytes"
        }
    }
}

extension StreamID {
    /// The alphabet of generated ids.
    private static let base36: [UInt8] = Array("0123456789abcdefghijklmnopqrstuvwxyz".utf8)

    /// A new random id of 26 base-36 characters (about 134 bits), PROTOCOL.md 10.16 and 10.17.
    ///
    /// Use a cryptographic generator: `SystemRandomNumberGenerator` (getrandom on Linux) is the default.
    /// - Parameter generator: the random source.
    /// - Returns: an id of exactly 26 characters in `[0-9a-z]`.
    public static func random(using generator: inout some RandomNumberGenerator) -> StreamID {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(26)
        for _ in 0..<26 {
            bytes.append(base36[Int(generator.next(upperBound: UInt8(36)))])
        }
        return StreamID(bytes: bytes)!
    }

    /// A new random id from the system's cryptographic generator (26 base-36 characters).
    /// - Returns: a fresh id.
    public static func random() -> StreamID {
        var generator = SystemRandomNumberGenerator()
        return random(using: &generator)
    }
}
