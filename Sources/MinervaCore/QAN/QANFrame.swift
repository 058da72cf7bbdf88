// QAN frames (PROTOCOL.md 8): question-answer-notify messages, each carried as one Minerva string.

/// One QAN message. Bodies are slices of the string they were decoded from.
public enum QANFrame: Equatable, Sendable {
    /// `body|qidQ`: a question numbered by the asker.
    case question(body: ArraySlice<UInt8>, qid: Int64)
    /// `body|qidK`: the answer to the asker's question `qid`.
    case okayAnswer(body: ArraySlice<UInt8>, qid: Int64)
    /// `body|qidE`: the question failed with a known error.
    case knownErrorAnswer(body: ArraySlice<UInt8>, qid: Int64)
    /// `body|qidU`: the question failed with an unknown error.
    case unknownErrorAnswer(body: ArraySlice<UInt8>, qid: Int64)
    /// `qidC`: the asker no longer wants the answer.
    case cancellation(qid: Int64)
    /// `body#`: a message that expects no answer.
    case notification(body: ArraySlice<UInt8>)

    /// Decodes a QAN string (PROTOCOL.md 8).
    /// - Parameter string: the Minerva string.
    /// - Returns: the frame, or nil if the string is no QAN frame.
    public static func decode(_ string: ArraySlice<UInt8>) -> QANFrame? {
        guard let type = string.last else { return nil }
        let rest = string[string.startIndex..<(string.endIndex - 1)]
        switch type {
        case UInt8(ascii: "#"):
            return .notification(body: rest)
        case UInt8(ascii: "C"):
            return ProtocolInteger.parseNonNegative(rest).map { .cancellation(qid: $0) }
        case UInt8(ascii: "Q"), UInt8(ascii: "K"), UInt8(ascii: "E"), UInt8(ascii: "U"):
            guard let bar = rest.lastIndex(of: UInt8(ascii: "|")),
                let qid = ProtocolInteger.parseNonNegative(rest[(bar + 1)...])
            else { return nil }
            let body = rest[rest.startIndex..<bar]
            switch type {
            case UInt8(ascii: "Q"): return .question(body: body, qid: qid)
            case UInt8(ascii: "K"): return .okayAnswer(body: body, qid: qid)
            case UInt8(ascii: "E"): return .knownErrorAnswer(body: body, qid: qid)
            default: return .unknownErrorAnswer(body: body, qid: qid)
            }
        default:
            return nil
        }
    }

    /// Appends the QAN string (the body is not validated here).
    /// - Parameter buffer: the output.
    public func encode(into buffer: inout [UInt8]) {
        func bodyAndQid(_ body: ArraySlice<UInt8>, _ qid: Int64, _ type: Unicode.Scalar) {
            buffer.append(contentsOf: body)
            buffer.append(UInt8(ascii: "|"))
            ProtocolInteger.append(qid, to: &buffer)
            buffer.append(UInt8(ascii: type))
        }
        switch self {
        case .question(let body, let qid): bodyAndQid(body, qid, "Q")
        case .okayAnswer(let body, let qid): bodyAndQid(body, qid, "K")
        case .knownErrorAnswer(let body, let qid): bodyAndQid(body, qid, "E")
        case .unknownErrorAnswer(let body, let qid): bodyAndQid(body, qid, "U")
        case .cancellation(let qid):
            ProtocolInteger.append(qid, to: &buffer)
            buffer.append(UInt8(ascii: "C"))
        case .notification(let body):
            buffer.append(contentsOf: body)
            buffer.append(UInt8(ascii: "#"))
        }
    }

    /// The encoded QAN string as a new array.
    public var encoded: [UInt8] {
        var buffer: [UInt8] = []
        encode(into: &buffer)
        return buffer
    }
}
