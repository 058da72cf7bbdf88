// Encoding and decoding of single frames (PROTOCOL.md 2.1-2.4). Decoding never copies: payloads are slices of
// the input. Encoding appends to the caller's buffer.

extension KillReason {
    /// The reason token as static UTF-8 (no allocation when appended).
    @usableFromInline
    var token: StaticString {
        switch self {
        case .streamAttachFailure: return "stream_attach_failure"
        case .ackedUnsentStrings: return "acked_unsent_strings"
        case .invalidFrameTypeOrArguments: return "invalid_frame_type_or_arguments"
        case .frameCorruption: return "frame_corruption"
        case .rwinOverflow: return "rwin_overflow"
        }
    }

    /// Parses a kill reason token.
    /// - Parameter bytes: the payload of a TransportKillFrame.
    /// - Returns: nil unless the bytes are exactly one of the five tokens.
    public init?(token bytes: ArraySlice<UInt8>) {
        for reason in KillReason.allCases {
            let matches = reason.token.withUTF8Buffer { token in bytes.elementsEqual(token) }
            if matches {
                self = reason
                return
            }
        }
        return nil
    }
}

/// Frame type bytes (the last byte of every frame).
public enum FrameType {
    /// HelloFrame.
    public static let hello = UInt8(ascii: "H")
    /// StringFrame.
    public static let string = UInt8(ascii: " ")
    /// SeqNumFrame.
    public static let seqNum = UInt8(ascii: "N")
    /// SackFrame.
    public static let sack = UInt8(ascii: "A")
    /// StreamStatusFrame.
    public static let streamStatus = UInt8(ascii: "T")
    /// ResetFrame.
    public static let reset = UInt8(ascii: "!")
    /// StreamCreatedFrame.
    public static let streamCreated = UInt8(ascii: "C")
    /// YouCloseItFrame.
    public static let youCloseIt = UInt8(ascii: "Y")
    /// CommentFrame.
    public static let comment = UInt8(ascii: "^")
    /// TransportKillFrame.
    public static let transportKill = UInt8(ascii: "K")
}

extension Frame {
    /// Decodes one frame (without its delimiter or length prefix).
    ///
    /// - Warning: string, comment and reset payloads are slices of `bytes` (they keep its storage alive).
    /// - Parameters:
    ///   - bytes: the frame; its last byte is the type.
    ///   - direction: which frame types are acceptable: a server decodes `.clientToServer` (H, space, N, A, !),
    ///     a client `.serverToClient` (everything but H).
    /// - Returns: the frame, or why it is invalid. Never traps.
    public static func decode(_ bytes: ArraySlice<UInt8>, direction: FrameDirection) -> Result<
        Frame, FrameDecodingError
    > {
        guard let type = bytes.last else { return .failure(.emptyFrame) }
        let payload = bytes[bytes.startIndex..<(bytes.endIndex - 1)]
        let toServer = direction == .clientToServer
        func fail(_ code: FrameDecodingError.Code) -> Result<Frame, FrameDecodingError> {
            .failure(FrameDecodingError(code, frameType: type))
        }
        switch type {
        case FrameType.string:
            return .success(.string(payload))
        case FrameType.seqNum:
            guard let number = ProtocolInteger.parseNonNegative(payload) else { return fail(.invalidSeqNum) }
            return .success(.seqNum(number))
        case FrameType.sack:
            guard let sack = SACK(decoding: payload) else { return fail(.invalidSACK) }
            return .success(.sack(sack))
        case FrameType.reset:
            guard let bar = payload.lastIndex(of: UInt8(ascii: "|")), payload.endIndex - bar == 2 else {
                return fail(.invalidResetFlag)
            }
            let flag = payload[bar + 1]
            guard flag == UInt8(ascii: "0") || flag == UInt8(ascii: "1") else { return fail(.invalidResetFlag) }
            let reason = payload[payload.startIndex..<bar]
            guard RestrictedString.isValidResetReason(reason) else { return fail(.invalidResetReason) }
            return .success(.reset(reason: reason, applicationLevel: flag == UInt8(ascii: "1")))
        case FrameType.hello:
            guard toServer else { return fail(.wrongDirection) }
            switch HelloFrame.decode(json: payload) {
            case .success(let hello): return .success(.hello(hello))
            case .failure(let error):
                return .failure(FrameDecodingError(.invalidHello, frameType: type, hello: error))
            }
        case FrameType.streamStatus, FrameType.streamCreated, FrameType.youCloseIt, FrameType.comment,
            FrameType.transportKill:
            guard !toServer else { return fail(.wrongDirection) }
            switch type {
            case FrameType.streamStatus:
                guard let sack = SACK(decoding: payload) else { return fail(.invalidSACK) }
                return .success(.streamStatus(sack))
            case FrameType.streamCreated:
                return payload.isEmpty ? .success(.streamCreated) : fail(.leadingGarbage)
            case FrameType.youCloseIt:
                return payload.isEmpty ? .success(.youCloseIt) : fail(.leadingGarbage)
            case FrameType.comment:
                return .success(.comment(payload))
            default:
                guard let reason = KillReason(token: payload) else { return fail(.unknownKillReason) }
                return .success(.transportKill(reason))
            }
        default:
            return fail(.unknownFrameType)
        }
    }

    /// The type byte of this frame.
    public var typeByte: UInt8 {
        switch self {
        case .hello: return FrameType.hello
        case .string: return FrameType.string
        case .seqNum: return FrameType.seqNum
        case .sack: return FrameType.sack
        case .streamStatus: return FrameType.streamStatus
        case .reset: return FrameType.reset
        case .streamCreated: return FrameType.streamCreated
        case .youCloseIt: return FrameType.youCloseIt
        case .comment: return FrameType.comment
        case .transportKill: return FrameType.transportKill
        }
    }

    /// Appends the frame's bytes (payload and type byte, no delimiter or length prefix).
    ///
    /// Encoding does not validate: a string, reset reason or comment is written as given (validate reasons with
    /// ``RestrictedString/isValidResetReason(_:)`` first, PROTOCOL.md 10.12).
    /// - Parameter buffer: the output; nothing else is allocated for frames other than hellos.
    public func encode(into buffer: inout [UInt8]) {
        switch self {
        case .hello(let hello):
            hello.encode(into: &buffer)
        case .string(let payload):
            buffer.append(contentsOf: payload)
        case .seqNum(let number):
            ProtocolInteger.append(number, to: &buffer)
        case .sack(let sack), .streamStatus(let sack):
            sack.encode(into: &buffer)
        case .reset(let reason, let applicationLevel):
            buffer.append(contentsOf: reason)
            buffer.append(UInt8(ascii: "|"))
            buffer.append(applicationLevel ? UInt8(ascii: "1") : UInt8(ascii: "0"))
        case .streamCreated, .youCloseIt:
            break
        case .comment(let text):
            buffer.append(contentsOf: text)
        case .transportKill(let reason):
            reason.token.withUTF8Buffer { buffer.append(contentsOf: $0) }
        }
        buffer.append(typeByte)
    }

    /// The encoded frame as a new array (allocates; for tests and one-off frames).
    public var encoded: [UInt8] {
        var buffer: [UInt8] = []
        encode(into: &buffer)
        return buffer
    }
}
