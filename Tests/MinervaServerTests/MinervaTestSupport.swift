// Helpers for the Minerva endpoint tests: a server with the endpoint mounted, a recording stream handler, test
// hellos (PROTOCOL.md 9 notation), and a raw client that reads HTTP heads, bodies, chunks and int32 frames with
// bounded waits.
import CShims
import Glibc
import Logging

@testable import MinervaHTTP
@testable import MinervaIO
@testable import MinervaServer

/// `ID` of PROTOCOL.md 9: 26 times `x`.
let testStreamID = String(repeating: "x", count: 26)

/// A test hello: `HS` (socket) or `HH` (HTTP long-poll) changed by edits `k:v` (set, JSON value) and `-k` (remove).
func hello(_ base: HelloBase, _ edits: String...) -> String {
    var pairs: [(String, String)] = [
        ("tnum", "0"), ("new", "1"), ("ver", "2"), ("id", "\"\(testStreamID)\""), ("ming", "1"),
        ("maxb", "1073741824"), ("maxt", "1073741824"), ("maxia", "0"), ("seenack", "\"|-1\""),
    ]
    func apply(_ edit: String) {
        if edit.hasPrefix("-") {
            pairs.removeAll { $0.0 == String(edit.dropFirst()) }
            return
        }
        let colon = edit.firstIndex(of: ":")!
        let key = String(edit[..<colon])
        let value = String(edit[edit.index(after: colon)...])
        if let index = pairs.firstIndex(where: { $0.0 == key }) {
            pairs[index].1 = value
        } else {
            pairs.append((key, value))
        }
    }
    if base == .http {
        apply("format:2")
        apply("ming:0")
    }
    edits.forEach(apply)
    return "{" + pairs.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}H"
}

/// The two hello flavours of PROTOCOL.md 9.
enum HelloBase { case socket, http }

/// What a recording handler saw, in order (thread-safe).
final class Recording: @unchecked Sendable {
    let events = Shared<[String]>([])
    func add(_ event: String) { events.update { $0.append(event) } }
    var all: [String] { events.get() }
}

/// A stream handler that records its callbacks and can be told to misbehave.
final class RecordingHandler: MinervaStreamHandler {
    let recording: Recording
    var onStarted: ((ServerStream) throws -> Void)?
    var onStrings: (([ArraySlice<UInt8>], ServerStream) -> Void)?

    init(_ recording: Recording) { self.recording = recording }

    func streamStarted(_ stream: ServerStream) throws {
        recording.add("started")
        try onStarted?(stream)
    }

    func stringsReceived(_ strings: [ArraySlice<UInt8>], on stream: ServerStream) {
        recording.add("strings " + strings.map { String(decoding: $0, as: UTF8.self) }.joined(separator: ","))
        onStrings?(strings, stream)
    }

    func streamReset(_ stream: ServerStream, reason: String, applicationLevel: Bool) {
        recording.add("reset \(reason) \(applicationLevel)")
    }

    func transportCreated(_ info: TransportInfo, on stream: ServerStream) {
        recording.add("created \(info.transportNumber)")
    }

    func transportDestroyed(_ info: TransportInfo, on stream: ServerStream) {
        recording.add("destroyed \(info.transportNumber)")
    }
}

/// A server on 127.0.0.1:0 with the Minerva endpoint at `/_minerva/` and, optionally, a socket listener.
final class MinervaTestServer {
    let server: TestServer
    let endpoint: MinervaEndpoint
    let recording = Recording()
    var socketListener: MinervaSocketListener?
    var port: Int { server.port }
    var loop: MinervaEventLoop { server.server.eventLoops[0] }

