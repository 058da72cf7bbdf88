// A small incremental HTTP/1.1 response parser: status line, headers, then a body framed by Content-Length, by
// chunked transfer coding, or by the connection's end. Body bytes are handed out as they arrive, so a streaming
// response reaches the client state machine without waiting for its end.

/// What the parser found in the bytes it was given, in order.
enum HTTPResponseEvent: Equatable {
    /// The final (non-1xx) response head.
    case head(status: Int, contentLength: Int?)
    /// Body bytes (chunked framing removed).
    case body([UInt8])
    /// The response is complete; `keepAlive` says whether the connection may carry another request.
    case end(keepAlive: Bool)
}

/// Why a response could not be parsed.
struct HTTPResponseParseError: Error, Equatable {
    /// What was wrong.
    let message: String
}

/// Incremental parser of the responses on one connection (one at a time, in order).
struct HTTPResponseParser {
    private enum State {
        case statusLine
        case headers
        case fixedBody(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case untilClose
        case done
    }

    /// The most bytes a head line (or a chunk-size line) may have.
    static let maxLineBytes = 16 * 1024
    /// The most header lines a head may have.
    static let maxHeaderCount = 100

    private var state = State.statusLine
    private var line: [UInt8] = []
    private var status = 0
    private var http10 = false
    private var contentLength: Int?
    private var chunked = false
    private var connectionClose = false
    private var connectionKeepAlive = false
    private var headerCount = 0
    /// True when the request was HEAD (no body follows any head); Minerva only uses POST.
    var requestWasHead = false

    /// Whether the parser is between responses (nothing of a new one seen).
    var isIdle: Bool {
        if case .statusLine = state { return line.isEmpty }
        if case .done = state { return true }
        return false
    }

    /// Whether a head was parsed and its body is still open.
    var inBody: Bool {
        switch state {
        case .fixedBody, .chunkSize, .chunkData, .chunkDataEnd, .trailers, .untilClose: return true
        default: return false
        }
    }

    /// Prepares for the next response on the same connection.
    mutating func reset() {
        state = .statusLine
        line.removeAll(keepingCapacity: true)
        status = 0
        http10 = false
        contentLength = nil
        chunked = false
        connectionClose = false
        connectionKeepAlive = false
        headerCount = 0
    }

    /// The connection ended: returns the `.end` event if that legitimately ends the body (no framing).
    mutating func connectionClosed() -> HTTPResponseEvent? {
        if case .untilClose = state {
            state = .done
            return .end(keepAlive: false)
        }
        return nil
    }

    /// Parses `bytes`; bytes after a complete response are an error (the client sends one request at a time).
    /// - Returns: the events found.
    /// - Throws: ``HTTPResponseParseError`` on malformed input.
    mutating func parse(_ bytes: UnsafeRawBufferPointer) throws(HTTPResponseParseError) -> [HTTPResponseEvent] {
        var events: [HTTPResponseEvent] = []
        var index = 0
        let count = bytes.count
        while index < count {
            switch state {
            case .statusLine, .headers, .chunkSize, .trailers:
                let byte = bytes[index]
                index += 1
                if byte != UInt8(ascii: "\n") {
                    line.append(byte)
                    if line.count > Self.maxLineBytes { throw HTTPResponseParseError(message: "line too long") }
                    continue
                }
                if line.last == UInt8(ascii: "\r") { line.removeLast() }
                try lineComplete(&events)
                line.removeAll(keepingCapacity: true)
            case .fixedBody(let remaining):
                let n = min(remaining, count - index)
                events.append(.body(Array(bytes[index..<(index + n)])))
                index += n
                if n == remaining {
                    finishMessage(&events)
                } else {
                    state = .fixedBody(remaining: remaining - n)
                }
            case .chunkData(let remaining):
                let n = min(remaining, count - index)
                events.append(.body(Array(bytes[index..<(index + n)])))
                index += n
                state = n == remaining ? .chunkDataEnd : .chunkData(remaining: remaining - n)
            case .chunkDataEnd:
                let byte = bytes[index]
                index += 1
                if byte == UInt8(ascii: "\n") {
                    state = .chunkSize
                } else if byte != UInt8(ascii: "\r") {
                    throw HTTPResponseParseError(message: "chunk not followed by CRLF")
                }
            case .untilClose:
                events.append(.body(Array(bytes[index..<count])))
                index = count
            case .done:
                throw HTTPResponseParseError(message: "bytes after the response")
            }
        }
        return events
    }

