// The client's WebSocket transport (PROTOCOL.md 11.1): an RFC 6455 upgrade to `<path>ws` with subprotocol
// `minerva.v2`, then one Minerva frame per text message both ways, framed with MinervaHTTP's WebSocket codec (client
// frames masked). The stream machine speaks length-prefixed frames to it, as to a socket-mode transport.
@_spi(MinervaTools) import MinervaHTTP
import MinervaIO

/// A WebSocket transport of a client stream.
final class WebSocketClientTransport: MinervaTCPConnectionHandler {
    let transportNumber: Int64
    private weak var delegate: ClientTransportDelegate?
    private var connection: MinervaTCPConnection?
    private let request: [UInt8]
    private let expectedAccept: [UInt8]
    /// The response head, until the upgrade is complete.
    private var head: [UInt8] = []
    private var upgraded = false
    /// Length-prefixed frames waiting for the upgrade.
    private var pending: [UInt8]
    private var decoder = MinervaWebSocketFrameDecoder(maxMessageLength: 1_048_576, expectsMaskedFrames: false)
    /// Messages of one read, length-prefixed, handed to the stream together.
    private var inbound: [UInt8] = []
    private var outbound: [UInt8] = []
    private var random = SystemRandomNumberGenerator()
    private var closed = false

    /// The most response-head bytes accepted before the upgrade counts as failed.
    static let maxHeadLength = 16_384

    /// Connects, upgrades, then sends the frames in `firstBytes` (length-prefixed), one message each.
    init(
        loop: MinervaEventLoop, host: String, port: Int, hostHeader: String, path: String, timeout: Double,
        transportNumber: Int64, firstBytes: [UInt8], delegate: ClientTransportDelegate
    ) {
        self.transportNumber = transportNumber
        self.delegate = delegate
        pending = firstBytes
        let key = MinervaWebSocketHandshake.makeKey(using: &random)
        expectedAccept = Array(MinervaWebSocketHandshake.acceptValue(key: key.utf8).utf8)
        request = Array(
            ("GET \(path)ws HTTP/1.1\r\nHost: \(hostHeader)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: minerva.v2\r\n\r\n")
                .utf8)
        loop.connectTCP(host: host, port: port, timeout: timeout) { [weak self] result in
            guard let self, !self.closed else {
                if case .success(let connection) = result { connection.abort() }
                return
            }
            switch result {
            case .success(let connection):
                connection.handler = self
                self.connection = connection
                connection.write(self.request)
            case .failure:
                self.fail()
            }
        }
    }

    /// Sends more length-prefixed frames, one message each (queued until the upgrade is complete).
    func write(_ bytes: [UInt8]) {
        if upgraded { send(bytes) } else { pending += bytes }
    }

    /// Closes with 1000 (queued output is still written); nothing more is reported.
    func close() {
        if closed { return }
        closed = true
        delegate = nil
        if upgraded { writeControl(MinervaWebSocketOpcode.close, [0x03, 0xE8]) }
        connection?.close()
    }

    func connection(_ connection: MinervaTCPConnection, didReceive bytes: UnsafeRawBufferPointer) {
        guard !closed else { return }
        if upgraded {
            decode(bytes)
            return
        }
        head.append(contentsOf: bytes)
        guard let end = headEnd() else {
            if head.count > Self.maxHeadLength { fail() }
            return
        }
        guard acceptsUpgrade(Array(head[..<end])) else {
            fail()
            return
        }
        upgraded = true
        let rest = Array(head[(end + 4)...])
        head = []
        delegate?.transportStarted(transportNumber, status: nil, contentLength: nil)
        guard !closed else { return }
        send(pending)
        pending = []
        if !rest.isEmpty { rest.withUnsafeBytes { decode($0) } }
    }

    func connectionDidClose(_ connection: MinervaTCPConnection) {
        self.connection = nil
        guard !closed else { return }
        closed = true
        let delegate = self.delegate
        self.delegate = nil
        // A WebSocket that ends after the upgrade ends like a socket; before it, the transport failed.
        if upgraded {
            delegate?.transportFinished(transportNumber, status: nil)
        } else {
            delegate?.transportFailed(transportNumber, retryable: false)
        }
    }

    // MARK: Handshake

    private func headEnd() -> Int? {
        guard head.count >= 4 else { return nil }
        for i in 0...(head.count - 4)
        where head[i] == 13 && head[i + 1] == 10 && head[i + 2] == 13 && head[i + 3] == 10 {
            return i
        }
        return nil
    }