    /// - Parameters:
    ///   - configure: endpoint settings.
    ///   - socket: whether to start a socket listener.
    ///   - makeHandler: customises the recording handler of each new stream (on the loop).
    ///   - factory: replaces the recording handler entirely.
    init(
        configure: (inout MinervaEndpointConfiguration) -> Void = { _ in }, socket: Bool = false,
        makeHandler: ((RecordingHandler) -> Void)? = nil, factory: MinervaEndpoint.HandlerFactory? = nil
    ) throws {
        var configuration = MinervaEndpointConfiguration()
        configuration.clientScriptPath = nil
        configure(&configuration)
        var logger = Logger(label: "test.minerva")
        logger.logLevel = .critical
        let recording = self.recording
        let endpoint = MinervaEndpoint(
            configuration: configuration, logger: logger,
            handlerFactory: factory ?? { _, _ in
                let handler = RecordingHandler(recording)
                makeHandler?(handler)
                return handler
            })
        self.endpoint = endpoint
        server = try TestServer(routes: { endpoint.mount(on: $0) })
        if socket {
            socketListener = try MinervaSocketListener(endpoint: endpoint, host: "127.0.0.1", port: 0, on: loop)
        }
    }

    func stop() {
        socketListener?.close()
        server.stop(grace: 0.2)
    }

    /// Runs `body` with the loop's engine on the loop thread and returns its result.
    func withEngine<T>(_ body: @escaping (MinervaServerEngine) -> T) -> T? {
        let endpoint = self.endpoint
        let loop = self.loop
        return server.onLoop { body(endpoint.engine(on: loop)) }
    }

    /// Runs `body` with the test stream on the loop thread (nil if it does not exist).
    func withStream<T>(_ body: @escaping (ServerStream) -> T) -> T? {
        withEngine { engine -> T? in
            guard let stream = engine.stream(StreamID(testStreamID)!) else { return nil }
            return body(stream)
        } ?? nil
    }
}

/// A raw blocking client with poll-bounded reads.
final class RawClient {
    let fd: Int32
    var buffer: [UInt8] = []
    private(set) var sawEOF = false

    init(port: Int) throws {
        let fd = cshims_connect_tcp("127.0.0.1", Int32(port))
        guard fd >= 0 else { throw TestError("connect failed: \(fd)") }
        self.fd = fd
    }

