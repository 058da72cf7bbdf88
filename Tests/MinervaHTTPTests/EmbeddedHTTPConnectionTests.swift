// The embedded connection: the whole request path on the test's own thread, stepped by hand.
import Testing

@_spi(Benchmarks) @testable import MinervaHTTP
@testable import MinervaIO

@Suite struct EmbeddedHTTPConnectionTests {
    private func makeRouter() -> MinervaHTTPRouter {
        let router = MinervaHTTPRouter()
        let health = MinervaStaticContent(text: "ok", contentType: "text/plain")
        router.route("/healthz", health.handler)
        router.route("/later") { _, response in
            response.eventLoop.schedule(after: 0) { response.end("later") }
        }
        return router
    }

    private func receive(_ c: EmbeddedHTTPConnection, until needle: String, steps: Int = 200) -> String {
        var text = ""
        for _ in 0..<steps {
            c.step()
            text += String(decoding: c.clientReceiveAll(), as: UTF8.self)
            if text.contains(needle) { break }
        }
        return text
    }

    @Test func keepAliveAndPipeliningWithoutThreads() throws {
        let c = try EmbeddedHTTPConnection(router: makeRouter())
        c.clientSend("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        let first = receive(c, until: "\r\n\r\nok")
        #expect(first.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(first.hasSuffix("Content-Length: 2\r\n\r\nok"))
        c.clientSend(
            "GET /later HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        let rest = receive(c, until: "\r\n\r\nok")
        let parts = rest.split(separator: "HTTP/1.1 ").map(String.init)
        #expect(parts.count == 2)
        #expect(parts.first?.hasSuffix("later") == true)
        #expect(parts.last?.hasSuffix("\r\n\r\nok") == true)
        #expect(rest.contains("Connection: close"))
        for _ in 0..<10 where !c.isServerClosed { c.step() }
        #expect(c.isServerClosed)
    }

    /// A response the test ends later (a held long-poll).
    private final class HeldResponse: @unchecked Sendable {
        var response: MinervaHTTPResponse?
    }

    @Test func idleAndHeldConnectionsOwnNoDecoderAndInputBehindAHeldResponseWaits() throws {
        let router = makeRouter()
        let held = HeldResponse()
        router.route("/hold") { _, response in held.response = response }
        let c = try EmbeddedHTTPConnection(router: router)
        c.clientSend("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(receive(c, until: "\r\n\r\nok").hasPrefix("HTTP/1.1 200 OK\r\n"))
        let server = try #require(c.serverConnections.first)
        #expect(server.decoder == nil)  // an idle keep-alive connection gave its decoder back

        c.clientSend("GET /hold HTTP/1.1\r\nHost: t\r\n\r\n")
        for _ in 0..<50 where held.response == nil { c.step() }
        let response = try #require(held.response)
        #expect(server.decoder == nil)  // nor does a held response's connection own one

        // A request sent behind the held one borrows a decoder to keep its bytes, and waits.
        c.clientSend("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        c.step(5)
        #expect(server.decoder != nil)
        #expect(c.clientReceiveAll().isEmpty)

        response.end("held")
        let rest = receive(c, until: "\r\n\r\nok")
        let parts = rest.split(separator: "HTTP/1.1 ").map(String.init)
        #expect(parts.count == 2)
        #expect(parts.first?.hasSuffix("\r\n\r\nheld") == true)
        #expect(parts.last?.hasSuffix("\r\n\r\nok") == true)
        #expect(server.decoder == nil)

        // A second connection on the loop rests without a decoder too.
        let other = try EmbeddedHTTPConnection(sharingServerWith: c)
        other.clientSend("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(receive(other, until: "\r\n\r\nok").hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(c.serverConnections.allSatisfy { $0.decoder == nil })
    }

    @Test func malformedRequestAnswered400() throws {
        let c = try EmbeddedHTTPConnection(router: makeRouter())
        c.clientSend("NOT HTTP AT ALL\r\n\r\n")
        #expect(receive(c, until: "Bad Request\n").hasPrefix("HTTP/1.1 400 Bad Request"))
    }
}
