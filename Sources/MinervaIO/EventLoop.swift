// One libev loop, confined to the thread that runs it. Other threads reach it only through `execute`.
internal import CShims
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A libev event loop confined to one thread: timers, a thread-safe work inbox, end-of-turn work, deferred release.
///
/// The loop is `Sendable`: `execute`, `stop` and `inEventLoop` may be called from any thread. Everything else, and
/// every object confined to the loop (connections, responses, engines), belongs to the loop's thread; reach such
/// objects from elsewhere through `execute` and a ``MinervaLoopBound`` wrapper.
public final class MinervaEventLoop: @unchecked Sendable {
    // @unchecked: the mutable state below is touched only on the loop's thread (checked with
    // `preconditionInEventLoop` where it matters); the inbox is behind a Mutex and the owner thread is atomic.
    package let raw: OpaquePointer
    private let inbox = Mutex<[@Sendable () -> Void]>([])
    @exclusivity(unchecked) private var draining: [@Sendable () -> Void] = []
    private let ownerThread = Atomic<UInt>(0)
    @exclusivity(unchecked) private var async: AsyncWatcher!
    @exclusivity(unchecked) private var prepare: PrepareWatcher!
    @exclusivity(unchecked) private var timerWatcher: TimerWatcher!
    @exclusivity(unchecked) private var armedDeadline = Double.infinity
    @exclusivity(unchecked) private var timerHeap: [MinervaLoopTimer] = []
    @exclusivity(unchecked) private var cancelledInHeap = 0
    @exclusivity(unchecked) private var timerSequence: UInt64 = 0
    @exclusivity(unchecked) private var deadlineLists: [DeadlineList] = []
    @exclusivity(unchecked) private var graveyard: [AnyObject] = []
    /// End-of-turn hooks, sorted by `order` (lowest first), run just before the loop blocks.
    @exclusivity(unchecked) private var hooks: [(order: Int, hook: () -> Void)] = []
    /// Hooks run on the loop when the HTTP server starts a graceful shutdown of it, before its connections drain
    /// (the Minerva endpoint closes its transports gently there, so clients reconnect at once).
    @exclusivity(unchecked) package var willDrain: [() -> Void] = []
    @exclusivity(unchecked) private var endOfTurn: [any EndOfTurnTask] = []
    @exclusivity(unchecked) private var runningEndOfTurn: [any EndOfTurnTask] = []
    /// Most buffers one writev takes.
    static let maxIovecs = 64
    /// Scratch iovec array shared by every socket of this loop.
    let iovecs = UnsafeMutablePointer<iovec>.allocate(capacity: MinervaEventLoop.maxIovecs)
    /// Read buffer shared by every TCP connection of this loop.
    package let readBuffer: ByteStorage
    /// Output queues no connection uses now (a connection borrows one while it has output queued).
    @exclusivity(unchecked) private var spareOutputQueues: [OutputQueue] = []
    /// The most spare output queues kept (beyond that, a drained connection's queue is freed).
    static let spareOutputQueueLimit = 256
    /// The largest capacity a spare output queue's copy buffer keeps (a larger one shrinks back when returned).
    static let spareBufferCapacity = 16 * 1024
    /// Open TCP connections (kept alive until closed).
    @exclusivity(unchecked) var openConnections: [MinervaTCPConnection] = []
    @exclusivity(unchecked) private var deadlineListsByDuration: [Double: DeadlineList] = [:]
    @exclusivity(unchecked) private var signalWatchers: [SignalWatcher] = []
    @exclusivity(unchecked) private var stopRequested = false
    /// Per-loop state of higher layers (e.g. each Minerva endpoint's driver), held weakly, keyed by its owner.
    @exclusivity(unchecked) private var slots: [(key: ObjectIdentifier, value: Weak)] = []

    private struct Weak {
        weak var object: AnyObject?
    }
    // Written once, before the loop threads run (MinervaLoopGroup.init), then only read.
    private weak var _group: MinervaLoopGroup?
    private var _indexInGroup = 0

    /// The group of loops this loop belongs to (e.g. its HTTP server's), or nil for a loop on its own. Thread-safe
    /// once the group is set up (it is set before the loop threads run and never changes).
    public var group: MinervaLoopGroup? { _group }

    /// This loop's index in ``group`` (0 for a loop on its own).
    public var indexInGroup: Int { _indexInGroup }

