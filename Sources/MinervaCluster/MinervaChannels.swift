// Publish/subscribe for Minerva streams: a stream joins and leaves named channels; a string published to a channel
// reaches every stream in it, on every loop of this server and, with a cluster, on every node (through Redis
// PUBLISH / PSUBSCRIBE). Each publisher's strings arrive in the order it published them: its own loop delivers at
// once, the other loops get them as messages in order, and one Redis connection per loop carries them to Redis,
// which hands them to every node's subscriber connection in order.
import Logging
import MinervaCore
import MinervaIO
import MinervaServer
import Synchronization

/// Named channels of streams, in-process across loops, and across the nodes of a ``MinervaCluster``.
///
/// ```swift
/// let channels = MinervaChannels(cluster: cluster)  // or MinervaChannels() for one server
/// channels.start(on: server.eventLoops)             // with a cluster: subscribe to the other nodes' messages
/// channels.join(stream, "chat", on: loop)
/// channels.publish("hello", to: "chat", from: loop)
/// ```
/// Call `join`, `leave` and `publish` on `loop`'s thread (the stream's loop). A stream that resets gets nothing more
/// and is dropped from its channels when it leaves (``leaveAll(_:on:)``) or at the next publication to them.
///
/// Presence: a client that vanishes (tab closed, network gone) leaves its channels when its stream resets, which
/// the server does exactly `ServerEngineConfiguration.maxIdleTime` after the stream's last transport closed
/// (120 s by default, `minerva-demo --idle-timeout`), with no periodic scan adding to it. For a faster presence on
/// one stream set its `maxIdleTime` (for example 15 s for a chat); call ``leaveAll(_:on:)`` from the handler's
/// `streamReset`, as the demo does. A live client never goes idle: its transports keep the stream attached.
public final class MinervaChannels: Sendable {
    /// The cluster whose nodes share the channels (nil: this server only).
    public let cluster: MinervaCluster?
    /// Tells this server's publications apart from other nodes' when Redis hands them back.
    private let token: String
    private let started = Mutex<[MinervaEventLoop]>([])
    /// Keeps each loop's members alive (a loop's slot holds them weakly).
    private let loopStates = Mutex<[MinervaLoopBound<ChannelsLoop>]>([])

    /// Creates channels.
    /// - Parameter cluster: the cluster to publish through (nil: this server's loops only).
    public init(cluster: MinervaCluster? = nil) {
        self.cluster = cluster
        var generator = SystemRandomNumberGenerator()
        token = String(UInt64.random(in: 0...UInt64.max, using: &generator), radix: 36)
    }

    /// With a cluster: subscribes (on the first loop) to what the other nodes publish, and delivers it to the
    /// members on every loop. Without one: nothing to do.
    /// - Parameter loops: the server's event loops.
    public func start(on loops: [MinervaEventLoop]) {
        started.withLock { $0 = loops }
        guard let cluster, let first = loops.first else { return }
        let configuration = cluster.configuration
        let pattern = configuration.keyPrefix + "chan:*"
        let prefixCount = configuration.keyPrefix.utf8.count + "chan:".utf8.count
        first.execute { [self] in
            let subscriber = RedisConnection(
                loop: first, host: configuration.redisHost, port: configuration.redisPort, name: "channels subscriber",
                logger: cluster.logger)
            subscriber.onConnect = { [weak subscriber] in subscriber?.sendUnanswered(["PSUBSCRIBE", pattern]) }
            subscriber.onPush = { [self] reply in
                guard case .array(let items?) = reply, items.count == 4, items[0].text == "pmessage",
                    case .bulk(let channelBytes?) = items[2], case .bulk(let payload?) = items[3],
                    let bar = payload.firstIndex(of: UInt8(ascii: "|"))
                else { return }
                guard String(decoding: payload[..<bar], as: UTF8.self) != self.token else { return }  // ours
                let channel = String(decoding: channelBytes.dropFirst(prefixCount), as: UTF8.self)
                let text = String(decoding: payload[(bar + 1)...], as: UTF8.self)
                self.deliverOnEveryLoop(text, to: channel, from: first)
            }
            self.state(first).subscriber = subscriber
            subscriber.start()
        }
    }

    /// Stops the subscriber connection (call before the loops stop).
    public func stop() {
        guard let first = started.withLock({ $0.first }) else { return }
        first.execute { [self] in
            let state = self.state(first)
            state.subscriber?.stop()
            state.subscriber = nil
        }
    }

    /// Adds `stream` to `channel` (once).
    /// - Parameters:
    ///   - stream: a stream of `loop`.
    ///   - channel: the channel's name.
    ///   - loop: the stream's loop (the current thread's).
    public func join(_ stream: ServerStream, _ channel: String, on loop: MinervaEventLoop) {
        let state = self.state(loop)
        if let members = state.members[channel] {
            members.insert(stream)
        } else {
            let members = ChannelMembers()
            members.insert(stream)
            state.members[channel] = members
        }
    }

    /// Removes `stream` from `channel`.
    public func leave(_ stream: ServerStream, _ channel: String, on loop: MinervaEventLoop) {
        let state = self.state(loop)
        guard let members = state.members[channel] else { return }
        members.remove(stream)
        if members.isEmpty { state.members[channel] = nil }
    }

