// minerva-load: a single-threaded load generator for the Minerva HTTP endpoint running the demo protocol.
//
//   minerva-load [--streams N] [--duration S] [--warmup S] [--host H] [--port P] [--prefix /_minerva/]
//   minerva-load --hold N [--duration S] [--host H] [--port P] [--prefix /_minerva/]
//   add --websocket to either: each stream is one WebSocket (`<prefix>ws`, PROTOCOL.md 11.1) instead of long-polls
//   minerva-load --socketio [--streams N] ...: the peer: Socket.IO echo events over WebSocket (Engine.IO 4)
//   minerva-load --socketio-polling [--streams N] ...: the same over Engine.IO 4 long-polling (GET held, POST events)
//   minerva-load --hold N --echo-streams M --echo-rate R [--echo-delay S (0)] [--duration S (10)] [--warmup S]:
//     paced echo at full size: N long-polls held; once all are open (and S seconds more), M of them each send one
//     `echo:` every 1/R s (open loop: a send due while the previous echo is awaited goes when it returns, and its
//     latency counts from when it was due). Prints the echo line (p50/p99/max) after --duration s of measurement.
//   minerva-load --idle-streams N [--connections C (16)] [--depth D (8)] [--duration S (600)] [--host H] [--port P]
//     creates N streams, each with one POST whose only frame is a hello without `eeds` (the stream is left with no
//     transport), C keep-alive connections with D requests in flight each; prints the creation rate.
//   minerva-load --fanout N [--fanout-transport websocket|streaming] [--interval S] [--duration S] [--server-pid PID]
//     N streams (WebSocket, or HTTP streaming responses with SACKs on a keep-alive upload) join the demo's chat; once all are in, one more stream broadcasts its clock every --interval
//     (0.1 s) for --duration; prints delivery latency p50/p99/max, strings delivered per second, and (with
//     --server-pid) per second of server CPU time; also the share of the latency spent before the data reached the
//     generator's socket (the kernel's receive timestamp, SO_TIMESTAMPNS) and the generator's own CPU time.
//
// Echo mode: N streams, each a browser-like long-poll client (PROTOCOL.md 7.3, 7.4) sending `echo:<n>` and
// waiting for `<n>` before sending the next. Prints one line of `key=value` figures: round trips/s, p50/p99
// latency, errors. Hold mode: creates N streams, holds one open long-poll primary each, prints
// `open N` when all are open, and keeps them until --duration ends (default: until killed).

var streamCount = 32
var duration = 10.0
var durationGiven = false
var warmup = 1.0
var host = "127.0.0.1"
var port: UInt16 = 8080
var prefix = "/_minerva/"
var holdCount: Int?
var webSocket = false
var fanoutCount: Int?
var fanoutStreaming = false
var socketIO = false
var interval = 0.1
var serverPID: Int?
var idleStreamCount: Int?
var idleConnections = 16
var idleDepth = 8
var socketIOPolling = false
var echoStreamCount = 0
var echoRate = 10.0
var echoDelay = 0.0

var arguments = CommandLine.arguments.dropFirst()
@MainActor func value(_ name: String) -> String {
    guard let next = arguments.popFirst() else {
        printError("\(name) needs a value")
        exitProcess(2)
    }
    return next
}
@MainActor func number<T: LosslessStringConvertible>(_ name: String, _: T.Type) -> T {
    let text = value(name)
    guard let parsed = T(text) else {
        printError("bad value for \(name): \(text)")
        exitProcess(2)
    }
    return parsed
}
while let argument = arguments.popFirst() {
    switch argument {
    case "--streams": streamCount = number(argument, Int.self)
    case "--duration":
        duration = number(argument, Double.self)
        durationGiven = true
    case "--warmup": warmup = number(argument, Double.self)
    case "--host": host = value(argument)
    case "--port": port = number(argument, UInt16.self)
    case "--prefix": prefix = value(argument)
    case "--hold": holdCount = number(argument, Int.self)
    case "--websocket": webSocket = true
    case "--fanout": fanoutCount = number(argument, Int.self)
    case "--fanout-transport":
        switch value(argument) {
        case "websocket": fanoutStreaming = false
        case "streaming": fanoutStreaming = true
        case let other:
            printError("--fanout-transport: websocket or streaming, not \(other)")
            exitProcess(2)
        }
    case "--socketio":
        socketIO = true
        webSocket = true
    case "--socketio-polling": socketIOPolling = true
    case "--echo-streams": echoStreamCount = number(argument, Int.self)
    case "--echo-rate": echoRate = number(argument, Double.self)
    case "--echo-delay": echoDelay = number(argument, Double.self)
    case "--interval": interval = number(argument, Double.self)
    case "--server-pid": serverPID = number(argument, Int.self)
    case "--idle-streams": idleStreamCount = number(argument, Int.self)
    case "--connections": idleConnections = number(argument, Int.self)
    case "--depth": idleDepth = number(argument, Int.self)
    case "-h", "--help":
        print(
            "usage: minerva-load [--streams N] [--duration S] [--warmup S] [--host IPv4] [--port P] [--prefix P]\n"
                + "       minerva-load --hold N [--duration S] [--host IPv4] [--port P] [--prefix P]\n"
                + "       minerva-load --hold N --echo-streams M --echo-rate R [--echo-delay S] [--duration S]\n"
                + "       (paced, open-loop echo on M of the N held long-polls)\n"
                + "       minerva-load --socketio | --socketio-polling [--streams N] [--duration S] --port P\n"
                + "       (--websocket: one WebSocket per stream instead of HTTP long-polls)")
        exitProcess(0)
    default:
        printError("unknown option \(argument)")
        exitProcess(2)
    }
}
if !prefix.hasSuffix("/") { prefix += "/" }

