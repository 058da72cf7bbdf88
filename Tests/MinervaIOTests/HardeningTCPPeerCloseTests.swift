// MinervaTCPConnection tells its handler how the peer's data ended: a clean end (FIN, a half-close: the peer may still
// read) or a reset.
import Glibc
import MinervaTestSupport
import Testing

@testable import MinervaIO

private final class PeerCloseRecorder: MinervaTCPConnectionHandler {
    /// `peerHalfClosed` as seen in each `connectionPeerClosed`.
    let ends = Locked<[Bool]>([])

    func connection(_ connection: MinervaTCPConnection, didReceive bytes: UnsafeRawBufferPointer) {}

    func connectionPeerClosed(_ connection: MinervaTCPConnection) {
        ends.update { $0.append(connection.peerHalfClosed) }
        if connection.peerHalfClosed {
            connection.write(Array("still here".utf8))  // the peer can still read after its FIN
            connection.close()
        } else {
            connection.closeNow()
        }
    }

    func connectionDidClose(_ connection: MinervaTCPConnection) {}
}

@Suite("Hardening: how the peer's data ended", .serialized)
struct HardeningTCPPeerCloseTests {
    @Test func finIsAHalfCloseAndResetIsNot() throws {
        let t = LoopThread()
        defer { t.stop() }
        let handler = PeerCloseRecorder()
        let listener = try t.sync {
            try t.loop.listenTCP(host: "127.0.0.1", port: 0) { connection in connection.handler = handler }
        }
        defer { _ = try? t.sync { listener.close() } }
        let port = listener.localAddress.port

        let fin = try RawClient(port: port)
        try fin.send("x")
        fin.close()  // FIN
        #expect(String(decoding: try fin.readToEnd(), as: UTF8.self) == "still here")
        #expect(handler.ends.get() == [true])

        let reset = try RawClient(port: port)
        try reset.send("x")
        usleep(50_000)
        reset.abort()  // RST
        #expect(waitUntil { handler.ends.get().count == 2 })
        #expect(handler.ends.get() == [true, false])
    }
}
