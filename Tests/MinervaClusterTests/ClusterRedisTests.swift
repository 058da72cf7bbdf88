// Two cluster nodes in-process (two HTTP servers, each with its endpoint, MinervaCluster and MinervaChannels) on a
// real redis-server started by the test (own temp dir, no persistence). Skipped with a message if redis-server is
// not installed (scripts/cluster-test.sh installs it).
import Glibc
import Logging
import MinervaCore
import MinervaHTTP
import MinervaIO
import MinervaServer
import MinervaTestSupport
import Testing

@testable import MinervaCluster

private let redisServerPath = "/usr/bin/redis-server"
private let redisInstalled = access(redisServerPath, X_OK) == 0

/// A redis-server on a free port (posix_spawn: the event loops' libev may reap children, so no Foundation
/// `Process`), stopped by `stop()` with a bounded wait.
private final class RedisProcess {
    let port: Int
    let pid: pid_t
    let directory: String

    init() throws {
        let probe = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(probe, $0, length) }
        }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(probe, $0, &length) }
        }
        let port = Int(UInt16(bigEndian: address.sin_port))
        close(probe)
        self.port = port
        directory = "/tmp/minerva-redis-\(port)"
        mkdir(directory, 0o700)
        let arguments = [
            redisServerPath, "--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir",
            directory, "--loglevel", "warning", "--logfile", "\(directory)/redis.log",
        ]
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, redisServerPath, nil, nil, &argv, environ)
        guard status == 0 else { throw TestError("posix_spawn redis-server: \(status)") }
        self.pid = pid
        guard
            waitUntil(
                10,
                {
                    let fd = connectTCP(host: "127.0.0.1", port: port)
                    if fd >= 0 { close(fd) }
                    return fd >= 0
                })
        else {
            stop()
            throw TestError("redis-server did not start")
        }
    }

    func stop() {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        if !waitUntil(5, { waitpid(pid, &status, WNOHANG) != 0 }) {
            kill(pid, SIGKILL)
            _ = waitpid(pid, &status, 0)
        }
        unlink("\(directory)/redis.log")
        rmdir(directory)
    }
}

/// The test application: `join` joins channel `c`, `pub:X` publishes X to it, `echo:X` answers X.
private final class ChannelHandler: MinervaTextStreamHandler {
    let channels: MinervaChannels
    unowned let loop: MinervaEventLoop

    init(channels: MinervaChannels, loop: MinervaEventLoop) {
        self.channels = channels
        self.loop = loop
    }

    func streamStarted(_ stream: ServerStream) throws {}

    func textReceived(_ text: String, on stream: ServerStream) throws {
        if text == "join" {
            channels.join(stream, "c", on: loop)
        } else if text.hasPrefix("pub:") {
            channels.publish(String(text.dropFirst(4)), to: "c", from: loop)
        } else if text.hasPrefix("echo:") {
            try stream.send(String(text.dropFirst(5)))
        }
    }

    func streamReset(_ stream: ServerStream, reason: String, applicationLevel: Bool) {
        channels.leaveAll(stream, on: loop)
    }
}

/// One cluster node: an HTTP server with the endpoint, the cluster and the channels.
private final class Node {
    let cluster: MinervaCluster
    let channels: MinervaChannels
    let http: TestServer

    init(redisPort: Int, keyPrefix: String) throws {
        var configuration = MinervaClusterConfiguration(redisHost: "127.0.0.1", redisPort: redisPort)
        configuration.keyPrefix = keyPrefix
        let cluster = MinervaCluster(configuration: configuration, logger: Logger(label: "test.cluster"))
        let channels = MinervaChannels(cluster: cluster)
        var minerva = MinervaEndpointConfiguration()
        minerva.placement = cluster
        let endpoint = MinervaEndpoint(
            configuration: minerva,
            handlerFactory: cluster.tracking { _, loop in ChannelHandler(channels: channels, loop: loop) })
        http = try TestServer { router in endpoint.mount(on: router) }
        self.cluster = cluster
        self.channels = channels
        cluster.start(on: http.server.eventLoops, advertising: "127.0.0.1:\(http.port)")
        channels.start(on: http.server.eventLoops)
    }

    var port: Int { http.port }

    func stop() {
        channels.stop()
        cluster.stop(on: http.server.eventLoops)
        http.stop()
    }
}

