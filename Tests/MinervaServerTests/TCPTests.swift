// Raw TCP connections on an event loop, end-of-turn work, and peer addresses.
import CShims
import Glibc
import Testing

@testable import MinervaHTTP
@testable import MinervaIO
@testable import MinervaServer

/// A loop running on its own thread for the duration of a test.
final class LoopThread {
    let loop = MinervaEventLoop()
    private var thread: PosixThread?

    init() {
        let loop = self.loop
        thread = PosixThread { loop.run() }
    }

    func stop() {
        loop.stop()
        thread?.join()
        thread = nil
    }

    /// Runs `body` on the loop and waits for its result.
    func sync<T>(_ body: @escaping () throws -> T) throws -> T {
        let result = Shared<Result<T, Error>?>(nil)
        loop.execute { result.update { $0 = Result(catching: body) } }
        guard waitUntil(5, { result.get() != nil }), let r = result.get() else {
            throw TestError("loop did not answer")
        }
        return try r.get()
    }
}

final class EchoHandler: MinervaTCPConnectionHandler {
    let closed = Shared(0)
    let received = Shared(0)

    func connection(_ connection: MinervaTCPConnection, didReceive bytes: UnsafeRawBufferPointer) {
        received.update { $0 += bytes.count }
        connection.write(bytes)
        if bytes.contains(UInt8(ascii: "!")) { connection.close() }
        if bytes.contains(UInt8(ascii: "#")) { connection.abort() }
    }

    func connectionDidClose(_ connection: MinervaTCPConnection) { closed.update { $0 += 1 } }
}

@Suite(.serialized) struct TCPTests {
    @Test func echoCloseAndAbort() throws {
        let t = LoopThread()
        defer { t.stop() }
        let handler = EchoHandler()
        let remote = Shared<String?>(nil)
        let listener = try t.sync {
            try t.loop.listenTCP(host: "127.0.0.1", port: 0) { connection in
                connection.handler = handler
                remote.update { $0 = connection.remoteAddress?.host }
            }
        }
        defer { _ = try? t.sync { listener.close() } }
        let port = listener.localAddress.port
        #expect(port > 0)

        let c = try TestClient(port: port)
        try c.send("hello")
        var got: [UInt8] = []
        while got.count < 5 { got += try readSome(c) }
        #expect(got == Array("hello".utf8))
        #expect(remote.get() == "127.0.0.1")
        try c.send("bye!")
        #expect(c.waitForClose())
        #expect(waitUntil { handler.closed.get() == 1 })

        let d = try TestClient(port: port)
        try d.send("#")
        #expect(d.waitForClose())
        #expect(waitUntil { handler.closed.get() == 2 })

        let e = try TestClient(port: port)
        try e.send("x")
        _ = try readSome(e)
        e.close()
        #expect(waitUntil { handler.closed.get() == 3 })
        #expect(try t.sync { t.loop.openConnections.count } == 0)
    }

    @Test func slowPeerPausesTheWriter() throws {
        final class Flood: MinervaTCPConnectionHandler {
            let total = 4 * 1024 * 1024
            var sent = 0
            let stats = Shared((pauses: 0, resumes: 0, maxBuffered: 0))
            let block = [UInt8](repeating: 0x62, count: 8192)

            func pump(_ connection: MinervaTCPConnection) {
                while sent < total {
                    guard connection.isWritable else {
                        stats.update { $0.pauses += 1 }
                        return
                    }
                    connection.write(block)
                    sent += block.count
                    stats.update { $0.maxBuffered = max($0.maxBuffered, connection.bufferedBytes) }
                }
                connection.close()
            }

            func connection(_ connection: MinervaTCPConnection, didReceive bytes: UnsafeRawBufferPointer) {
                pump(connection)
            }
            func connectionDidClose(_ connection: MinervaTCPConnection) {}
            func connectionBecameWritable(_ connection: MinervaTCPConnection) {
                stats.update { $0.resumes += 1 }
                pump(connection)
            }
        }
        let t = LoopThread()
        defer { t.stop() }
        let flood = Flood()
        var options = MinervaTCPConnectionOptions()
        options.highWaterMark = 64 * 1024
        options.lowWaterMark = 16 * 1024
        let listener = try t.sync {
            try t.loop.listenTCP(host: "127.0.0.1", port: 0, options: options) { $0.handler = flood }
        }
        defer { _ = try? t.sync { listener.close() } }
        let c = try TestClient(port: listener.localAddress.port, receiveBuffer: 16 * 1024)
        try c.send("go")
        usleep(200_000)
        #expect(flood.stats.get().pauses >= 1)
        let all = try c.readToEnd()
        #expect(all.count == flood.total)
        let stats = flood.stats.get()
        #expect(stats.resumes >= 1)
        #expect(stats.maxBuffered <= 64 * 1024 + 8192)
    }

    @Test func endOfTurnWorkRunsAfterTheCurrentCallback() throws {
        let t = LoopThread()
        defer { t.stop() }
        let order = try t.sync { () -> Shared<[Int]> in
            let order = Shared<[Int]>([])
            order.update { $0.append(1) }
            t.loop.executeAtEndOfTurn {
                order.update { $0.append(3) }
                t.loop.executeAtEndOfTurn { order.update { $0.append(4) } }
            }
            order.update { $0.append(2) }
            return order
        }
        #expect(waitUntil { order.get().count == 4 })
        #expect(order.get() == [1, 2, 3, 4])
    }

    @Test func httpRequestKnowsBothAddresses() throws {
        let s = try TestServer(routes: { router in
            router.route("/who") { request, response in
                response.end("\(request.remoteAddress?.description ?? "-") \(request.localAddress?.description ?? "-")")
            }
        })
        defer { s.stop() }
        let c = try TestClient(port: s.port)
        let text = try c.request(get("/who")).text
        let clientPort = MinervaSocketAddress.of(fd: c.fd, peer: false)!.port
        #expect(text == "127.0.0.1:\(clientPort) 127.0.0.1:\(s.port)")
    }

    private func readSome(_ c: TestClient) throws -> [UInt8] {
        var chunk = [UInt8](repeating: 0, count: 4096)
        let n = chunk.withUnsafeMutableBytes { cshims_read(c.fd, $0.baseAddress!, $0.count) }
        guard n > 0 else { throw TestError("read \(n)") }
        return Array(chunk[..<n])
    }
}