    /// Records the group (MinervaLoopGroup.init only).
    func joinGroup(_ group: MinervaLoopGroup, index: Int) {
        _group = group
        _indexInGroup = index
    }

    /// Creates a loop (`ev_loop_new` with `EVFLAG_NOSIGMASK`).
    /// - Parameter readBufferSize: the size of the read buffer every connection of the loop shares.
    public init(readBufferSize: Int = 64 * 1024) {
        readBuffer = ByteStorage(capacity: readBufferSize)
        guard let loop = cshims_ev_loop_new_nosigmask() else { fatalError("ev_loop_new failed") }
        raw = loop
        async = AsyncWatcher(loop: raw) { [unowned self] in self.drainInbox() }
        prepare = PrepareWatcher(loop: raw) { [unowned self] in self.prepareToBlock() }
        timerWatcher = TimerWatcher(loop: raw) { [unowned self] in self.timersFired() }
    }

    deinit {
        for connection in openConnections { connection.abort() }
        endOfTurn.removeAll()
        for timer in timerHeap { timer.callback = nil }
        timerHeap.removeAll()
        hooks.removeAll()
        signalWatchers.removeAll()
        willDrain.removeAll()
        graveyard.removeAll()
        async = nil
        prepare = nil
        timerWatcher = nil
        ev_loop_destroy(raw)
        iovecs.deallocate()
    }

    /// An empty output queue, from the pool if it has one.
    func takeOutputQueue() -> OutputQueue {
        spareOutputQueues.popLast() ?? OutputQueue(capacity: 1024)
    }

    /// Takes back a connection's output queue (its queued bytes are written or dropped).
    func recycle(_ queue: OutputQueue) {
        queue.removeAll()
        guard spareOutputQueues.count < MinervaEventLoop.spareOutputQueueLimit else { return }
        queue.trim(toCapacity: MinervaEventLoop.spareBufferCapacity)
        spareOutputQueues.append(queue)
    }

    /// The loop's cached current time in seconds (libev's `ev_now`).
    public var now: Double { cshims_ev_now(raw) }

    /// Whether the caller runs on this loop's thread. Before the loop first runs, the thread that owns it (the one
    /// setting it up) counts as the loop's thread. Thread-safe.
    public var inEventLoop: Bool {
        let owner = ownerThread.load(ordering: .acquiring)
        return owner == 0 || owner == UInt(pthread_self())
    }

    /// Stops the process if the caller is not on this loop's thread (our own bug, never the peer's).
    public func preconditionInEventLoop(file: StaticString = #fileID, line: UInt = #line) {
        precondition(inEventLoop, "not on the event loop's thread", file: file, line: line)
    }

    /// Runs `work` on the loop thread. Thread-safe; work items run in submission order.
    /// - Parameter work: the closure to run on the loop.
    public func execute(_ work: @escaping @Sendable () -> Void) {
        inbox.withLock {
            cshims_tsan_acquire(UnsafeRawPointer(raw))
            $0.append(work)
            cshims_tsan_release(UnsafeRawPointer(raw))
        }
        async.send()
    }

    /// Asks the loop to return from `run()` at the end of the current iteration. Thread-safe.
    public func stop() {
        execute { [unowned self] in
            self.stopRequested = true
            cshims_ev_break_all(self.raw)
        }
    }

    /// Runs the loop on the calling thread until `stop()`; that thread is the loop's thread from now on.
    public func run() {
        ownerThread.store(UInt(pthread_self()), ordering: .releasing)
        stopRequested = false
        while !stopRequested {
            ev_run(raw, 0)
        }
        drainInbox()
        prepareToBlock()
    }

    /// Runs one loop iteration without blocking: ready callbacks, work from `execute`, due timers, output
    /// flushes. For loops driven by hand on the calling thread (`EmbeddedHTTPConnection`), never with `run()`.
    public func runOnce() {
        ownerThread.store(UInt(pthread_self()), ordering: .releasing)
        _ = cshims_ev_run_nowait(raw)
    }

    private func drainInbox() {
        // The acquire/release pairs tell ThreadSanitizer what the Mutex orders (it cannot see the Mutex itself on
        // Linux): without them every object handed to the loop through `execute` looks raced (no-ops otherwise).
        inbox.withLock {
            cshims_tsan_acquire(UnsafeRawPointer(raw))
            swap(&$0, &draining)
            cshims_tsan_release(UnsafeRawPointer(raw))
        }
        for work in draining { work() }
        draining.removeAll(keepingCapacity: true)
    }

