// One Swift class per libev watcher shape (IOWatcher; LoopWatcher for the kinds whose callback takes no argument).
// Each allocates its watcher at a fixed address, stops and frees it in deinit, and forwards events to a closure.
// Only these classes and CBridge.swift touch `Unmanaged`.
internal import CShims

/// What an ``IOWatcher`` tells of its events (its owner: no closure context to allocate per watcher).
package protocol IOWatcherTarget: AnyObject {
    /// The watched descriptor is ready (`revents`: EV_READ, EV_WRITE bits).
    func ioEvents(_ revents: Int32)
}

/// An `ev_io` held by value: a `MinervaTCPConnection` owns one directly (no watcher object between them: an idle
/// connection costs one allocation less; `data` points at the connection, unretained: it stops and frees the watcher
/// in its deinit), and ``IOWatcher`` wraps one for everything else.
struct ConnectionIOWatcher {
    let watcher = UnsafeMutablePointer<ev_io>.allocate(capacity: 1)
    /// The events currently watched (EV_READ, EV_WRITE bits); 0 when stopped.
    private(set) var events: Int32 = 0

    /// Points the watcher at `connection` (call once, from its initialiser).
    func attach(fd: Int32, to connection: MinervaTCPConnection) {
        attach(fd: fd, callback: connectionIOCallback, data: Unmanaged.passUnretained(connection).toOpaque())
    }

    /// Points the watcher at `fd`, with `callback` and its `data` (call once).
    func attach(fd: Int32, callback: cshims_io_cb, data: UnsafeMutableRawPointer) {
        cshims_ev_io_init(watcher, callback, fd, 0)
        cshims_ev_set_data(watcher, data)
    }

    /// Watches exactly `newEvents` (0 stops the watcher).
    mutating func watch(_ newEvents: Int32, loop: OpaquePointer) {
        if newEvents == events { return }
        ev_io_stop(loop, watcher)
        events = newEvents
        if newEvents != 0 {
            cshims_ev_io_set(watcher, watcher.pointee.fd, newEvents)
            ev_io_start(loop, watcher)
        }
    }

    /// Stops and frees the watcher (the connection's deinit).
    func free(loop: OpaquePointer) {
        ev_io_stop(loop, watcher)
        watcher.deallocate()
    }
}

/// Owns one `ev_io`.
package final class IOWatcher {
    private let loop: OpaquePointer
    private var io = ConnectionIOWatcher()
    /// The owner: it keeps the watcher, whose deinit stops it, so it outlives every callback.
    private unowned(unsafe) let target: any IOWatcherTarget
    /// The events currently watched (EV_READ, EV_WRITE bits); 0 when stopped.
    var events: Int32 { io.events }

    package init(loop: OpaquePointer, fd: Int32, target: any IOWatcherTarget) {
        self.loop = loop
        self.target = target
        // `data` points to self, unretained: self outlives the watcher because deinit stops it.
        io.attach(fd: fd, callback: ioWatcherCallback, data: Unmanaged.passUnretained(self).toOpaque())
    }

    deinit { io.free(loop: loop) }

    /// Watches exactly `newEvents` (0 stops the watcher).
    package func watch(_ newEvents: Int32) { io.watch(newEvents, loop: loop) }

    func fire(_ revents: Int32) { target.ioEvents(revents) }
}

/// Owns one libev watcher whose callback takes no argument (`ev_timer`, `ev_async`, `ev_signal`, `ev_prepare`):
/// allocates it at a fixed address, points its `data` at self, starts it if asked, and stops and frees it in
/// deinit. The kinds differ only in the libev functions passed in (see the `extension`s below).
final class LoopWatcher<Raw> {
    fileprivate let loopPointer: OpaquePointer
    fileprivate let watcher = UnsafeMutablePointer<Raw>.allocate(capacity: 1)
    private let callback: () -> Void
    private let stopWatcher: (OpaquePointer, UnsafeMutablePointer<Raw>) -> Void

