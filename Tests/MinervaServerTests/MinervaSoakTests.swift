// The soak test of issue 4 item 5 (1,000 streams x 200 strings by default): concurrent streams exchanging strings both ways
// through long-poll primaries and upload transports, 10% of requests aborted by the client, over the demo
// protocol's echo. Asserts exactly-once in-order delivery both ways and that no transport or stream leaks.
import Glibc
import MinervaTestSupport
import Testing

@testable import MinervaHTTP
@testable import MinervaIO
@testable import MinervaServer
@testable import minerva_demo

/// One client stream: an uploader thread sends `echo:s<k>` strings, a poller thread long-polls for the echoes.
private final class SoakStream: @unchecked Sendable {
    struct State {
        var c2sAcked = -1
        var received: [String] = []
        var tnum = 0
        var failures: [String] = []
        var requests = 0
        var aborts = 0
    }

    let id: String
    let total: Int
    let port: Int
    let deadline: Double
    let state = Locked(State())

    init(index: Int, total: Int, port: Int, deadline: Double) {
        let digits = String(index)
        id = String(repeating: "s", count: 26 - digits.count) + digits
        self.total = total
        self.port = port
        self.deadline = deadline
    }

    private func nextTnum() -> Int {
        var tnum = 0
        state.update {
            $0.tnum += 1
            tnum = $0.tnum
            $0.requests += 1
        }
        return tnum
    }

    private func fail(_ message: String) { state.update { $0.failures.append(message) } }

    /// Handles the frames of a response body; strings are appended if in order.
    private func handle(_ body: String, from: String) {
        var lines = body.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.first == ";)]}^" else { return fail("\(from): bad preamble in \(body.prefix(40))") }
        lines.removeFirst()
        if lines.last == "" { lines.removeLast() }
        var seq = -1
        state.update { state in
            for line in lines {
                guard let type = line.last else { continue }
                switch type {
                case "N": seq = Int(line.dropLast())! - 1
                case " ":
                    seq += 1
                    if seq == state.received.count {
                        state.received.append(String(line.dropLast()))
                    } else if seq > state.received.count {
                        state.failures.append("\(from): gap: got #\(seq), expected #\(state.received.count)")
                    }
                case "A":
                    let ack = Int(line.dropLast().split(separator: "|", omittingEmptySubsequences: false).last!)!
                    state.c2sAcked = max(state.c2sAcked, ack)
                case "T", "C", "^": break
                default: state.failures.append("\(from): unexpected frame \(line.prefix(60))")
                }
            }
        }
    }

    func upload(random: inout SeededGenerator) {
        while monotonicNow() < deadline {
            let acked = state.get().c2sAcked
            if acked == total - 1 { return }
            let first = acked + 1
            let count = min(total - first, 1 + Int(random.next() % 8))
            let tnum = nextTnum()
            var body = hh("-new", "-eeds", "tnum:\(tnum)", "id:\"\(id)\"") + "\n\(first)N\n"
            for k in first..<(first + count) { body += "echo:s\(k) \n" }
            guard let client = try? RawClient(port: port) else { return fail("upload: connect failed") }
            do {
                try client.post(body)
                if random.next() % 10 == 0 {
                    state.update { $0.aborts += 1 }
                    client.abort()
                    continue
                }
                // As for polls: 20 s catches an answer that never comes, not a loop starved while every suite runs.
                handle(try client.readResponse(timeout: 20).text, from: "upload")
            } catch {
                return fail("upload: \(error)")
            }
        }
        fail("upload: deadline")
    }

    func poll(random: inout SeededGenerator) {
        while monotonicNow() < deadline {
            let snapshot = state.get()
            if snapshot.received.count == total { return }
            let tnum = nextTnum()
            let body =
                hh(
                    "-new", "eeds:null", "tnum:\(tnum)", "id:\"\(id)\"", "maxt:2",
                    "sack:\"|\(snapshot.received.count - 1)\"", "seenack:\"|\(snapshot.c2sAcked)\"") + "\n"
            guard let client = try? RawClient(port: port) else { return fail("poll: connect failed") }
            do {
                try client.post(body)
                if random.next() % 10 == 0 {
                    state.update { $0.aborts += 1 }
                    usleep(UInt32(random.next() % 20_000))
                    client.abort()
                    continue
                }
                // maxt:2 makes the server answer within about 2 s; 20 s only catches an answer that never comes, not a
                // loop thread starved for a few seconds while every suite runs in parallel on two cores.
                handle(try client.readResponse(timeout: 20).text, from: "poll")
            } catch {
                return fail("poll: \(error)")
            }
        }
        fail("poll: deadline")
    }
}

