// Keep-alive HTTP client connections on one epoll loop, connected on demand with a bounded number of
// connects in flight (so 10,000 connections do not overflow the server's listen backlog).

/// What the loop drives: a socket of its own, connected when the loop grants a connect slot.
protocol LoadClient: AnyObject {
    /// The socket (-1 when not connected).
    var fd: Int32 { get }
    /// Starts the TCP connect (the loop granted a slot).
    func beginConnect()
    /// Handles readiness reported by epoll.
    func handle(readable: Bool, writable: Bool, hangUp: Bool)
}

/// One keep-alive connection: queues requests, writes them, and hands back complete responses.
final class Connection: LoadClient {
    private unowned let loop: LoadLoop
    private(set) var fd: Int32 = -1
    private var connected = false
    private var connecting = false
    private var watchingWritable = false
    private var output: [UInt8] = []
    private var outputOffset = 0
    private var parser = HTTPResponseParser()
    /// Requests queued or written whose response has not arrived.
    private(set) var outstanding = 0
    /// Called with each complete response.
    var onResponse: (HTTPResponse) -> Void = { _ in }
    /// Called once when the connection fails while a response is outstanding (then it is closed).
    var onFailure: (String) -> Void = { _ in }

    /// Creates an unconnected connection; it connects when the first request is sent.
    init(loop: LoadLoop) {
        self.loop = loop
    }

    /// Queues a request and writes it as soon as the connection allows.
    func send(_ request: [UInt8]) {
        output.append(contentsOf: request)
        outstanding += 1
        if fd < 0 && !connecting {
            connecting = true
            loop.requestConnect(self)
        } else if connected {
            flush()
        }
    }

    /// Starts the TCP connect (called by the loop when a connect slot is free).
    func beginConnect() {
        guard connecting, fd < 0 else {
            // Closed while waiting for a connect slot.
            loop.connectFinished()
            return
        }
        guard let newFD = startConnect(host: loop.host, port: loop.port) else {
            connecting = false
            loop.connectFinished()
            fail("connect failed")
            return
        }
        fd = newFD
        watchingWritable = true
        loop.register(self)
    }

    /// Handles readiness reported by epoll.
    func handle(readable: Bool, writable: Bool, hangUp: Bool) {
        if connecting {
            guard writable || hangUp else { return }
            connecting = false
            loop.connectFinished()
            let error = socketError(fd)
            guard error == 0 else {
                fail("connect error \(error)")
                return
            }
            connected = true
            flush()
            if fd < 0 { return }
        }
        if writable && outputOffset < output.count { flush() }
        if fd >= 0 && (readable || hangUp) { receive() }
    }

    private func flush() {
        guard flushOutput(fd, loop, &output, &outputOffset, &watchingWritable) else { return fail("write failed") }
    }

    private func receive() {
        while fd >= 0 {
            switch loop.read(fd) {
            case .bytes(let count):
                do {
                    try parser.append(loop.readBuffer[0..<count])
                } catch {
                    fail("malformed response: \(error.reason)")
                    return
                }
                deliver()
                if count < loop.readBuffer.count { return }
            case .wouldBlock:
                return
            case .endOfFile:
                if outstanding > 0 {
                    fail("connection closed by the server with \(outstanding) request(s) outstanding")
                } else {
                    closeQuietly()
                }
                return
            case .failed(let code):
                fail("read error \(code)")
                return
            }
        }
    }

    private func deliver() {
        while fd >= 0 {
            guard let response = parser.next() else { return }
            outstanding -= 1
            let closing = response.close
            onResponse(response)
            if closing && fd >= 0 {
                if outstanding > 0 {
                    fail("server closed a connection with requests outstanding")
                } else {
                    closeQuietly()
                }
            }
        }
    }

    private func fail(_ reason: String) {
        closeQuietly()
        onFailure(reason)
    }

    /// Closes the socket and forgets queued requests; the next `send` reconnects.
    func closeQuietly() {
        if fd >= 0 {
            if connecting { loop.connectFinished() }
            loop.unregister(fd)
            closeSocket(fd)
        }
        fd = -1
        connected = false
        connecting = false
        output.removeAll(keepingCapacity: true)
        outputOffset = 0
        outstanding = 0
        parser = HTTPResponseParser()
    }
}

