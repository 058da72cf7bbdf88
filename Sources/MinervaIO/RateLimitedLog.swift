// A log-line budget: hostile input must not be able to flood the log.

/// Admits at most `linesPerWindow` log lines per `window` seconds and counts the ones it holds back, so hostile
/// input cannot flood the log. Loop thread only.
package struct RateLimitedLog {
    /// Seconds per window.
    let window: Double
    /// Lines admitted per window.
    let linesPerWindow: Int
    private var windowStart = -Double.infinity
    private var admitted = 0
    private var suppressed = 0

    package init(window: Double, linesPerWindow: Int) {
        self.window = window
        self.linesPerWindow = linesPerWindow
    }

    /// Whether a line may be written at `now`: nil if not (it is counted), else how many were held back since
    /// the last admitted line.
    package mutating func admit(now: Double) -> Int? {
        if now - windowStart >= window {
            windowStart = now
            admitted = 0
        }
        guard admitted < linesPerWindow else {
            suppressed += 1
            return nil
        }
        admitted += 1
        defer { suppressed = 0 }
        return suppressed
    }
}
