// One libev loop, confined to the thread that runs it. Other threads reach it only through `execute`.
internal import CShims

/// A libev event loop confined to one thread: timers, a thread-safe work inbox, deferred release.
///
/// Everything except `execute` and `stop` must be called on the loop's own thread.
public final class EventLoop {
    let raw: OpaquePointer
    private let inboxLock = Lock()
    private var inbox: [() -> Void] = []
    private var draining: [() -> Void] = []
    private var async: AsyncWatcher!
    private var prepare: PrepareWatcher!
    private var timerWatcher: TimerWatcher!
    private var armedDeadline = Double.infinity
    private var timerHeap: [LoopTimer] = []
    private var cancelledInHeap = 0
    private var timerSequence: UInt64 = 0
    private var deadlineLists: [DeadlineList] = []
    private var graveyard: [AnyObject] = []
    /// Called just before the loop blocks (after every iteration's callbacks).
    var beforeBlocking: [() -> Void] = []
    /// Hooks run on the loop when the HTTP server starts a graceful shutdown of it, before its connections drain
    /// (the Minerva endpoint closes its transports gently there, so clients reconnect at once).
    var willDrain: [() -> Void] = []
    private var endOfTurn: [EndOfTurnTask] = []
    private var runningEndOfTurn: [EndOfTurnTask] = []
    /// Most buffers one writev takes.
    static let maxIovecs = 64
    /// Scratch iovec array shared by every socket of this loop.
    let iovecs = UnsafeMutablePointer<iovec>.allocate(capacity: EventLoop.maxIovecs)
    /// Read buffer shared by every raw TCP connection of this loop.
    private(set) lazy var readBuffer = ByteStorage(capacity: 64 * 1024)
    /// Open raw TCP connections (kept alive until closed).
    var openConnections: [TCPConnection] = []
    private var deadlineListsByDuration: [Double: DeadlineList] = [:]
    private var stopRequested = false

    /// Creates a loop (`ev_loop_new` with `EVFLAG_NOSIGMASK`).
    public init() {
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
        beforeBlocking.removeAll()
        willDrain.removeAll()
        graveyard.removeAll()
        async = nil
        prepare = nil
        timerWatcher = nil
        ev_loop_destroy(raw)
        iovecs.deallocate()
    }

    /// The loop's cached current time in seconds (libev's `ev_now`).
    public var now: Double { cshims_ev_now(raw) }

    /// Runs `work` on the loop thread. Thread-safe; work items run in submission order.
    /// - Parameter work: the closure to run on the loop.
    public func execute(_ work: @escaping () -> Void) {
        inboxLock.withLock { inbox.append(work) }
        async.send()
    }

    /// Asks the loop to return from `run()` at the end of the current iteration. Thread-safe.
    public func stop() {
        execute { [unowned self] in
            self.stopRequested = true
            cshims_ev_break_all(self.raw)
        }
    }

    /// Runs the loop on the calling thread until `stop()`.
    public func run() {
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
        _ = cshims_ev_run_nowait(raw)
    }

    private func drainInbox() {
        inboxLock.withLock { swap(&inbox, &draining) }
        for work in draining { work() }
        draining.removeAll(keepingCapacity: true)
    }

    /// Keeps `object` alive until the current loop iteration has finished.
    func releaseLater(_ object: AnyObject) { graveyard.append(object) }

    /// Runs `work` on this loop once the current turn's callbacks are done, just before output is flushed and
    /// the loop blocks. Loop thread only. Use it to coalesce work (e.g. one write for a burst of sends).
    /// - Parameter work: the closure to run.
    public func executeAtEndOfTurn(_ work: @escaping () -> Void) {
        endOfTurn.append(ClosureTask(work))
    }

    /// Queues a task for the end of the current turn (no allocation).
    func scheduleAtEndOfTurn(_ task: EndOfTurnTask) { endOfTurn.append(task) }

