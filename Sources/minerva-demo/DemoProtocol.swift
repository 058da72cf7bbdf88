// The demo protocol that minerva-demo runs and that tests and benchmarks rely on (issue 4, item 4).
import MinervaCore
import MinervaIO
import MinervaServer
import Synchronization

/// The demo application: one ``MinervaDemoHandler`` per stream, a chat room per event loop.
///
/// Commands (one per received string): `echo:X`, `echo_twice:X`, `reset_me:R`, `string_then_reset_me:R`,
/// `send_demo`, `begin_chat`, `broadcast:T`; anything else is answered with `unknown_message_type`. Streams are
/// numbered from 0 in creation order across the whole process. A broadcast reaches the room of every loop: the
/// sender's own loop at once, the others as a message to each loop (in the order the sender sent them).
final class MinervaDemoApplication: Sendable {
    /// One room per loop, each opened only on its own loop.
    private let rooms = Mutex<[ObjectIdentifier: MinervaLoopBound<MinervaDemoRoom>]>([:])
    private let streamCounter = Atomic<Int>(0)

    /// Creates the application.
    init() {}

    /// The handler factory to give to ``MinervaEndpoint``.
    var handlerFactory: MinervaEndpoint.HandlerFactory {
        { @Sendable [self] stream, loop in
            let room = self.room(for: loop)
            let number = streamCounter.wrappingAdd(1, ordering: .relaxed).oldValue
            return MinervaDemoHandler(number: number, room: room, application: self, loop: loop)
        }
    }

    /// The chat room of `loop`. Call on `loop`'s thread.
    /// - Parameter loop: the event loop.
    /// - Returns: the room; use it on `loop`'s thread only.
    func room(for loop: MinervaEventLoop) -> MinervaDemoRoom {
        loop.preconditionInEventLoop()
        let bound = rooms.withLock { rooms in
            if let room = rooms[ObjectIdentifier(loop)], room.eventLoop === loop { return room }
            let room = MinervaLoopBound(MinervaDemoRoom(), eventLoop: loop)
            rooms[ObjectIdentifier(loop)] = room
            return room
        }
        return bound.value
    }

    /// Sends `line` to the rooms of the loops other than `loop` (each delivers it on its own thread).
    func broadcastToOtherLoops(_ line: String, from loop: MinervaEventLoop) {
        let others = rooms.withLock { rooms in rooms.values.filter { $0.eventLoop !== loop } }
        for room in others { room.execute { $0.deliver(line) } }
    }
}

/// The streams of one loop that sent `begin_chat` (and have not reset).
final class MinervaDemoRoom {
    var members: [MinervaDemoHandler] = []

    /// The number of streams in the room.
    var memberCount: Int { members.count }

    /// Sends `line` to every member.
    func deliver(_ line: String) {
        for member in members { member.deliver(line) }
    }
}

/// The demo protocol's handler of one stream.
final class MinervaDemoHandler: MinervaStreamHandler {
    /// The stream's number, assigned at creation (0, 1, 2...).
    let number: Int
    private let room: MinervaDemoRoom
    private let application: MinervaDemoApplication
    private unowned let loop: MinervaEventLoop
    private weak var stream: ServerStream?
    private var demoTimer: MinervaLoopTimer?
    private var inRoom = false

    init(number: Int, room: MinervaDemoRoom, application: MinervaDemoApplication, loop: MinervaEventLoop) {
        self.number = number
        self.room = room
        self.application = application
        self.loop = loop
    }

    /// Remembers the stream.
    func streamStarted(_ stream: ServerStream) throws {
        self.stream = stream
    }

    private static let echoPrefix = Array("echo:".utf8)

    /// Runs one command.
    func stringReceived(_ string: ArraySlice<UInt8>, on stream: ServerStream) throws {
        if string.starts(with: Self.echoPrefix) {  // the hot command: echoed from the borrowed bytes, no String
            try stream.send(string.dropFirst(Self.echoPrefix.count))
            return
        }
        let text = String(decoding: string, as: UTF8.self)
        if let x = text.dropPrefix("echo_twice:") {
            try stream.send(x)
            loop.schedule(after: 0) { [weak stream] in  // a later turn
                guard let stream, !stream.isReset else { return }
                try? stream.send(x)
            }
        } else if let reason = text.dropPrefix("reset_me:") {
            try stream.reset(reason: reason)
        } else if let reason = text.dropPrefix("string_then_reset_me:") {
            try stream.send("about to reset with reasonString \(reason)")
            try stream.reset(reason: reason)
        } else if text == "send_demo" {
            try stream.send("starting_send_demo")
            startSendDemo()
        } else if text == "begin_chat" {
            if !inRoom {
                inRoom = true
                room.members.append(self)
            }
        } else if let message = text.dropPrefix("broadcast:") {
            let line = "TEXT|\(number)|\(message)"
            room.deliver(line)
            application.broadcastToOtherLoops(line, from: loop)
        } else {
            try stream.send("unknown_message_type")
        }
    }

    private func startSendDemo() {
        demoTimer?.cancel()
        var iteration = 0
        demoTimer = loop.schedule(after: 0.2, repeating: 0.2) { [weak self] in
            guard let self, let stream = self.stream, !stream.isReset else {
                self?.demoTimer?.cancel()
                return
            }
            iteration += 1
            let token = "#\(iteration)"
            let line = Array(repeating: token, count: 5 * iteration).joined(separator: " ")
            for _ in 0..<iteration { try? stream.send(line) }
            if iteration >= 20 {
                self.demoTimer?.cancel()
                self.demoTimer = nil
            }
        }
    }

    /// Sends a chat line to this member's stream (if it is still open).
    func deliver(_ line: String) {
        if let stream, !stream.isReset { try? stream.send(line) }
    }

    /// Leaves the room and stops the send demo.
    func streamReset(_ stream: ServerStream, reason: String, applicationLevel: Bool) {
        demoTimer?.cancel()
        demoTimer = nil
        if inRoom {
            inRoom = false
            room.members.removeAll { $0 === self }
        }
    }
}

extension String {
    fileprivate func dropPrefix(_ prefix: String) -> String? {
        hasPrefix(prefix) ? String(dropFirst(prefix.count)) : nil
    }
}
