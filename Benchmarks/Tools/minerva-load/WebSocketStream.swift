// One Minerva stream over one WebSocket (PROTOCOL.md 11.1), the way a WebSocket client drives it: the upgrade, the
// hello as the first message, then echo round trips (each carrying the SACK of the strings received so far), or
// just holding the WebSocket open.

/// A Minerva stream on one WebSocket.
final class WebSocketStream: LoadClient {
    private let mode: LoadMode
    private unowned let loop: LoadLoop
    private let stats: LoadStats
    private let handshake: [UInt8]
    private(set) var fd: Int32 = -1
    private var connecting = false
    private var upgraded = false
    private var watchingWritable = false
    private var output: [UInt8] = []
    private var outputOffset = 0
    /// Received bytes not yet parsed (the 101 head, then server frames).
    private var input: [UInt8] = []
    private var id: [UInt8] = []
    /// Highest S2C sequence number received (strings arrive in order on one transport).
    private var receivedAck = -1
    private var nextEcho = 0
    private var awaiting: (value: Int, sentAt: UInt64)?
    private var mask: [UInt8] = [0x5A, 0x17, 0xC3, 0x80]
    /// True once the stream exists and its WebSocket stays open (hold mode).
    private(set) var holding = false
    /// Set when the run ends: nothing more is sent.
    var stopped = false

    /// Speaks Socket.IO (Engine.IO 4 over WebSocket, an `echo` event) instead of Minerva: the peer benchmark.
    private let socketIO: Bool

