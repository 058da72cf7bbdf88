// The demo protocol that minerva-demo runs and that tests and benchmarks rely on (issue 4, item 4).
import MinervaCluster
import MinervaCore
import MinervaIO
import MinervaServer
import Synchronization

/// The demo application: one ``MinervaDemoHandler`` per stream; the chat is the channel `chat` of
/// ``MinervaChannels`` (every loop of this server and, in a cluster, every node).
///
/// Commands (one per received string): `echo:X`, `echo_twice:X`, `reset_me:R`, `string_then_reset_me:R`,
/// `send_demo`, `begin_chat`, `broadcast:T`; anything else is answered with `unknown_message_type`. Streams are
/// numbered from 0 in creation order across the whole process. A broadcast reaches every stream that sent
/// `begin_chat`: on the sender's own loop at once, on the other loops and nodes in the order the sender sent them.
final class MinervaDemoApplication: Sendable {
    /// The chat channel's name.
    static let chatChannel = "chat"
    let channels: MinervaChannels
    private let streamCounter = Atomic<Int>(0)

    /// Creates the application.
    /// - Parameter channels: the channels the chat uses (default: this server's loops only).
    init(channels: MinervaChannels = MinervaChannels()) {
        self.channels = channels
    }

    /// The handler factory to give to ``MinervaEndpoint``.
    var handlerFactory: MinervaEndpoint.HandlerFactory {
        { @Sendable [self] stream, loop in
            let number = streamCounter.wrappingAdd(1, ordering: .relaxed).oldValue
            return MinervaDemoHandler(number: number, application: self, loop: loop)
        }
    }

    /// The chat room of `loop` (its members on that loop). Call on `loop`'s thread.
    /// - Parameter loop: the event loop.
    /// - Returns: the room.
    func room(for loop: MinervaEventLoop) -> MinervaDemoRoom {
        loop.preconditionInEventLoop()
        return MinervaDemoRoom(memberCount: channels.memberCount(Self.chatChannel, on: loop))
    }
}

/// The chat members of one loop.
struct MinervaDemoRoom {
    /// The number of streams of the loop that sent `begin_chat` (and have not reset).
    let memberCount: Int
}

/// The demo protocol's handler of one stream.
final class MinervaDemoHandler: MinervaStreamHandler {
    /// The stream's number, assigned at creation (0, 1, 2...).
    let number: Int
    private let application: MinervaDemoApplication
    private unowned let loop: MinervaEventLoop
    private weak var stream: ServerStream?
    private var demoTimer: MinervaLoopTimer?
    private var inRoom = false

    init(number: Int, application: MinervaDemoApplication, loop: MinervaEventLoop) {
        self.number = number
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
                application.channels.join(stream, MinervaDemoApplication.chatChannel, on: loop)
            }
        } else if let message = text.dropPrefix("broadcast:") {
            application.channels.publish(
                "TEXT|\(number)|\(message)", to: MinervaDemoApplication.chatChannel, from: loop)
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
            application.channels.leaveAll(stream, on: loop)
        }
    }
}

extension String {
    fileprivate func dropPrefix(_ prefix: String) -> String? {
        hasPrefix(prefix) ? String(dropFirst(prefix.count)) : nil
    }
}

/// The demo's stand-in for a session check (`--require-cookie NAME`).
enum DemoAuthorization {
    /// Whether a `Cookie` header value names a cookie `name` with a non-empty value.
    static func hasCookie(named name: String, in header: String?) -> Bool {
        guard let header else { return false }
        return header.split(separator: ";").contains { pair in
            let parts = pair.split(separator: "=", maxSplits: 1)
            return parts.count == 2 && parts[0].drop(while: { $0 == " " }) == name[...] && !parts[1].isEmpty
        }
    }
}