    deinit { _ = cshims_close(fd) }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { cshims_send(fd, $0.baseAddress!, $0.count) }
            guard n > 0 else { throw TestError("send failed: \(n)") }
            sent += n
        }
    }

    /// Closes the connection abruptly (RST): with SO_LINGER 0 the socket is closed, by putting an unconnected socket
    /// in its descriptor's place (which `deinit` closes). A plain shutdown would send a FIN, a half-close.
    func abort() {
        var option = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
        let placeholder = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if placeholder >= 0 {
            dup2(placeholder, fd)  // closes the connected socket: RST
            _ = cshims_close(placeholder)
        }
        sawEOF = true
    }

    /// Reads what arrives within `timeout` seconds. Returns false on timeout; sets `sawEOF` on EOF or reset.
    @discardableResult
    func fill(timeout: Double) -> Bool {
        if sawEOF { return false }
        var pollFD = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&pollFD, 1, Int32(timeout * 1000))
        guard ready > 0 else { return false }
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
        if n <= 0 {
            sawEOF = true
            return false
        }
        buffer.append(contentsOf: chunk[..<n])
        return true
    }

    /// Waits until `count` bytes are buffered (at most `timeout` seconds in all).
    func waitFor(_ count: Int, timeout: Double = 5) throws {
        let deadline = monotonicNow() + timeout
        while buffer.count < count {
            let left = deadline - monotonicNow()
            guard left > 0, fill(timeout: left) || buffer.count >= count else {
                throw TestError("wanted \(count) bytes, have \(buffer.count) (EOF: \(sawEOF))")
            }
        }
    }

    /// Takes `count` buffered bytes (waiting for them).
    func take(_ count: Int, timeout: Double = 5) throws -> [UInt8] {
        try waitFor(count, timeout: timeout)
        defer { buffer.removeFirst(count) }
        return Array(buffer[..<count])
    }

    /// Whether nothing at all arrives within `seconds` (and the connection stays open).
    func receivesNothing(for seconds: Double) -> Bool {
        buffer.isEmpty && !fill(timeout: seconds) && !sawEOF
    }

    /// Whether the server closes the connection within `timeout` seconds (data before the close is kept).
    func closedByServer(within timeout: Double) -> Bool {
        let deadline = monotonicNow() + timeout
        while !sawEOF {
            let left = deadline - monotonicNow()
            if left <= 0 { return false }
            fill(timeout: left)
        }
        return true
    }

    private func takeLine(timeout: Double) throws -> String {
        let deadline = monotonicNow() + timeout
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

    /// Sends a POST to the endpoint's `io/` with `body`.
    func post(_ body: [UInt8], path: String = "/_minerva/io/", extraHeaders: String = "") throws {
        try send(
            "POST \(path) HTTP/1.1\r\nHost: test\r\nContent-Type: application/octet-stream\r\n\(extraHeaders)"
                + "Content-Length: \(body.count)\r\n\r\n")
        try send(body)
    }

    /// Sends a POST whose body is `body`'s UTF-8.
    func post(_ body: String, path: String = "/_minerva/io/", extraHeaders: String = "") throws {
        try post(Array(body.utf8), path: path, extraHeaders: extraHeaders)
    }

    /// Reads a status line and headers.
    func readHead(timeout: Double = 5) throws -> (status: Int, headers: [(String, String)]) {
        let statusLine = try takeLine(timeout: timeout)
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else { throw TestError("bad status line \(statusLine)") }
        var headers: [(String, String)] = []
        while true {
            let line = try takeLine(timeout: timeout)
            if line.isEmpty { break }
            let colon = line.firstIndex(of: ":")!
            headers.append((String(line[..<colon]), String(line[line.index(after: colon)...].drop { $0 == " " })))
        }
        return (status, headers)
    }

    /// Reads one chunk of a chunked body; nil for the last (empty) chunk.
    func readChunk(timeout: Double = 5) throws -> [UInt8]? {
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
    func readChunks(totalling count: Int, timeout: Double = 5) throws -> String {
        var body: [UInt8] = []
        while body.count < count {
            guard let chunk = try readChunk(timeout: timeout) else { throw TestError("body ended at \(body.count)") }
            body += chunk
        }
        return String(decoding: body, as: UTF8.self)
    }

    /// Reads a complete response: head and body (Content-Length or chunked).
    func readResponse(timeout: Double = 5) throws -> HTTPReply {
        let head = try readHead(timeout: timeout)
        var reply = HTTPReply(status: head.status, headers: head.headers, body: [])
        if let length = reply.header("Content-Length").flatMap({ Int($0) }) {
            reply.body = try take(length, timeout: timeout)
        } else if reply.header("Transfer-Encoding") == "chunked" {
            while let chunk = try readChunk(timeout: timeout) { reply.body += chunk }
        }
        return reply
    }

    // MARK: Sockets (int32 mode)

    /// Sends the int32 mode prefix.
    func sendModePrefix() throws { try send("<int32/>\n") }

    /// Sends frames, each int32-framed, in one write.
    func sendFrames(_ frames: [String]) throws {
        var bytes: [UInt8] = []
        for frame in frames { bytes += int32Frame(Array(frame.utf8)) }
        try send(bytes)
    }

    /// Reads `count` int32-framed frames.
    func readFrames(_ count: Int, timeout: Double = 5) throws -> [String] {
        var frames: [String] = []
        for _ in 0..<count {
            let prefix = try take(4, timeout: timeout)
            let length = prefix.reduce(0) { $0 << 8 | Int($1) }
            frames.append(String(decoding: try take(length, timeout: timeout), as: UTF8.self))
        }
        return frames
    }
}

/// A response read by ``RawClient``.
struct HTTPReply {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]
    var text: String { String(decoding: body, as: UTF8.self) }
    func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
}

/// `bytes` with its 4-byte big-endian length prefix.
func int32Frame(_ bytes: [UInt8]) -> [UInt8] {
    let n = UInt32(bytes.count)
    return [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + bytes
}
