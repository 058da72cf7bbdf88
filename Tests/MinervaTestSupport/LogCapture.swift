// A log handler that records lines, for tests that check what a server logs.
import Logging

/// Records every log line (level and message) it is given; thread-safe.
package final class LogCapture: Sendable {
    package let lines = Locked<[(level: Logger.Level, message: String)]>([])

    package init() {}

    /// A logger writing into this capture at `level` and above.
    package func logger(label: String = "capture", level: Logger.Level = .trace) -> Logger {
        var logger = Logger(label: label) { _ in CapturingHandler(capture: self) }
        logger.logLevel = level
        return logger
    }

    /// The messages containing `text`.
    package func messages(containing text: String) -> [String] {
        lines.get().map(\.message).filter { $0.contains(text) }
    }

    /// The lines (level and message) containing `text`.
    package func lines(containing text: String) -> [(level: Logger.Level, message: String)] {
        lines.get().filter { $0.message.contains(text) }
    }

    /// Whether a line containing `text` is logged within `seconds`.
    package func logs(_ text: String, within seconds: Double = 3) -> Bool {
        waitUntil(seconds) { !messages(containing: text).isEmpty }
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