private func environmentInt(_ name: String) -> Int? {
    getenv(name).flatMap { Int(String(cString: $0)) }
}

@Suite("Minerva soak", .serialized)
struct MinervaSoakTests {
    /// Sizes: issue 4's 1,000 streams x 200 strings by default (about 30 s here); MINERVA_SOAK_STREAMS and
    /// MINERVA_SOAK_STRINGS change them.
    @Test(
        "streams x strings each way, 10% of requests aborted: nothing lost, duplicated or reordered",
        .disabled(if: skipLoadSensitive, "MINERVA_SKIP_LOAD_SENSITIVE: client threads with fixed deadlines"))
    func soak() throws {
        let streamCount = environmentInt("MINERVA_SOAK_STREAMS") ?? 1000
        let total = environmentInt("MINERVA_SOAK_STRINGS") ?? 200
        let demo = MinervaDemoApplication()
        let server = try MinervaTestServer(factory: demo.handlerFactory)
        defer { server.stop() }
        let deadline = monotonicNow() + 150
        let streams = (0..<streamCount).map {
            SoakStream(index: $0, total: total, port: server.port, deadline: deadline)
        }
        for stream in streams {
            let client = try RawClient(port: server.port)
            try client.post(hh("id:\"\(stream.id)\"") + "\n")
            #expect(try client.readResponse().text == ";)]}^\nC\n|-1A\n|-1T\n")
        }
        var threads: [PosixThread] = []
        for (index, stream) in streams.enumerated() {
            threads.append(
                PosixThread {
                    var random = SeededGenerator(seed: UInt64(index * 2 + 1))
                    stream.upload(random: &random)
                })
            threads.append(
                PosixThread {
                    var random = SeededGenerator(seed: UInt64(index * 2 + 2))
                    stream.poll(random: &random)
                })
        }
        for thread in threads { thread.join() }
        let expected = (0..<total).map { "s\($0)" }
        var requests = 0
        var aborts = 0
        for stream in streams {
            let state = stream.state.get()
            #expect(state.failures.isEmpty, "\(stream.id): \(state.failures.prefix(3))")
            #expect(state.received == expected)
            #expect(state.c2sAcked == total - 1)
            requests += state.requests
            aborts += state.aborts
        }
        #expect(aborts > requests / 20)
        // Every aborted or finished request has detached; the streams are still there, idle.
        #expect(waitUntil(5) { server.total(\.transportCount) == 0 })
        #expect(server.total(\.streamCount) == streamCount)
        // The last acknowledgements empty every send queue; resetting the streams leaves nothing behind.
        let last = total - 1
        for stream in streams {
            let client = try RawClient(port: server.port)
            try client.post(
                hh("-new", "-eeds", "id:\"\(stream.id)\"", "sack:\"|\(last)\"", "seenack:\"|\(last)\"") + "\n"
            )
            #expect(try client.readResponse().text == ";)]}^\n|\(last)A\n|\(last)T\n")
        }
        let queued = streams.map { stream in
            server.withEngine(on: server.ownerLoop(of: stream.id)) { engine in
                engine.stream(StreamID(stream.id)!)?.queuedCount ?? -1
            } ?? -2
        }
        #expect(queued == Array(repeating: 0, count: streamCount))
        for stream in streams {
            let client = try RawClient(port: server.port)
            try client.post(
                hh("-new", "-eeds", "id:\"\(stream.id)\"", "seenack:\"|\(last)\"") + "\ndone|1!\n")
            #expect(try client.readResponse().text == ";)]}^\n|\(last)A\n|\(last)T\n")
        }
        #expect(server.total(\.streamCount) == 0)
        #expect(waitUntil(5) { server.http.server.connectionCount == 0 })
        #expect(server.total { _, loop in demo.room(for: loop).memberCount } == 0)
    }
}

/// One socket-mode client stream: sends `echo:s<k>` strings on its primary connection, reads the echoes, and
/// drops the connection at random; each new connection resends what was not acknowledged.
private final class SocketSoakStream: @unchecked Sendable {
    let id: String
    let total: Int
    let port: Int
    var received: [String] = []
    var c2sAcked = -1
    var sent = 0
    var tnum = 0
    var connections = 0
    var created = false
    var failures: [String] = []

