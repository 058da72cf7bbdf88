// A Minerva cluster on Redis (issue 10): any node accepts any request of any stream, without sticky sessions.
//
// - Membership: each node writes `<prefix>node:<address>` with a TTL (``MinervaClusterConfiguration/nodeTTL``),
//   refreshed every heartbeat, and adds its address to the set `<prefix>nodes`; every loop of every node reads
//   the live set each heartbeat. A killed node disappears when its key expires.
// - Ownership: the node that creates a stream owns it. A hello with `new` for a stream this node does not know
//   claims `<prefix>stream:<id>` with `SET ... NX PX ... GET` BEFORE the stream is created here, so two nodes
//   receiving the first requests of one stream at once never both create it: the loser relays to the winner.
//   The owner refreshes its keys and deletes each when its stream ends. A hello without `new` looks the owner up
//   (remembered for a few seconds): a live owner gets the request relayed; no owner or a dead one -> the request
//   runs here, where the engine answers `stream_attach_failure` (PROTOCOL.md 6.1) and the client starts anew.
// - Relay: the request is forwarded over HTTP/1.1 keep-alive connections between advertised addresses, marked
//   with the cluster's secret (so the owner runs it and never relays again) and the client's address; the owner's
//   answer (also long-lived streaming ones) is piped back onto the client's response as it arrives.
// - WebSocket relay: the node a WebSocket reaches answers the handshake itself (the stream is only known from the
//   first message), then places it like a POST. For another node's stream it opens a connection to the owner,
//   repeats the upgrade there (the client's headers, the secret, the client's address), sends the client's bytes as
//   received (masked client frames are valid client frames for the owner) and, after the owner's 101 (dropped),
//   carries bytes both ways without decoding them (ClusterWebSocketRelay.swift).
// - Inside a node, the endpoint's own multi-loop hand-off then takes the request to the stream's loop.
import Logging
import MinervaCore
import MinervaHTTP
import MinervaIO
import MinervaServer
import Synchronization

/// A node of a Minerva cluster: the endpoint's ``MinervaStreamPlacement`` plus membership, ownership and the
/// relay, over one Redis shared by every node.
///
/// ```swift
/// let cluster = MinervaCluster(configuration: try MinervaClusterConfiguration(redisURL: "redis://10.0.0.5:6379"))
/// var minerva = MinervaEndpointConfiguration()
/// minerva.placement = cluster
/// let endpoint = MinervaEndpoint(configuration: minerva, handlerFactory: cluster.tracking(factory))
/// // ... start the HTTP server, then:
/// cluster.start(on: server.eventLoops, advertising: "10.0.0.7:8080")
/// ```
///
/// Redis down: requests of streams this node owns are unaffected; others run here (a new stream is created here
/// unclaimed, an unknown one is answered `stream_attach_failure`) and the nodes reconnect with backoff.
public final class MinervaCluster: MinervaStreamPlacement, Sendable {
    /// The settings.
    public let configuration: MinervaClusterConfiguration
    let logger: Logger
    /// Streams this node owns (claimed or running), shared by its loops: the value is the claim time, or -1 once
    /// the stream started here.
    let owned = Mutex<[StreamID: Double]>([:])
    let advertised = Mutex<String?>(nil)
    /// Keeps each loop's state alive (a loop's slot holds it weakly).
    let loopStates = Mutex<[MinervaLoopBound<ClusterLoop>]>([])
    let relayHeader = "X-Minerva-Relay"
    let relayPeerHeader = "X-Minerva-Relay-Peer"
    /// Counters (for tests and figures): requests relayed out, requests run for another node.
    let relayedOut = Atomic<Int>(0)
    let relayedIn = Atomic<Int>(0)
    let relayFailures = Atomic<Int>(0)
    let joinedFlag = Atomic<Bool>(false)

    /// Creates a node (it does nothing until ``start(on:advertising:)``; until then every request runs here).
    /// - Parameters:
    ///   - configuration: Redis address and timings.
    ///   - logger: where Redis and relay failures go (rate-limited).
    public init(
        configuration: MinervaClusterConfiguration, logger: Logger = Logger(label: "minerva.cluster")
    ) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Joins the cluster: connects each loop to Redis, advertises `address`, and starts relaying.
    /// - Parameters:
    ///   - loops: the HTTP server's event loops (every loop that may receive a request).
    ///   - address: `host:port` of this node's HTTP listener as the other nodes reach it.
    public func start(on loops: [MinervaEventLoop], advertising address: String) {
        advertised.withLock { $0 = address }
        for (index, loop) in loops.enumerated() {
            loop.execute { [self] in
                let state = ClusterLoop(cluster: self, loop: loop, address: address, isFirst: index == 0)
                loop.setSlot(state, for: ObjectIdentifier(self))
                self.loopStates.withLock { $0.append(MinervaLoopBound(state, eventLoop: loop)) }
                state.start()
            }
        }
    }

    /// Leaves the cluster: deletes this node's membership key and stops every Redis connection (call before the
    /// loops stop).
    /// - Parameter loops: the loops given to ``start(on:advertising:)``.
    public func stop(on loops: [MinervaEventLoop]) {
        for loop in loops {
            loop.execute { [self] in
                (loop.slot(for: ObjectIdentifier(self)) as? ClusterLoop)?.stop()
            }
        }
    }

