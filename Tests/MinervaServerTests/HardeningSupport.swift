// Helpers shared by the hardening and fuzz tests: a log handler that records lines, servers with a capturing
// logger, and a seeded random number generator.
import Logging

@testable import MinervaHTTP
@testable import MinervaIO
@testable import MinervaServer

/// Records every log line (level and message) it is given; thread-safe.
final class LogCapture: @unchecked Sendable {
    let lines = Shared<[(level: Logger.Level, message: String)]>([])

    /// A logger writing into this capture at `level` and above.
    func logger(label: String = "capture", level: Logger.Level = .trace) -> Logger {
        var logger = Logger(label: label) { _ in CapturingHandler(capture: self) }
        logger.logLevel = level
        return logger
    }

    /// The messages containing `text`.
    func messages(containing text: String) -> [String] {
        lines.get().map(\.message).filter { $0.contains(text) }
    }
}

private struct CapturingHandler: LogHandler {
    let capture: LogCapture
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var text = event.message.description
        if let extra = event.metadata, !extra.isEmpty {
            text += " " + extra.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        }
        capture.lines.update { $0.append((event.level, text)) }
    }
}

/// A started `MinervaHTTPServer` on 127.0.0.1:0 whose log goes into `logs`; call `stop()` in a defer.
final class CapturedServer {
    let server: MinervaHTTPServer
    let router = MinervaHTTPRouter()
    let logs = LogCapture()
    var port: Int { server.localPort }

    init(_ configure: (inout MinervaHTTPServerConfiguration) -> Void = { _ in }, routes: (MinervaHTTPRouter) -> Void)
        throws
    {
        var configuration = MinervaHTTPServerConfiguration()
        configuration.host = "127.0.0.1"
        configuration.port = 0
        configure(&configuration)
        routes(router)
        server = MinervaHTTPServer(
            configuration: configuration, router: router, logger: logs.logger(label: "hardening"))
        try server.start()
    }

    func stop(grace: Double = 0.5) {
        server.shutdown(gracePeriod: grace)
        server.waitUntilStopped()
    }
}

/// A small deterministic generator (SplitMix64), so every fuzz failure reproduces from its seed.
struct FuzzRandom: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