    /// Keeps `object` alive until the current loop iteration has finished.
    package func releaseLater(_ object: AnyObject) { graveyard.append(object) }

    /// Removes a closed connection from the open list; it is released after this iteration.
    func connectionFinished(_ connection: MinervaTCPConnection) {
        let i = connection.index
        if i < openConnections.count && openConnections[i] === connection {
            let last = openConnections.count - 1
            if i != last {
                openConnections[i] = openConnections[last]
                openConnections[i].index = i
            }
            openConnections.removeLast()
        }
        releaseLater(connection)
    }

    /// Adds a hook that runs at the end of every loop turn, after the turn's end-of-turn tasks, in ascending
    /// `order` (hooks of equal order run in the order added). Output written by a hook is flushed in the same
    /// turn: the tasks are drained again after the hooks. Loop thread only.
    /// - Parameters:
    ///   - order: where the hook runs among the others (see ``EndOfTurnOrder``).
    ///   - hook: the work.
    package func addEndOfTurnHook(order: Int, _ hook: @escaping () -> Void) {
        let at = hooks.firstIndex { $0.order > order } ?? hooks.count
        hooks.insert((order, hook), at: at)
    }

    /// The object stored in this loop's slot for `key` (see ``setSlot(_:for:)``), if it is still alive. Loop thread
    /// only: it replaces a lock-protected table shared by loops with a lookup on the loop itself (no allocation).
    /// - Parameter key: the identity of the slot's owner (e.g. a Minerva endpoint).
    /// - Returns: the object, or nil.
    package func slot(for key: ObjectIdentifier) -> AnyObject? {
        preconditionInEventLoop()
        for entry in slots where entry.key == key { return entry.value.object }
        return nil
    }

    /// Stores `object` (weakly: its owner keeps it alive) in this loop's slot for `key`. Loop thread only.
    /// - Parameters:
    ///   - object: the per-loop state.
    ///   - key: the identity of its owner.
    package func setSlot(_ object: AnyObject, for key: ObjectIdentifier) {
        preconditionInEventLoop()
        slots.removeAll { $0.key == key || $0.value.object == nil }
        slots.append((key, Weak(object: object)))
    }

    /// Calls `callback` on the loop whenever `signal` arrives (until the loop goes away). Loop thread only.
    package func onSignal(_ signal: Int32, _ callback: @escaping () -> Void) {
        signalWatchers.append(SignalWatcher(loop: raw, signal: signal, callback: callback))
    }

    /// Stops every signal callback of this loop.
    package func removeSignalHandlers() { signalWatchers.removeAll() }

    /// Runs `work` on this loop once the current turn's callbacks are done, just before output is flushed and
    /// the loop blocks. Loop thread only. Use it to coalesce work (e.g. one write for a burst of sends).
    /// - Parameter work: the closure to run.
    public func executeAtEndOfTurn(_ work: @escaping () -> Void) {
        preconditionInEventLoop()
        endOfTurn.append(ClosureTask(work))
    }

    /// Queues a task for the end of the current turn (no allocation).
    package func scheduleAtEndOfTurn(_ task: any EndOfTurnTask) { endOfTurn.append(task) }

    /// The deadline list of this loop for a given duration (created on first use).
    func deadlineList(duration: Double) -> DeadlineList {
        if let list = deadlineListsByDuration[duration] { return list }
        let list = DeadlineList(loop: self, duration: duration)
        deadlineListsByDuration[duration] = list
        return list
    }

    /// End of a turn: the queued tasks (socket flushes among them), then the hooks in order, and again while the
    /// hooks queued more tasks (whose callbacks may have produced work for the hooks), so nothing written in this
    /// turn waits for the next wake-up.
    private func prepareToBlock() {
        drainEndOfTurnTasks()
        if !hooks.isEmpty {
            repeat {
                for entry in hooks { entry.hook() }
                if endOfTurn.isEmpty { break }
                drainEndOfTurnTasks()
            } while true
        }
        if !graveyard.isEmpty { graveyard.removeAll(keepingCapacity: true) }
    }

