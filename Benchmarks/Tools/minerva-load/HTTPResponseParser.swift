// An incremental HTTP/1.1 response parser: just enough for Minerva's answers (Content-Length or chunked).

/// One complete HTTP response.
struct HTTPResponse {
    /// The status code.
    var status: Int
    /// The body (de-chunked).
    var body: [UInt8]
    /// True when the server said `Connection: close`.
    var close: Bool
    /// True when the response had a Content-Length header.
    var hadContentLength: Bool
}

/// Accumulates bytes and cuts complete responses out of them.
struct HTTPResponseParser {
    /// A response the parser could not understand.
    struct Malformed: Error {
        /// What was wrong.
        var reason: String
    }

    private var buffer: [UInt8] = []
    private var start = 0

    /// True when no partial response is buffered.
    var isEmpty: Bool { start == buffer.count }

    /// Appends received bytes.
    mutating func append(_ bytes: ArraySlice<UInt8>) {
        if start > 0 && start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// Returns the next complete response, or nil if more bytes are needed.
    mutating func next() throws -> HTTPResponse? {
        guard let headerEnd = findHeaderEnd() else {
            if buffer.count - start > 65536 { throw Malformed(reason: "header section over 64 KiB") }
            return nil
        }
        // Status line: "HTTP/1.1 200 OK".
        var index = start
        while index < headerEnd && buffer[index] != UInt8(ascii: " ") { index += 1 }
        var status = 0
        index += 1
        while index < headerEnd, let digit = digitValue(buffer[index]) {
            status = status * 10 + digit
            index += 1
        }
        guard status >= 100 else { throw Malformed(reason: "bad status line") }
        while index < headerEnd && buffer[index] != UInt8(ascii: "\n") { index += 1 }
        index += 1
        var contentLength: Int?
        var chunked = false
        var close = false
        while index < headerEnd {
            var lineEnd = index
            while lineEnd < headerEnd && buffer[lineEnd] != UInt8(ascii: "\n") { lineEnd += 1 }
            var colon = index
            while colon < lineEnd && buffer[colon] != UInt8(ascii: ":") { colon += 1 }
            if colon < lineEnd {
                var valueStart = colon + 1
                while valueStart < lineEnd && buffer[valueStart] == UInt8(ascii: " ") { valueStart += 1 }
                var valueEnd = lineEnd
                while valueEnd > valueStart
                    && (buffer[valueEnd - 1] == UInt8(ascii: "\r") || buffer[valueEnd - 1] == UInt8(ascii: " "))
                {
                    valueEnd -= 1
                }
                if nameEquals(index, colon, "content-length") {
                    var value = 0
                    for position in valueStart..<valueEnd {
                        guard let digit = digitValue(buffer[position]) else {
                            throw Malformed(reason: "bad Content-Length")
                        }
                        value = value * 10 + digit
                    }
                    contentLength = value
                } else if nameEquals(index, colon, "transfer-encoding") {
                    chunked = lowercased(valueStart, valueEnd).contains("chunked")
                } else if nameEquals(index, colon, "connection") {
                    close = lowercased(valueStart, valueEnd) == "close"
                }
            }
            index = lineEnd + 1
        }
        let bodyStart = headerEnd + 4
        if chunked {
            guard let (body, end) = try dechunk(from: bodyStart) else { return nil }
            start = end
            return HTTPResponse(status: status, body: body, close: close, hadContentLength: false)
        }
        let length = contentLength ?? 0
        guard buffer.count - bodyStart >= length else { return nil }
        let body = Array(buffer[bodyStart..<(bodyStart + length)])
        start = bodyStart + length
        compactIfLarge()
        return HTTPResponse(status: status, body: body, close: close, hadContentLength: contentLength != nil)
    }

    private mutating func compactIfLarge() {
        if start > 65536 {
            buffer.removeFirst(start)
            start = 0
        }
    }

    /// Index of the "\r\n\r\n" that ends the header section.
    private func findHeaderEnd() -> Int? {
        var index = start
        let limit = buffer.count - 3
        while index < limit {
            if buffer[index] == 13 && buffer[index + 1] == 10 && buffer[index + 2] == 13 && buffer[index + 3] == 10 {
                return index
            }
            index += 1
        }
        return nil
    }

    private func digitValue(_ byte: UInt8) -> Int? {
        byte >= 48 && byte <= 57 ? Int(byte - 48) : nil
    }

    private func nameEquals(_ from: Int, _ to: Int, _ name: StaticString) -> Bool {
        guard to - from == name.utf8CodeUnitCount else { return false }
        let expected = name.utf8Start
        for offset in 0..<(to - from) {
            var byte = buffer[from + offset]
            if byte >= 65 && byte <= 90 { byte += 32 }
            if byte != expected[offset] { return false }
        }
        return true
    }

    private func lowercased(_ from: Int, _ to: Int) -> String {
        String(decoding: buffer[from..<to].map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }, as: UTF8.self)
    }

    /// Decodes a chunked body starting at `from`; nil if incomplete.
    private func dechunk(from: Int) throws -> ([UInt8], Int)? {
        var body: [UInt8] = []
        var index = from
        while true {
            var size = 0
            var sawDigit = false
            while index < buffer.count {
                let byte = buffer[index]
                let value: Int
                switch byte {
                case 48...57: value = Int(byte - 48)
                case 97...102: value = Int(byte - 87)
                case 65...70: value = Int(byte - 55)
                default: value = -1
                }
                if value < 0 { break }
                size = size * 16 + value
                sawDigit = true
                index += 1
            }
            // Skip chunk extensions up to the end of the line.
            while index < buffer.count && buffer[index] != 10 { index += 1 }
            guard index < buffer.count else { return nil }
            guard sawDigit else { throw Malformed(reason: "bad chunk size") }
            index += 1
            if size == 0 {
                // Trailers (none expected): the final CRLF.
                guard index + 1 < buffer.count else { return nil }
                guard buffer[index] == 13 && buffer[index + 1] == 10 else {
                    throw Malformed(reason: "trailers are not supported")
                }
                return (body, index + 2)
            }
            guard buffer.count - index >= size + 2 else { return nil }
            body.append(contentsOf: buffer[index..<(index + size)])
            index += size + 2
        }
    }
}
