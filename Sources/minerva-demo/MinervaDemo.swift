// minerva-demo: a home page and /healthz on the Minerva HTTP server. Thin wiring only.
import ArgumentParser
import Logging
import MinervaServer

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

    @Option(help: "Event-loop threads (more than one uses SO_REUSEPORT).")
    var threads = 1

    @Option(help: "Serve files from this directory under /static/.")
    var staticDir: String?

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown log level \(logLevel)") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "minerva-demo")

        let router = HTTPRouter()
        let health = StaticContent(text: "ok", contentType: "text/plain", cacheControl: "no-store")
        router.route("/healthz", health.handler)
        let home = StaticContent(text: homePage, contentType: "text/html; charset=utf-8")
        router.route("/", home.handler)
        if let staticDir {
            let files = StaticDirectoryHandler(root: staticDir, urlPrefix: "/static/")
            router.mount("/static/", methods: [.GET, .HEAD], files.handler)
        }

        var configuration = HTTPServerConfiguration()
        configuration.host = host
        configuration.port = port
        configuration.threads = threads
        configuration.handleSignals = true
        let server = HTTPServer(configuration: configuration, router: router, logger: logger)
        try server.start()
        let address = server.localAddress.contains(":") ? "[\(server.localAddress)]" : server.localAddress
        logger.info("minerva-demo listening on http://\(address):\(server.localPort)/ (\(threads) loop thread(s))")
        server.waitUntilStopped()
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
    </body>
    </html>

    """
