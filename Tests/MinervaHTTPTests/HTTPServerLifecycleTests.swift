// Binding variants, several loop threads, and shutdown by signal.
import Glibc
import MinervaTestSupport
import Testing

@testable import MinervaHTTP
@testable import MinervaIO

@Suite(.serialized) struct HTTPServerLifecycleTests {
    private static func hello(_ router: MinervaHTTPRouter) {
        router.route("/hello") { _, response in response.end("hello") }
    }

    @Test func listensOnIPv6Loopback() throws {
        let s = try TestServer({ c in c.host = "::1" }, routes: Self.hello)
        defer { s.stop() }
        #expect(s.server.localAddress == "::1")
        let c = try RawClient(port: s.port, host: "::1")
        #expect(try c.request(get("/hello")).text == "hello")
    }

    @Test func severalLoopThreadsShareThePort() throws {
        let s = try TestServer({ c in c.threads = 3 }, routes: Self.hello)
        defer { s.stop() }
        #expect(s.server.eventLoops.count == 3)
        var clients: [RawClient] = []
        for _ in 0..<30 { clients.append(try RawClient(port: s.port)) }
        for c in clients { #expect(try c.request(get("/hello")).text == "hello") }
        #expect(s.server.connectionCount == 30)
    }

    @Test func bindingAnUsedPortFails() throws {
        let s = try TestServer(routes: Self.hello)
        defer { s.stop() }
        var configuration = MinervaHTTPServerConfiguration()
        configuration.port = s.port
        let second = MinervaHTTPServer(configuration: configuration, router: MinervaHTTPRouter())
        #expect(throws: MinervaHTTPServerError.self) { try second.start() }
    }

    @Test func sigtermStartsAGracefulShutdown() throws {
        let s = try TestServer({ c in c.handleSignals = true }, routes: Self.hello)
        let c = try RawClient(port: s.port)
        #expect(try c.request(get("/hello")).status == 200)
        raise(SIGTERM)
        #expect(c.waitForClose())
        s.server.waitUntilStopped()
        #expect(connectTCP(host: "127.0.0.1", port: s.port) < 0)
    }
}
