// The cluster's state on one event loop: its Redis connection, its view of the live nodes, the owners it looked
// up, requests waiting for a claim or a lookup, and its relay connections to other nodes. Loop-confined.
import Logging
import MinervaCore
import MinervaHTTP
import MinervaIO
import MinervaServer

/// A transport kept while Redis decides where its stream runs.
enum WaitingTransport {
    /// A POST of `io/`; `relayed`: another node relayed it here, so it runs here whatever Redis says.
    case post(MinervaPostCopy, MinervaHTTPResponse, relayed: Bool)
    /// A WebSocket or an int32 socket whose hello arrived.
    case webSocket(MinervaPlacedSocket, HelloFrame)
}

final class ClusterLoop {
    unowned let cluster: MinervaCluster
    unowned let loop: MinervaEventLoop
    let address: String
    let isFirst: Bool
    let redis: RedisConnection
    var configuration: MinervaClusterConfiguration { cluster.configuration }
    /// The cluster's shared secret (read from Redis): marks requests relayed by a node.
    var secret: String?
    var alive: Set<String> = []
    var ownerCache: [StreamID: (owner: String, expires: Double)] = [:]
    var waiting: [StreamID: [WaitingTransport]] = [:]
    var idleRelays: [String: [RelayConnection]] = [:]
    private var heartbeatTimer: MinervaLoopTimer?
    private var refreshTimer: MinervaLoopTimer?
    var endpoint: MinervaEndpoint?
    var relayLog = RateLimitedLog(window: 5, linesPerWindow: 5)

    init(cluster: MinervaCluster, loop: MinervaEventLoop, address: String, isFirst: Bool) {
        self.cluster = cluster
        self.loop = loop
        self.address = address
        self.isFirst = isFirst
        redis = RedisConnection(
            loop: loop, host: cluster.configuration.redisHost, port: cluster.configuration.redisPort,
            name: "cluster loop \(loop.indexInGroup)", logger: cluster.logger)
    }

    var prefix: String { configuration.keyPrefix }
    func streamKey(_ id: StreamID) -> String { prefix + "stream:" + id.keyText }

    func start() {
        redis.onConnect = { [weak self] in self?.connected() }
        redis.start()
        heartbeatTimer = loop.schedule(
            after: configuration.heartbeatInterval, repeating: configuration.heartbeatInterval
        ) { [weak self] in self?.heartbeat() }
        if isFirst {
            let every = max(0.05, configuration.streamClaimTTL / 3)
            refreshTimer = loop.schedule(after: every, repeating: every) { [weak self] in self?.refreshClaims() }
        }
    }

    func stop() {
        heartbeatTimer?.cancel()
        refreshTimer?.cancel()
        if isFirst {
            redis.send(["DEL", prefix + "node:" + address])
            redis.send(["SREM", prefix + "nodes", address])
        }
        loop.schedule(after: 0.05) { [redis] in redis.stop() }
        for (_, list) in idleRelays { for relay in list { relay.close() } }
        idleRelays = [:]
    }

