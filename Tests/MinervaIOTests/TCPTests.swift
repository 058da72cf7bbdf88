// Raw TCP connections on an event loop, and end-of-turn work.
import Glibc
import MinervaTestSupport
import Testing

@testable import MinervaIO

final class EchoHandler: MinervaTCPConnectionHandler {
    let closed = Locked(0)
    let received = Locked(0)

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
        let remote = Locked<String?>(nil)
        let listener = try t.sync {
            try t.loop.listenTCP(host: "127.0.0.1", port: 0) { connection in
                connection.handler = handler
                remote.update { $0 = connection.remoteAddress?.host }
            }
        }
        defer { _ = try? t.sync { listener.close() } }
        let port = listener.localAddress.port
        #expect(port > 0)

        let c = try RawClient(port: port)
        try c.send("hello")
        var got: [UInt8] = []
        while got.count < 5 { got += try readSome(c) }
        #expect(got == Array("hello".utf8))
        #expect(remote.get() == "127.0.0.1")
        try c.send("bye!")
        #expect(c.waitForClose())
        #expect(waitUntil { handler.closed.get() == 1 })

        let d = try RawClient(port: port)
        try d.send("#")
        #expect(d.waitForClose())
        #expect(waitUntil { handler.closed.get() == 2 })

        let e = try RawClient(port: port)
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
            let stats = Locked((pauses: 0, resumes: 0, maxBuffered: 0))
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
        let c = try RawClient(port: listener.localAddress.port, receiveBuffer: 16 * 1024)
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
        let order = try t.sync { () -> Locked<[Int]> in
            let order = Locked<[Int]>([])
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

    private func readSome(_ c: RawClient) throws -> [UInt8] {
        var chunk = [UInt8](repeating: 0, count: 4096)
        let n = chunk.withUnsafeMutableBytes { read(c.fd, $0.baseAddress!, $0.count) }
        guard n > 0 else { throw TestError("read \(n)") }
        return Array(chunk[..<n])
    }
}
