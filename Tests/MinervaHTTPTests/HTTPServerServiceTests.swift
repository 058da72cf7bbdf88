// MinervaHTTPServer as a swift-service-lifecycle Service: it serves while the group runs and stops when the group
// shuts down gracefully; its bound address carries the port.
import Logging
import MinervaTestSupport
import ServiceLifecycle
import Testing

@testable import MinervaHTTP
@testable import MinervaIO

@Suite struct HTTPServerServiceTests {
    @Test func servesUntilTheServiceGroupShutsDownGracefully() async throws {
        var configuration = MinervaHTTPServerConfiguration()
        configuration.port = 0
        let router = MinervaHTTPRouter()
        router.route("/hello") { _, response in response.end("hello") }
        let server = MinervaHTTPServer(configuration: configuration, router: router)
        var logger = Logger(label: "test.service")
        logger.logLevel = .error
        let group = ServiceGroup(services: [server], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var waited = 0
            while server.boundAddress == nil && waited < 500 {
                try await Task.sleep(for: .milliseconds(10))
                waited += 1
            }
            let address = try #require(server.boundAddress)
            #expect(address.port != 0 && address.port == server.localPort)
            let client = try RawClient(port: address.port)
            #expect(try client.request(get("/hello")).text == "hello")
            await group.triggerGracefulShutdown()
            try await tasks.next()  // group.run() returned: the server stopped
            #expect(client.waitForClose())
        }
        #expect(server.connectionCount == 0)
    }
}
