// The one raw client of the socket tests: a blocking TCP socket whose every wait is bounded, with readers for
// HTTP/1.1 responses (heads, Content-Length, chunked and close-delimited bodies) and socket mode's int32 frames.
import Glibc

/// A response read by ``RawClient``.
package struct HTTPReply {
    package var status: Int
    package var headers: [(String, String)]
    package var body: [UInt8]

    package var text: String { String(decoding: body, as: UTF8.self) }

    /// The first value of header `name` (case-insensitive).
    package func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }
}

/// `GET path` over HTTP/1.1 with `extra` header lines (each ending in CRLF).
package func get(_ path: String, _ extra: String = "") -> String {
    "GET \(path) HTTP/1.1\r\nHost: test\r\n\(extra)\r\n"
}

/// A connected TCP socket to `host:port` (any address family) with TCP_NODELAY, or a negative errno.
package func connectTCP(host: String, port: Int) -> Int32 {
    var hints = addrinfo()
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    hints.ai_flags = AI_NUMERICSERV
    var list: UnsafeMutablePointer<addrinfo>?
    guard getaddrinfo(host, String(port), &hints, &list) == 0 else { return -EADDRNOTAVAIL }
    defer { freeaddrinfo(list) }
    var error = ECONNREFUSED
    var entry = list
    while let info = entry?.pointee {
        let fd = socket(info.ai_family, info.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), info.ai_protocol)
        if fd >= 0 {
            if connect(fd, info.ai_addr, info.ai_addrlen) == 0 {
                // Without it a request sent as head + body waits for the server's delayed ACK (Nagle).
                var one: Int32 = 1
                setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                return fd
            }
            error = errno
            close(fd)
        } else {
            error = errno
        }
        entry = info.ai_next
    }
    return -error
}

