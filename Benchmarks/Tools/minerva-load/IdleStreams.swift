// Idle-streams mode: creates N Minerva streams as fast as the server answers and leaves them idle (no transport),
// to measure what an idle stream costs the server. Each request is one POST of `io/` whose only frame is a
// secondary hello (no `eeds`) with `new`: the server creates the stream, answers at once and the stream keeps no
// transport. Several keep-alive connections, each with a few requests in flight (pipelined).

/// Creates streams on one keep-alive connection, `depth` requests in flight.
final class IdleStreamCreator {
    private unowned let run: IdleStreamsRun
    private let connection: Connection
    private let template: RequestTemplate
    private var generator = SystemRandomNumberGenerator()

    init(run: IdleStreamsRun, loop: LoadLoop, template: RequestTemplate) {
        self.run = run
        self.template = template
        connection = Connection(loop: loop)
        connection.onResponse = { [unowned self] in self.answered($0) }
        connection.onFailure = { [unowned self] in
            self.run.stats.error("idle-streams connection: \($0)")
            self.fill()
        }
    }

    private static let idAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".utf8)

    /// Sends requests until `depth` are in flight or every stream was asked for.
    func fill() {
        while connection.outstanding < run.depth && run.requested < run.target {
            run.requested += 1
            var body: [UInt8] = []
            body.reserveCapacity(200)
            body.append(contentsOf: #"{"tnum":0,"ver":2,"format":2,"new":true,"id":""#.utf8)
            for _ in 0..<24 {
                body.append(Self.idAlphabet[Int(generator.next() % UInt64(Self.idAlphabet.count))])
            }
            body.append(contentsOf: #"","ming":false,"maxb":300000,"maxia":0,"tcpack":false,"#.utf8)
            body.append(contentsOf: #""sack":"|-1","seenack":"|-1"}H"#.utf8)
            body.append(10)
            run.stats.requests += 1
            connection.send(template.request(body: body))
        }
    }

    private func answered(_ response: HTTPResponse) {
        // The answer to a hello with `new` carries StreamCreated (`C`).
        if response.status == 200 && response.body.contains(UInt8(ascii: "C")) {
            run.created += 1
        } else {
            run.stats.error("stream not created: HTTP \(response.status)")
        }
        fill()
    }
}

/// The idle-streams run: its counters and settings.
final class IdleStreamsRun {
    let target: Int
    let depth: Int
    let stats: LoadStats
    var requested = 0
    var created = 0

    init(target: Int, depth: Int, stats: LoadStats) {
        self.target = target
        self.depth = depth
        self.stats = stats
    }
}

/// Creates `count` idle streams over `connections` connections, prints
/// `idle created=N seconds=S streams_per_s=R errors=E` once done, then keeps the process (and so nothing else)
/// alive until `hold` seconds have passed (the streams stay on the server either way: they have no transport).
@MainActor func runIdleStreams(_ count: Int, connections: Int, depth: Int, deadline: Double) -> Never {
    let run = IdleStreamsRun(target: count, depth: depth, stats: stats)
    let creators = (0..<max(1, connections)).map { _ in IdleStreamCreator(run: run, loop: loop, template: template) }
    let begin = monotonicNanos()
    let end = begin + UInt64(deadline * 1e9)
    for creator in creators { creator.fill() }
    var lastReport = begin
    var lastCreated = 0
    while run.created + run.stats.errors < count && monotonicNanos() < end {
        loop.runOnce(timeoutMilliseconds: 100)
        let now = monotonicNanos()
        if now - lastReport >= 5_000_000_000 {
            let rate = Double(run.created - lastCreated) / (Double(now - lastReport) / 1e9)
            printError("idle: \(run.created) of \(count) created, \(Int(rate))/s over the last 5 s")
            lastReport = now
            lastCreated = run.created
        }
    }
    let seconds = Double(monotonicNanos() - begin) / 1e9
    print(
        "idle created=\(run.created) seconds=\(fixed(seconds, 1)) streams_per_s=\(Int(Double(run.created) / seconds)) "
            + "errors=\(run.stats.errors)")
    flushOutput()
    exitProcess(run.created == count && run.stats.errors == 0 ? 0 : 1)
}
