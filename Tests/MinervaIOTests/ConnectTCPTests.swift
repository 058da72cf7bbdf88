// MinervaEventLoop.connectTCP (the outbound connect the client uses): success, refusal, and bytes both ways.
import Glibc
import MinervaTestSupport
import Testing

@testable import MinervaIO

@Suite("MinervaEventLoop.connectTCP")
struct ConnectTCPTests {
    private final class Collector: MinervaTCPConnectionHandler {
        let received = Locked<[UInt8]>([])
        let closed = Locked(false)
        func connection(_ connection: MinervaTCPConnection, didReceive bytes: UnsafeRawBufferPointer) {
            received.update { $0 += Array(bytes) }
        }
        func connectionDidClose(_ connection: MinervaTCPConnection) { closed.set(true) }
    }

    @Test("connects to a listener on the same loop and exchanges bytes")
    func connects() throws {
        let client = LoopThread()
        defer { client.stop() }
        let serverSide = Collector()
        let clientSide = Collector()
        let outcome = Locked<String?>(nil)
        let keep = Locked<MinervaTCPListener?>(nil)
        defer { _ = try? client.sync { keep.get()?.close() } }
        try client.sync {
            let listener = try client.loop.listenTCP(host: "127.0.0.1", port: 0) { accepted in
                accepted.handler = serverSide
                accepted.write(Array("from server".utf8))
            }
            keep.set(listener)
            client.loop.connectTCP(host: "127.0.0.1", port: listener.localAddress.port) { result in
                switch result {
                case .success(let connection):
                    connection.handler = clientSide
                    connection.write(Array("from client".utf8))
                    outcome.set("connected")
                case .failure(let error):
                    outcome.set("\(error)")
                }
            }
        }
        #expect(waitUntil(5) { outcome.get() != nil })
        #expect(outcome.get() == "connected")
        #expect(waitUntil(5) { clientSide.received.get() == Array("from server".utf8) })
        #expect(waitUntil(5) { serverSide.received.get() == Array("from client".utf8) })
    }

    @Test("a refused connect fails with ECONNREFUSED, asynchronously")
    func refused() throws {
        let client = LoopThread()
        defer { client.stop() }
        // A port that was just free: bind, note it, close.
        let port = try client.sync { () -> Int in
            let listener = try client.loop.listenTCP(host: "127.0.0.1", port: 0) { $0.abort() }
            let port = listener.localAddress.port
            listener.close()
            return port
        }
        let failure = Locked<Int32?>(nil)
        let calledInline = try client.sync { () -> Bool in
            var inline = true
            client.loop.connectTCP(host: "127.0.0.1", port: port) { result in
                if case .failure(let error) = result { failure.set(error.errno) } else { failure.set(0) }
                _ = inline
            }
            let wasCalled = failure.get() != nil
            inline = false
            return wasCalled
        }
        #expect(!calledInline)
        #expect(waitUntil(5) { failure.get() != nil })
        #expect(failure.get() == ECONNREFUSED)
    }
}
