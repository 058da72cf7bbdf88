// The C boundary, part 1: every libev callback and the thread entry point.
//
// Each callback is a capture-free closure that recovers the Swift owner from the watcher's `data` field
// (set by the owner to `Unmanaged.passUnretained(self)`) and forwards at once. The owner keeps the watcher
// memory alive and stops the watcher before freeing it, so `data` never dangles while libev can call us.
internal import CShims

let ioWatcherCallback: cshims_io_cb = { _, watcher, revents in
    guard let data = cshims_ev_get_data(watcher) else { return }
    Unmanaged<IOWatcher>.fromOpaque(data).takeUnretainedValue().fire(revents)
}

let connectionIOCallback: cshims_io_cb = { _, watcher, revents in
    guard let data = cshims_ev_get_data(watcher) else { return }
    Unmanaged<MinervaTCPConnection>.fromOpaque(data).takeUnretainedValue().ioEvents(revents)
}

let timerWatcherCallback: cshims_timer_cb = { _, watcher, _ in
    guard let data = cshims_ev_get_data(watcher) else { return }
    Unmanaged<TimerWatcher>.fromOpaque(data).takeUnretainedValue().fire()
}

let asyncWatcherCallback: cshims_async_cb = { _, watcher, _ in
    guard let data = cshims_ev_get_data(watcher) else { return }
    Unmanaged<AsyncWatcher>.fromOpaque(data).takeUnretainedValue().fire()
}

let signalWatcherCallback: cshims_signal_cb = { _, watcher, _ in
    guard let data = cshims_ev_get_data(watcher) else { return }
    Unmanaged<SignalWatcher>.fromOpaque(data).takeUnretainedValue().fire()
}

let prepareWatcherCallback: cshims_prepare_cb = { _, watcher, _ in
    guard let data = cshims_ev_get_data(watcher) else { return }
    Unmanaged<PrepareWatcher>.fromOpaque(data).takeUnretainedValue().fire()
}

/// Boxes a thread body so it can cross pthread_create as one retained pointer.
private final class ThreadBody {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
}

/// A joinable POSIX thread running one closure.
package final class PosixThread: @unchecked Sendable {
    // @unchecked: `handle` is written once, in init, before the object is shared; pthread_join is thread-safe.
    private var handle: UInt = 0

    /// Starts `body` on a new thread.
    package init(_ body: @escaping @Sendable () -> Void) {
        // The new thread takes over this +1 reference and releases it when `body` returns.
        let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
        let rc = cshims_pthread_create(
            { arg in
                let box = Unmanaged<ThreadBody>.fromOpaque(arg!).takeRetainedValue()
                box.body()
                return nil
            }, box, &handle)
        precondition(rc == 0, "pthread_create failed: \(rc)")
    }

    /// Waits for the thread to finish.
    package func join() { _ = cshims_pthread_join(handle) }
}
