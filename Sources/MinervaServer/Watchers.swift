// One Swift class per libev watcher kind. Each allocates its watcher at a fixed address, stops and frees it in
// deinit, and forwards events to a closure. Only these classes and CBridge.swift touch `Unmanaged`.
internal import CShims

/// Owns one `ev_io`.
final class IOWatcher {
    private let loop: OpaquePointer
    private let watcher = UnsafeMutablePointer<ev_io>.allocate(capacity: 1)
    private let callback: (Int32) -> Void
    /// The events currently watched (EV_READ, EV_WRITE bits); 0 when stopped.
    private(set) var events: Int32 = 0

    init(loop: OpaquePointer, fd: Int32, callback: @escaping (Int32) -> Void) {
        self.loop = loop
        self.callback = callback
        cshims_ev_io_init(watcher, ioWatcherCallback, fd, 0)
        // `data` points to self, unretained: self outlives the watcher because deinit stops it.
        cshims_ev_set_data(watcher, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit {
        ev_io_stop(loop, watcher)
        watcher.deallocate()
    }

    /// Watches exactly `newEvents` (0 stops the watcher).
    func watch(_ newEvents: Int32) {
        if newEvents == events { return }
        ev_io_stop(loop, watcher)
        events = newEvents
        if newEvents != 0 {
            cshims_ev_io_set(watcher, watcher.pointee.fd, newEvents)
            ev_io_start(loop, watcher)
        }
    }

    func fire(_ revents: Int32) { callback(revents) }
}

/// Owns one `ev_timer`.
final class TimerWatcher {
    private let loop: OpaquePointer
    private let watcher = UnsafeMutablePointer<ev_timer>.allocate(capacity: 1)
    private let callback: () -> Void

    init(loop: OpaquePointer, callback: @escaping () -> Void) {
        self.loop = loop
        self.callback = callback
        cshims_ev_timer_init(watcher, timerWatcherCallback, 0, 0)
        // `data` points to self, unretained: deinit stops the watcher first.
        cshims_ev_set_data(watcher, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit {
        ev_timer_stop(loop, watcher)
        watcher.deallocate()
    }

    var isActive: Bool { cshims_ev_is_active(watcher) != 0 }

    /// (Re)starts the timer to fire once after `seconds`.
    func arm(after seconds: Double) {
        ev_timer_stop(loop, watcher)
        cshims_ev_timer_set(watcher, max(0, seconds), 0)
        ev_timer_start(loop, watcher)
    }

    func stop() { ev_timer_stop(loop, watcher) }

    func fire() { callback() }
}

/// Owns one `ev_async` (the only watcher other threads may poke, through `send`).
final class AsyncWatcher {
    private let loop: OpaquePointer
    private let watcher = UnsafeMutablePointer<ev_async>.allocate(capacity: 1)
    private let callback: () -> Void

    init(loop: OpaquePointer, callback: @escaping () -> Void) {
        self.loop = loop
        self.callback = callback
        cshims_ev_async_init(watcher, asyncWatcherCallback)
        // `data` points to self, unretained: deinit stops the watcher first.
        cshims_ev_set_data(watcher, Unmanaged.passUnretained(self).toOpaque())
        ev_async_start(loop, watcher)
    }

    deinit {
        ev_async_stop(loop, watcher)
        watcher.deallocate()
    }

    /// Wakes the loop (thread-safe); several sends may merge into one callback.
    func send() { ev_async_send(loop, watcher) }

    /// Lets the loop exit while only this watcher remains.
    func unref() { ev_unref(loop) }

    func fire() { callback() }
}

/// Owns one `ev_signal`.
final class SignalWatcher {
    private let loop: OpaquePointer
    private let watcher = UnsafeMutablePointer<ev_signal>.allocate(capacity: 1)
    private let callback: () -> Void

    init(loop: OpaquePointer, signal: Int32, callback: @escaping () -> Void) {
        self.loop = loop
        self.callback = callback
        cshims_ev_signal_init(watcher, signalWatcherCallback, signal)
        // `data` points to self, unretained: deinit stops the watcher first.
        cshims_ev_set_data(watcher, Unmanaged.passUnretained(self).toOpaque())
        ev_signal_start(loop, watcher)
    }

    deinit {
        ev_signal_stop(loop, watcher)
        watcher.deallocate()
    }

    func fire() { callback() }
}

/// Owns one `ev_prepare` (runs just before the loop blocks: flushes output, frees closed connections).
final class PrepareWatcher {
    private let loop: OpaquePointer
    private let watcher = UnsafeMutablePointer<ev_prepare>.allocate(capacity: 1)
    private let callback: () -> Void

    init(loop: OpaquePointer, callback: @escaping () -> Void) {
        self.loop = loop
        self.callback = callback
        cshims_ev_prepare_init(watcher, prepareWatcherCallback)
        // `data` points to self, unretained: deinit stops the watcher first.
        cshims_ev_set_data(watcher, Unmanaged.passUnretained(self).toOpaque())
        ev_prepare_start(loop, watcher)
    }

    deinit {
        ev_prepare_stop(loop, watcher)
        watcher.deallocate()
    }

    func fire() { callback() }
}