    /// Removes `stream` from every channel (call it when the stream resets).
    public func leaveAll(_ stream: ServerStream, on loop: MinervaEventLoop) {
        let state = self.state(loop)
        for channel in Array(state.members.keys) { leave(stream, channel, on: loop) }
    }

    /// The number of streams of `loop` in `channel` (a stream that reset without leaving counts until the next
    /// publication to the channel drops it).
    public func memberCount(_ channel: String, on loop: MinervaEventLoop) -> Int {
        state(loop).members[channel]?.count ?? 0
    }

    /// Sends `text` to every stream in `channel`, on every loop and (with a cluster) every node.
    /// - Parameters:
    ///   - text: the string (printable ASCII, as every Minerva string).
    ///   - channel: the channel's name.
    ///   - loop: the publisher's loop (the current thread's).
    public func publish(_ text: String, to channel: String, from loop: MinervaEventLoop) {
        deliverOnEveryLoop(text, to: channel, from: loop)
        guard let cluster, let redis = cluster.loopState(loop)?.redis else { return }
        redis.send(["PUBLISH", cluster.configuration.keyPrefix + "chan:" + channel, token + "|" + text]) {
            [weak state = self.state(loop), cluster] reply in
            guard reply.isError, let state else { return }
            state.failures += 1
            if state.failures == 1 || state.failures % 100 == 0 {
                cluster.logger.warning(
                    "channels: could not publish to other nodes (\(state.failures) so far): \(reply)")
            }
        }
    }

    private func deliverOnEveryLoop(_ text: String, to channel: String, from loop: MinervaEventLoop) {
        deliver(text, to: channel, on: loop)
        guard let group = loop.group, group.count > 1 else { return }
        for other in group.loops where other !== loop {
            other.execute { [self] in self.deliver(text, to: channel, on: other) }
        }
    }

    private func deliver(_ text: String, to channel: String, on loop: MinervaEventLoop) {
        let state = self.state(loop)
        guard let members = state.members[channel] else { return }
        // The bytes once: every member's send queue holds the same array (no copy or encoding per recipient).
        let bytes = Array(text.utf8)
        members.forEachLive { stream in try? stream.send(bytes) }
        if members.isEmpty { state.members[channel] = nil }
    }

    private func state(_ loop: MinervaEventLoop) -> ChannelsLoop {
        if let state = loop.slot(for: ObjectIdentifier(self)) { return unsafeDowncast(state, to: ChannelsLoop.self) }
        let state = ChannelsLoop()
        loop.setSlot(state, for: ObjectIdentifier(self))
        loopStates.withLock { $0.append(MinervaLoopBound(state, eventLoop: loop)) }
        return state
    }
}

/// The streams of one channel on one loop, in an array (delivery walks it) with each stream's index (joining and
/// leaving are O(1); leaving moves the last member into the gap, so the order of delivery among members changes,
/// never the order of one member's strings). Members are held strongly: a stream that reset is dropped by the next
/// delivery if it did not leave, so it is kept at most until then.
final class ChannelMembers {
    @exclusivity(unchecked) private var streams: [ServerStream] = []
    private var indices: [ObjectIdentifier: Int] = [:]
    /// Delivery in progress: removals wait (a member's send can reset it, and its handler leave).
    private var delivering = false
    private var removedWhileDelivering: [ServerStream] = []

    var count: Int { streams.count }
    var isEmpty: Bool { streams.isEmpty }

    func insert(_ stream: ServerStream) {
        let key = ObjectIdentifier(stream)
        guard indices[key] == nil else { return }
        indices[key] = streams.count
        streams.append(stream)
    }

    func remove(_ stream: ServerStream) {
        if delivering {
            removedWhileDelivering.append(stream)
            return
        }
        guard let index = indices.removeValue(forKey: ObjectIdentifier(stream)) else { return }
        let last = streams.removeLast()
        if index < streams.count {
            streams[index] = last
            indices[ObjectIdentifier(last)] = index
        }
    }

    /// Calls `body` with every member that has not reset (the members when the delivery began, even if some leave
    /// or join meanwhile), and drops those that reset.
    func forEachLive(_ body: (ServerStream) -> Void) {
        if delivering {
            // A nested delivery (a handler called back into publish): walk a copy.
            for stream in streams where !stream.isReset { body(stream) }
            return
        }
        delivering = true
        var resetSeen = false
        let end = streams.count
        var index = 0
        while index < end {
            let stream = streams[index]
            if stream.isReset {
                resetSeen = true
            } else {
                body(stream)
            }
            index += 1
        }
        delivering = false
        if !removedWhileDelivering.isEmpty {
            let removed = removedWhileDelivering
            removedWhileDelivering = []
            for stream in removed { remove(stream) }
        }
        if resetSeen {
            for stream in streams.filter(\.isReset) { remove(stream) }
        }
    }
}

/// The members of the channels on one loop (loop-confined).
final class ChannelsLoop {
    var members: [String: ChannelMembers] = [:]
    var subscriber: RedisConnection?
    var failures = 0
}
