// One server connection driven by hand on the calling thread, over a Unix socket pair: the full request path
// (read, decode, route, respond, writev) with no listener and no threads. For benchmarks and transport tests.
internal import CShims
import Logging
import MinervaIO

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A server-side HTTP connection with its own event loop, run step by step on the calling thread.
///
/// The "client" end is a socket the caller writes requests to and reads responses from. Nothing blocks:
/// call `step()` to let the server side make progress. Connections made with ``init(sharingServerWith:)`` share
/// the first one's loop and router (a browser's two connections to one server).
@_spi(Benchmarks) public final class EmbeddedHTTPConnection {
    private let context: HTTPLoopContext
    private let clientFD: Int32
    private var clientClosed = false
    /// Whether this connection made the loop (and drains it when it goes away).
    private let ownsContext: Bool

    /// Creates the connection.
    /// - Parameters:
    ///   - router: where requests go.
    ///   - configuration: limits, timeouts and buffering (address and thread settings are ignored).
    /// - Throws: `MinervaHTTPServerError` with code `.bindFailed` if no socket pair can be made.
    public init(
        router: MinervaHTTPRouter, configuration: MinervaHTTPServerConfiguration = MinervaHTTPServerConfiguration()
    ) throws {
        var logger = Logger(label: "minerva.embedded")
        logger.logLevel = .error
        let context = HTTPLoopContext(
            configuration: configuration, router: router, logger: logger, server: nil, listening: nil)
        self.context = context
        ownsContext = true
        clientFD = try Self.adoptSocketPair(context)
    }

    /// Creates another connection to the same server: same loop, router and configuration.
    /// - Parameter other: the connection whose server side this one shares; keep it alive as long as this one.
    /// - Throws: `MinervaHTTPServerError` with code `.bindFailed` if no socket pair can be made.
    public init(sharingServerWith other: EmbeddedHTTPConnection) throws {
        context = other.context
        ownsContext = false
        clientFD = try Self.adoptSocketPair(other.context)
    }

    /// Makes a socket pair, hands one end to the server side and returns the client's end.
    private static func adoptSocketPair(_ context: HTTPLoopContext) throws -> Int32 {
        var fds: [Int32] = [-1, -1]
        let rc = fds.withUnsafeMutableBufferPointer { cshims_socketpair($0.baseAddress!) }
        guard rc == 0 else { throw MinervaHTTPServerError(code: .bindFailed, message: "socketpair failed: \(-rc)") }
        cshims_ignore_sigpipe()
        context.adopt(MinervaTCPConnection(fd: fds[0], loop: context.loop, options: context.socketOptions))
        return fds[1]
    }

    deinit {
        if ownsContext {
            context.beginDrain(grace: 0)
            context.loop.runOnce()
        }
        if !clientClosed { _ = cshims_close(clientFD) }
    }

    /// The connection's event loop (drive it with `step()`, not `run()`).
    public var eventLoop: MinervaEventLoop { context.loop }

    /// Whether the server side has closed every connection of this loop.
    public var isServerClosed: Bool { context.connections.isEmpty }

    /// The server side's open connections on this loop (tests look at what they hold).
    package var serverConnections: [HTTPConnection] { context.connections }

    /// Runs ready server-side work without blocking.
    /// - Parameter iterations: how many loop iterations to run.
    public func step(_ iterations: Int = 1) {
        for _ in 0..<iterations { context.loop.runOnce() }
    }

    /// Writes bytes from the client side (as much as the socket buffer takes).
    /// - Returns: the number of bytes written.
    @discardableResult
    public func clientSend(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard let base = bytes.baseAddress, !clientClosed else { return 0 }
        let n = cshims_send(clientFD, base, bytes.count)
        return max(n, 0)
    }

    /// Writes a string from the client side.
    @discardableResult
    public func clientSend(_ text: String) -> Int {
        var text = text
        return text.withUTF8 { clientSend(UnsafeRawBufferPointer($0)) }
    }

    /// Reads what the server has written so far, without blocking.
    /// - Returns: bytes read; 0 if nothing is available; -1 once the server closed and everything was read.
    public func clientReceive(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard let base = buffer.baseAddress, !clientClosed else { return -1 }
        let n = cshims_read(clientFD, base, buffer.count)
        if n > 0 { return n }
        if n == 0 { return -1 }
        return 0
    }

    /// Reads everything available now into an array (convenience for tests).
    public func clientReceiveAll() -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { clientReceive(into: $0) }
            if n <= 0 { return out }
            out += chunk[..<n]
        }
    }

    /// Closes the client side (the server notices at its next read).
    public func clientClose() {
        if clientClosed { return }
        clientClosed = true
        _ = cshims_close(clientFD)
    }
}
