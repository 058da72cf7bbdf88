// The shared vocabulary of the Minerva protocol (PROTOCOL.md sections 1 and 2): the types every other
// file of MinervaCore speaks in. Codecs live in Frames/, stream logic in Streams/.

/// 2^53, the largest sequence number, ack number, transport number or qid the protocol allows.
public let maxProtocolInteger: Int64 = 9_007_199_254_740_992

/// The maximum length of one frame, not counting its delimiter or length prefix (PROTOCOL.md 3.1, 3.2).
public let maxFrameLength = 1_048_576

/// A selective acknowledgement: everything up to and including `ackNumber` was received, and so were the
/// sequence numbers in `sackList` (PROTOCOL.md 2.2).
public struct SACK: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// The highest N such that every string 0...N was received; -1 when none was.
    public var ackNumber: Int64
    /// Sequence numbers received above `ackNumber`; encoders emit them ascending.
    public var sackList: [Int64]

    /// The SACK of a window that received nothing: `|-1`.
    public static let initial = SACK(ackNumber: -1, sackList: [])

    /// Creates a SACK.
    /// - Parameters:
    ///   - ackNumber: the highest contiguous sequence number received, or -1.
    ///   - sackList: sequence numbers received out of order above `ackNumber`.
    public init(ackNumber: Int64, sackList: [Int64] = []) {
        self.ackNumber = ackNumber
        self.sackList = sackList
    }

    /// The SACK as it appears on the wire, e.g. `1,4|2` (for logs and tests).
    public var description: String {
        sackList.map { String($0) }.joined(separator: ",") + "|" + String(ackNumber)
    }
}

/// The reason carried by a TransportKillFrame (PROTOCOL.md 2.3). Only the server sends these.
public enum KillReason: String, Sendable, CaseIterable {
    case streamAttachFailure = "stream_attach_failure"
    case ackedUnsentStrings = "acked_unsent_strings"
    case invalidFrameTypeOrArguments = "invalid_frame_type_or_arguments"
    case frameCorruption = "frame_corruption"
    case rwinOverflow = "rwin_overflow"
}

/// What a hello says about `eeds` (succeedsTransport), PROTOCOL.md 2.5.
public enum SucceedsTransport: Equatable, Hashable, Sendable {
    /// The key was absent: the transport does not want S2C strings.
    case absent
    /// `null`: the transport wants strings and claims to succeed nothing.
    case none
    /// A number: the transport wants strings and succeeds the transport with this number.
    case transport(Int64)
}

/// A stream id: 20 to 30 characters in U+0000...U+007F, stored inline (no allocation).
///
/// Stream ids are secrets (anyone who knows one can attach to the stream): log ``redacted``, never the id.
public struct StreamID: Hashable, Sendable {
    /// The shortest valid id.
    public static let minLength = 20
    /// The longest valid id.
    public static let maxLength = 30

    // 32 bytes of inline storage: byte 0 is the length, bytes 1...30 the id, the rest zero.
    // Visible to the inlinable initialiser so that it is specialised in the caller's module: unspecialised, the
    // generic byte loop allocated once per byte.
    @usableFromInline var w0: UInt64 = 0, w1: UInt64 = 0, w2: UInt64 = 0, w3: UInt64 = 0

    /// Creates an id from its bytes.
    /// - Parameter bytes: 20...30 bytes, each in 0x00...0x7F.
    /// - Returns: nil if the length or a byte is out of range.
    @inlinable
    public init?(bytes: some Collection<UInt8>) {
        let count = bytes.count
        guard count >= StreamID.minLength, count <= StreamID.maxLength else { return nil }
        var index = 1
        for byte in bytes {
            guard byte < 0x80 else { return nil }
            set(byte, at: index)
            index += 1
        }
        set(UInt8(count), at: 0)
    }

    /// Creates an id from a string (convenience for clients and tests).
    /// - Parameter string: 20...30 ASCII characters.
    /// - Returns: nil if invalid.
    public init?(_ string: String) {
        self.init(bytes: Array(string.utf8))
    }

    @inlinable
    mutating func set(_ byte: UInt8, at index: Int) {
        let shift = UInt64((index % 8) * 8)
        let value = UInt64(byte) << shift
        switch index / 8 {
        case 0: w0 |= value
        case 1: w1 |= value
        case 2: w2 |= value
        default: w3 |= value
        }
    }

    /// Appends the id's bytes to `buffer` (no allocation beyond the buffer's growth).
    /// - Parameter buffer: the output.
    public func append(to buffer: inout [UInt8]) {
        for index in 0..<count { buffer.append(byte(at: index + 1)) }
    }

    private func byte(at index: Int) -> UInt8 {
        let shift = UInt64((index % 8) * 8)
        switch index / 8 {
        case 0: return UInt8(truncatingIfNeeded: w0 >> shift)
        case 1: return UInt8(truncatingIfNeeded: w1 >> shift)
        case 2: return UInt8(truncatingIfNeeded: w2 >> shift)
        default: return UInt8(truncatingIfNeeded: w3 >> shift)
        }
    }