/// The epoll loop, the fd table and the connect throttle.
/// Writes `output` from `offset` until all of it is out (then empties it and stops watching for writability) or the
/// socket is full (then watches for writability); false when the write failed. The flush of every generator connection.
func flushOutput(
    _ fd: Int32, _ loop: LoadLoop, _ output: inout [UInt8], _ offset: inout Int, _ watchingWritable: inout Bool
) -> Bool {
    while offset < output.count {
        switch writeSome(fd, output, from: offset) {
        case .bytes(let count):
            offset += count
        case .wouldBlock:
            if !watchingWritable {
                watchingWritable = true
                loop.watch(fd, writable: true)
            }
            return true
        case .endOfFile, .failed:
            return false
        }
    }
    output.removeAll(keepingCapacity: true)
    offset = 0
    if watchingWritable {
        watchingWritable = false
        loop.watch(fd, writable: false)
    }
    return true
}

final class LoadLoop {
    /// The server's IPv4 address.
    let host: String
    /// The server's port.
    let port: UInt16
    /// The one read buffer, reused by every connection.
    private(set) var readBuffer = [UInt8](repeating: 0, count: 65536)
    private let poller = Poller(capacity: 4096)
    private var table: [(any LoadClient)?] = []
    private var waitingToConnect: [any LoadClient] = []
    private var waitingIndex = 0
    private var connectsInFlight = 0
    private let maxConnectsInFlight: Int

    /// Creates a loop talking to `host:port`.
    init(host: String, port: UInt16, maxConnectsInFlight: Int = 128) {
        self.host = host
        self.port = port
        self.maxConnectsInFlight = maxConnectsInFlight
    }

    /// Asks for a connect slot; `connection.beginConnect()` runs now or when a slot frees.
    func requestConnect(_ connection: any LoadClient) {
        if connectsInFlight < maxConnectsInFlight {
            connectsInFlight += 1
            connection.beginConnect()
        } else {
            waitingToConnect.append(connection)
        }
    }

    /// Releases a connect slot and starts the next waiting connect.
    func connectFinished() {
        connectsInFlight -= 1
        while connectsInFlight < maxConnectsInFlight && waitingIndex < waitingToConnect.count {
            let next = waitingToConnect[waitingIndex]
            waitingIndex += 1
            connectsInFlight += 1
            next.beginConnect()
        }
        if waitingIndex == waitingToConnect.count && waitingIndex > 0 {
            waitingToConnect.removeAll(keepingCapacity: true)
            waitingIndex = 0
        }
    }

    /// Adds a connection's fd to the table and to epoll (watching for connect completion).
    func register(_ connection: any LoadClient) {
        let fd = Int(connection.fd)
        if fd >= table.count { table.append(contentsOf: repeatElement(nil, count: fd + 1024 - table.count)) }
        table[fd] = connection
        poller.add(connection.fd, readable: true, writable: true)
    }

    /// Removes an fd from the table (epoll forgets it when it is closed).
    func unregister(_ fd: Int32) {
        if Int(fd) < table.count { table[Int(fd)] = nil }
    }

    /// Watches or stops watching writability of `fd`.
    func watch(_ fd: Int32, writable: Bool) {
        poller.modify(fd, readable: true, writable: writable)
    }

    /// Reads from `fd` into the shared buffer.
    func read(_ fd: Int32) -> IOResult {
        readSome(fd, into: &readBuffer)
    }

    /// The kernel's receive time (real-time nanoseconds) of the last `readStamped`, 0 if it gave none.
    private(set) var lastReadRealtime: UInt64 = 0
    private var control = [UInt8](repeating: 0, count: 64)

    /// Reads from `fd` into the shared buffer, keeping the kernel's receive timestamp (see `enableReceiveTimestamps`).
    func readStamped(_ fd: Int32) -> IOResult {
        let (result, stamp) = readSomeStamped(fd, into: &readBuffer, control: &control)
        lastReadRealtime = stamp
        return result
    }

    private var timers: [(deadline: UInt64, action: () -> Void)] = []

    /// Runs `action` after at least `nanoseconds` (checked after each epoll wait, so coarse).
    func after(nanoseconds: UInt64, _ action: @escaping () -> Void) {
        timers.append((monotonicNanos() + nanoseconds, action))
    }

    /// Runs one epoll wait of at most `timeoutMilliseconds`, dispatches the events, then runs due timers.
    func runOnce(timeoutMilliseconds: Int32) {
        poller.wait(timeoutMilliseconds: timeoutMilliseconds) { fd, readable, writable, hangUp in
            guard Int(fd) < table.count, let connection = table[Int(fd)] else { return }
            connection.handle(readable: readable, writable: writable, hangUp: hangUp)
        }
        guard !timers.isEmpty else { return }
        let now = monotonicNanos()
        let due = timers.filter { $0.deadline <= now }
        guard !due.isEmpty else { return }
        timers.removeAll { $0.deadline <= now }
        for timer in due { timer.action() }
    }
}
