// Outbound raw TCP on an event loop: a non-blocking connect that hands back a `MinervaTCPConnection` (the same output
// machinery as accepted connections). Used by the Swift client (MinervaClient) and by tests.
internal import CShims

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Why an outbound TCP connection could not be made.
public struct MinervaTCPConnectError: Error, Sendable, CustomStringConvertible {
    /// The `errno` value (`ETIMEDOUT` for the connect timeout, `EADDRNOTAVAIL` for an unresolvable host).
    public let errno: Int32
    /// A short explanation.
    public var description: String { "connect failed: \(String(cString: strerror(errno)))" }
}

/// One connect in progress: watches the socket for writability, then checks `SO_ERROR`.
package final class PendingConnect: IOWatcherTarget {
    private let fd: Int32
    private unowned let loop: MinervaEventLoop
    private let options: MinervaTCPConnectionOptions
    private var watcher: IOWatcher?
    private var timer: MinervaLoopTimer?
    private var completion: ((Result<MinervaTCPConnection, MinervaTCPConnectError>) -> Void)?
    /// Keeps the pending connect alive until it completes.
    private var selfReference: PendingConnect?

    init(
        fd: Int32, loop: MinervaEventLoop, options: MinervaTCPConnectionOptions, timeout: Double,
        completion: @escaping (Result<MinervaTCPConnection, MinervaTCPConnectError>) -> Void
    ) {
        self.fd = fd
        self.loop = loop
        self.options = options
        self.completion = completion
        selfReference = self
        watcher = IOWatcher(loop: loop.raw, fd: fd, target: self)
        watcher?.watch(cshims_EV_WRITE())
        timer = loop.schedule(after: timeout) { [unowned self] in self.fail(ETIMEDOUT) }
    }

    private func writable() {
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0 { error = errno }
        if error != 0 {
            fail(error)
            return
        }
        let done = complete()
        done?(.success(MinervaTCPConnection(fd: fd, loop: loop, options: options)))
    }

    private func fail(_ error: Int32) {
        let done = complete()
        _ = cshims_close(fd)
        done?(.failure(MinervaTCPConnectError(errno: error)))
    }

    /// Stops watching and returns the completion (nil if already completed).
    private func complete() -> ((Result<MinervaTCPConnection, MinervaTCPConnectError>) -> Void)? {
        guard let done = completion else { return nil }
        completion = nil
        watcher = nil
        timer?.cancel()
        timer = nil
        loop.releaseLater(self)
        selfReference = nil
        return done
    }
}

extension MinervaEventLoop {
    /// Connects to `host:port` without blocking the loop (name resolution of a non-numeric host does block).
    ///
    /// Call on the loop's thread. The completion runs on the loop, never inside this call; on success the new
    /// connection has TCP_NODELAY set and needs its `handler` set at once.
    /// - Parameters:
    ///   - host: a numeric IPv4/IPv6 address or a host name.
    ///   - port: the port.
    ///   - options: buffering and timeouts of the connection.
    ///   - timeout: seconds before the attempt fails with `ETIMEDOUT`.
    ///   - completion: the connection, or why there is none.
    public func connectTCP(
        host: String, port: Int, options: MinervaTCPConnectionOptions = MinervaTCPConnectionOptions(),
        timeout: Double = 10,
        completion: @escaping (Result<MinervaTCPConnection, MinervaTCPConnectError>) -> Void
    ) {
        cshims_ignore_sigpipe()
        let result = Self.startConnect(host: host, port: port)
        switch result {
        case .failure(let error):
            schedule(after: 0) { completion(.failure(error)) }  // on the loop, never inside this call
        case .success(let fd):
            _ = PendingConnect(fd: fd, loop: self, options: options, timeout: timeout, completion: completion)
        }
    }

    /// Creates a non-blocking socket and starts connecting it; returns the descriptor or the error.
    private static func startConnect(host: String, port: Int) -> Result<Int32, MinervaTCPConnectError> {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else {
            return .failure(MinervaTCPConnectError(errno: EADDRNOTAVAIL))
        }
        defer { freeaddrinfo(list) }
        var lastError = ECONNREFUSED
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let info = entry {
            entry = info.pointee.ai_next
            let type = info.pointee.ai_socktype | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
            let fd = socket(info.pointee.ai_family, type, info.pointee.ai_protocol)
            if fd < 0 {
                lastError = errno
                continue
            }
            var one: Int32 = 1
            _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            if connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 || errno == EINPROGRESS {
                return .success(fd)
            }
            lastError = errno
            _ = cshims_close(fd)
        }
        return .failure(MinervaTCPConnectError(errno: lastError))
    }
}

extension PendingConnect {
    package func ioEvents(_ revents: Int32) { writable() }
}