    init(index: Int, total: Int, port: Int) {
        let digits = String(index)
        id = String(repeating: "k", count: 26 - digits.count) + digits
        self.total = total
        self.port = port
    }

    func run(random: inout SeededGenerator, deadline: Double) {
        while received.count < total || c2sAcked < total - 1 {
            guard monotonicNow() < deadline else { return failures.append("deadline") }
            guard let client = try? RawClient(port: port) else { return failures.append("connect failed") }
            connections += 1
            tnum += 1
            var opening = [
                hs(
                    created ? "-new" : "new:1", "eeds:null", "tnum:\(tnum)", "id:\"\(id)\"",
                    "sack:\"|\(received.count - 1)\"", "seenack:\"|\(c2sAcked)\"")
            ]
            if c2sAcked + 1 < sent {
                opening.append("\(c2sAcked + 1)N")
                for k in (c2sAcked + 1)..<sent { opening.append("echo:s\(k) ") }
            }
            do {
                try client.sendModePrefix()
                try client.sendFrames(opening)
            } catch {
                continue
            }
            var seq = -1
            connection: while received.count < total || c2sAcked < total - 1 {
                if monotonicNow() > deadline { break }
                if random.next() % 15 == 0 {
                    client.abort()
                    break
                }
                if sent < total {
                    let count = min(total - sent, 1 + Int(random.next() % 5))
                    var batch = ["\(sent)N"]
                    for k in sent..<(sent + count) { batch.append("echo:s\(k) ") }
                    guard (try? client.sendFrames(batch)) != nil else { break }
                    sent += count
                }
                client.fill(timeout: 0.02)
                for frame in client.takeBufferedFrames() {
                    guard let type = frame.last else { continue }
                    switch type {
                    case "N": seq = Int(frame.dropLast())! - 1
                    case " ":
                        seq += 1
                        if seq == received.count {
                            received.append(String(frame.dropLast()))
                        } else if seq > received.count {
                            failures.append("gap: #\(seq) while expecting #\(received.count)")
                        }
                    case "A":
                        let ack = Int(frame.dropLast().split(separator: "|", omittingEmptySubsequences: false).last!)!
                        c2sAcked = max(c2sAcked, ack)
                    case "C": created = true
                    case "T", "^": break
                    case "Y": break connection
                    default:
                        failures.append("unexpected frame \(frame.prefix(60))")
                        break connection
                    }
                }
                if client.sawEOF { break }
            }
        }
        // A last connection acknowledges every echo, then the client resets the stream.
        guard let client = try? RawClient(port: port) else { return failures.append("connect failed") }
        tnum += 1
        try? client.sendModePrefix()
        try? client.sendFrames([
            hs("-new", "tnum:\(tnum)", "id:\"\(id)\"", "sack:\"|\(total - 1)\"", "seenack:\"|\(total - 1)\""),
            "done|1!",
        ])
        if (try? client.readFrames(3)) != ["|\(total - 1)A", "|\(total - 1)T", "Y"] {
            failures.append("final reset not acknowledged")
        }
    }
}

@Suite("Minerva socket soak (reduced)", .serialized)
struct MinervaSocketSoakTests {
    @Test("20 socket streams x 200 strings each way, connections dropped at random: exactly once, in order")
    func socketSoak() throws {
        let streamCount = 20
        let total = 200
        let demo = MinervaDemoApplication()
        let server = try MinervaTestServer(socket: true, factory: demo.handlerFactory)
        defer { server.stop() }
        let port = server.socketPort
        let streams = (0..<streamCount).map { SocketSoakStream(index: $0, total: total, port: port) }
        let deadline = monotonicNow() + 60
        var threads: [PosixThread] = []
        for (index, stream) in streams.enumerated() {
            threads.append(
                PosixThread {
                    var random = SeededGenerator(seed: UInt64(index + 100))
                    stream.run(random: &random, deadline: deadline)
                })
        }
        for thread in threads { thread.join() }
        let expected = (0..<total).map { "s\($0)" }
        for stream in streams {
            #expect(stream.failures.isEmpty, "\(stream.id): \(stream.failures.prefix(3))")
            #expect(stream.received == expected)
        }
        #expect(streams.map(\.connections).reduce(0, +) > streamCount * 4)
        #expect(server.total(\.streamCount) == 0)
        #expect(waitUntil(5) { server.total(\.transportCount) == 0 })
    }
}
