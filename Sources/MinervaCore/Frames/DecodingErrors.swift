// Failure values of the frame and hello decoders: small structs wrapping a code, cheap to return and to compare,
// readable in logs. They are returned (inside `Result`), never thrown.

/// Why a frame could not be decoded (PROTOCOL.md 2.4). Every such failure means
/// `invalid_frame_type_or_arguments` on the server and "close the transport" on the client.
public struct FrameDecodingError: Error, Hashable, Sendable, CustomStringConvertible {
    @usableFromInline
    enum Code: UInt8, Sendable {
        case emptyFrame, unknownFrameType, wrongDirection, invalidSeqNum, invalidSACK, leadingGarbage
        case invalidResetFlag, invalidResetReason, unknownKillReason, invalidHello
    }

    @usableFromInline let code: Code
    /// The type byte of the frame (its last byte), or nil for an empty frame.
    public let frameType: UInt8?
    /// Details when the frame was a HelloFrame whose JSON or values were invalid.
    public let hello: HelloDecodingError?

    @usableFromInline
    init(_ code: Code, frameType: UInt8?, hello: HelloDecodingError? = nil) {
        self.code = code
        self.frameType = frameType
        self.hello = hello
    }

    /// A zero-length frame.
    public static let emptyFrame = FrameDecodingError(.emptyFrame, frameType: nil)

    /// Whether the error is of the same kind as `other` (ignoring the type byte and hello details).
    /// - Parameter other: typically one of the kinds below, e.g. `FrameDecodingError.kind(.invalidSACK)`.
    /// - Returns: true if both have the same kind.
    public func isKind(_ other: Kind) -> Bool { code == other.code }

    /// A kind of decoding failure, for tests and metrics.
    public struct Kind: Hashable, Sendable {
        @usableFromInline let code: Code
        /// Zero-length frame.
        public static let emptyFrame = Kind(code: .emptyFrame)
        /// The last byte is no frame type at all.
        public static let unknownFrameType = Kind(code: .unknownFrameType)
        /// A frame type that does not travel in the decoder's direction (e.g. `K` sent to a server).
        public static let wrongDirection = Kind(code: .wrongDirection)
        /// A SeqNumFrame whose number breaks the grammar or exceeds 2^53.
        public static let invalidSeqNum = Kind(code: .invalidSeqNum)
        /// A SackFrame or StreamStatusFrame with an invalid SACK string.
        public static let invalidSACK = Kind(code: .invalidSACK)
        /// Bytes before a one-byte frame (`C`, `Y`).
        public static let leadingGarbage = Kind(code: .leadingGarbage)
        /// A ResetFrame without `|0` or `|1` before the `!`.
        public static let invalidResetFlag = Kind(code: .invalidResetFlag)
        /// A ResetFrame whose reason is not restricted or longer than 255 bytes.
        public static let invalidResetReason = Kind(code: .invalidResetReason)
        /// A TransportKillFrame with an unknown reason.
        public static let unknownKillReason = Kind(code: .unknownKillReason)
        /// A HelloFrame with invalid JSON or values (see `hello`).
        public static let invalidHello = Kind(code: .invalidHello)
    }

    /// The kind of this failure.
    public var kind: Kind { Kind(code: code) }

    /// A short explanation for logs (never contains frame payload).
    public var description: String {
        let type: String
        if let frameType {
            type =
                (0x20...0x7E).contains(frameType)
                ? "'\(Character(Unicode.Scalar(frameType)))'" : "0x" + String(frameType, radix: 16)
        } else {
            type = "none"
        }
        let text: String
        switch code {
        case .emptyFrame: text = "zero-length frame"
        case .unknownFrameType: text = "unknown frame type"
        case .wrongDirection: text = "frame type not accepted in this direction"
        case .invalidSeqNum: text = "invalid sequence number"
        case .invalidSACK: text = "invalid SACK string"
        case .leadingGarbage: text = "leading garbage before a one-byte frame"
        case .invalidResetFlag: text = "reset frame without |0 or |1"
        case .invalidResetReason: text = "reset reason not restricted or longer than 255 bytes"
        case .unknownKillReason: text = "unknown transport kill reason"
        case .invalidHello: text = "invalid hello: " + (hello?.description ?? "?")
        }
        return text + " (type " + type + ")"
    }
}

/// Why a HelloFrame was rejected (PROTOCOL.md 2.5): either its JSON, or the value of one key.
public struct HelloDecodingError: Error, Hashable, Sendable, CustomStringConvertible {
    @usableFromInline
    enum Code: UInt8, Sendable {
        case tooLarge, notAnObject, syntax, tooDeep, invalidUTF8, badEscape, controlCharacter, badNumber
        case trailingGarbage, nonASCIIString, missingKey, invalidValue
    }

    @usableFromInline let code: Code
    /// The key whose value was missing or invalid, if the error is about one key.
    public let key: HelloKey?
    /// Byte offset in the JSON text where a syntax error was found (0 when not applicable).
    public let offset: Int

    @usableFromInline
    init(_ code: Code, key: HelloKey? = nil, offset: Int = 0) {
        self.code = code
        self.key = key
        self.offset = offset
    }

    /// Whether the JSON text itself was bad (as opposed to a key's value).
    public var isJSONError: Bool { code.rawValue < Code.nonASCIIString.rawValue }

    /// A short explanation for logs (never contains hello values: the stream id is a secret).
    public var description: String {
        switch code {
        case .tooLarge: return "JSON text too large"
        case .notAnObject: return "JSON text is not an object"
        case .syntax: return "JSON syntax error at byte \(offset)"
        case .tooDeep: return "JSON nesting too deep at byte \(offset)"
        case .invalidUTF8: return "invalid UTF-8 at byte \(offset)"
        case .badEscape: return "invalid escape at byte \(offset)"
        case .controlCharacter: return "raw control character in string at byte \(offset)"
        case .badNumber: return "invalid or out-of-range number at byte \(offset)"
        case .trailingGarbage: return "trailing garbage at byte \(offset)"
        case .nonASCIIString: return "a top-level string value is not ASCII"
        case .missingKey: return "missing key " + (key.map { $0.name } ?? "?")
        case .invalidValue: return "invalid value for key " + (key.map { $0.name } ?? "?")
        }
    }
}

/// The keys of a HelloFrame, in the order the original client writes them (PROTOCOL.md 2.5, 7.3).
public enum HelloKey: UInt8, CaseIterable, Sendable {
    case tnum, ver, format, new, id, ming, pad, maxb, maxt, maxia, tcpack, eeds, sack, seenack

    /// The JSON key.
    public var name: String {
        switch self {
        case .tnum: return "tnum"
        case .ver: return "ver"
        case .format: return "format"
        case .new: return "new"
        case .id: return "id"
        case .ming: return "ming"
        case .pad: return "pad"
        case .maxb: return "maxb"
        case .maxt: return "maxt"
        case .maxia: return "maxia"
        case .tcpack: return "tcpack"
        case .eeds: return "eeds"
        case .sack: return "sack"
        case .seenack: return "seenack"
        }
    }
}