    /// - Parameters:
    ///   - initialize: the kind's `ev_*_init` (with its C callback from CBridge.swift).
    ///   - start: the kind's `ev_*_start`, or nil to leave the watcher stopped.
    ///   - stop: the kind's `ev_*_stop`.
    fileprivate init(
        loop: OpaquePointer, callback: @escaping () -> Void, initialize: (UnsafeMutablePointer<Raw>) -> Void,
        start: ((OpaquePointer, UnsafeMutablePointer<Raw>) -> Void)?,
        stop: @escaping (OpaquePointer, UnsafeMutablePointer<Raw>) -> Void
    ) {
        loopPointer = loop
        self.callback = callback
        stopWatcher = stop
        initialize(watcher)
        // `data` points to self, unretained: deinit stops the watcher before self goes away.
        cshims_ev_set_data(watcher, Unmanaged.passUnretained(self).toOpaque())
        start?(loop, watcher)
    }

    deinit {
        stopWatcher(loopPointer, watcher)
        watcher.deallocate()
    }

    func fire() { callback() }
}

/// Owns one `ev_timer` (stopped until `arm`).
typealias TimerWatcher = LoopWatcher<ev_timer>
/// Owns one `ev_async` (the only watcher other threads may poke, through `send`).
typealias AsyncWatcher = LoopWatcher<ev_async>
/// Owns one `ev_signal`.
typealias SignalWatcher = LoopWatcher<ev_signal>
/// Owns one `ev_prepare` (runs just before the loop blocks: flushes output, frees closed connections).
typealias PrepareWatcher = LoopWatcher<ev_prepare>

extension LoopWatcher where Raw == ev_timer {
    convenience init(loop: OpaquePointer, callback: @escaping () -> Void) {
        self.init(
            loop: loop, callback: callback, initialize: { cshims_ev_timer_init($0, timerWatcherCallback, 0, 0) },
            start: nil, stop: { ev_timer_stop($0, $1) })
    }

    var isActive: Bool { cshims_ev_is_active(watcher) != 0 }

    /// Whether the timer has expired and its callback is queued for this loop iteration. libev stops a one-shot
    /// timer before queuing its callback, so such a timer is pending but not active; `arm` would drop that
    /// callback (`ev_timer_stop` clears a pending event).
    var isPending: Bool { cshims_ev_is_pending(watcher) != 0 }

    /// (Re)starts the timer to fire once after `seconds`.
    func arm(after seconds: Double) {
        ev_timer_stop(loopPointer, watcher)
        cshims_ev_timer_set(watcher, max(0, seconds), 0)
        ev_timer_start(loopPointer, watcher)
    }
}

extension LoopWatcher where Raw == ev_async {
    convenience init(loop: OpaquePointer, callback: @escaping () -> Void) {
        self.init(
            loop: loop, callback: callback, initialize: { cshims_ev_async_init($0, asyncWatcherCallback) },
            start: { ev_async_start($0, $1) }, stop: { ev_async_stop($0, $1) })
    }

    /// Wakes the loop (thread-safe); several sends may merge into one callback.
    func send() { ev_async_send(loopPointer, watcher) }
}

extension LoopWatcher where Raw == ev_signal {
    convenience init(loop: OpaquePointer, signal: Int32, callback: @escaping () -> Void) {
        self.init(
            loop: loop, callback: callback, initialize: { cshims_ev_signal_init($0, signalWatcherCallback, signal) },
            start: { ev_signal_start($0, $1) }, stop: { ev_signal_stop($0, $1) })
    }
}

extension LoopWatcher where Raw == ev_prepare {
    convenience init(loop: OpaquePointer, callback: @escaping () -> Void) {
        self.init(
            loop: loop, callback: callback, initialize: { cshims_ev_prepare_init($0, prepareWatcherCallback) },
            start: { ev_prepare_start($0, $1) }, stop: { ev_prepare_stop($0, $1) })
    }
}