    private func drainEndOfTurnTasks() {
        while !endOfTurn.isEmpty {
            swap(&endOfTurn, &runningEndOfTurn)
            for task in runningEndOfTurn { task.runAtEndOfTurn() }
            runningEndOfTurn.removeAll(keepingCapacity: true)
        }
    }

    // MARK: timers (one ev_timer in front of a heap of one-off timers and fixed-duration deadline lists)

    /// Schedules `callback` after `delay` seconds, then every `repeating` seconds if given.
    /// - Returns: a handle whose `cancel()` stops the timer.
    @discardableResult
    public func schedule(after delay: Double, repeating: Double? = nil, _ callback: @escaping () -> Void)
        -> MinervaLoopTimer
    {
        let timer = MinervaLoopTimer(loop: self, interval: repeating, callback: callback)
        insert(timer, deadline: now + max(0, delay))
        return timer
    }

    private func insert(_ timer: MinervaLoopTimer, deadline: Double) {
        timerSequence &+= 1
        timer.deadline = deadline
        timer.sequence = timerSequence
        timer.inHeap = true
        timerHeap.append(timer)
        siftUp(timerHeap.count - 1)
        armIfEarlier(deadline)
    }

    func timerCancelled(_ timer: MinervaLoopTimer) {
        guard timer.inHeap else { return }
        cancelledInHeap += 1
        if cancelledInHeap > 64 && cancelledInHeap * 2 > timerHeap.count {
            timerHeap.removeAll { t in
                if t.isCancelled { t.inHeap = false }
                return t.isCancelled
            }
            cancelledInHeap = 0
            for i in stride(from: timerHeap.count / 2 - 1, through: 0, by: -1) { siftDown(i) }
        }
    }

    func register(_ list: DeadlineList) { deadlineLists.append(list) }

    /// Makes sure the loop timer fires no later than `deadline`.
    ///
    /// `armedDeadline` is the only record of the arming: it stays set from `arm` until `timersFired` runs, which
    /// re-arms for the earliest deadline left. In between, the watcher may be inactive yet pending (libev stops an
    /// expired one-shot timer and queues its callback; work from the inbox or a signal runs before it in the same
    /// iteration). Re-arming then would drop the queued callback (`ev_timer_stop` clears it) and leave every due
    /// timer waiting for `deadline`, however far, so a pending watcher is left alone.
    func armIfEarlier(_ deadline: Double) {
        guard deadline < armedDeadline, !timerWatcher.isPending else { return }
        armedDeadline = deadline
        timerWatcher.arm(after: deadline - now)
    }

    private func timersFired() {
        armedDeadline = .infinity
        let current = now
        while let top = timerHeap.first, top.deadline <= current || top.isCancelled {
            popTop()
            top.inHeap = false
            if top.isCancelled {
                cancelledInHeap -= 1
                continue
            }
            if let interval = top.interval {
                insert(top, deadline: max(current, top.deadline + interval))
            } else {
                top.isCancelled = true
            }
            top.callback?()
            if top.isCancelled { top.callback = nil }
        }
        for list in deadlineLists { list.expire(upTo: current) }
        var next = timerHeap.first?.deadline ?? .infinity
        for list in deadlineLists { if let d = list.head?.deadline, d < next { next = d } }
        if next < .infinity {
            armedDeadline = next
            timerWatcher.arm(after: next - now)
        }
    }

    private func less(_ a: Int, _ b: Int) -> Bool {
        let x = timerHeap[a]
        let y = timerHeap[b]
        return x.deadline < y.deadline || (x.deadline == y.deadline && x.sequence < y.sequence)
    }

    private func siftUp(_ index: Int) {
        var i = index
        while i > 0 {
            let parent = (i - 1) / 2
            if !less(i, parent) { break }
            timerHeap.swapAt(i, parent)
            i = parent
        }
    }

    private func siftDown(_ index: Int) {
        var i = index
        let n = timerHeap.count
        while true {
            let l = 2 * i + 1
            let r = l + 1
            var m = i
            if l < n && less(l, m) { m = l }
            if r < n && less(r, m) { m = r }
            if m == i { return }
            timerHeap.swapAt(i, m)
            i = m
        }
    }

    private func popTop() {
        let last = timerHeap.count - 1
        timerHeap.swapAt(0, last)
        timerHeap.removeLast()
        if !timerHeap.isEmpty { siftDown(0) }
    }
}