/// A blocking client socket: sends time out after `timeout` seconds (SO_SNDTIMEO), reads wait with `poll` for at most
/// the timeout given to each call, or `timeout`.
package final class RawClient {
    package let fd: Int32
    /// What was read and not yet taken.
    package var buffer: [UInt8] = []
    /// Whether the peer closed (EOF) or reset the connection.
    package private(set) var sawEOF = false
    /// The bound of every wait that gives none (seconds).
    package private(set) var timeout: Double

    /// Connects to `host:port`.
    /// - Parameters:
    ///   - timeoutMillis: the default bound of each read and of each send (SO_SNDTIMEO, SO_RCVTIMEO).
    ///   - receiveBuffer: SO_RCVBUF, to provoke backpressure.
    package init(port: Int, host: String = "127.0.0.1", timeoutMillis: Int32 = 5000, receiveBuffer: Int32? = nil)
        throws
    {
        let fd = connectTCP(host: host, port: port)
        guard fd >= 0 else { throw TestError("connect to \(host):\(port) failed: \(fd)") }
        self.fd = fd
        timeout = 5
        setTimeout(millis: timeoutMillis)
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    deinit { Glibc.close(fd) }

    /// Sets the default bound of reads and the socket's send and receive timeouts.
    package func setTimeout(millis: Int32) {
        timeout = Double(millis) / 1000
        var value = timeval(tv_sec: Int(millis / 1000), tv_usec: Int(millis % 1000) * 1000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
    }

    package func send(_ text: String) throws { try send(Array(text.utf8)) }

    /// Sends all of `bytes`; throws when a send fails or times out.
    package func send(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw TestError("send failed: \(n) (errno \(errno))") }
            sent += n
        }
    }

    /// Half-closes the connection (FIN): the server sees EOF, the client can still read.
    package func close() { shutdown(fd, Int32(SHUT_WR)) }

    /// Closes the connection abruptly (RST), now: with SO_LINGER 0 the socket is closed, by putting an unconnected
    /// socket in its descriptor's place (which `deinit` closes). A plain shutdown would send a FIN, a half-close the
    /// server answers in full. Nothing more is read afterwards.
    package func abort() {
        var option = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
        let placeholder = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        if placeholder >= 0 {
            dup2(placeholder, fd)  // closes the connected socket: RST
            Glibc.close(placeholder)
        } else {
            shutdown(fd, Int32(SHUT_RDWR))  // no descriptor to spare: at least end the connection
        }
        sawEOF = true
    }

    /// Reads what arrives within `timeout` seconds (default: the client's). Returns false on timeout or EOF; sets
    /// `sawEOF` on EOF or reset.
    @discardableResult
    package func fill(timeout: Double? = nil) -> Bool {
        if sawEOF { return false }
        var pollFD = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pollFD, 1, Int32((timeout ?? self.timeout) * 1000)) > 0 else { return false }
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
        if n <= 0 {
            sawEOF = true
            return false
        }
        buffer.append(contentsOf: chunk[..<n])
        return true
    }

    /// Waits until `count` bytes are buffered (at most `timeout` seconds in all).
    package func waitFor(_ count: Int, timeout: Double? = nil) throws {
        let deadline = monotonicNow() + (timeout ?? self.timeout)
        while buffer.count < count {
            let left = deadline - monotonicNow()
            guard left > 0, fill(timeout: left) || buffer.count >= count else {
                throw TestError("wanted \(count) bytes, have \(buffer.count) (EOF: \(sawEOF))")
            }
        }
    }

    /// Takes `count` buffered bytes (waiting for them).
    package func take(_ count: Int, timeout: Double? = nil) throws -> [UInt8] {
        try waitFor(count, timeout: timeout)
        defer { buffer.removeFirst(count) }
        return Array(buffer[..<count])
    }

    /// Reads until the peer closes (at most `timeout` seconds); returns and takes everything buffered.
    package func readToEnd(timeout: Double? = nil) throws -> [UInt8] {
        guard waitForClose(within: timeout) else { throw TestError("no EOF; have \(buffer.count) bytes") }
        defer { buffer.removeAll() }
        return buffer
    }

    /// Whether nothing at all arrives within `seconds` (and the connection stays open).
    package func receivesNothing(for seconds: Double) -> Bool {
        buffer.isEmpty && !fill(timeout: seconds) && !sawEOF
    }

    /// Whether the server closes (or resets) the connection within `timeout` seconds; data before the close is kept.
    package func waitForClose(within timeout: Double? = nil) -> Bool {
        let deadline = monotonicNow() + (timeout ?? self.timeout)
        while !sawEOF {
            let left = deadline - monotonicNow()
            if left <= 0 { return false }
            fill(timeout: left)
        }
        return true
    }

    private func takeLine(timeout: Double?) throws -> String {
        let deadline = monotonicNow() + (timeout ?? self.timeout)
        while true {
            if let i = buffer.firstIndex(of: 10) {
                var line = Array(buffer[..<i])
                buffer.removeFirst(i + 1)
                if line.last == 13 { line.removeLast() }
                return String(decoding: line, as: UTF8.self)
            }
            let left = deadline - monotonicNow()
            guard left > 0, fill(timeout: left) else { throw TestError("no complete line (EOF: \(sawEOF))") }
        }
    }

    // MARK: HTTP

    /// Sends a request and reads its response.
    package func request(_ text: String, isHead: Bool = false) throws -> HTTPReply {
        try send(text)
        return try readResponse(isHead: isHead)
    }

    /// Sends a POST to the Minerva endpoint's `io/` with `body`.
    package func post(_ body: [UInt8], path: String = "/_minerva/io/", extraHeaders: String = "") throws {
        try send(
            "POST \(path) HTTP/1.1\r\nHost: test\r\nContent-Type: application/octet-stream\r\n\(extraHeaders)"
                + "Content-Length: \(body.count)\r\n\r\n")
        try send(body)
    }

    /// Sends a POST whose body is `body`'s UTF-8.
    package func post(_ body: String, path: String = "/_minerva/io/", extraHeaders: String = "") throws {
        try post(Array(body.utf8), path: path, extraHeaders: extraHeaders)
    }

    /// Reads a status line and headers.
    package func readHead(timeout: Double? = nil) throws -> (status: Int, headers: [(String, String)]) {
        let statusLine = try takeLine(timeout: timeout)
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw TestError("bad status line: \(statusLine)")
        }
        var headers: [(String, String)] = []
        while true {
            let line = try takeLine(timeout: timeout)
            if line.isEmpty { break }
            guard let colon = line.firstIndex(of: ":") else { throw TestError("bad header: \(line)") }
            headers.append((String(line[..<colon]), String(line[line.index(after: colon)...].drop { $0 == " " })))
        }
        return (status, headers)
    }

    /// Reads one chunk of a chunked body; nil for the last (empty) chunk.
    package func readChunk(timeout: Double? = nil) throws -> [UInt8]? {
        let sizeLine = try takeLine(timeout: timeout)
        guard let size = Int(sizeLine, radix: 16) else { throw TestError("bad chunk size \(sizeLine)") }
        if size == 0 {
            _ = try takeLine(timeout: timeout)
            return nil
        }
        let bytes = try take(size, timeout: timeout)
        _ = try takeLine(timeout: timeout)
        return bytes
    }

    /// Reads chunks until their concatenation has `count` bytes.
    package func readChunks(totalling count: Int, timeout: Double? = nil) throws -> String {
        var body: [UInt8] = []
        while body.count < count {
            guard let chunk = try readChunk(timeout: timeout) else { throw TestError("body ended at \(body.count)") }
            body += chunk
        }
        return String(decoding: body, as: UTF8.self)
    }

    /// Reads one response: head and body framed per the headers (Content-Length, chunked, or up to the close).
    package func readResponse(isHead: Bool = false, timeout: Double? = nil) throws -> HTTPReply {
        let head = try readHead(timeout: timeout)
        var reply = HTTPReply(status: head.status, headers: head.headers, body: [])
        if isHead || reply.status == 304 || reply.status == 204 || reply.status < 200 { return reply }
        if let length = reply.header("Content-Length").flatMap({ Int($0) }) {
            reply.body = try take(length, timeout: timeout)
        } else if reply.header("Transfer-Encoding")?.lowercased() == "chunked" {
            while let chunk = try readChunk(timeout: timeout) { reply.body += chunk }
        } else {
            reply.body = try readToEnd(timeout: timeout)
        }
        return reply
    }

    // MARK: Socket mode (int32)

    /// Sends the int32 mode prefix.
    package func sendModePrefix() throws { try send("<int32/>\n") }

    /// Sends frames, each int32-framed, in one write.
    package func sendFrames(_ frames: [String]) throws { try send(int32Bytes(frames)) }

    /// Reads `count` int32-framed frames.
    package func readFrames(_ count: Int, timeout: Double? = nil) throws -> [String] {
        var frames: [String] = []
        for _ in 0..<count {
            let prefix = try take(4, timeout: timeout)
            let length = prefix.reduce(0) { $0 << 8 | Int($1) }
            frames.append(String(decoding: try take(length, timeout: timeout), as: UTF8.self))
        }
        return frames
    }

    /// Takes the complete int32 frames already buffered (waits for nothing).
    package func takeBufferedFrames() -> [String] {
        var out: [String] = []
        while buffer.count >= 4 {
            let length = buffer[0..<4].reduce(0) { $0 << 8 | Int($1) }
            guard buffer.count >= 4 + length else { break }
            out.append(String(decoding: buffer[4..<(4 + length)], as: UTF8.self))
            buffer.removeFirst(4 + length)
        }
        return out
    }
}
