// The demo protocol that minerva-demo runs and that tests and benchmarks rely on (issue 4, item 4).
import MinervaCore
import MinervaIO
import MinervaServer
import Synchronization

/// The demo application: one ``MinervaDemoHandler`` per stream, a chat room and a stream counter per event loop.
///
/// Commands (one per received string): `echo:X`, `echo_twice:X`, `reset_me:R`, `string_then_reset_me:R`,
/// `send_demo`, `begin_chat`, `broadcast:T`; anything else is answered with `unknown_message_type`.
final class MinervaDemoApplication: Sendable {
    /// One room per loop, each opened only on its own loop.
    private let rooms = Mutex<[ObjectIdentifier: MinervaLoopBound<MinervaDemoRoom>]>([:])

    /// Creates the application.
    init() {}

    /// The handler factory to give to ``MinervaEndpoint``.
    var handlerFactory: MinervaEndpoint.HandlerFactory {
        { @Sendable [self] stream, loop in
            let room = self.room(for: loop)
            let number = room.nextStreamNumber
            room.nextStreamNumber += 1
            return MinervaDemoHandler(number: number, room: room, loop: loop)
        }
    }

    /// The chat room of `loop` (streams on other loops have their own).
    /// - Parameter loop: the event loop.
    /// - Returns: the room; use it on `loop`'s thread only.
    func room(for loop: MinervaEventLoop) -> MinervaDemoRoom {
        loop.preconditionInEventLoop()
        let bound = rooms.withLock { rooms in
            if let room = rooms[ObjectIdentifier(loop)], room.eventLoop === loop { return room }
            let room = MinervaLoopBound(MinervaDemoRoom(loop: loop), eventLoop: loop)
            rooms[ObjectIdentifier(loop)] = room
            return room
        }
        return bound.value
    }
}

/// The streams that sent `begin_chat` (and have not reset), and the per-loop stream counter.
final class MinervaDemoRoom {
    weak var loop: MinervaEventLoop?
    /// The number the next stream gets (streams are numbered from 0 in creation order).
    var nextStreamNumber = 0
    var members: [MinervaDemoHandler] = []

    init(loop: MinervaEventLoop) { self.loop = loop }

    /// The number of streams in the room.
    var memberCount: Int { members.count }
}

/// The demo protocol's handler of one stream.
final class MinervaDemoHandler: MinervaStreamHandler {
    /// The stream's number, assigned at creation (0, 1, 2...).
    let number: Int
    private let room: MinervaDemoRoom
    private unowned let loop: MinervaEventLoop
    private weak var stream: ServerStream?
    private var demoTimer: MinervaLoopTimer?
    private var inRoom = false

    init(number: Int, room: MinervaDemoRoom, loop: MinervaEventLoop) {
        self.number = number
        self.room = room
        self.loop = loop
    }

    /// Remembers the stream.
    func streamStarted(_ stream: ServerStream) throws {
        self.stream = stream
    }

    /// Runs one command.
    func stringReceived(_ string: ArraySlice<UInt8>, on stream: ServerStream) throws {
        let text = String(decoding: string, as: UTF8.self)
        if let x = text.dropPrefix("echo:") {
            try stream.send(x)
        } else if let x = text.dropPrefix("echo_twice:") {
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
            for member in room.members {
                if let memberStream = member.stream, !memberStream.isReset { try? memberStream.send(line) }
            }
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