/// The order of end-of-turn hooks (lower runs first).
package enum EndOfTurnOrder {
    /// Minerva engines: write what the application sent this turn.
    package static let engine = 100
}

/// Work queued for the end of a loop turn.
package protocol EndOfTurnTask: AnyObject {
    func runAtEndOfTurn()
}

private final class ClosureTask: EndOfTurnTask {
    let work: () -> Void
    init(_ work: @escaping () -> Void) { self.work = work }
    func runAtEndOfTurn() { work() }
}

/// A one-shot or repeating timer on an `MinervaEventLoop`; cancel it to stop it.
public final class MinervaLoopTimer {
    private weak var loop: MinervaEventLoop?
    let interval: Double?
    @exclusivity(unchecked) var callback: (() -> Void)?
    @exclusivity(unchecked) var deadline = 0.0
    @exclusivity(unchecked) var sequence: UInt64 = 0
    @exclusivity(unchecked) var inHeap = false
    /// True once cancelled (or, for a one-shot timer, once fired).
    @exclusivity(unchecked) public fileprivate(set) var isCancelled = false

    init(loop: MinervaEventLoop, interval: Double?, callback: @escaping () -> Void) {
        self.loop = loop
        self.interval = interval.map { max($0, 0.000_001) }
        self.callback = callback
    }

    /// Stops the timer; its callback will not run again. Loop thread only.
    public func cancel() {
        if isCancelled { return }
        isCancelled = true
        callback = nil
        loop?.timerCancelled(self)
    }
}

/// What a `DeadlineNode` tells when its deadline passes.
package protocol DeadlineTarget: AnyObject {
    /// Called on the loop thread when the node's deadline passes (it has already left `list`).
    func deadlineExpired(_ list: DeadlineList)
}

/// A place in a `DeadlineList` (intrusive links, no allocation per insertion), owned by its target.
package final class DeadlineNode {
    /// When the node's timeout passes (loop time), while it is in a list.
    @exclusivity(unchecked) package fileprivate(set) var deadline = 0.0
    @exclusivity(unchecked) fileprivate var previous: DeadlineNode?
    @exclusivity(unchecked) fileprivate var next: DeadlineNode?
    /// The list the node is in, if any.
    package fileprivate(set) weak var list: DeadlineList?
    /// Told when the deadline passes; the target owns the node, so it outlives it.
    package unowned(unsafe) var target: (any DeadlineTarget)?

    /// Creates a node in no list.
    package init() {}
}

/// Nodes that all wait the same duration, kept in deadline order by appending at the tail
/// (libev's "be smart about timeouts", idiom 4). Insert, touch and remove are O(1).
package final class DeadlineList {
    unowned let loop: MinervaEventLoop
    /// The timeout every node in the list waits.
    package let duration: Double
    /// The node whose deadline comes first (the one that entered the list first).
    @exclusivity(unchecked) package private(set) var head: DeadlineNode?
    @exclusivity(unchecked) private var tail: DeadlineNode?
    @exclusivity(unchecked) private(set) var count = 0

    package init(loop: MinervaEventLoop, duration: Double) {
        self.loop = loop
        self.duration = duration
        loop.register(self)
    }

    /// Puts `node` at the tail with deadline now + duration (moving it from any other list).
    package func add(_ node: DeadlineNode) {
        node.list?.remove(node)
        node.deadline = loop.now + duration
        node.list = self
        node.previous = tail
        node.next = nil
        if let tail { tail.next = node } else { head = node }
        tail = node
        count += 1
        loop.armIfEarlier(node.deadline)
    }

    /// Restarts `node`'s timeout (it must be in this list).
    package func touch(_ node: DeadlineNode) {
        if node.list !== self {
            add(node)
            return
        }
        if tail === node {
            node.deadline = loop.now + duration
            return
        }
        remove(node)
        add(node)
    }

    package func remove(_ node: DeadlineNode) {
        guard node.list === self else { return }
        if let p = node.previous { p.next = node.next } else { head = node.next }
        if let n = node.next { n.previous = node.previous } else { tail = node.previous }
        node.previous = nil
        node.next = nil
        node.list = nil
        count -= 1
    }

    func expire(upTo now: Double) {
        while let node = head, node.deadline <= now {
            remove(node)
            node.target?.deadlineExpired(self)
        }
    }
}
