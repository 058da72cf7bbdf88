// Thread-safe boxes and bounded waits for tests that watch another thread (an event loop) from the test's thread.
import Glibc

/// A value behind a lock, shared between an event loop's thread and the test.
package final class Locked<T>: @unchecked Sendable {
    // @unchecked: `value` is only touched with `mutex` held.
    private var value: T
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    package init(_ value: T) {
        self.value = value
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    package func get() -> T { update { $0 } }

    package func set(_ newValue: T) { update { $0 = newValue } }

    /// Runs `body` on the value with the lock held and returns its result.
    @discardableResult
    package func update<R>(_ body: (inout T) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}

/// A test failure with a message.
package struct TestError: Error, CustomStringConvertible {
    package let message: String
    package init(_ message: String) { self.message = message }
    package var description: String { message }
}

/// Seconds on the monotonic clock.
package func monotonicNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Polls `condition` every millisecond for at most `seconds`; returns whether it became true.
package func waitUntil(_ seconds: Double = 5, _ condition: () -> Bool) -> Bool {
    let deadline = monotonicNow() + seconds
    while monotonicNow() < deadline {
        if condition() { return true }
        usleep(1000)
    }
    return condition()
}

/// True when `MINERVA_SKIP_LOAD_SENSITIVE` is set (scripts/sanitize.sh sets it): tests whose client threads must
/// keep up with fixed read timeouts or deadlines (the 1,000-stream soak, a 5 s read of 64 MiB of pipelined
/// answers) are skipped, because a sanitized build runs them 5-15 times slower on a shared 2-core machine.
package var skipLoadSensitive: Bool { getenv("MINERVA_SKIP_LOAD_SENSITIVE") != nil }