    private mutating func lineComplete(_ events: inout [HTTPResponseEvent]) throws(HTTPResponseParseError) {
        switch state {
        case .statusLine:
            if line.isEmpty { return }  // tolerate stray CRLF between responses
            try parseStatusLine()
            state = .headers
        case .headers:
            if line.isEmpty {
                try headComplete(&events)
                return
            }
            headerCount += 1
            if headerCount > Self.maxHeaderCount { throw HTTPResponseParseError(message: "too many headers") }
            try parseHeader()
        case .chunkSize:
            var size = 0
            var digits = 0
            for byte in line {
                guard let digit = hexValue(byte) else { break }
                size = size &* 16 &+ digit
                digits += 1
                if digits > 12 { throw HTTPResponseParseError(message: "chunk too large") }
            }
            if digits == 0 { throw HTTPResponseParseError(message: "bad chunk size") }
            state = size == 0 ? .trailers : .chunkData(remaining: size)
        case .trailers:
            if line.isEmpty { finishMessage(&events) }
        default:
            break
        }
    }

    private mutating func parseStatusLine() throws(HTTPResponseParseError) {
        // HTTP/1.x SP 3DIGIT [SP reason]
        let prefix = Array("HTTP/1.".utf8)
        guard line.count >= 12, Array(line[0..<7]) == prefix, line[8] == UInt8(ascii: " ") else {
            throw HTTPResponseParseError(message: "bad status line")
        }
        http10 = line[7] == UInt8(ascii: "0")
        var code = 0
        for byte in line[9..<12] {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else {
                throw HTTPResponseParseError(message: "bad status code")
            }
            code = code * 10 + Int(byte - UInt8(ascii: "0"))
        }
        status = code
    }

    private mutating func parseHeader() throws(HTTPResponseParseError) {
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > 0 else {
            throw HTTPResponseParseError(message: "bad header line")
        }
        let name = String(decoding: line[..<colon], as: UTF8.self).lowercased()
        let value = String(decoding: line[(colon + 1)...], as: UTF8.self)
            .trimmingCharacters(in: " \t").lowercased()
        switch name {
        case "content-length":
            guard let length = Int(value), length >= 0 else {
                throw HTTPResponseParseError(message: "bad Content-Length")
            }
            if let previous = contentLength, previous != length {
                throw HTTPResponseParseError(message: "conflicting Content-Length")
            }
            contentLength = length
        case "transfer-encoding":
            let codings = value.split(separator: ",").map { $0.trimmingCharacters(in: " \t") }
            if codings.last == "chunked" {
                chunked = true
            } else if !codings.isEmpty {
                throw HTTPResponseParseError(message: "unsupported Transfer-Encoding")
            }
        case "connection":
            for token in value.split(separator: ",").map({ $0.trimmingCharacters(in: " \t") }) {
                if token == "close" { connectionClose = true }
                if token == "keep-alive" { connectionKeepAlive = true }
            }
        default:
            break
        }
    }

    private mutating func headComplete(_ events: inout [HTTPResponseEvent]) throws(HTTPResponseParseError) {
        if status >= 100 && status < 200 {
            // An interim response (100 Continue): the real one follows.
            reset()
            return
        }
        events.append(.head(status: status, contentLength: chunked ? nil : contentLength))
        if requestWasHead || status == 204 || status == 304 {
            finishMessage(&events)
        } else if chunked {
            state = .chunkSize
        } else if let length = contentLength {
            if length == 0 { finishMessage(&events) } else { state = .fixedBody(remaining: length) }
        } else {
            state = .untilClose
        }
    }

    private mutating func finishMessage(_ events: inout [HTTPResponseEvent]) {
        let keepAlive = http10 ? connectionKeepAlive && !connectionClose : !connectionClose
        state = .done
        events.append(.end(keepAlive: keepAlive))
    }

    private func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return Int(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return Int(byte - UInt8(ascii: "a")) + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return Int(byte - UInt8(ascii: "A")) + 10
        default: return nil
        }
    }
}

extension String {
    /// The string without leading and trailing characters from `set` (no Foundation).
    fileprivate func trimmingCharacters(in set: String) -> String {
        let characters = Set(set)
        var slice = Substring(self)
        while let first = slice.first, characters.contains(first) { slice.removeFirst() }
        while let last = slice.last, characters.contains(last) { slice.removeLast() }
        return String(slice)
    }
}

extension Substring {
    /// The substring without leading and trailing characters from `set`.
    fileprivate func trimmingCharacters(in set: String) -> String {
        String(self).trimmingCharacters(in: set)
    }
}
