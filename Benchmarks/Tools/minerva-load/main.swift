// minerva-load: a single-threaded load generator for the Minerva HTTP endpoint running the demo protocol.
//
//   minerva-load [--streams N] [--duration S] [--warmup S] [--host H] [--port P] [--prefix /_minerva/]
//   minerva-load --hold N [--duration S] [--host H] [--port P] [--prefix /_minerva/]
//   add --websocket to either: each stream is one WebSocket (`<prefix>ws`, PROTOCOL.md 11.1) instead of long-polls
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
    case "-h", "--help":
        print(
            "usage: minerva-load [--streams N] [--duration S] [--warmup S] [--host IPv4] [--port P] [--prefix P]\n"
                + "       minerva-load --hold N [--duration S] [--host IPv4] [--port P] [--prefix P]\n"
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
    let end = durationGiven ? begin + UInt64(duration * 1e9) : UInt64.max
    var allOpenSince: UInt64?
    var announced = false
    var lastReport = begin
    while monotonicNanos() < end {
        loop.runOnce(timeoutMilliseconds: 100)
        let now = monotonicNanos()
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
    print("hold done: errors=\(stats.errors) reopened=\(stats.reopened)")
    exitProcess(stats.errors == 0 ? 0 : 1)
}

// Echo mode.
let streams = (0..<(webSocket ? 0 : streamCount)).map { _ in
    LoadStream(mode: .echo, loop: loop, template: template, stats: stats)
}
let sockets = (0..<(webSocket ? streamCount : 0)).map { _ in
    WebSocketStream(mode: .echo, loop: loop, stats: stats, host: host, port: port, prefix: prefix)
}
for stream in streams { stream.start() }
for socket in sockets { socket.start() }
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
    "transport=\(webSocket ? "websocket" : "long-poll") streams=\(streamCount) seconds=\(fixed(elapsed, 2)) round_trips=\(stats.roundTrips) "
        + "round_trips_per_s=\(Int(rate.rounded())) requests_per_s=\(Int(requestRate.rounded())) "
        + "p50_ms=\(fixed(percentile(0.5), 3)) p99_ms=\(fixed(percentile(0.99), 3)) errors=\(stats.errors)")
exitProcess(stats.errors == 0 ? 0 : 1)