    /// Whether the response head is a 101 with the right `Sec-WebSocket-Accept` and no other subprotocol.
    private func acceptsUpgrade(_ head: [UInt8]) -> Bool {
        let lines = head.split(separator: 10, omittingEmptySubsequences: false).map { line in
            line.last == 13 ? Array(line.dropLast()) : Array(line)
        }
        guard let status = lines.first, status.starts(with: Array("HTTP/1.1 101".utf8)) else { return false }
        var accept: [UInt8]?
        var subprotocol: [UInt8]?
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { continue }
            let name = String(decoding: line[..<colon], as: UTF8.self).lowercased()
            let value = Array(String(decoding: line[(colon + 1)...], as: UTF8.self).trimmingSpaces.utf8)
            if name == "sec-websocket-accept" { accept = value }
            if name == "sec-websocket-protocol" { subprotocol = value }
        }
        return accept == expectedAccept && (subprotocol == nil || subprotocol == Array("minerva.v2".utf8))
    }

    // MARK: Frames

    private func decode(_ bytes: UnsafeRawBufferPointer) {
        var failedWith: UInt16?
        var peerClosed: UInt16??
        decoder.feed(bytes) { event in
            switch event {
            case .message(let text, let payload):
                guard text else {
                    failedWith = MinervaWebSocketCloseCode.unsupportedData
                    return false
                }
                let count = UInt32(payload.count)
                for shift in [24, 16, 8, 0] as [UInt32] { inbound.append(UInt8(truncatingIfNeeded: count >> shift)) }
                inbound.append(contentsOf: payload)
            case .ping(let payload):
                writeControl(MinervaWebSocketOpcode.pong, Array(payload))
            case .pong:
                break
            case .close(let code, _):
                peerClosed = .some(code)
                return false
            case .messageTooLong:
                failedWith = MinervaWebSocketCloseCode.messageTooBig
                return false
            case .failure(let code, _):
                failedWith = code
                return false
            }
            return true
        }
        if !inbound.isEmpty {
            let messages = inbound
            inbound.removeAll(keepingCapacity: true)
            delegate?.transportReceived(transportNumber, bytes: messages)
            if closed { return }
        }
        if let code = failedWith {
            // A broken WebSocket: close it and report a failure (the stream counts it as a transport with problems).
            writeControl(MinervaWebSocketOpcode.close, [UInt8(code >> 8), UInt8(code & 0xFF)])
            let delegate = self.delegate
            closed = true
            self.delegate = nil
            connection?.close()
            delegate?.transportFailed(transportNumber, retryable: false)
        } else if let code = peerClosed {
            // The server's close frame: answer it (RFC 6455 5.5.1) and end like a closed socket.
            let payload = code.map { [UInt8($0 >> 8), UInt8($0 & 0xFF)] } ?? []
            writeControl(MinervaWebSocketOpcode.close, payload)
            let delegate = self.delegate
            closed = true
            self.delegate = nil
            connection?.close()
            delegate?.transportFinished(transportNumber, status: nil)
        }
    }

    private func maskKey() -> (UInt8, UInt8, UInt8, UInt8) {
        let r = random.next() as UInt32
        return (
            UInt8(truncatingIfNeeded: r), UInt8(truncatingIfNeeded: r >> 8), UInt8(truncatingIfNeeded: r >> 16),
            UInt8(truncatingIfNeeded: r >> 24)
        )
    }

    /// Sends each length-prefixed frame of `bytes` as one masked text message, all in one write.
    private func send(_ bytes: [UInt8]) {
        guard let connection, !bytes.isEmpty else { return }
        bytes.withUnsafeBytes { raw in
            var i = 0
            while i + 4 <= raw.count {
                let length = Int(raw[i]) << 24 | Int(raw[i + 1]) << 16 | Int(raw[i + 2]) << 8 | Int(raw[i + 3])
                let payload = UnsafeRawBufferPointer(rebasing: raw[(i + 4)..<(i + 4 + length)])
                MinervaWebSocketFrameWriter.append(
                    opcode: MinervaWebSocketOpcode.text, payload: payload, maskKey: maskKey(), to: &outbound)
                i += 4 + length
            }
        }
        connection.write(outbound)
        outbound.removeAll(keepingCapacity: true)
    }

    private func writeControl(_ opcode: UInt8, _ payload: [UInt8]) {
        guard let connection else { return }
        payload.withUnsafeBytes { raw in
            MinervaWebSocketFrameWriter.append(opcode: opcode, payload: raw, maskKey: maskKey(), to: &outbound)
        }
        connection.write(outbound)
        outbound.removeAll(keepingCapacity: true)
    }

    private func fail() {
        guard !closed else { return }
        closed = true
        let delegate = self.delegate
        self.delegate = nil
        connection?.abort()
        connection = nil
        delegate?.transportFailed(transportNumber, retryable: false)
    }
}

extension String {
    fileprivate var trimmingSpaces: Substring {
        var s = self[...]
        while s.first == " " || s.first == "\t" { s.removeFirst() }
        while s.last == " " || s.last == "\t" { s.removeLast() }
        return s
    }
}