    private func connected() {
        if isFirst && redis.connectCount > 1 {
            // Redis came back (maybe empty): claim this node's streams again, unless another node took one since.
            let ttl = String(Int(configuration.streamClaimTTL * 1000))
            let ids = cluster.owned.withLock { Array($0.keys) }
            for id in ids { redis.send(["SET", streamKey(id), address, "NX", "PX", ttl]) }
        }
        var bytes = [UInt8](repeating: 0, count: 16)
        var generator = SystemRandomNumberGenerator()
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255, using: &generator) }
        let candidate = bytes.map { String($0, radix: 16) }.joined()
        redis.send(["SET", prefix + "secret", candidate, "NX"])
        redis.send(["GET", prefix + "secret"]) { [weak self] reply in
            if let text = reply.text { self?.secret = text }
        }
        heartbeat()
    }

    /// Refreshes membership (first loop) and this loop's view of the live nodes.
    private func heartbeat() {
        guard redis.isConnected else {
            if isFirst { cluster.joinedFlag.store(false, ordering: .relaxed) }
            return
        }
        let ttl = String(Int(configuration.nodeTTL * 1000))
        // Every loop refreshes the node's key: a node is alive while any of its loops runs.
        redis.send(["SET", prefix + "node:" + address, "1", "PX", ttl]) { [cluster, isFirst] reply in
            if isFirst { cluster.joinedFlag.store(reply == .status("OK"), ordering: .relaxed) }
        }
        if isFirst { redis.send(["SADD", prefix + "nodes", address]) }
        redis.send(["SMEMBERS", prefix + "nodes"]) { [weak self] reply in
            guard let self, case .array(let items?) = reply else { return }
            let nodes = items.compactMap(\.text)
            guard !nodes.isEmpty else {
                self.alive = []
                return
            }
            self.redis.send(["MGET"] + nodes.map { self.prefix + "node:" + $0 }) { [weak self] reply in
                guard let self, case .array(let values?) = reply, values.count == nodes.count else { return }
                var alive: Set<String> = []
                var dead: [String] = []
                for (node, value) in zip(nodes, values) {
                    if case .bulk(.some) = value { alive.insert(node) } else { dead.append(node) }
                }
                alive.insert(self.address)
                self.alive = alive
                if self.isFirst && !dead.isEmpty { self.redis.send(["SREM", self.prefix + "nodes"] + dead) }
            }
        }
        let now = loop.now
        if ownerCache.count > 4096 { ownerCache = ownerCache.filter { $0.value.expires > now } }
    }

    /// Extends the ownership keys of this node's streams; forgets claims whose stream never started.
    private func refreshClaims() {
        guard redis.isConnected else { return }
        let now = loop.now
        var refresh: [StreamID] = []
        var abandoned: [StreamID] = []
        cluster.owned.withLock { owned in
            for (id, claimed) in owned {
                if claimed >= 0 && now - claimed > 30 { abandoned.append(id) } else { refresh.append(id) }
            }
            for id in abandoned { owned[id] = nil }
        }
        let ttl = String(Int(configuration.streamClaimTTL * 1000))
        for id in refresh { redis.send(["PEXPIRE", streamKey(id), ttl]) }
        for id in abandoned { release(id) }
    }

    /// Claims a stream that started here without a claim (unless another node holds the id).
    func claimStarted(_ id: StreamID) {
        let ttl = String(Int(configuration.streamClaimTTL * 1000))
        redis.send(["SET", streamKey(id), address, "NX", "PX", ttl])
    }

    /// Deletes a stream's ownership key if it still names this node.
    func release(_ id: StreamID) {
        redis.send([
            "EVAL", "if redis.call('get',KEYS[1])==ARGV[1] then return redis.call('del',KEYS[1]) end return 0", "1",
            streamKey(id), address,
        ])
    }

    // MARK: Placement

    func takePost(
        _ request: MinervaHTTPRequest, hello: HelloFrame, connection: ConnectionInfo, response: MinervaHTTPResponse,
        endpoint: MinervaEndpoint
    ) -> Bool {
        self.endpoint = endpoint
        let id = hello.streamID
        if let mark = request.headerBytes(cluster.relayHeader) {
            // Relayed by another node: run here, never relay again (the endpoint hands it to the stream's loop).
            // The client's address is believed only with the cluster's secret.
            cluster.relayedIn.add(1, ordering: .relaxed)
            cluster.logger.debug("cluster: stream \(id.redacted) relayed here")
            let trusted = secret.map { mark.elementsEqual($0.utf8) } ?? false
            var post = MinervaPostCopy(request, connection: connection)
            post.headers.removeAll { isRelayHeader($0.0) }
            if trusted, let peer = request.header(cluster.relayPeerHeader) {
                post.connection.peerAddress = peer
                post.connection.rateLimitKey = hostOf(peer)
            }
            if waiting[id] != nil {
                waiting[id]!.append(.post(post, response, relayed: true))
            } else {
                endpoint.runPost(post, response: response)
            }
            return true
        }
        if cluster.owns(id) { return false }
        if waiting[id] != nil {
            waiting[id]!.append(.post(MinervaPostCopy(request, connection: connection), response, relayed: false))
            return true
        }
        // While Redis is down, a remembered owner is used however old (the relay tells whether it still lives).
        if let cached = ownerCache[id], cached.expires > loop.now || !redis.isConnected {
            if cached.owner != address {
                relay(MinervaPostCopy(request, connection: connection), response: response, to: cached.owner, id: id)
                return true
            }
            ownerCache[id] = nil
        }
        guard redis.isConnected else {
            // Without the directory this node cannot know the owner: a clear error (the client retries), never a
            // guess that could create the stream twice or fail a live one.
            logRelay("cluster: redis unreachable; answering 503 to a request for a stream this node does not own")
            response.status = 503
            response.setHeader("Retry-After", "1")
            response.end("Minerva cluster directory (redis) unavailable\n")
            return true
        }
        waiting[id] = [.post(MinervaPostCopy(request, connection: connection), response, relayed: false)]
        lookUpOwner(id, new: hello.requestNewStream)
        return true
    }

    /// A WebSocket's (handshake answered) or an int32 socket's hello arrived: run it here (false), or find its
    /// stream's owner and relay its bytes there (``relayWebSocket(_:hello:to:id:)``), as for a POST.
    func takeSocket(_ socket: MinervaPlacedSocket, hello: HelloFrame, endpoint: MinervaEndpoint) -> Bool {
        self.endpoint = endpoint
        let id = hello.streamID
        if cluster.owns(id) { return false }
        if waiting[id] != nil {
            waiting[id]!.append(.webSocket(socket, hello))
            return true
        }
        if let cached = ownerCache[id], cached.expires > loop.now || !redis.isConnected {
            if cached.owner != address {
                relayWebSocket(socket, hello: hello, to: cached.owner, id: id)
                return true
            }
            ownerCache[id] = nil
        }
        guard redis.isConnected else {
            logRelay("cluster: redis unreachable; closing (1013) a socket of a stream this node does not own")
            socket.refuse(code: 1013)  // try again later
            return true
        }
        waiting[id] = [.webSocket(socket, hello)]
        lookUpOwner(id, new: hello.requestNewStream)
        return true
    }

    /// Claims `id` (a new stream) or looks its owner up, then resolves the transports waiting for it.
    private func lookUpOwner(_ id: StreamID, new: Bool) {
        let key = streamKey(id)
        if new {
            let ttl = String(Int(configuration.streamClaimTTL * 1000))
            let claimedAt = loop.now
            redis.send(["SET", key, address, "NX", "PX", ttl, "GET"]) { [weak self] reply in
                guard let self else { return }
                switch reply {
                case .bulk(nil):  // claimed: this node owns it
                    self.cluster.owned.withLock { owned in if owned[id] == nil { owned[id] = claimedAt } }
                    self.resolve(id, owner: nil)
                case .bulk(let value?):
                    // Another node claimed it first: relay there (if it cannot be reached, `relayFailed` takes the
                    // id over, since its stream died with it).
                    let owner = String(decoding: value, as: UTF8.self)
                    self.resolve(id, owner: owner == self.address ? nil : owner)
                default:
                    self.resolve(id, owner: nil)  // Redis failed: run here
                }
            }
        } else {
            redis.send(["GET", key]) { [weak self] reply in
                guard let self else { return }
                guard let owner = reply.text, owner != self.address else {
                    self.resolve(id, owner: nil)  // no owner: the engine answers stream_attach_failure
                    return
                }
                // Relay even if the membership says the owner is gone (a node whose heartbeat is late still
                // answers); one that cannot be reached is answered here (`relayFailed`).
                self.resolve(id, owner: owner)
            }
        }
    }

    /// Runs or relays the requests that waited for `id`'s owner (nil: this node).
    private func resolve(_ id: StreamID, owner: String?) {
        guard let list = waiting.removeValue(forKey: id) else { return }
        cluster.logger.debug(
            "cluster: stream \(id.redacted) runs on \(owner ?? "this node") (\(list.count) request(s) waited)")
        if let owner { ownerCache[id] = (owner, loop.now + configuration.ownerCacheTime) }
        for item in list {
            switch item {
            case .post(let post, let response, let relayed):
                if let owner, !relayed {
                    relay(post, response: response, to: owner, id: id)
                } else if response.isOpen, let endpoint {
                    endpoint.runPost(post, response: response)
                }
            case .webSocket(let socket, let hello):
                if let owner {
                    relayWebSocket(socket, hello: hello, to: owner, id: id)
                } else {
                    socket.runHere()
                }
            }
        }
    }

    /// Runs a request here because its owner cannot be reached (the engine answers `stream_attach_failure` for a
    /// stream it does not know).
    func runHere(_ post: MinervaPostCopy, response: MinervaHTTPResponse) {
        guard response.isOpen, let endpoint else { return }
        endpoint.runPost(post, response: response)
    }

    func logRelay(_ message: String) {
        guard let suppressed = relayLog.admit(now: loop.now) else { return }
        let extra = suppressed > 0 ? " (\(suppressed) similar lines not logged)" : ""
        cluster.logger.warning("\(message)\(extra)")
    }

    private func isRelayHeader(_ name: [UInt8]) -> Bool {
        let lower = String(decoding: name, as: UTF8.self).lowercased()
        return lower == "x-minerva-relay" || lower == "x-minerva-relay-peer"
    }
}

/// The host of `host:port` or `[v6]:port`.
func hostOf(_ address: String) -> String {
    guard let colon = address.lastIndex(of: ":") else { return address }
    return String(address[..<colon])
}