/// A stream driven by hand over long-poll requests, one connection each.
private final class HandStream {
    let id: String
    var tnum = 0
    var nextSend = 0
    var ack = -1
    var seenAck = -1
    var unacked: [(Int, String)] = []
    var received: [String] = []
    var killed: String?

    init() {
        var generator = SystemRandomNumberGenerator()
        let letters = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        id = String((0..<26).map { _ in letters[Int.random(in: 0..<letters.count, using: &generator)] })
    }

    /// One long-poll primary on `port` carrying `strings` (and every unacknowledged one); returns the strings it got.
    @discardableResult
    func request(port: Int, _ strings: [String] = [], new: Bool = false) throws -> [String] {
        for string in strings {
            unacked.append((nextSend, string))
            nextSend += 1
        }
        var body =
            "{\"tnum\":\(tnum),\"ver\":2,\"format\":2,\(new ? "\"new\":1," : "")\"id\":\"\(id)\",\"ming\":0,"
            + "\"maxia\":0,\"seenack\":\"|\(seenAck)\",\"sack\":\"|\(ack)\",\"eeds\":null}H\n"
        tnum += 1
        if let first = unacked.first {
            body += "\(first.0)N\n" + unacked.map { $0.1 + " \n" }.joined()
        }
        let client = try RawClient(port: port)
        defer { client.abort() }
        try client.post(body)
        let reply = try client.readResponse()
        guard reply.status == 200 else { throw TestError("HTTP \(reply.status)") }
        var got: [String] = []
        var seq: Int?
        for frame in reply.text.split(separator: "\n", omittingEmptySubsequences: true) {
            let kind = frame.last!
            let payload = String(frame.dropLast())
            switch kind {
            case "N": seq = Int(payload)
            case " ":
                if let n = seq, n == ack + 1 {
                    ack = n
                    received.append(payload)
                    got.append(payload)
                }
                seq = seq.map { $0 + 1 }
            case "A":
                if let acked = payload.split(separator: "|", omittingEmptySubsequences: false).last.flatMap({ Int($0) })
                {
                    unacked.removeAll { $0.0 <= acked }
                    seenAck = acked
                }
            case "K": killed = payload
            default: break
            }
        }
        return got
    }

    /// Polls `port` until `count` strings arrived in all (at most `tries` requests).
    func poll(port: Int, until count: Int, tries: Int = 20) throws {
        var n = 0
        while received.count < count && n < tries && killed == nil {
            try request(port: port)
            n += 1
        }
    }
}

@Suite("Cluster on a real redis-server", .serialized, .enabled(if: redisInstalled, "redis-server is not installed"))
struct ClusterRedisTests {
    private func withCluster(_ body: (Node, Node) throws -> Void) throws {
        let redis = try RedisProcess()
        defer { redis.stop() }
        let prefix = "test\(redis.port):"
        let a = try Node(redisPort: redis.port, keyPrefix: prefix)
        defer { a.stop() }
        let b = try Node(redisPort: redis.port, keyPrefix: prefix)
        defer { b.stop() }
        #expect(waitUntil(10) { a.cluster.isJoined && b.cluster.isJoined })
        try body(a, b)
    }

    @Test("a stream created on one node is served through the other: claimed by its creator, relayed to it")
    func relay() throws {
        try withCluster { a, b in
            let stream = HandStream()
            try stream.request(port: a.port, ["echo:one"], new: true)
            let id = StreamID(stream.id)!
            #expect(a.cluster.owns(id))
            #expect(!b.cluster.owns(id))
            try stream.request(port: b.port, ["echo:two"])
            try stream.poll(port: b.port, until: 2)
            #expect(stream.received == ["one", "two"])
            #expect(stream.killed == nil)
            #expect(b.cluster.relayCounts.out >= 1)
            #expect(a.cluster.relayCounts.in >= 1)
            #expect(a.cluster.relayCounts.failed == 0 && b.cluster.relayCounts.failed == 0)
        }
    }

