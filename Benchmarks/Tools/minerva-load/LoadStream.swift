// One Minerva stream driven the way the original JavaScript client drives it over HTTP long-poll
// (PROTOCOL.md 7.3, 7.4): a primary long-poll connection that is re-opened as soon as its response
// arrives, and an upload connection for secondaries (hello without `eeds`) carrying C2S strings.

/// Counters and latencies shared by every stream.
final class LoadStats {
    /// Echo round trips completed after the warm-up.
    var roundTrips = 0
    /// Latencies in microseconds of the round trips both begun and completed after the warm-up.
    var latencies: [UInt32] = []
    /// When counting began (monotonic nanoseconds).
    var countingSince: UInt64 = .max
    /// Errors of any kind.
    var errors = 0
    /// HTTP requests sent.
    var requests = 0
    /// Long-poll primaries answered while held (hold mode; e.g. `maxt` expiry), then re-opened.
    var reopened = 0
    /// True while round trips are being counted.
    var counting = false
    /// Fan-out: broadcasts received, and their delivery latencies in microseconds (sent by the broadcaster, stamped with
    /// the monotonic clock that the whole machine shares).
    var delivered = 0
    var deliveryLatencies: [UInt32] = []
    /// Paced echo: per second of measurement, the round trips, those over 10 ms, the slowest, and the latest a send
    /// went out after it was due (the generator's own lag), in microseconds.
    var timeline: [(count: Int, slow: Int, maxMicros: UInt32, sendLagMicros: UInt32)] = []
    /// Paced echo: latencies measured from when each string actually went out (not from when it was due), in
    /// microseconds: the server's and the kernel's share, without the generator's own lag.
    var fromSendLatencies: [UInt32] = []
    /// Fan-out: for the same strings, microseconds from the broadcaster's stamp to the kernel's receive timestamp of
    /// the read that carried them (SO_TIMESTAMPNS): the server's share; the rest is the generator's.
    var socketLatencies: [UInt32] = []
    /// CLOCK_REALTIME minus CLOCK_MONOTONIC, in nanoseconds (the kernel stamps receptions in real time).
    let realtimeOffset: Int64 = Int64(bitPattern: realtimeNanos() &- monotonicNanos())
    private var printedErrors = 0

    /// The timeline entry of the second `now` falls in (nil before counting began).
    func second(_ now: UInt64) -> Int? {
        guard counting, now >= countingSince else { return nil }
        let index = Int((now - countingSince) / 1_000_000_000)
        while timeline.count <= index { timeline.append((0, 0, 0, 0)) }
        return index
    }

    /// Creates empty statistics.
    init() {}

    /// Fan-out: one chat line `TEXT|<sender>|<monotonic nanoseconds> ` arrived in a read the kernel stamped at
    /// `readAt` (real-time nanoseconds; 0: unknown).
    func chatLine(_ bytes: ArraySlice<UInt8>, readAt: UInt64) {
        guard let bar = bytes.lastIndex(of: UInt8(ascii: "|")), let sent = parseDecimal(bytes[(bar + 1)...].dropLast())
        else { return }
        delivered += 1
        let now = monotonicNanos()
        let micros = now > UInt64(sent) ? (now - UInt64(sent)) / 1000 : 0
        deliveryLatencies.append(UInt32(min(micros, UInt64(UInt32.max))))
        if readAt > 0 {
            let arrived = Int64(bitPattern: readAt) &- realtimeOffset
            let socketMicros = arrived > Int64(sent) ? UInt64(arrived - Int64(sent)) / 1000 : 0
            socketLatencies.append(UInt32(min(socketMicros, UInt64(UInt32.max))))
        }
    }

    /// Counts an error and prints the first 20.
    func error(_ text: String) {
        errors += 1
        if printedErrors < 20 {
            printedErrors += 1
            printError("error: \(text)")
        } else if printedErrors == 20 {
            printedErrors += 1
            printError("error: (further errors are counted, not printed)")
        }
    }
}

/// What a stream is for.
enum LoadMode {
    /// Echo round trips, one outstanding per stream.
    case echo
    /// Create the stream, then hold one open long-poll primary.
    case hold
    /// Join the demo's chat (`begin_chat`) and time every broadcast that arrives (WebSocket streams only).
    case fanout
    /// Send `broadcast:<monotonic nanoseconds>` when told to (WebSocket streams only).
    case broadcast
}

/// Bytes used to build requests, made once.
struct RequestTemplate {
    /// "POST <prefix>io/ HTTP/1.1\r\n…Content-Length: ".
    let head: [UInt8]

