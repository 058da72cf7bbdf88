// Every tunable of the HTTP server in one place.
import MinervaIO

/// Settings for `MinervaHTTPServer`: address, threads, limits, timeouts and buffering.
public struct MinervaHTTPServerConfiguration: Sendable {
    /// Address to bind (numeric IPv4/IPv6 or a host name).
    public var host = "127.0.0.1"
    /// Port to bind; 0 picks a free one (see `MinervaHTTPServer.localPort`).
    public var port = 8080
    /// listen(2) backlog.
    public var backlog = 1024
    /// Sets SO_REUSEPORT (always set when `threads` > 1: each loop then has its own listening socket).
    public var reusePort = false
    /// Number of event-loop threads.
    public var threads = 1
    /// Install SIGINT/SIGTERM handlers that start a graceful shutdown.
    public var handleSignals = false
    /// Most connections open at once, per server. Each loop enforces its share, `maxConnectionsPerLoop`, without
    /// talking to the others. At its share a loop stops accepting (its listen watcher is off, so new clients wait
    /// in the kernel's backlog, bounded by `backlog`) until one of its connections closes, and logs a warning (at
    /// most one line per 10 s). The default leaves room under a 20,000 open-files limit for the socket listener,
    /// files and the kernel's backlog.
    public var maxConnections = 12_000

    /// The share of `maxConnections` each of the `threads` loops enforces (rounded up, at least 1).
    public var maxConnectionsPerLoop: Int {
        let loops = max(1, threads)
        return max(1, (maxConnections + loops - 1) / loops)
    }

    /// Largest request head (request line and headers), in bytes; beyond it: 431.
    public var maxHeaderBytes = 16 * 1024
    /// Most header lines in a request; beyond it: 431.
    public var maxHeaderCount = 100
    /// Longest request target, in bytes; beyond it: 414.
    public var maxURLBytes = 8 * 1024
    /// Largest request body, in bytes; beyond it: 413.
    public var maxBodyBytes = 2 * 1024 * 1024
    /// Most bytes of pipelined input held while a response is in progress (reading pauses beyond it).
    public var maxBufferedInputBytes = 64 * 1024

    /// Seconds allowed to receive a whole request head (slowloris guard); then 408 and close.
    public var headerTimeout = 10.0
    /// Seconds an idle keep-alive connection stays open.
    public var idleTimeout = 75.0
    /// Seconds without progress while receiving a request body; then 408 and close.
    public var bodyTimeout = 30.0
    /// Seconds without progress while output is blocked; then the connection is closed.
    public var writeTimeout = 30.0
    /// Seconds in-flight responses get to finish after a shutdown starts.
    public var shutdownGracePeriod = 10.0

    /// Buffered output at or above which `MinervaHTTPResponse.isWritable` turns false.
    public var highWaterMark = 256 * 1024
    /// Buffered output at or below which a paused producer hears `onWritable`.
    public var lowWaterMark = 64 * 1024
    /// Size of the per-loop read buffer.
    public var readBufferSize = 64 * 1024
    /// Value of the `Server` header, or nil for none.
    public var serverName: String? = nil

    /// Creates the default configuration.
    public init() {}
}