    /// The number of bytes in the id.
    public var count: Int { Int(byte(at: 0)) }

    /// The id's bytes (allocates: for encoding a hello and for tests, not for lookups).
    public var bytes: [UInt8] { (0..<count).map { byte(at: $0 + 1) } }

    /// A form safe for logs: the first four characters (printable ones only) and the length.
    public var redacted: String {
        let head = (0..<min(4, count)).map { index -> Character in
            let b = byte(at: index + 1)
            return (0x20...0x7E).contains(b) ? Character(Unicode.Scalar(b)) : "?"
        }
        return String(head) + "…(\(count))"
    }
}

/// Which way a frame travels; decoding accepts only the frame types of its direction (PROTOCOL.md 2.1).
public enum FrameDirection: Sendable {
    /// Client to server: hello, string, seqnum, sack, reset.
    case clientToServer
    /// Server to client: everything but hello.
    case serverToClient
}

/// One Minerva frame (PROTOCOL.md 2.3). Payloads are slices of the buffer the frame was decoded from
/// (no copy); a frame built for encoding may use any array slice.
public enum Frame: Equatable, Sendable {
    /// `<json>H`: the first frame of every transport (C2S).
    case hello(HelloFrame)
    /// `<string> `: one application string (validated separately, PROTOCOL.md 1).
    case string(ArraySlice<UInt8>)
    /// `<n>N`: the next StringFrame on this transport carries sequence number n.
    case seqNum(Int64)
    /// `<sack>A`: a selective acknowledgement.
    case sack(SACK)
    /// `<sack>T`: the last SACK the server saw from the client (S2C).
    case streamStatus(SACK)
    /// `<reason>|<0|1>!`: the stream is reset; the reason is restricted, at most 255 bytes.
    case reset(reason: ArraySlice<UInt8>, applicationLevel: Bool)
    /// `C`: the stream was created (S2C).
    case streamCreated
    /// `Y`: the client should close the connection (S2C, sockets only).
    case youCloseIt
    /// `<text>^`: a comment: the HTTP preamble `;)]}` or the heartbeat `beat` (S2C).
    case comment(ArraySlice<UInt8>)
    /// `<reason>K`: the server killed this transport (S2C).
    case transportKill(KillReason)
}

/// The decoded, validated contents of a HelloFrame (PROTOCOL.md 2.5). Defaults are the protocol's.
public struct HelloFrame: Equatable, Sendable {
    /// `tnum`: the client's number for this transport, 0...2^53.
    public var transportNumber: Int64
    /// `ver`: always 2.
    public var protocolVersion: Int = 2
    /// `format`: 2 (XHR) or 3 (HTMLFILE); validated, otherwise ignored.
    public var httpFormat: Int?
    /// `new`: create the stream if it is unknown.
    public var requestNewStream: Bool = false
    /// `id`: the stream id.
    public var streamID: StreamID
    /// `ming`: keep the HTTP response open and stream frames (forced true for sockets).
    public var streamingResponse: Bool
    /// `pad`: 0...16384; stored, never used.
    public var needPaddingBytes: Int = 0
    /// `maxb`: 0...2^53, the most bytes the client wants on one streaming response.
    public var maxReceiveBytes: Int64 = maxProtocolInteger
    /// `maxt`: seconds after which the server closes the transport gently; nil means no limit.
    public var maxOpenTime: Int64?
    /// `maxia`: heartbeat interval in seconds, 0...600; 0 means no heartbeats.
    public var maxInactivity: Int
    /// `tcpack`: ignored by the server; kept when it is a boolean (the original client sends `false`), nil when
    /// absent or not a boolean. Encoded only when non-nil.
    public var useMyTcpAcks: Bool?
    /// `eeds`: whether and what the transport succeeds.
    public var succeedsTransport: SucceedsTransport = .absent
    /// `sack`: SACK of S2C strings, applied before the transport attaches.
    public var sack: SACK?
    /// `seenack`: the last SackFrame the client received.
    public var lastSackSeenByClient: SACK

    /// Whether the transport wants S2C strings (it has `eeds`).
    public var wantsStrings: Bool { succeedsTransport != .absent }

    /// Creates a hello with the required keys and the protocol's defaults for the rest.
    public init(
        transportNumber: Int64, streamID: StreamID, streamingResponse: Bool, maxInactivity: Int,
        lastSackSeenByClient: SACK = .initial
    ) {
        self.transportNumber = transportNumber
        self.streamID = streamID
        self.streamingResponse = streamingResponse
        self.maxInactivity = maxInactivity
        self.lastSackSeenByClient = lastSackSeenByClient
    }
}

extension Array {
    /// The most elements whose storage a per-stream or per-transport list keeps when emptied: a burst (260,000 strings
    /// in one body) must not leave megabytes of capacity with a stream for its life (issue 12, memory amplification).
    static var keptCapacity: Int { 256 }

    /// Removes every element, keeping the storage only if it is small (at most ``keptCapacity`` elements).
    mutating func removeAllKeepingSmallCapacity() {
        removeAll(keepingCapacity: capacity <= Self.keptCapacity)
    }
}