    /// Builds the template for `host:port` and the endpoint `prefix` (ending in `/`).
    init(host: String, port: UInt16, prefix: String) {
        let text =
            "POST \(prefix)io/ HTTP/1.1\r\nHost: \(host):\(port)\r\nUser-Agent: minerva-load\r\n"
            + "Accept: */*\r\nContent-Type: application/octet-stream\r\nContent-Length: "
        head = Array(text.utf8)
    }

    /// A complete request with `body`.
    func request(body: [UInt8]) -> [UInt8] {
        var bytes = head
        bytes.reserveCapacity(head.count + body.count + 8)
        appendDecimal(&bytes, body.count)
        bytes.append(contentsOf: [13, 10, 13, 10])
        bytes.append(contentsOf: body)
        return bytes
    }
}

/// Appends the decimal digits of `value` (which may be negative).
func appendDecimal(_ bytes: inout [UInt8], _ value: Int) {
    if value < 0 {
        bytes.append(UInt8(ascii: "-"))
        appendDecimal(&bytes, -value)
        return
    }
    if value >= 10 { appendDecimal(&bytes, value / 10) }
    bytes.append(UInt8(48 + value % 10))
}

/// Parses a non-negative or -1 decimal from `bytes`; nil if malformed.
func parseDecimal(_ bytes: ArraySlice<UInt8>) -> Int? {
    var slice = bytes
    var negative = false
    if slice.first == UInt8(ascii: "-") {
        negative = true
        slice = slice.dropFirst()
    }
    guard !slice.isEmpty, slice.count <= 16 else { return nil }
    var value = 0
    for byte in slice {
        guard byte >= 48 && byte <= 57 else { return nil }
        value = value * 10 + Int(byte - 48)
    }
    return negative ? -value : value
}

/// A Minerva stream on two keep-alive connections.
final class LoadStream {
    private let mode: LoadMode
    private unowned let loop: LoadLoop
    private let template: RequestTemplate
    private let stats: LoadStats
    private let primary: Connection
    private let upload: Connection
    private var id: [UInt8] = []
    private var created = false
    private var nextTransportNumber = 0
    /// Highest S2C sequence number received in order (-1: none).
    private var receivedAck = -1
    /// Payload of the last SackFrame received (`seenack`).
    private var lastSackSeen: [UInt8] = Array("|-1".utf8)
    /// Next C2S sequence number to assign.
    private var nextSendSeq = 0
    /// Next echo value.
    private var nextEcho = 0
    /// The echo awaited: its value and when its string was sent.
    private var awaiting: (value: Int, sentAt: UInt64)?
    private var uploadWanted = false
    /// Paced echo (hold mode after `startPacing`): nanoseconds between two sends (0: not paced), when the next send is
    /// due, and the due times of sends not made yet because the previous echo was still awaited (each is measured from
    /// its due time, so a late send counts its delay: no coordinated omission).
    private var paceInterval: UInt64 = 0
    private var nextDue: UInt64 = 0
    private var dueTimes: [UInt64] = []
    /// When the awaited echo's string actually went out (paced echo).
    private var actuallySentAt: UInt64 = 0
    /// True once a long-poll primary is open and waiting (hold mode).
    private(set) var holding = false
    /// Set when the run ends: nothing more is sent.
    var stopped = false

    /// Creates a stream; call `start()` to begin.
    init(mode: LoadMode, loop: LoadLoop, template: RequestTemplate, stats: LoadStats) {
        self.mode = mode
        self.loop = loop
        self.template = template
        self.stats = stats
        primary = Connection(loop: loop)
        upload = Connection(loop: loop)
        primary.onResponse = { [unowned self] in self.primaryAnswered($0) }
        upload.onResponse = { [unowned self] in self.uploadAnswered($0) }
        primary.onFailure = { [unowned self] in self.restart(after: "primary connection: \($0)") }
        upload.onFailure = { [unowned self] in self.restart(after: "upload connection: \($0)") }
    }

    private static let idAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".utf8)

    /// Begins a fresh stream: a new id, and the first primary (carrying the first echo in echo mode).
    func start() {
        var generator = SystemRandomNumberGenerator()
        id = (0..<24).map { _ in Self.idAlphabet[Int(generator.next() % UInt64(Self.idAlphabet.count))] }
        created = false
        nextTransportNumber = 0
        receivedAck = -1
        lastSackSeen = Array("|-1".utf8)
        nextSendSeq = 0
        awaiting = nil
        uploadWanted = false
        holding = false
        dueTimes.removeAll()
        var body = hello(primary: true)
        if mode == .echo { appendEcho(to: &body) }
        send(body, on: primary)
    }

