// The README's embedding example, compiled and run against a real socket. The example needs `import MinervaServer`
// alone; MinervaCore is imported only for the test's own look at the engine.
import MinervaCore
import MinervaServer
import MinervaTestSupport
import Testing

/// Sends every string back (the README's handler, verbatim).
private final class Echo: MinervaTextStreamHandler {
    func streamStarted(_ stream: ServerStream) throws {}
    func textReceived(_ text: String, on stream: ServerStream) throws { try stream.send(text) }
    func streamReset(_ stream: ServerStream, reason: String, applicationLevel: Bool) {}
}

@Suite("Embedding example")
struct MinervaEmbeddingTests {
    @Test("the README's echo server echoes, and send refuses a non-restricted string without crashing")
    func readmeEcho() throws {
        let router = MinervaHTTPRouter()
        MinervaEndpoint { _ in Echo() }.mount(on: router)
        var configuration = MinervaHTTPServerConfiguration()
        configuration.port = 0
        let server = MinervaHTTPServer(configuration: configuration, router: router)
        try server.start()
        defer {
            server.shutdown(gracePeriod: 0.2)
            server.waitUntilStopped()
        }
        let client = try RawClient(port: server.localPort)
        try client.post(hh("eeds:null", "ming:1") + "\nhello \n")
        _ = try client.readHead()
        let expected = ";)]}^\nC\n|0A\n0N\nhello \n"
        #expect(try client.readChunks(totalling: expected.utf8.count) == expected)
        let endpoint = MinervaEndpoint { _ in Echo() }
        let loop = server.eventLoops[0]
        let failure = try runOnLoop(loop) { () -> String? in
            let engine = endpoint.engine(on: loop)
            engine.openTransport(TransportHandle(1), kind: .http, connection: ConnectionInfo(), now: 0)
            engine.httpBodyReceived(TransportHandle(1), body: Array((hh() + "\n").utf8), now: 0)
            let stream = engine.stream(StreamID(testStreamID)!)!
            do {
                try stream.send("tab\there")
                return nil
            } catch {
                return "\(error)"
            }
        }
        #expect(failure == "string contains bytes outside 0x20...0x7E")
    }
}
