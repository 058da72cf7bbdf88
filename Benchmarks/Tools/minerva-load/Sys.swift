// The only file of minerva-load that touches Glibc directly: non-blocking TCP sockets, epoll and the
// monotonic clock. Everything else works on Swift arrays and integers.
import CEpoll
import Glibc

/// Nanoseconds on the monotonic clock.
func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Nanoseconds on the real-time clock (what the kernel stamps received data with).
func realtimeNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// SO_TIMESTAMPNS (x86-64 and arm64 Linux: 35; Glibc's header defines it through macros Swift does not import).
private let soTimestampNS: Int32 = 35

/// Asks the kernel to stamp data received on `fd` (read with `readSomeStamped`).
func enableReceiveTimestamps(_ fd: Int32) {
    var one: Int32 = 1
    _ = setsockopt(fd, SOL_SOCKET, soTimestampNS, &one, socklen_t(MemoryLayout<Int32>.size))
}

/// Reads once with recvmsg; also returns the kernel's receive timestamp (real-time nanoseconds, 0 if none).
func readSomeStamped(_ fd: Int32, into buffer: inout [UInt8], control: inout [UInt8]) -> (IOResult, UInt64) {
    var stamp: UInt64 = 0
    let count = buffer.withUnsafeMutableBytes { data -> Int in
        control.withUnsafeMutableBytes { controlBytes -> Int in
            var vector = iovec(iov_base: data.baseAddress, iov_len: data.count)
            return withUnsafeMutablePointer(to: &vector) { vectorPointer -> Int in
                var message = msghdr()
                message.msg_iov = vectorPointer
                message.msg_iovlen = 1
                message.msg_control = controlBytes.baseAddress
                message.msg_controllen = controlBytes.count
                let n = recvmsg(fd, &message, 0)
                // One cmsghdr (len: size_t, level: int, type: int), then a timespec (two 8-byte words).
                if n > 0, message.msg_controllen >= 32 {
                    let level = controlBytes.load(fromByteOffset: 8, as: Int32.self)
                    let type = controlBytes.load(fromByteOffset: 12, as: Int32.self)
                    if level == SOL_SOCKET && type == soTimestampNS {
                        let seconds = controlBytes.load(fromByteOffset: 16, as: Int.self)
                        let nanos = controlBytes.load(fromByteOffset: 24, as: Int.self)
                        stamp = UInt64(seconds) * 1_000_000_000 + UInt64(nanos)
                    }
                }
                return n
            }
        }
    }
    if count > 0 { return (.bytes(count), stamp) }
    if count == 0 { return (.endOfFile, 0) }
    let code = errno
    return (code == EAGAIN || code == EWOULDBLOCK || code == EINTR ? .wouldBlock : .failed(code), 0)
}

/// CPU seconds (user + system) this process has used.
func ownCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec)
        + Double(usage.ru_stime.tv_usec) / 1e6
}

/// What a non-blocking read or write did.
enum IOResult {
    /// This many bytes moved (more than zero).
    case bytes(Int)
    /// Nothing can move now (EAGAIN).
    case wouldBlock
    /// The peer closed its side (reads only).
    case endOfFile
    /// A hard error, with errno.
    case failed(Int32)
}

/// A level-triggered epoll set plus one reused event array.
final class Poller {
    private let epfd: Int32
    private var events: [epoll_event]

    /// Creates the epoll instance.
    init(capacity: Int = 1024) {
        epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        precondition(epfd >= 0, "epoll_create1 failed: errno \(errno)")
        events = [epoll_event](repeating: epoll_event(), count: capacity)
    }

    deinit { close(epfd) }

    private func control(_ op: Int32, _ fd: Int32, readable: Bool, writable: Bool) {
        var event = epoll_event()
        var mask: UInt32 = EPOLLRDHUP.rawValue
        if readable { mask |= EPOLLIN.rawValue }
        if writable { mask |= EPOLLOUT.rawValue }
        event.events = mask
        event.data.fd = fd
        _ = epoll_ctl(epfd, op, fd, &event)
    }

    /// Starts watching `fd`.
    func add(_ fd: Int32, readable: Bool, writable: Bool) {
        control(EPOLL_CTL_ADD, fd, readable: readable, writable: writable)
    }

    /// Changes what is watched on `fd`.
    func modify(_ fd: Int32, readable: Bool, writable: Bool) {
        control(EPOLL_CTL_MOD, fd, readable: readable, writable: writable)
    }

    /// Waits up to `timeoutMilliseconds` and calls `handler(fd, readable, writable, hangUp)` per ready fd.
    func wait(timeoutMilliseconds: Int32, _ handler: (Int32, Bool, Bool, Bool) -> Void) {
        let count = events.withUnsafeMutableBufferPointer { buffer in
            epoll_wait(epfd, buffer.baseAddress, Int32(buffer.count), timeoutMilliseconds)
        }
        guard count > 0 else { return }
        for index in 0..<Int(count) {
            let event = events[index]
            let mask = event.events
            let hangUp = mask & (EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0
            handler(event.data.fd, mask & EPOLLIN.rawValue != 0, mask & EPOLLOUT.rawValue != 0, hangUp)
        }
    }
}

/// Ignores SIGPIPE so that writing to a closed socket returns EPIPE instead of killing the process.
func ignoreSIGPIPE() {
    signal(SIGPIPE, SIG_IGN)
}

/// Starts a non-blocking TCP connection to an IPv4 address; returns the fd (connecting, or connected).
func startConnect(host: String, port: UInt16) -> Int32? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { return nil }
    var one: Int32 = 1
    _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
        close(fd)
        return nil
    }
    let result = withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    if result != 0 && errno != EINPROGRESS {
        close(fd)
        return nil
    }
    return fd
}

/// The pending error of a socket (0 once a non-blocking connect has succeeded).
func socketError(_ fd: Int32) -> Int32 {
    var value: Int32 = 0
    var length = socklen_t(MemoryLayout<Int32>.size)
    guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &value, &length) == 0 else { return errno }
    return value
}

/// Reads once into `buffer` (its whole capacity as count); the bytes read are `buffer[0..<n]`.
func readSome(_ fd: Int32, into buffer: inout [UInt8]) -> IOResult {
    let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
    if count > 0 { return .bytes(count) }
    if count == 0 { return .endOfFile }
    let code = errno
    return code == EAGAIN || code == EWOULDBLOCK || code == EINTR ? .wouldBlock : .failed(code)
}

/// Writes once from `bytes[offset...]`.
func writeSome(_ fd: Int32, _ bytes: [UInt8], from offset: Int) -> IOResult {
    let count = bytes.withUnsafeBytes { raw in
        send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
    }
    if count >= 0 { return .bytes(count) }
    let code = errno
    return code == EAGAIN || code == EWOULDBLOCK || code == EINTR ? .wouldBlock : .failed(code)
}

/// Closes a file descriptor.
func closeSocket(_ fd: Int32) {
    close(fd)
}

/// Flushes standard output (the script reads our lines as they come).
func flushOutput() {
    fflush(nil)
}

/// Writes a line to standard error.
func printError(_ text: String) {
    let bytes = Array((text + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

/// Ends the process at once.
func exitProcess(_ code: Int32) -> Never {
    fflush(nil)
    exit(code)
}

/// The contents of a small text file (e.g. under /proc), or nil.
func readTextFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = read(fd, &chunk, chunk.count)
        if n <= 0 { break }
        bytes += chunk[..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}
