// Every tunable of the HTTP server in one place.
internal import CShims
import MinervaIO

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

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
    /// talking to the others. At its share, when a new client waits, a loop first closes an idle or slow connection
    /// to make room (see `shedAtConnectionLimit`); when none can be spared it stops accepting (its listen watcher is
    /// off, so new clients wait in the kernel's backlog, bounded by `backlog`) until one of its connections closes.
    /// Reaching the share logs a warning (at most one line per 10 s). The default is the process's open-files limit (`RLIMIT_NOFILE`, soft) minus
    /// ``descriptorReserve(forLimit:)``: 19,000 under a 20,000 limit. A socket listener's connections, files and
    /// listening sockets come out of the reserve; if the process still runs out, accepting backs off for 100 ms.
    public var maxConnections = MinervaHTTPServerConfiguration.defaultMaxConnections

    /// The process's open-files limit minus the reserve (at least 1).
    public static var defaultMaxConnections: Int {
        let limit = openFilesLimit()
        return max(1, limit - descriptorReserve(forLimit: limit))
    }

    /// Descriptors left for everything but HTTP connections under an open-files limit: 5% of it, at least 64
    /// and at most 1,000.
    /// - Parameter limit: the open-files limit.
    /// - Returns: the reserve.
    public static func descriptorReserve(forLimit limit: Int) -> Int {
        min(1_000, max(64, limit / 20))
    }

    /// The number of CPUs this process may run on (its affinity mask, as `nproc` counts; the online CPUs if that
    /// cannot be read). A sensible `threads` for a server whose handlers are written for several loops.
    public static func availableCores() -> Int {
        Int(cshims_available_cpus())
    }

    /// The soft open-files limit of this process (`RLIMIT_NOFILE`; 1,024 if it cannot be read).
    public static func openFilesLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1_024 }
        if limit.rlim_cur > rlim_t(Int32.max) { return Int(Int32.max) }  // RLIM_INFINITY too
        return Int(limit.rlim_cur)
    }

    /// At the connection limit, make room for a waiting client instead of leaving it in the backlog: close the
    /// longest-idle keep-alive connection, or else the connection that has spent the longest (at least
    /// `shedSlowRequestsAfter`) on an unfinished request head or body (with a reset, like nginx's
    /// `reset_timedout_connection`). Connections with a response in progress are never shed; when none can be,
    /// accepting pauses as described under `maxConnections`. Each shed connection logs a rate-limited line.
    public var shedAtConnectionLimit = true
    /// Seconds a connection must have spent on an unfinished request head or body before it may be shed at the
    /// connection limit (so that clients sending at normal speed are not cut off). See `shedAtConnectionLimit`.
    public var shedSlowRequestsAfter = 1.0

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
    /// Largest request body, in bytes; beyond it: 413. A `Content-Length`, or a chunk size that would take a chunked
    /// body past it, is refused as soon as it is read, before the data it announces arrives.
    public var maxBodyBytes = 2 * 1024 * 1024
    /// Most bytes of pipelined input held while a response is in progress (reading pauses beyond it).
    public var maxBufferedInputBytes = 64 * 1024

    /// Seconds allowed to receive a whole request head, counted from its first byte (or from the connection's
    /// start for its first request): a total, not reset by progress (slowloris guard); then 408 and close.
    public var headerTimeout = 10.0
    /// Seconds an idle keep-alive connection stays open waiting for its next request; then it is closed.
    public var idleTimeout = 75.0
    /// Seconds allowed to receive a whole request body, counted from the end of its head: a total, not reset by
    /// progress, so a body trickled byte by byte cannot hold a connection (slow POST guard); then 408 and close.
    /// It implies a minimum upload rate of `maxBodyBytes / bodyTimeout` for the largest body (70 KB/s with the
    /// defaults): raise it if slow clients must upload large bodies.
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