    /// Whether this node's membership key was last written successfully (false before the first heartbeat and
    /// while Redis is unreachable): a health check for embedders.
    public var isJoined: Bool { joinedFlag.load(ordering: .relaxed) }

    /// The address this node advertises (nil before ``start(on:advertising:)``).
    public var advertisedAddress: String? { advertised.withLock { $0 } }

    /// How many requests this node relayed to other nodes, ran for other nodes, and could not relay.
    public var relayCounts: (out: Int, in: Int, failed: Int) {
        (
            relayedOut.load(ordering: .relaxed), relayedIn.load(ordering: .relaxed),
            relayFailures.load(ordering: .relaxed)
        )
    }

    /// Whether this node owns `streamID` (claimed or running here).
    public func owns(_ streamID: StreamID) -> Bool { owned.withLock { $0[streamID] != nil } }

    /// Wraps the application's handler factory so the node knows when its streams start and end (it deletes a
    /// stream's ownership key when the stream ends). Give the result to ``MinervaEndpoint``.
    /// - Parameter factory: the application's factory.
    /// - Returns: a factory that builds the application's handlers, tracked.
    public func tracking(_ factory: @escaping MinervaEndpoint.HandlerFactory) -> MinervaEndpoint.HandlerFactory {
        { [self] stream, loop in
            ClusterTrackedHandler(inner: factory(stream, loop), cluster: self, loop: loop)
        }
    }

    func loopState(_ loop: MinervaEventLoop) -> ClusterLoop? {
        loop.slot(for: ObjectIdentifier(self)) as? ClusterLoop
    }

    func streamStarted(_ id: StreamID, on loop: MinervaEventLoop) {
        let claimed = owned.withLock { owned in
            defer { owned[id] = -1 }
            return owned[id] != nil
        }
        // A stream created without a claim (its first transport was a socket-mode one, which is not relayed, or
        // Redis was down): record it now, so other nodes relay its other transports here.
        if !claimed { loopState(loop)?.claimStarted(id) }
    }

    func streamEnded(_ id: StreamID, on loop: MinervaEventLoop) {
        owned.withLock { _ = $0.removeValue(forKey: id) }
        loopState(loop)?.release(id)
    }

    // MARK: MinervaStreamPlacement

    public func takePost(
        _ request: MinervaHTTPRequest, hello: HelloFrame, connection: ConnectionInfo, response: MinervaHTTPResponse,
        endpoint: MinervaEndpoint
    ) -> Bool {
        guard let state = loopState(response.eventLoop) else { return false }
        return state.takePost(request, hello: hello, connection: connection, response: response, endpoint: endpoint)
    }

    public func takeSocket(_ socket: MinervaPlacedSocket, hello: HelloFrame, endpoint: MinervaEndpoint) -> Bool {
        guard let state = loopState(socket.eventLoop) else { return false }
        return state.takeSocket(socket, hello: hello, endpoint: endpoint)
    }

    public func relayedUpgrade(
        _ request: MinervaHTTPRequest, connection: ConnectionInfo, on loop: MinervaEventLoop
    ) -> MinervaRelayedUpgrade? {
        // Relayed by another node: it runs here, never relayed again. The client's address is believed only with
        // the cluster's secret.
        guard let mark = request.headerBytes(relayHeader) else { return nil }
        relayedIn.add(1, ordering: .relaxed)
        logger.debug("cluster: a WebSocket relayed here")
        var connection = connection
        let trusted = loopState(loop)?.secret.map { mark.elementsEqual($0.utf8) } ?? false
        if trusted, let peer = request.header(relayPeerHeader) {
            connection.peerAddress = peer
            connection.rateLimitKey = hostOf(peer)
        }
        return MinervaRelayedUpgrade(
            connection: connection, hiddenHeaders: ["x-minerva-relay", "x-minerva-relay-peer"])
    }
}

/// Keeps the node's set of owned streams current (and forwards every call to the application's handler).
final class ClusterTrackedHandler: MinervaStreamHandler {
    let inner: any MinervaStreamHandler
    let cluster: MinervaCluster
    unowned let loop: MinervaEventLoop

    init(inner: any MinervaStreamHandler, cluster: MinervaCluster, loop: MinervaEventLoop) {
        self.inner = inner
        self.cluster = cluster
        self.loop = loop
    }

    func streamStarted(_ stream: ServerStream) throws {
        cluster.streamStarted(stream.streamID, on: loop)
        try inner.streamStarted(stream)
    }

    func stringsReceived(_ strings: [ArraySlice<UInt8>], on stream: ServerStream) {
        inner.stringsReceived(strings, on: stream)
    }

    func stringReceived(_ string: ArraySlice<UInt8>, on stream: ServerStream) throws {
        try inner.stringReceived(string, on: stream)
    }

    func streamReset(_ stream: ServerStream, reason: String, applicationLevel: Bool) {
        inner.streamReset(stream, reason: reason, applicationLevel: applicationLevel)
        cluster.streamEnded(stream.streamID, on: loop)
    }

    func transportCreated(_ info: TransportInfo, on stream: ServerStream) {
        inner.transportCreated(info, on: stream)
    }

    func transportDestroyed(_ info: TransportInfo, on stream: ServerStream) {
        inner.transportDestroyed(info, on: stream)
    }
}

extension StreamID {
    /// The id as a String (for Redis keys; ids are ASCII).
    var keyText: String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(StreamID.maxLength)
        append(to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }
}