    /// The deadline list of this loop for a given duration (created on first use).
    func deadlineList(duration: Double) -> DeadlineList {
        if let list = deadlineListsByDuration[duration] { return list }
        let list = DeadlineList(loop: self, duration: duration)
        deadlineListsByDuration[duration] = list
        return list
    }

    private func prepareToBlock() {
        while !endOfTurn.isEmpty {
            swap(&endOfTurn, &runningEndOfTurn)
            for task in runningEndOfTurn { task.runAtEndOfTurn() }
            runningEndOfTurn.removeAll(keepingCapacity: true)
        }
        for hook in beforeBlocking { hook() }
        if !graveyard.isEmpty { graveyard.removeAll(keepingCapacity: true) }
    }

    // MARK: timers (one ev_timer in front of a heap of one-off timers and fixed-duration deadline lists)

    /// Schedules `callback` after `delay` seconds, then every `repeating` seconds if given.
    /// - Returns: a handle whose `cancel()` stops the timer.
    @discardableResult
    public func schedule(after delay: Double, repeating: Double? = nil, _ callback: @escaping () -> Void)
        -> LoopTimer
    {
        let timer = LoopTimer(loop: self, interval: repeating, callback: callback)
        insert(timer, deadline: now + max(0, delay))
        return timer
    }

    private func insert(_ timer: LoopTimer, deadline: Double) {
        timerSequence &+= 1
        timer.deadline = deadline
        timer.sequence = timerSequence
        timer.inHeap = true
        timerHeap.append(timer)
        siftUp(timerHeap.count - 1)
        armIfEarlier(deadline)
    }

    func timerCancelled(_ timer: LoopTimer) {
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
    func armIfEarlier(_ deadline: Double) {
        if deadline < armedDeadline || !timerWatcher.isActive {
            armedDeadline = deadline
            timerWatcher.arm(after: deadline - now)
        }
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

/// Work queued for the end of a loop turn.
protocol EndOfTurnTask: AnyObject {
    func runAtEndOfTurn()
}

private final class ClosureTask: EndOfTurnTask {
    let work: () -> Void
    init(_ work: @escaping () -> Void) { self.work = work }
    func runAtEndOfTurn() { work() }
}

/// A one-shot or repeating timer on an `EventLoop`; cancel it to stop it.
public final class LoopTimer {
    private weak var loop: EventLoop?
    let interval: Double?
    var callback: (() -> Void)?
    var deadline = 0.0
    var sequence: UInt64 = 0
    var inHeap = false
    /// True once cancelled (or, for a one-shot timer, once fired).
    public fileprivate(set) var isCancelled = false

    init(loop: EventLoop, interval: Double?, callback: @escaping () -> Void) {
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

/// Something that can sit in a `DeadlineList` (intrusive links, no allocation per insertion).
class DeadlineNode {
    fileprivate(set) var deadline = 0.0
    fileprivate var previous: DeadlineNode?
    fileprivate var next: DeadlineNode?
    fileprivate(set) weak var list: DeadlineList?

    /// Called on the loop thread when the node's deadline passes (it has already left its list).
    func deadlineExpired(_ list: DeadlineList) {}
}

/// Nodes that all wait the same duration, kept in deadline order by appending at the tail
/// (libev's "be smart about timeouts", idiom 4). Insert, touch and remove are O(1).
final class DeadlineList {
    unowned let loop: EventLoop
    /// The timeout every node in the list waits.
    let duration: Double
    private(set) var head: DeadlineNode?
    private var tail: DeadlineNode?
    private(set) var count = 0

    init(loop: EventLoop, duration: Double) {
        self.loop = loop
        self.duration = duration
        loop.register(self)
    }

    /// Puts `node` at the tail with deadline now + duration (moving it from any other list).
    func add(_ node: DeadlineNode) {
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
    func touch(_ node: DeadlineNode) {
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

    func remove(_ node: DeadlineNode) {
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
            node.deadlineExpired(self)
        }
    }
}