    @Test("a WebSocket reaching the other node is relayed to the stream's owner, both ways, close included")
    func webSocketRelay() throws {
        try withCluster { a, b in
            let stream = HandStream()
            try stream.request(port: a.port, ["echo:one"], new: true)
            #expect(a.cluster.owns(StreamID(stream.id)!))
            let ws = try RawClient.webSocket(port: b.port)
            defer { ws.abort() }
            let hello =
                "{\"tnum\":\(stream.tnum),\"ver\":2,\"id\":\"\(stream.id)\",\"ming\":1,\"maxia\":0,"
                + "\"seenack\":\"|\(stream.seenAck)\",\"sack\":\"|\(stream.ack)\",\"eeds\":null}H"
            try ws.sendMessages([hello, "1N", "echo:two "])
            var frames: [String] = []
            while !frames.contains("two ") && frames.count < 20 {
                frames += try ws.readMessages(1, timeout: 5)
            }
            #expect(frames.contains("two "))
            #expect(!frames.contains { $0.hasSuffix("K") })
            #expect(b.cluster.relayCounts.out >= 1)
            #expect(a.cluster.relayCounts.in >= 1)
            #expect(!b.cluster.owns(StreamID(stream.id)!))
            // More strings, several per write: they cross the relay in order.
            try ws.sendMessages((0..<50).map { "echo:m\($0) " })
            var echoed: [String] = []
            while echoed.count < 50 {
                let next = try ws.readMessages(1, timeout: 5)[0]
                if next.hasPrefix("m") { echoed.append(next) }
            }
            #expect(echoed == (0..<50).map { "m\($0) " })
            // The client's close frame reaches the owner, whose answer comes back.
            try ws.send(wsClose(1000))
            #expect(try ws.readMessagesUntilClose(timeout: 5).last == "close 1000")
            #expect(a.cluster.relayCounts.failed == 0 && b.cluster.relayCounts.failed == 0)
        }
    }

    @Test("a stream whose first transport is a WebSocket is claimed by the node it reached; unknown ones fail")
    func webSocketClaims() throws {
        try withCluster { a, b in
            let stream = HandStream()
            let ws = try RawClient.webSocket(port: b.port)
            defer { ws.abort() }
            let hello =
                "{\"tnum\":0,\"ver\":2,\"new\":1,\"id\":\"\(stream.id)\",\"ming\":1,\"maxia\":0,"
                + "\"seenack\":\"|-1\",\"eeds\":null}H"
            try ws.sendMessages([hello, "0N", "echo:first "])
            var frames: [String] = []
            while !frames.contains("first ") && frames.count < 20 {
                frames += try ws.readMessages(1, timeout: 5)
            }
            #expect(frames.contains("first "))
            #expect(b.cluster.owns(StreamID(stream.id)!))
            #expect(!a.cluster.owns(StreamID(stream.id)!))
            // A WebSocket for a stream no node knows, on either node: the protocol's own answer.
            for port in [a.port, b.port] {
                let unknown = HandStream()
                let other = try RawClient.webSocket(port: port)
                defer { other.abort() }
                try other.sendMessages([
                    "{\"tnum\":0,\"ver\":2,\"id\":\"\(unknown.id)\",\"ming\":1,\"maxia\":0,\"seenack\":\"|-1\"}H"
                ])
                #expect(
                    try other.readMessagesUntilClose(timeout: 5) == ["stream_attach_failureK", "Y", "close 1000"])
            }
        }
    }

    @Test("a stream no node knows gets stream_attach_failure on any node")
    func unknown() throws {
        try withCluster { a, b in
            for port in [a.port, b.port] {
                let stream = HandStream()
                try stream.request(port: port, ["echo:x"])
                #expect(stream.killed == "stream_attach_failure")
            }
        }
    }

    @Test("a channel reaches its members on both nodes, each publisher's strings in order")
    func channels() throws {
        try withCluster { a, b in
            let x = HandStream()
            let y = HandStream()
            try x.request(port: a.port, ["join"], new: true)
            try y.request(port: b.port, ["join"], new: true)
            #expect(waitUntil(5) { a.cluster.owns(StreamID(x.id)!) && b.cluster.owns(StreamID(y.id)!) })
            let lines = (0..<20).map { "m\($0)" }
            try x.request(port: a.port, lines.map { "pub:" + $0 })
            try y.poll(port: b.port, until: 20)
            try x.poll(port: a.port, until: 20)
            #expect(y.received == lines)
            #expect(x.received == lines)
        }
    }
}
