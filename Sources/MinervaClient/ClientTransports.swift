// The two carriers of client transports: an HTTP/1.1 connection that runs one POST at a time (and is kept for
// reuse when the server allows), and a raw TCP connection in Minerva's socket (int32) mode.
@_spi(MinervaTools) import MinervaHTTP
import MinervaIO

/// Receives a client transport's events, on its loop.
protocol ClientTransportDelegate: AnyObject {
    /// Headers arrived (HTTP) or the socket connected.
    func transportStarted(_ number: Int64, status: Int?, contentLength: Int?)
    /// Body (HTTP) or connection (socket) bytes arrived.
    func transportReceived(_ number: Int64, bytes: [UInt8])
    /// The response or connection ended normally.
    func transportFinished(_ number: Int64, status: Int?)
    /// The transport failed; `retryable`: a reused connection closed before any response byte, so the request
    /// may simply be sent again on a new connection.
    func transportFailed(_ number: Int64, retryable: Bool)
    /// An HTTP connection finished its response and may carry another request.
    func connectionIdle(_ connection: HTTPClientConnection)
    /// An idle HTTP connection closed.
    func connectionClosed(_ connection: HTTPClientConnection)
}

/// One HTTP/1.1 connection of a client stream: carries one POST at a time.
final class HTTPClientConnection: MinervaTCPConnectionHandler {
    private weak var delegate: ClientTransportDelegate?
    private var connection: MinervaTCPConnection?
    private let decoder = HTTPResponseDecoder()
    /// The transport whose request is in flight (nil: idle or connecting with nothing to send).
    private(set) var transportNumber: Int64?
    private var pendingRequest: [UInt8]?
    private var status: Int?
    /// Whether any response byte arrived for the current request.
    private var sawResponseBytes = false
    /// Whether this connection already carried a request (a failure before any response byte may then be retried
    /// on a fresh connection: the server may have closed the idle connection just as the request was sent).
    private(set) var wasReused = false
    private var requestsCarried = 0
    private var aborted = false
    /// Events arrived after the response ended within one read.
    private var finishedEarly = false

    /// Connects to `host:port` on `loop`.
    init(loop: MinervaEventLoop, host: String, port: Int, timeout: Double, delegate: ClientTransportDelegate) {
        self.delegate = delegate
        loop.connectTCP(host: host, port: port, timeout: timeout) { [weak self] result in
            guard let self, !self.aborted else {
                if case .success(let connection) = result { connection.abort() }
                return
            }
            switch result {
            case .success(let connection):
                connection.handler = self
                self.connection = connection
                if let request = self.pendingRequest {
                    self.pendingRequest = nil
                    connection.write(request)
                }
            case .failure:
                self.failed()
            }
        }
    }

    /// Whether the connection can take a request now.
    var isIdle: Bool { transportNumber == nil && connection?.isOpen == true }

    /// Sends a request for transport `number` (the connection must be idle or still connecting).
    func send(_ request: [UInt8], transportNumber number: Int64) {
        transportNumber = number
        status = nil
        sawResponseBytes = false
        wasReused = requestsCarried > 0
        requestsCarried += 1
        decoder.reset()
        if let connection {
            connection.write(request)
        } else {
            pendingRequest = request
        }
    }

    /// Aborts the connection (its transport, if any, is not reported).
    func abort() {
        aborted = true
        pendingRequest = nil
        transportNumber = nil
        delegate = nil
        connection?.abort()
        connection = nil
    }

    func connection(_ connection: MinervaTCPConnection, didReceive bytes: UnsafeRawBufferPointer) {
        guard let number = transportNumber else {
            // Bytes on an idle connection: the server broke the protocol; drop the connection.
            connection.abort()
            return
        }
        sawResponseBytes = true
        do {
            try decoder.feed(bytes) { event in
                guard transportNumber == number, let delegate else {
                    finishedEarly = true  // bytes after the response: the server broke the protocol
                    return
                }
                switch event {
                case .head(let status, let contentLength):
                    self.status = status
                    delegate.transportStarted(number, status: status, contentLength: contentLength)
                case .body(let bytes):
                    delegate.transportReceived(number, bytes: Array(bytes))
                case .end(let keepAlive):
                    transportNumber = nil
                    if !keepAlive { self.connection?.close() }
                    delegate.transportFinished(number, status: status)
                    if keepAlive, self.connection?.isOpen == true { self.delegate?.connectionIdle(self) }
                }
            }
        } catch {
            if transportNumber == number {
                transportNumber = nil
                delegate?.transportFailed(number, retryable: false)
            }
            connection.abort()
            return
        }
        if finishedEarly && transportNumber == nil {
            finishedEarly = false
            if connection.isOpen { connection.abort() }
        }
    }

    func connectionDidClose(_ connection: MinervaTCPConnection) {
        self.connection = nil
        if let number = transportNumber {
            transportNumber = nil
            if let end = decoder.connectionClosed(), case .end = end {
                delegate?.transportFinished(number, status: status)
            } else {
                delegate?.transportFailed(number, retryable: wasReused && !sawResponseBytes)
            }
        }
        delegate?.connectionClosed(self)
    }

    private func failed() {
        if let number = transportNumber {
            transportNumber = nil
            delegate?.transportFailed(number, retryable: false)
        }
        delegate?.connectionClosed(self)
    }
}

/// A socket-mode transport: a TCP connection that starts with `<int32/>\n` (already in the first bytes).
final class SocketClientTransport: MinervaTCPConnectionHandler {
    let transportNumber: Int64
    private weak var delegate: ClientTransportDelegate?
    private var connection: MinervaTCPConnection?
    private var pending: [UInt8] = []
    private var closed = false

    /// Connects and writes `firstBytes` once connected.
    init(
        loop: MinervaEventLoop, host: String, port: Int, timeout: Double, transportNumber: Int64, firstBytes: [UInt8],
        delegate: ClientTransportDelegate
    ) {
        self.transportNumber = transportNumber
        self.delegate = delegate
        pending = firstBytes
        loop.connectTCP(host: host, port: port, timeout: timeout) { [weak self] result in
            guard let self, !self.closed else {
                if case .success(let connection) = result { connection.abort() }
                return
            }
            switch result {
            case .success(let connection):
                connection.handler = self
                self.connection = connection
                connection.write(self.pending)
                self.pending = []
                self.delegate?.transportStarted(transportNumber, status: nil, contentLength: nil)
            case .failure:
                self.closed = true
                self.delegate?.transportFailed(transportNumber, retryable: false)
            }
        }
    }

    /// Writes more (already framed) bytes.
    func write(_ bytes: [UInt8]) {
        if let connection { connection.write(bytes) } else { pending += bytes }
    }

    /// Closes the connection (queued output is still written); nothing more is reported.
    func close() {
        closed = true
        delegate = nil
        connection?.close()
    }

    func connection(_ connection: MinervaTCPConnection, didReceive bytes: UnsafeRawBufferPointer) {
        delegate?.transportReceived(transportNumber, bytes: Array(bytes))
    }

    func connectionDidClose(_ connection: MinervaTCPConnection) {
        self.connection = nil
        guard !closed else { return }
        closed = true
        delegate?.transportFinished(transportNumber, status: nil)
    }
}
