// The engine's timers and flow control on a real event loop: idle reaping (case 75) and a push producer paused by
// socket backpressure and resumed when the client reads.
import Glibc
import MinervaTestSupport
import Testing

@testable import MinervaHTTP
@testable import MinervaIO
@testable import MinervaServer

/// Sends 64 KiB strings, one per loop turn, while not paused (at most `limit`).
private final class FloodProducer: MinervaProducer, @unchecked Sendable {
    // @unchecked: used only on `loop` (the closure handed to `execute` runs there).
    weak var stream: ServerStream?
    let loop: MinervaEventLoop
    let events: Recording
    let limit: Int
    var paused = true
    var sent = 0
    static let line = String(repeating: "z", count: 65536)

    init(stream: ServerStream, loop: MinervaEventLoop, events: Recording, limit: Int) {
        self.stream = stream
        self.loop = loop
        self.events = events
        self.limit = limit
    }

    func pump() {
        guard !paused, sent < limit, let stream, !stream.isReset else { return }
        try? stream.send(Self.line)
        sent += 1
        loop.execute { [weak self] in self?.pump() }
    }

    func pauseProducing() {
        events.add("pause \(sent)")
        paused = true
    }

    func resumeProducing() {
        events.add("resume \(sent)")
        paused = false
        pump()
    }

    func stopProducing() { events.add("stop") }
}

private final class ProducerHandler: MinervaStreamHandler {
    let loop: MinervaEventLoop
    let events: Recording
    var producer: FloodProducer?
    init(loop: MinervaEventLoop, events: Recording) {
        self.loop = loop
        self.events = events
    }
    func streamStarted(_ stream: ServerStream) throws {
        let producer = FloodProducer(stream: stream, loop: loop, events: events, limit: 400)
        self.producer = producer
        try stream.registerProducer(producer, streaming: true)
    }
    func streamReset(_ stream: ServerStream, reason: String, applicationLevel: Bool) {
        events.add("reset \(reason)")
    }
}

@Suite("Minerva engine on a real loop", .serialized)
struct MinervaLoopIntegrationTests {
    @Test("75: a stream without transports is reset after the idle time; its id then fails to attach")
    func case75() throws {
        let server = try MinervaTestServer(configure: {
            $0.engine.maxIdleTime = 0.3
            $0.engine.idleCheckInterval = 0.1
            $0.engine.resetStreamMemory = 0
        })
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        try client.post(hh("eeds:null") + "\n")
        #expect(try client.readResponse().text == ";)]}^\nC\n|-1A\n|-1T\n")
        #expect(waitUntil(3) { server.recording.all.last == "reset no activity from peer false" })
        #expect(server.total(\.streamCount) == 0)
        try client.post(hh("-new", "eeds:null") + "\n")
        #expect(try client.readResponse().text == ";)]}^\nstream_attach_failureK\n")
    }

    @Test("a push producer is paused while there is no primary and when the socket backs up, resumed when it drains")
    func producerBackpressure() throws {
        let events = Recording()
        let server = try MinervaTestServer(
            configure: { $0.engine.maxQueuedBytesPerStream = 64 * 1_048_576 }, socket: true,
            factory: { _, loop in ProducerHandler(loop: loop, events: events) })
        defer { server.stop() }
        let client = try RawClient(port: server.socketPort)
        try client.sendModePrefix()
        // A non-primary first: the stream starts, the producer is registered and stays paused.
        try client.sendFrames([hs()])
        #expect(try client.readFrames(1) == ["C"])
        #expect(events.all == ["pause 0"])
        let primary = try RawClient(port: server.socketPort)
        try primary.sendModePrefix()
        try primary.sendFrames([hs("-new", "eeds:null", "tnum:1")])
        // The primary does not read: the producer runs until the socket's output backs up.
        #expect(waitUntil(10) { events.all.count >= 3 })
        let early = events.all
        #expect(early.count >= 3 && early[1] == "resume 0" && early[2].hasPrefix("pause "))
        let pausedAt = early.count >= 3 ? Int(early[2].dropFirst("pause ".count)) ?? 0 : 0
        #expect(pausedAt > 0 && pausedAt < 400)
        // Reading drains it; the producer resumes.
        let deadline = monotonicNow() + 10
        while monotonicNow() < deadline && events.all.count < 4 {
            primary.fill(timeout: 0.05)
            primary.buffer.removeAll()
        }
        #expect(events.all.count >= 4 && events.all[3].hasPrefix("resume "))
    }

    @Test("the same over an HTTP streaming primary: paused when the response backs up, resumed when it drains")
    func producerBackpressureHTTP() throws {
        let events = Recording()
        let server = try MinervaTestServer(
            configure: { $0.engine.maxQueuedBytesPerStream = 64 * 1_048_576 },
            factory: { _, loop in ProducerHandler(loop: loop, events: events) })
        defer { server.stop() }
        let setup = try RawClient(port: server.port)
        try setup.post(hh() + "\n")
        #expect(try setup.readResponse().text == ";)]}^\nC\n|-1A\n|-1T\n")
        #expect(events.all == ["pause 0"])
        let primary = try RawClient(port: server.port)
        try primary.post(hh("-new", "eeds:null", "ming:1", "tnum:1") + "\n")
        #expect(waitUntil(10) { events.all.count >= 3 })
        let early = events.all
        #expect(early.count >= 3 && early[1] == "resume 0" && early[2].hasPrefix("pause "))
        let deadline = monotonicNow() + 10
        while monotonicNow() < deadline && events.all.count < 4 {
            primary.fill(timeout: 0.05)
            primary.buffer.removeAll()
        }
        #expect(events.all.count >= 4 && events.all[3].hasPrefix("resume "))
    }
}