    private func restart(after problem: String) {
        stats.error(problem)
        primary.closeQuietly()
        upload.closeQuietly()
        awaiting = nil
        holding = false
        // A short pause, as a browser would back off, so a broken server does not get a storm of retries.
        loop.after(nanoseconds: 100_000_000) { [weak self] in
            guard let self, !self.stopped else { return }
            self.start()
        }
    }

    private func send(_ body: [UInt8], on connection: Connection) {
        stats.requests += 1
        connection.send(template.request(body: body))
    }

    /// The hello frame line (PROTOCOL.md 7.3), for a primary (`eeds:null`, `maxt` 25) or a secondary.
    private func hello(primary: Bool) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(200)
        bytes.append(contentsOf: #"{"tnum":"#.utf8)
        appendDecimal(&bytes, nextTransportNumber)
        nextTransportNumber += 1
        bytes.append(contentsOf: #","ver":2,"format":2,"#.utf8)
        if !created { bytes.append(contentsOf: #""new":true,"#.utf8) }
        bytes.append(contentsOf: #""id":""#.utf8)
        bytes.append(contentsOf: id)
        bytes.append(contentsOf: #"","ming":false,"maxb":300000,"#.utf8)
        if primary { bytes.append(contentsOf: #""maxt":25,"#.utf8) }
        bytes.append(contentsOf: #""maxia":0,"tcpack":false,"#.utf8)
        if primary { bytes.append(contentsOf: #""eeds":null,"#.utf8) }
        bytes.append(contentsOf: #""sack":"|"#.utf8)
        appendDecimal(&bytes, receivedAck)
        bytes.append(contentsOf: #"","seenack":""#.utf8)
        bytes.append(contentsOf: lastSackSeen)
        bytes.append(contentsOf: "\"}H\n".utf8)
        return bytes
    }

    /// Turns a held stream into a paced echo stream: one `echo:` every `interval` nanoseconds, the first at `firstAt`
    /// (monotonic nanoseconds), whatever the latency of the previous ones (open loop).
    func startPacing(interval: UInt64, firstAt: UInt64) {
        paceInterval = interval
        nextDue = firstAt
    }

    /// Paced echo: records every send whose time has come and sends the oldest if no echo is awaited.
    func tick(now: UInt64) {
        guard paceInterval > 0, created, !stopped else { return }
        while nextDue <= now {
            dueTimes.append(nextDue)
            nextDue += paceInterval
        }
        if awaiting == nil && !dueTimes.isEmpty { sendNextEcho() }
    }

    /// Appends `<seq>N` and `echo:<n> ` and remembers the echo awaited (sent now, or due at `dueAt` when paced).
    private func appendEcho(to body: inout [UInt8], dueAt: UInt64? = nil) {
        appendDecimal(&body, nextSendSeq)
        body.append(contentsOf: "N\necho:".utf8)
        appendDecimal(&body, nextEcho)
        body.append(contentsOf: " \n".utf8)
        awaiting = (nextEcho, dueAt ?? monotonicNanos())
        nextSendSeq += 1
        nextEcho += 1
    }

    private func sendNextEcho() {
        guard !stopped else { return }
        if paceInterval > 0 && dueTimes.isEmpty { return }
        guard upload.outstanding == 0 else {
            uploadWanted = true
            return
        }
        uploadWanted = false
        var body = hello(primary: false)
        if paceInterval > 0 {
            let due = dueTimes.removeFirst()
            let now = monotonicNanos()
            actuallySentAt = now
            if let second = stats.second(now) {
                let lag = UInt32(clamping: (now &- due) / 1000)
                if lag > stats.timeline[second].sendLagMicros { stats.timeline[second].sendLagMicros = lag }
            }
            appendEcho(to: &body, dueAt: due)
        } else {
            appendEcho(to: &body)
        }
        send(body, on: upload)
    }

    private func primaryAnswered(_ response: HTTPResponse) {
        guard !stopped else { return }
        guard process(response, onPrimary: true) else { return }
        if mode == .hold && holding && paceInterval == 0 { stats.reopened += 1 }
        // A browser opens the next long-poll primary at once; its hello carries the SACK.
        send(hello(primary: true), on: primary)
        if mode == .hold {
            holding = created
            if paceInterval > 0 && awaiting == nil { sendNextEcho() }
        } else if awaiting == nil {
            sendNextEcho()
        }
    }

    private func uploadAnswered(_ response: HTTPResponse) {
        guard !stopped else { return }
        guard process(response, onPrimary: false) else { return }
        if uploadWanted && awaiting == nil { sendNextEcho() }
    }

    /// Checks a Minerva response and applies its frames; false (after a restart) on any problem.
    private func process(_ response: HTTPResponse, onPrimary: Bool) -> Bool {
        guard response.status == 200 else {
            restart(after: "HTTP status \(response.status)")
            return false
        }
        let body = response.body
        guard body.last == 10 else {
            restart(after: "response body does not end in a newline: \(show(body[...]))")
            return false
        }
        var lineStart = 0
        var first = true
        var announcedSeq: Int?
        while lineStart < body.count {
            var lineEnd = lineStart
            while body[lineEnd] != 10 { lineEnd += 1 }
            let frame = body[lineStart..<lineEnd]
            lineStart = lineEnd + 1
            if first {
                first = false
                guard frame.elementsEqual(";)]}^".utf8) else {
                    restart(after: "no preamble: \(show(body[...]))")
                    return false
                }
                continue
            }
            guard let type = frame.last else {
                restart(after: "empty frame in \(show(body[...]))")
                return false
            }
            let payload = frame.dropLast()
            switch type {
            case UInt8(ascii: "C"):
                created = true
            case UInt8(ascii: "N"):
                guard let seq = parseDecimal(payload), seq >= 0 else {
                    restart(after: "bad SeqNum frame \(show(frame))")
                    return false
                }
                announcedSeq = seq
            case UInt8(ascii: " "):
                guard onPrimary, let seq = announcedSeq else {
                    restart(after: "string without SeqNum, or on an upload: \(show(body[...]))")
                    return false
                }
                announcedSeq = seq + 1
                if seq <= receivedAck { continue }  // already received (a retransmission)
                guard seq == receivedAck + 1 else {
                    restart(after: "S2C string \(seq) arrived after \(receivedAck) (gap)")
                    return false
                }
                receivedAck = seq
                received(payload)
            case UInt8(ascii: "A"):
                guard let bar = payload.lastIndex(of: UInt8(ascii: "|")),
                    let ack = parseDecimal(payload[(bar + 1)...]), ack < nextSendSeq
                else {
                    restart(after: "bad or too high SACK \(show(frame)) (sent up to \(nextSendSeq - 1))")
                    return false
                }
                lastSackSeen = Array(payload)
            case UInt8(ascii: "T"), UInt8(ascii: "^"):
                break
            default:
                restart(after: "unexpected frame \(show(frame)) in \(show(body[...]))")
                return false
            }
        }
        return true
    }

    /// Checks an S2C string against the echo awaited.
    private func received(_ string: ArraySlice<UInt8>) {
        guard mode == .echo || paceInterval > 0, let expected = awaiting else {
            stats.error("unexpected S2C string \(show(string))")
            return
        }
        var digits: [UInt8] = []
        appendDecimal(&digits, expected.value)
        guard string.elementsEqual(digits) else {
            stats.error("echo mismatch: expected \(expected.value), got \(show(string))")
            return
        }
        awaiting = nil
        if stats.counting {
            stats.roundTrips += 1
            // Latency only of round trips begun after the warm-up (not those delayed by stream setup).
            if expected.sentAt >= stats.countingSince {
                let now = monotonicNanos()
                let micros = UInt32(clamping: (now &- expected.sentAt) / 1000)
                stats.latencies.append(micros)
                if paceInterval > 0 {
                    stats.fromSendLatencies.append(UInt32(clamping: (now &- actuallySentAt) / 1000))
                }
                if paceInterval > 0, let second = stats.second(now) {
                    stats.timeline[second].count += 1
                    if micros > 10_000 { stats.timeline[second].slow += 1 }
                    if micros > stats.timeline[second].maxMicros { stats.timeline[second].maxMicros = micros }
                }
            }
        }
    }

    private func show(_ bytes: ArraySlice<UInt8>) -> String {
        let text = String(decoding: bytes.prefix(200), as: UTF8.self)
        return "\"" + text.replacingNewlines() + "\""
    }
}

extension String {
    /// The string with `\n` and `\r` written as escapes, for error messages.
    fileprivate func replacingNewlines() -> String {
        var result = ""
        for character in self {
            switch character {
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            default: result.append(character)
            }
        }
        return result
    }
}