    /// Creates a stream; call `start()` to begin.
    init(
        mode: LoadMode, loop: LoadLoop, stats: LoadStats, host: String, port: UInt16, prefix: String,
        socketIO: Bool = false
    ) {
        self.mode = mode
        self.loop = loop
        self.stats = stats
        self.socketIO = socketIO
        let target = socketIO ? "/socket.io/?EIO=4&transport=websocket" : "\(prefix)ws"
        handshake = Array(
            ("GET \(target) HTTP/1.1\r\nHost: \(host):\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                + (socketIO ? "" : "Sec-WebSocket-Protocol: minerva.v2\r\n") + "\r\n").utf8)
    }

    /// Socket.IO: one Engine.IO packet (`0` open, `2` ping, `40` connected, `42[...]` an event).
    private func socketIOPacket(_ bytes: ArraySlice<UInt8>) {
        guard let type = bytes.first else { return }
        switch type {
        case UInt8(ascii: "0"):
            sendMessage(Array("40".utf8))  // connect to the default namespace
        case UInt8(ascii: "2"):
            sendMessage(Array("3".utf8))  // pong
        case UInt8(ascii: "4"):
            let rest = bytes.dropFirst()
            if rest.first == UInt8(ascii: "0") {
                if mode == .echo { sendNextSocketIOEcho() }
                if mode == .hold { holding = true }
            } else if rest.first == UInt8(ascii: "2") {
                // 42["echo","<n>"]
                let digits = rest.reversed().drop { !(0x30...0x39).contains($0) }.prefix { (0x30...0x39).contains($0) }
                let value = digits.reversed().reduce(0) { $0 * 10 + Int($1 - 0x30) }
                guard let (expected, sentAt) = awaiting, value == expected else {
                    stats.error("unexpected event \(String(decoding: bytes, as: UTF8.self))")
                    return
                }
                awaiting = nil
                if stats.counting && sentAt >= stats.countingSince {
                    stats.roundTrips += 1
                    stats.latencies.append(UInt32(min((monotonicNanos() - sentAt) / 1000, UInt64(UInt32.max))))
                }
                if !stopped { sendNextSocketIOEcho() }
            }
        default:
            break
        }
    }

    private func sendNextSocketIOEcho() {
        let value = nextEcho
        nextEcho += 1
        var packet = Array("42[\"echo\",\"".utf8)
        appendDecimal(&packet, value)
        packet += Array("\"]".utf8)
        sendMessage(packet)
        awaiting = (value, monotonicNanos())
        stats.requests += 1
    }

    private static let idAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".utf8)

    /// Begins a fresh stream on a new WebSocket.
    func start() {
        var generator = SystemRandomNumberGenerator()
        id = (0..<24).map { _ in Self.idAlphabet[Int(generator.next() % UInt64(Self.idAlphabet.count))] }
        mask = (0..<4).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        receivedAck = -1
        awaiting = nil
        upgraded = false
        holding = false
        input.removeAll(keepingCapacity: true)
        output = handshake
        outputOffset = 0
        connecting = true
        loop.requestConnect(self)
    }

    func beginConnect() {
        guard connecting, fd < 0 else {
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
        if mode == .fanout { enableReceiveTimestamps(fd) }
        watchingWritable = true
        loop.register(self)
    }

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
            flush()
            if fd < 0 { return }
        }
        if writable && outputOffset < output.count { flush() }
        if fd >= 0 && (readable || hangUp) { receive() }
    }

    // MARK: Writing

    /// Queues one masked text message.
    private func sendMessage(_ text: [UInt8]) {
        output.append(0x81)
        if text.count < 126 {
            output.append(0x80 | UInt8(text.count))
        } else {
            output.append(0x80 | 126)
            output.append(UInt8(text.count >> 8))
            output.append(UInt8(text.count & 0xFF))
        }
        output.append(contentsOf: mask)
        for (i, byte) in text.enumerated() { output.append(byte ^ mask[i & 3]) }
    }

    private func flush() {
        guard flushOutput(fd, loop, &output, &outputOffset, &watchingWritable) else { return fail("write failed") }
    }

    private func sendHello() {
        if socketIO { return }  // Socket.IO: the server speaks first (the open packet)
        var hello = Array(#"{"tnum":0,"ver":2,"new":true,"id":""#.utf8)
        hello += id
        hello += Array(#"","ming":true,"maxia":0,"eeds":null,"seenack":"|-1"}H"#.utf8)
        sendMessage(hello)
        if mode == .echo { sendNextEcho(sack: false) }
        if mode == .fanout { sendMessage(Array("begin_chat ".utf8)) }
        flush()
    }

    /// Broadcaster: sends one `broadcast:<now>` to the chat.
    func broadcastNow() {
        guard upgraded, fd >= 0, !stopped else { return }
        var frame = Array("broadcast:".utf8)
        appendDecimal(&frame, Int(monotonicNanos()))
        frame.append(UInt8(ascii: " "))
        sendMessage(frame)
        stats.requests += 1
        flush()
    }

    /// Fan-out: one chat line `TEXT|<sender>|<nanoseconds>` arrived; acknowledge now and then.
    private func chatLine(_ bytes: ArraySlice<UInt8>) {
        receivedAck += 1
        stats.chatLine(bytes, readAt: loop.lastReadRealtime)
        if receivedAck % 32 == 31 && !stopped {
            var frame: [UInt8] = [UInt8(ascii: "|")]
            appendDecimal(&frame, receivedAck)
            frame.append(UInt8(ascii: "A"))
            sendMessage(frame)
            flush()
        }
    }

    /// Queues the SACK of what was received (so the server can drop it) and the next `echo:<n>`.
    private func sendNextEcho(sack: Bool) {
        if sack {
            var frame: [UInt8] = [UInt8(ascii: "|")]
            appendDecimal(&frame, receivedAck)
            frame.append(UInt8(ascii: "A"))
            sendMessage(frame)
        }
        let value = nextEcho
        nextEcho += 1
        var frame = Array("echo:".utf8)
        appendDecimal(&frame, value)
        frame.append(UInt8(ascii: " "))
        sendMessage(frame)
        awaiting = (value, monotonicNanos())
        stats.requests += 1
    }

    // MARK: Reading

    private func receive() {
        while fd >= 0 {
            switch mode == .fanout ? loop.readStamped(fd) : loop.read(fd) {
            case .bytes(let count):
                input.append(contentsOf: loop.readBuffer[0..<count])
                parse()
                if count < loop.readBuffer.count { return }
            case .wouldBlock:
                return
            case .endOfFile:
                fail("the server closed the WebSocket")
                return
            case .failed(let code):
                fail("read error \(code)")
                return
            }
        }
    }

    private func parse() {
        var at = 0
        if !upgraded {
            guard let end = headEnd() else { return }
            guard input.starts(with: Array("HTTP/1.1 101".utf8)) else {
                fail("upgrade refused: \(String(decoding: input.prefix(40), as: UTF8.self))")
                return
            }
            upgraded = true
            at = end
            sendHello()
            if fd < 0 { return }
        }
        while input.count - at >= 2 {
            let opcode = input[at] & 0x0F
            var length = Int(input[at + 1] & 0x7F)
            var headerLength = 2
            if length == 126 {
                guard input.count - at >= 4 else { break }
                length = Int(input[at + 2]) << 8 | Int(input[at + 3])
                headerLength = 4
            } else if length == 127 {
                guard input.count - at >= 10 else { break }
                length = input[(at + 2)..<(at + 10)].reduce(0) { $0 << 8 | Int($1) }
                headerLength = 10
            }
            guard input.count - at >= headerLength + length else { break }
            let payload = input[(at + headerLength)..<(at + headerLength + length)]
            at += headerLength + length
            switch opcode {
            case 1 where socketIO: socketIOPacket(payload)
            case 1: frame(payload)
            case 8:
                fail(
                    "the server closed the WebSocket (\(length > 1 ? Int(payload.first!) << 8 | Int(payload.dropFirst().first!) : 0))"
                )
                return
            default: break  // pings and pongs
            }
            if fd < 0 { return }
        }
        if at > 0 { input.removeFirst(at) }
        if fd >= 0 && outputOffset < output.count { flush() }
    }

    /// The index after the response head's blank line, if it is complete.
    private func headEnd() -> Int? {
        guard input.count >= 4 else { return nil }
        for i in 3..<input.count where input[i] == 10 && input[i - 1] == 13 && input[i - 2] == 10 && input[i - 3] == 13
        {
            return i + 1
        }
        return nil
    }

    /// One Minerva frame from the server.
    private func frame(_ bytes: ArraySlice<UInt8>) {
        guard let type = bytes.last else { return }
        switch type {
        case UInt8(ascii: "C"):
            if mode != .echo { holding = true }
        case UInt8(ascii: " ") where mode == .fanout:
            chatLine(bytes)
        case UInt8(ascii: " "):
            receivedAck += 1
            guard let (value, sentAt) = awaiting, parseDecimal(bytes.dropLast()) == value else {
                stats.error("unexpected string \(String(decoding: bytes, as: UTF8.self))")
                return
            }
            awaiting = nil
            if stats.counting && sentAt >= stats.countingSince {
                stats.roundTrips += 1
                stats.latencies.append(UInt32(min((monotonicNanos() - sentAt) / 1000, UInt64(UInt32.max))))
            }
            if !stopped { sendNextEcho(sack: true) }
        case UInt8(ascii: "N"):
            if let n = parseDecimal(bytes.dropLast()) { receivedAck = n - 1 }
        case UInt8(ascii: "A"), UInt8(ascii: "T"), UInt8(ascii: "^"):
            break
        default:
            stats.error("unexpected frame \(String(decoding: bytes, as: UTF8.self))")
        }
    }

    private func fail(_ reason: String) {
        if fd >= 0 {
            if connecting { loop.connectFinished() }
            loop.unregister(fd)
            closeSocket(fd)
        }
        fd = -1
        connecting = false
        holding = false
        if stopped { return }
        stats.error(reason)
        start()
    }
}