ignoreSIGPIPE()
let loop = LoadLoop(host: host, port: port)
let template = RequestTemplate(host: host, port: port, prefix: prefix)
let stats = LoadStats()

if let fanoutCount {
    runFanout(fanoutCount)
}
if let idleStreamCount {
    runIdleStreams(
        idleStreamCount, connections: idleConnections, depth: max(1, idleDepth),
        deadline: durationGiven ? duration : 600)
}

/// CPU seconds (user + system) a process has used, from /proc.
func cpuSeconds(_ pid: Int) -> Double? {
    guard let text = readTextFile("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return nil }
    let fields = text[text.index(after: close)...].split(separator: " ")
    guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
    return (user + system) / 100  // USER_HZ
}

@MainActor func runFanout(_ count: Int) -> Never {
    let receivers = (0..<(fanoutStreaming ? 0 : count)).map { _ in
        WebSocketStream(mode: .fanout, loop: loop, stats: stats, host: host, port: port, prefix: prefix)
    }
    let uploads = UploadPool(loop: loop, stats: stats, count: 100)
    let streamingReceivers = (0..<(fanoutStreaming ? count : 0)).map { _ in
        StreamingStream(loop: loop, stats: stats, template: template, uploads: uploads)
    }
    for receiver in receivers { receiver.start() }
    for receiver in streamingReceivers { receiver.start() }
    func joinedCount() -> Int {
        receivers.reduce(0) { $0 + ($1.holding ? 1 : 0) } + streamingReceivers.reduce(0) { $0 + ($1.holding ? 1 : 0) }
    }
    let joinDeadline = monotonicNanos() + 120_000_000_000
    while joinedCount() < count && monotonicNanos() < joinDeadline {
        loop.runOnce(timeoutMilliseconds: 100)
    }
    // A quiet second so that every begin_chat has been read.
    let settle = monotonicNanos() + 1_000_000_000
    while monotonicNanos() < settle { loop.runOnce(timeoutMilliseconds: 50) }
    let joined = joinedCount()
    let sender = WebSocketStream(mode: .broadcast, loop: loop, stats: stats, host: host, port: port, prefix: prefix)
    sender.start()
    while !sender.holding { loop.runOnce(timeoutMilliseconds: 10) }
    let cpuBefore = serverPID.flatMap(cpuSeconds)
    let ownCPUBefore = ownCPUSeconds()
    let begin = monotonicNanos()
    let end = begin + UInt64(duration * 1e9)
    var next = begin
    var broadcasts = 0
    while monotonicNanos() < end {
        if monotonicNanos() >= next {
            sender.broadcastNow()
            broadcasts += 1
            next += UInt64(interval * 1e9)
        }
        loop.runOnce(timeoutMilliseconds: 1)
    }
    // Stragglers: up to 5 s for the last broadcasts to arrive everywhere.
    let drain = monotonicNanos() + 5_000_000_000
    while stats.delivered < broadcasts * joined && monotonicNanos() < drain { loop.runOnce(timeoutMilliseconds: 10) }
    let elapsed = Double(monotonicNanos() - begin) / 1e9
    let cpuAfter = serverPID.flatMap(cpuSeconds)
    let ownCPU = ownCPUSeconds() - ownCPUBefore
    for receiver in receivers { receiver.stopped = true }
    for receiver in streamingReceivers { receiver.stopped = true }
    sender.stopped = true
    var sorted = stats.deliveryLatencies
    sorted.sort()
    var socketSorted = stats.socketLatencies
    socketSorted.sort()
    func ms(_ fraction: Double, _ values: [UInt32]) -> String {
        guard !values.isEmpty else { return "0" }
        return fixed(Double(values[min(values.count - 1, Int(Double(values.count) * fraction))]) / 1000, 2)
    }
    let perSecond = Double(stats.delivered) / elapsed
    var line =
        "fanout transport=\(fanoutStreaming ? "streaming" : "websocket") receivers=\(joined) broadcasts=\(broadcasts) "
        + "expected=\(broadcasts * joined) delivered=\(stats.delivered) "
        + "p50_ms=\(ms(0.5, sorted)) p99_ms=\(ms(0.99, sorted)) max_ms=\(ms(1.0, sorted)) "
        + "at_socket_p50_ms=\(ms(0.5, socketSorted)) at_socket_p99_ms=\(ms(0.99, socketSorted)) "
        + "at_socket_max_ms=\(ms(1.0, socketSorted)) delivered_per_s=\(Int(perSecond))"
    if let cpuBefore, let cpuAfter, cpuAfter > cpuBefore {
        line += " server_cpu_s=\(fixed(cpuAfter - cpuBefore, 2))"
        line += " delivered_per_cpu_s=\(Int(Double(stats.delivered) / (cpuAfter - cpuBefore)))"
    }
    line += " generator_cpu_s=\(fixed(ownCPU, 2))"
    line += " errors=\(stats.errors)"
    print(line)
    flushOutput()
    exitProcess(stats.errors == 0 && stats.delivered == broadcasts * joined ? 0 : 1)
}

if let holdCount {
    // Hold mode.
    let streams = (0..<holdCount).map { _ in LoadStream(mode: .hold, loop: loop, template: template, stats: stats) }
    let sockets = (0..<(webSocket ? holdCount : 0)).map { _ in
        WebSocketStream(mode: .hold, loop: loop, stats: stats, host: host, port: port, prefix: prefix)
    }
    if webSocket {
        for socket in sockets { socket.start() }
    } else {
        for stream in streams { stream.start() }
    }
    let begin = monotonicNanos()
    let pacing = echoStreamCount > 0 && !webSocket
    // Paced echo: the run ends --duration s after the warm-up that follows the announcement (and --echo-delay).
    var end = durationGiven && !pacing ? begin + UInt64(duration * 1e9) : UInt64.max
    var allOpenSince: UInt64?
    var announced = false
    var lastReport = begin
    var lastCount = begin
    var paceFrom: UInt64?
    var requestsAtStart = 0
    let paced = pacing ? Array(streams.prefix(echoStreamCount)) : []
    while monotonicNanos() < end {
        loop.runOnce(timeoutMilliseconds: paceFrom == nil ? 100 : 1)
        let now = monotonicNanos()
        if let from = paceFrom {
            if !stats.counting && now >= from + UInt64(warmup * 1e9) {
                stats.counting = true
                stats.countingSince = now
                requestsAtStart = stats.requests
            }
            for stream in paced { stream.tick(now: now) }
        } else if pacing, announced, let since = allOpenSince, now - since >= UInt64((1 + echoDelay) * 1e9) {
            // Each stream's first send at a random point of its first interval, so the sends are spread evenly.
            let period = UInt64(1e9 / echoRate)
            var generator = SystemRandomNumberGenerator()
            for stream in paced { stream.startPacing(interval: period, firstAt: now + generator.next() % period) }
            paceFrom = now
            end = now + UInt64((warmup + duration) * 1e9)
        }
        if announced && now - lastCount < 100_000_000 { continue }
        lastCount = now
        let open =
            webSocket
            ? sockets.reduce(0) { $0 + ($1.holding ? 1 : 0) } : streams.reduce(0) { $0 + ($1.holding ? 1 : 0) }
        if open == holdCount {
            if allOpenSince == nil { allOpenSince = now }
            // One quiet second after the last primary was written, so the server has read them all.
            if !announced, let since = allOpenSince, now - since >= 1_000_000_000 {
                announced = true
                let seconds = Double(now - begin) / 1e9
                print("open \(open) after \(Int(seconds * 10) / 10) s, errors=\(stats.errors)")
                flushOutput()
            }
        } else {
            allOpenSince = nil
            if now - lastReport >= 5_000_000_000 {
                lastReport = now
                printError("hold: \(open) of \(holdCount) open, errors=\(stats.errors)")
            }
        }
    }
    for stream in streams { stream.stopped = true }
    for socket in sockets { socket.stopped = true }
    if let from = paceFrom {
        let elapsed = Double(monotonicNanos() - max(stats.countingSince, from)) / 1e9
        var sorted = stats.latencies
        sorted.sort()
        var fromSend = stats.fromSendLatencies
        fromSend.sort()
        func ms(_ fraction: Double, _ values: [UInt32] = sorted) -> String {
            guard !values.isEmpty else { return "0" }
            return fixed(Double(values[min(values.count - 1, Int(Double(values.count) * fraction))]) / 1000, 3)
        }
        print(
            "transport=long-poll-paced held=\(holdCount) streams=\(paced.count) rate_per_stream=\(echoRate) "
                + "seconds=\(fixed(elapsed, 2)) round_trips=\(stats.roundTrips) "
                + "round_trips_per_s=\(Int((Double(stats.roundTrips) / elapsed).rounded())) "
                + "requests_per_s=\(Int((Double(stats.requests - requestsAtStart) / elapsed).rounded())) "
                + "p50_ms=\(ms(0.5)) p99_ms=\(ms(0.99)) p999_ms=\(ms(0.999)) max_ms=\(ms(1.0)) "
                + "from_send_p50_ms=\(ms(0.5, fromSend)) from_send_p99_ms=\(ms(0.99, fromSend)) "
                + "from_send_max_ms=\(ms(1.0, fromSend)) errors=\(stats.errors) reopened=\(stats.reopened)")
        // Per second: round trips, how many over 10 ms, the slowest, and the generator's worst send lag.
        var timeline = "paced timeline (s: round trips, over 10 ms, max ms, send lag ms):"
        for (index, entry) in stats.timeline.enumerated() {
            timeline +=
                " \(index): \(entry.count) \(entry.slow) \(fixed(Double(entry.maxMicros) / 1000, 1))"
                + " \(fixed(Double(entry.sendLagMicros) / 1000, 1));"
        }
        printError(timeline)
        exitProcess(stats.errors == 0 ? 0 : 1)
    }
    print("hold done: errors=\(stats.errors) reopened=\(stats.reopened)")
    exitProcess(stats.errors == 0 ? 0 : 1)
}

// Echo mode.
let streams = (0..<(webSocket || socketIOPolling ? 0 : streamCount)).map { _ in
    LoadStream(mode: .echo, loop: loop, template: template, stats: stats)
}
let pollingClients = (0..<(socketIOPolling ? streamCount : 0)).map { _ in
    SocketIOPollingStream(loop: loop, stats: stats, host: host, port: port)
}
let sockets = (0..<(webSocket ? streamCount : 0)).map { _ in
    WebSocketStream(mode: .echo, loop: loop, stats: stats, host: host, port: port, prefix: prefix, socketIO: socketIO)
}
for stream in streams { stream.start() }
for socket in sockets { socket.start() }
for client in pollingClients { client.start() }
let begin = monotonicNanos()
let countFrom = begin + UInt64(warmup * 1e9)
let end = countFrom + UInt64(duration * 1e9)
var requestsAtStart = 0
while true {
    let now = monotonicNanos()
    if now >= end { break }
    if !stats.counting && now >= countFrom {
        stats.counting = true
        stats.countingSince = now
        requestsAtStart = stats.requests
    }
    loop.runOnce(timeoutMilliseconds: 10)
}
for stream in streams { stream.stopped = true }
for socket in sockets { socket.stopped = true }
for client in pollingClients { client.stopped = true }
let elapsed = Double(monotonicNanos() - countFrom) / 1e9
var sorted = stats.latencies
sorted.sort()
@MainActor func percentile(_ fraction: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    let index = min(sorted.count - 1, Int(Double(sorted.count) * fraction))
    return Double(sorted[index]) / 1000
}
func fixed(_ value: Double, _ digits: Int) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let rounded = (value * scale).rounded() / scale
    var text = String(rounded)
    if let dot = text.firstIndex(of: ".") {
        let decimals = text.distance(from: dot, to: text.endIndex) - 1
        if decimals < digits { text += String(repeating: "0", count: digits - decimals) }
    }
    return text
}
let rate = Double(stats.roundTrips) / elapsed
let requestRate = Double(stats.requests - requestsAtStart) / elapsed
print(
    "transport=\(socketIOPolling ? "socketio-polling" : socketIO ? "socketio-websocket" : webSocket ? "websocket" : "long-poll") streams=\(streamCount) seconds=\(fixed(elapsed, 2)) round_trips=\(stats.roundTrips) "
        + "round_trips_per_s=\(Int(rate.rounded())) requests_per_s=\(Int(requestRate.rounded())) "
        + "p50_ms=\(fixed(percentile(0.5), 3)) p99_ms=\(fixed(percentile(0.99), 3)) max_ms=\(fixed(percentile(1.0), 3)) errors=\(stats.errors)"
)
exitProcess(stats.errors == 0 ? 0 : 1)
