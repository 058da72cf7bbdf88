// minerva-demo: a home page and /healthz on the Minerva HTTP server. Thin wiring only.
import ArgumentParser
import Logging
import Metrics
import MinervaCluster
import MinervaCore
import MinervaHTTP
import MinervaIO
import MinervaServer
import Prometheus

@main
struct MinervaDemo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "minerva-demo", abstract: "Runs the Minerva demo server.")

    @Option(help: "Address to listen on (IPv4 or IPv6).")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on (0 picks a free one).")
    var port = 8080

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    @Option(
        help:
            "Event-loop threads (default: the CPUs this process may use), each accepting with SO_REUSEPORT; a stream lives on the loop its id maps to."
    )
    var threads = MinervaHTTPServerConfiguration.availableCores()

    @Option(help: "The most HTTP connections open at once (shared by the loops; accepting pauses at the limit).")
    var maxConnections = MinervaHTTPServerConfiguration().maxConnections

    @Option(help: "The most Minerva streams open at once (all loops together); new streams beyond it are refused.")
    var maxStreams = ServerEngineConfiguration().maxStreams

    @Option(
        help:
            "The most memory of strings queued for clients, all streams together, in bytes (each string counted at its length + 80); at the limit the stream with the most queued is reset."
    )
    var maxQueuedBytes = ServerEngineConfiguration().maxQueuedBytesTotal

    @Option(help: "Serve files from this directory under /static/.")
    var staticDir: String?

    @Option(help: "Port of the Minerva socket listener (int32 mode and Flash policy); off unless given.")
    var socketPort: Int?

    @Option(
        help:
            "An origin allowed to use the Minerva endpoint cross-site (CORS), or a whole domain (http://*.localhost); repeatable."
    )
    var allowedOrigin: [String] = []

    @Flag(help: "CORS answers allow credentials (cookies) for the allowed origins.")
    var allowCredentials = false

    @Option(
        help:
            "Refuse every new stream whose request carries no cookie of this name (the client is told `sign in first`): a stand-in for a session check, through the authorizeStream hook."
    )
    var requireCookie: String?

    @Option(help: "Seconds without transports after which a Minerva stream is reset.")
    var idleTimeout: Double = 120

    @Option(help: "The most new Minerva streams per second from one remote address (0: no limit).")
    var maxNewStreamsPerSecond = ServerEngineConfiguration().maxNewStreamsPerKeyPerSecond

    @Option(help: "A reverse proxy (IP address) whose X-Forwarded-For names the client; repeatable.")
    var trustedProxy: [String] = []

    @Option(help: "Serve this file at /_minerva/minerva-client.js instead of the client compiled into the binary.")
    var clientScript: String?

    @Option(help: "Serve this file at /chat instead of the chat page compiled into the binary.")
    var chatPage: String?

    @Option(
        help:
            "Join the cluster of every node using this Redis (redis://HOST:PORT): any node then accepts any request of any stream."
    )
    var redis: String?

    @Option(help: "With --redis: the host:port the other nodes reach this node at (default: the bound address).")
    var advertise: String?

    @Flag(inversion: .prefixedNo, help: "Serve Prometheus metrics at /metrics.")
    var metrics = true

    func validate() throws {
        if let redis, MinervaClusterConfiguration.parse(redisURL: redis) == nil {
            throw ValidationError("--redis wants redis://HOST:PORT, not \(redis)")
        }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown log level \(logLevel)") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        guard maxNewStreamsPerSecond >= 0 else { throw ValidationError("bad --max-new-streams-per-second") }
        guard idleTimeout > 0 else { throw ValidationError("--idle-timeout must be positive") }
        guard maxConnections >= 1 else { throw ValidationError("--max-connections must be at least 1") }
        guard maxStreams >= 1 else { throw ValidationError("--max-streams must be at least 1") }
        guard maxQueuedBytes >= 1 else { throw ValidationError("--max-queued-bytes must be at least 1") }
        if let socketPort, !(0...65535).contains(socketPort) { throw ValidationError("bad --socket-port") }
    }

    func run() throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "minerva-demo")

        let router = MinervaHTTPRouter()
        let registry = PrometheusCollectorRegistry()
        if metrics { MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry)) }
        let health = MinervaStaticContent(text: "ok", contentType: "text/plain", cacheControl: "no-store")
        router.route("/healthz", health.handler)
        let home = MinervaStaticContent(text: homePage, contentType: "text/html; charset=utf-8")
        router.route("/", home.handler)
        if let staticDir {
            let files = MinervaStaticDirectoryHandler(root: staticDir, urlPrefix: "/static/")
            router.mount("/static/", methods: [.GET, .HEAD], files.handler)
        }

        var minerva = MinervaEndpointConfiguration()
        minerva.allowedOrigins = allowedOrigin
        minerva.allowsCredentials = allowCredentials
        if let requireCookie {
            minerva.authorizeStream = { request in
                DemoAuthorization.hasCookie(named: requireCookie, in: request.header("Cookie")) ? nil : "sign in first"
            }
        }
        minerva.trustedProxies = trustedProxy
        minerva.engine.maxIdleTime = idleTimeout
        minerva.engine.maxStreams = maxStreams
        minerva.engine.maxQueuedBytesTotal = maxQueuedBytes
        minerva.engine.maxNewStreamsPerKeyPerSecond = maxNewStreamsPerSecond
        minerva.clientScriptPath = clientScript
        let cluster = try redis.map { MinervaCluster(configuration: try MinervaClusterConfiguration(redisURL: $0)) }
        minerva.placement = cluster
        let channels = MinervaChannels(cluster: cluster)
        let demo = MinervaDemoApplication(channels: channels)
        let endpoint = MinervaEndpoint(
            configuration: minerva, logger: Logger(label: "minerva"),
            handlerFactory: cluster?.tracking(demo.handlerFactory) ?? demo.handlerFactory)
        endpoint.mount(on: router)
        let html = "text/html; charset=utf-8"
        let chat =
            try chatPage.map { try MinervaStaticContent(file: $0, contentType: html) }
            ?? MinervaStaticContent(text: EmbeddedPages.chatPage, contentType: html)
        router.route("/chat", chat.handler)

        var configuration = MinervaHTTPServerConfiguration()
        configuration.host = host
        configuration.port = port
        configuration.threads = threads
        configuration.maxConnections = maxConnections
        configuration.handleSignals = true
        let server = MinervaHTTPServer(configuration: configuration, router: router, logger: logger)
        if metrics {
            let connections = Gauge(label: "minerva_http_connections")
            router.route("/metrics") { [server] _, response in
                connections.record(server.connectionCount)
                response.setHeader("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                response.setHeader("Cache-Control", "no-store")
                response.end(registry.emitToBuffer())
            }
        }
        try server.start()
        let address = server.localAddress.contains(":") ? "[\(server.localAddress)]" : server.localAddress
        logger.info("minerva-demo listening on http://\(address):\(server.localPort)/ (\(threads) loop thread(s))")
        if let cluster, let redis {
            let advertised = advertise ?? "\(address):\(server.localPort)"
            cluster.start(on: server.eventLoops, advertising: advertised)
            logger.info("cluster node \(advertised) on \(redis)")
        }
        channels.start(on: server.eventLoops)
        var socketListener: MinervaSocketListener?
        if let socketPort {
            socketListener = try MinervaSocketListener(
                endpoint: endpoint, host: host, port: socketPort, on: server.eventLoops[0])
            logger.info("Minerva socket listener on \(host):\(socketListener?.port ?? 0)")
        }
        server.waitUntilStopped()
        socketListener = nil
        logger.info("minerva-demo stopped")
    }
}

let homePage = """
    <!doctype html>
    <html lang="en">
    <head><meta charset="utf-8"><title>Minerva demo</title></head>
    <body>
    <h1>Minerva for Swift</h1>
    <p>This server speaks HTTP/1.1 over libev. <a href="/healthz">/healthz</a> answers <code>ok</code>.</p>
    <p>The Minerva endpoint is at <code>/_minerva/</code>, running the demo protocol. <a href="/chat">Chat</a>.</p>
    </body>
    </html>

    """
