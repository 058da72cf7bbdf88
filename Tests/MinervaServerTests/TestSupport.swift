// Helpers for socket tests: a server on 127.0.0.1:0 and a small blocking HTTP client with bounded waits.
import CShims
import Glibc
import Logging

@testable import MinervaHTTP
@testable import MinervaIO
@testable import MinervaServer

/// A thread-safe box for values shared between the loop thread and the test.
final class Shared<T>: @unchecked Sendable {
    private var value: T
    private var mutex = pthread_mutex_t()

    init(_ value: T) {
        self.value = value
        pthread_mutex_init(&mutex, nil)
    }

    func get() -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return value
    }

    func update(_ body: (inout T) -> Void) {
        pthread_mutex_lock(&mutex)
        body(&value)
        pthread_mutex_unlock(&mutex)
    }
}

/// Polls `condition` every 5 ms for at most `seconds`; returns whether it became true.
func waitUntil(_ seconds: Double = 5, _ condition: () -> Bool) -> Bool {
    let deadline = monotonicNow() + seconds
    while monotonicNow() < deadline {
        if condition() { return true }
        usleep(5000)
    }
    return condition()
}

func monotonicNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// A started server; call `stop()` in a defer.
final class TestServer {
    let server: MinervaHTTPServer
    let router: MinervaHTTPRouter
    var port: Int { server.localPort }

    init(_ configure: (inout MinervaHTTPServerConfiguration) -> Void = { _ in }, routes: (MinervaHTTPRouter) -> Void)
        throws
    {
        var configuration = MinervaHTTPServerConfiguration()
        configuration.host = "127.0.0.1"
        configuration.port = 0
        configure(&configuration)
        router = MinervaHTTPRouter()
        routes(router)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        server = MinervaHTTPServer(configuration: configuration, router: router, logger: logger)
        try server.start()
    }

    func stop(grace: Double = 0.5) {
        server.shutdown(gracePeriod: grace)
        server.waitUntilStopped()
    }

    /// Runs `body` on the server's (first) loop and waits for its result.
    func onLoop<T>(_ body: @escaping () -> T) -> T? {
        let result = Shared<T?>(nil)
        server.eventLoops[0].execute { result.update { $0 = body() } }
        _ = waitUntil { result.get() != nil }
        return result.get()
    }
}

/// A parsed HTTP response.
struct ClientResponse {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]

    func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    var text: String { String(decoding: body, as: UTF8.self) }
}

/// A blocking HTTP/1.1 client whose every read and write times out.
final class TestClient {
    let fd: Int32
    private var buffer: [UInt8] = []
    private(set) var closedByPeer = false

    init(port: Int, host: String = "127.0.0.1", timeoutMillis: Int32 = 5000, receiveBuffer: Int32? = nil) throws {
        let fd = cshims_connect_tcp(host, Int32(port))
        guard fd >= 0 else { throw TestError("connect failed: \(fd)") }
        self.fd = fd
        _ = cshims_set_timeouts(fd, timeoutMillis)
        if let receiveBuffer { _ = cshims_set_rcvbuf(fd, receiveBuffer) }
    }

    deinit { _ = cshims_close(fd) }

    func close() { _ = cshims_shutdown_write(fd) }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { cshims_send(fd, $0.baseAddress!, $0.count) }
            guard n > 0 else { throw TestError("send failed: \(n)") }
            sent += n
        }
    }

    /// Reads more bytes into the buffer; false on EOF, throws on timeout/error.
    @discardableResult
    func fill(max: Int = 65536) throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: max)
        let n = chunk.withUnsafeMutableBytes { cshims_read(fd, $0.baseAddress!, $0.count) }
        if n == 0 {
            closedByPeer = true
            return false
        }
        guard n > 0 else { throw TestError("read failed or timed out: \(n)") }
        buffer.append(contentsOf: chunk[..<n])
        return true
    }

    /// Reads until the peer closes; returns everything left.
    func readToEnd() throws -> [UInt8] {
        while try fill() {}
        defer { buffer.removeAll() }
        return buffer
    }

    /// True if the server closes the connection (EOF or reset) within the socket timeout.
    func waitForClose() -> Bool {
        while true {
            do {
                if try !fill() { return true }
            } catch {
                return closedByPeer || (error as? TestError)?.message.contains("-104") == true
            }
        }
    }

    private func takeLine() throws -> String {
        while true {
            if let i = buffer.firstIndex(of: 10) {
                var line = Array(buffer[..<i])
                buffer.removeFirst(i + 1)
                if line.last == 13 { line.removeLast() }
                return String(decoding: line, as: UTF8.self)
            }
            guard try fill() else { throw TestError("EOF inside a line") }
        }
    }

    private func take(_ n: Int) throws -> [UInt8] {
        while buffer.count < n {
            guard try fill() else { throw TestError("EOF inside a body") }
        }
        let out = Array(buffer[..<n])
        buffer.removeFirst(n)
        return out
    }

    /// Reads one response (status line, headers, body framed per the headers).
    func readResponse(isHead: Bool = false) throws -> ClientResponse {
        let statusLine = try takeLine()
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw TestError("bad status line: \(statusLine)")
        }
        var headers: [(String, String)] = []
        while true {
            let line = try takeLine()
            if line.isEmpty { break }
            guard let colon = line.firstIndex(of: ":") else { throw TestError("bad header: \(line)") }
            headers.append(
                (String(line[..<colon]), String(line[line.index(after: colon)...].drop { $0 == " " })))
        }
        var response = ClientResponse(status: status, headers: headers, body: [])
        if isHead || status == 304 || status == 204 || status < 200 { return response }
        if let length = response.header("Content-Length").flatMap({ Int($0) }) {
            response.body = try take(length)
        } else if response.header("Transfer-Encoding")?.lowercased() == "chunked" {
            while true {
                let sizeLine = try takeLine()
                guard let size = Int(sizeLine, radix: 16) else { throw TestError("bad chunk size \(sizeLine)") }
                if size == 0 {
                    _ = try takeLine()
                    break
                }
                response.body += try take(size)
                _ = try takeLine()
            }
        } else {
            response.body = try readToEnd()
        }
        return response
    }

    /// Sends a request and reads its response.
    func request(_ text: String, isHead: Bool = false) throws -> ClientResponse {
        try send(text)
        return try readResponse(isHead: isHead)
    }
}

struct TestError: Error, CustomStringConvertible {
    let message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

func get(_ path: String, _ extra: String = "") -> String {
    "GET \(path) HTTP/1.1\r\nHost: test\r\n\(extra)\r\n"
}
