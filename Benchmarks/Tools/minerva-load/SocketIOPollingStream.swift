// The peer over HTTP long-polling: one Socket.IO client on Engine.IO 4's polling transport, the way the
// socket.io-client browser library speaks it when WebSocket is not used (`transports: ["polling"]`):
//
//   GET  /socket.io/?EIO=4&transport=polling            -> 0{"sid":"…","pingInterval":…}   (the open packet)
//   POST /socket.io/?EIO=4&transport=polling&sid=…  40  -> ok                              (connect to "/")
//   GET  …&sid=… (held until the server has packets)    -> 40{"sid":"…"}, later 42["echo","<n>"], 2 (ping), …
//   POST …&sid=…  42["echo","<n>"]                      -> ok
//
// Packets in one body are separated by 0x1E (the record separator). One GET is always outstanding once the
// session is open (re-issued as soon as one is answered); POSTs are sent one at a time, packets queued meanwhile
// going out together in the next one.

/// A Socket.IO echo client over Engine.IO 4 long-polling, on two keep-alive connections.
final class SocketIOPollingStream {
    private unowned let loop: LoadLoop
    private let stats: LoadStats
    private let host: String
    private let port: UInt16
    private let poll: Connection
    private let post: Connection
    private var sid: [UInt8] = []
    private var connected = false
    private var nextEcho = 0
    private var awaiting: (value: Int, sentAt: UInt64)?
    /// Packets waiting for the POST in flight to be answered.
    private var queued: [[UInt8]] = []
    /// Set when the run ends: nothing more is sent.
    var stopped = false

    /// Creates a client of the Socket.IO server at `host:port`; call `start()` to begin.
    init(loop: LoadLoop, stats: LoadStats, host: String, port: UInt16) {
        self.loop = loop
        self.stats = stats
        self.host = host
        self.port = port
        poll = Connection(loop: loop)
        post = Connection(loop: loop)
        poll.onResponse = { [unowned self] in self.pollAnswered($0) }
        post.onResponse = { [unowned self] in self.postAnswered($0) }
        poll.onFailure = { [unowned self] in self.restart(after: "polling GET connection: \($0)") }
        post.onFailure = { [unowned self] in self.restart(after: "polling POST connection: \($0)") }
    }

    /// Opens a new Engine.IO session (the handshake GET).
    func start() {
        sid = []
        connected = false
        awaiting = nil
        queued = []
        sendGet()
    }

    private func restart(after problem: String) {
        stats.error(problem)
        poll.closeQuietly()
        post.closeQuietly()
        loop.after(nanoseconds: 100_000_000) { [weak self] in
            guard let self, !self.stopped else { return }
            self.start()
        }
    }

    private func target() -> [UInt8] {
        var bytes = Array("/socket.io/?EIO=4&transport=polling".utf8)
        if !sid.isEmpty {
            bytes += Array("&sid=".utf8)
            bytes += sid
        }
        return bytes
    }

    private func sendGet() {
        var request = Array("GET ".utf8) + target()
        request += Array(" HTTP/1.1\r\nHost: \(host):\(port)\r\nUser-Agent: minerva-load\r\nAccept: */*\r\n\r\n".utf8)
        stats.requests += 1
        poll.send(request)
    }

    /// Sends `packet` in a POST now, or with the next POST if one is in flight.
    private func sendPacket(_ packet: [UInt8]) {
        queued.append(packet)
        if post.outstanding == 0 { flushPosts() }
    }

    private func flushPosts() {
        guard !queued.isEmpty else { return }
        var body: [UInt8] = []
        for (index, packet) in queued.enumerated() {
            if index > 0 { body.append(0x1E) }
            body += packet
        }
        queued.removeAll(keepingCapacity: true)
        var request = Array("POST ".utf8) + target()
        request += Array(
            (" HTTP/1.1\r\nHost: \(host):\(port)\r\nUser-Agent: minerva-load\r\nAccept: */*\r\n"
                + "Content-Type: text/plain;charset=UTF-8\r\nContent-Length: ").utf8)
        appendDecimal(&request, body.count)
        request += [13, 10, 13, 10]
        request += body
        stats.requests += 1
        post.send(request)
    }

    private func postAnswered(_ response: HTTPResponse) {
        guard !stopped else { return }
        guard response.status == 200 else {
            restart(after: "POST answered with HTTP \(response.status): \(show(response.body[...]))")
            return
        }
        flushPosts()
    }

    private func pollAnswered(_ response: HTTPResponse) {
        guard !stopped else { return }
        guard response.status == 200 else {
            restart(after: "GET answered with HTTP \(response.status): \(show(response.body[...]))")
            return
        }
        let body = response.body
        var start = 0
        while start < body.count {
            var end = start
            while end < body.count && body[end] != 0x1E { end += 1 }
            if !packet(body[start..<end]) { return }
            start = end + 1
        }
        if !stopped { sendGet() }
    }

    /// Handles one Engine.IO packet; false after a restart.
    private func packet(_ bytes: ArraySlice<UInt8>) -> Bool {
        guard let type = bytes.first else { return true }
        switch type {
        case UInt8(ascii: "0"):
            // 0{"sid":"…",…}: the session; then connect to the default namespace.
            guard let range = quotedValue(after: #""sid":""#, in: bytes) else {
                restart(after: "open packet without a sid: \(show(bytes))")
                return false
            }
            sid = Array(bytes[range])
            sendPacket(Array("40".utf8))
        case UInt8(ascii: "2"):
            sendPacket(Array("3".utf8))  // pong
        case UInt8(ascii: "1"):
            restart(after: "the server closed the session")
            return false
        case UInt8(ascii: "4"):
            let rest = bytes.dropFirst()
            if rest.first == UInt8(ascii: "0") {
                connected = true
                sendNextEcho()
            } else if rest.first == UInt8(ascii: "2") {
                // 42["echo","<n>"]
                let digits = rest.reversed().drop { !(0x30...0x39).contains($0) }.prefix { (0x30...0x39).contains($0) }
                let value = digits.reversed().reduce(0) { $0 * 10 + Int($1 - 0x30) }
                guard let (expected, sentAt) = awaiting, value == expected else {
                    stats.error("unexpected event \(show(bytes))")
                    return true
                }
                awaiting = nil
                if stats.counting {
                    stats.roundTrips += 1
                    if sentAt >= stats.countingSince {
                        stats.latencies.append(UInt32(clamping: (monotonicNanos() &- sentAt) / 1000))
                    }
                }
                sendNextEcho()
            }
        default:
            break  // 6 (noop) and the rest
        }
        return true
    }

    private func sendNextEcho() {
        guard !stopped, connected else { return }
        let value = nextEcho
        nextEcho += 1
        var packet = Array("42[\"echo\",\"".utf8)
        appendDecimal(&packet, value)
        packet += Array("\"]".utf8)
        awaiting = (value, monotonicNanos())
        sendPacket(packet)
    }

    /// The bytes between `prefix` and the next `"` in `bytes`.
    private func quotedValue(after prefix: String, in bytes: ArraySlice<UInt8>) -> Range<Int>? {
        let key = Array(prefix.utf8)
        guard bytes.count >= key.count else { return nil }
        var index = bytes.startIndex
        while index + key.count <= bytes.endIndex {
            if bytes[index..<(index + key.count)].elementsEqual(key) {
                let valueStart = index + key.count
                guard let quote = bytes[valueStart...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
                return valueStart..<quote
            }
            index += 1
        }
        return nil
    }

    private func show(_ bytes: ArraySlice<UInt8>) -> String {
        "\"" + String(decoding: bytes.prefix(200), as: UTF8.self) + "\""
    }
}
