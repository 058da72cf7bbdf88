// The relay: a request for a stream another node owns is forwarded to that node's HTTP listener over a keep-alive
// connection of this loop's pool (one request at a time per connection), marked with the cluster's secret and the
// client's address; the owner's answer is piped back onto the client's response as it arrives (a streaming
// response stays open as long as the owner keeps it open; backpressure pauses the relay connection's reading).
// A relay that cannot be made (connection refused, owner gone before answering) runs the request here instead,
// where the engine answers `stream_attach_failure` (the stream died with its owner), and is logged (rate-limited).
import MinervaCore
@_spi(MinervaTools) import MinervaHTTP
import MinervaIO
import MinervaServer

extension ClusterLoop {
    /// Relays `post` to `owner` and pipes the answer back to `response`.
    func relay(_ post: MinervaPostCopy, response: MinervaHTTPResponse, to owner: String, id: StreamID) {
        guard response.isOpen else { return }
        guard let secret else {
            runHere(post, response: response)
            return
        }
        cluster.relayedOut.add(1, ordering: .relaxed)
        let bytes = encodeRelayRequest(post, owner: owner, secret: secret)
        if var idle = idleRelays[owner], let relay = idle.popLast() {
            idleRelays[owner] = idle
            relay.begin(bytes, post: post, response: response, reused: true)
            return
        }
        openRelay(to: owner) { relay in
            relay?.begin(bytes, post: post, response: response, reused: false)
                ?? self.relayFailed(post, response: response, owner: owner, id: id, why: "cannot connect")
        }
    }

    func openRelay(to owner: String, _ completion: @escaping (RelayConnection?) -> Void) {
        guard let colon = owner.lastIndex(of: ":"), let port = Int(owner[owner.index(after: colon)...]) else {
            return completion(nil)
        }
        var host = String(owner[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        loop.connectTCP(host: host, port: port, timeout: configuration.relayConnectTimeout) { [weak self] result in
            guard let self, case .success(let connection) = result else { return completion(nil) }
            let relay = RelayConnection(state: self, owner: owner, connection: connection)
            connection.handler = relay
            completion(relay)
        }
    }

    func relayFailed(_ post: MinervaPostCopy, response: MinervaHTTPResponse, owner: String, id: StreamID, why: String) {
        cluster.relayFailures.add(1, ordering: .relaxed)
        ownerCache[id] = nil
        alive.remove(owner)
        logRelay("cluster: cannot relay to node \(owner) (\(why)); answering here")
        if isNewStreamHello(post) { takeOver(id) }
        runHere(post, response: response)
    }

    /// The owner of a new stream's id is gone with its stream: this node takes the id over for the client's new
    /// stream.
    func takeOver(_ id: StreamID) {
        let ttl = String(Int(configuration.streamClaimTTL * 1000))
        redis.send(["SET", streamKey(id), address, "PX", ttl])
        let now = loop.now
        cluster.owned.withLock { owned in if owned[id] == nil { owned[id] = now } }
    }

    private func isNewStreamHello(_ post: MinervaPostCopy) -> Bool {
        guard var end = post.body.firstIndex(of: UInt8(ascii: "\n")), end > 1 else { return false }
        if post.body[end - 1] == UInt8(ascii: "\r") { end -= 1 }
        guard case .success(let hello) = HelloFrame.decode(json: post.body[..<(end - 1)]) else { return false }
        return hello.requestNewStream
    }

    func relayIdle(_ relay: RelayConnection) {
        idleRelays[relay.owner, default: []].append(relay)
    }

    func relayGone(_ relay: RelayConnection) {
        idleRelays[relay.owner]?.removeAll { $0 === relay }
    }

    private func encodeRelayRequest(_ post: MinervaPostCopy, owner: String, secret: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(post.body.count + 512)
        out.append(contentsOf: "POST \(configuration.endpointPrefix)io/ HTTP/1.1\r\n".utf8)
        let hasHost = appendForwardedHeaders(
            post.headers,
            skipping: [
                "connection", "keep-alive", "content-length", "transfer-encoding", "expect", "upgrade", "te",
                "trailer", "x-minerva-relay", "x-minerva-relay-peer",
            ], to: &out)
        if !hasHost { out.append(contentsOf: "Host: \(owner)\r\n".utf8) }
        out.append(contentsOf: "\(cluster.relayHeader): \(secret)\r\n".utf8)
        out.append(contentsOf: "\(cluster.relayPeerHeader): \(post.connection.peerAddress)\r\n".utf8)
        out.append(contentsOf: "Content-Length: \(post.body.count)\r\n\r\n".utf8)
        out.append(contentsOf: post.body)
        return out
    }
}

/// One keep-alive connection to another node, carrying one relayed request at a time.
final class RelayConnection: MinervaTCPConnectionHandler {
    unowned let state: ClusterLoop
    let owner: String
    private var connection: MinervaTCPConnection?
    private let decoder = HTTPResponseDecoder()
    private var response: MinervaHTTPResponse?
    private var post: MinervaPostCopy?
    private var reused = false
    private var receivedAny = false

    init(state: ClusterLoop, owner: String, connection: MinervaTCPConnection) {
        self.state = state
        self.owner = owner
        self.connection = connection
    }

    func begin(_ bytes: [UInt8], post: MinervaPostCopy, response: MinervaHTTPResponse, reused: Bool) {
        guard let connection, connection.isOpen else {
            retryOrFail(post, response, why: "connection closed")
            return
        }
        self.response = response
        self.post = post
        self.reused = reused
        receivedAny = false
        decoder.reset()
        response.onClose = { [weak self] in self?.clientGone() }
        response.onWritable = { [weak self] in self?.connection?.resumeReading() }
        connection.write(bytes)
    }

    func close() {
        connection?.closeNow()
    }

    private func clientGone() {
        // The client left: the owner must see its transport close too.
        response = nil
        post = nil
        connection?.closeNow()
    }

    private func retryOrFail(_ post: MinervaPostCopy, _ response: MinervaHTTPResponse, why: String) {
        guard let id = streamID(of: post) else {
            state.runHere(post, response: response)
            return
        }
        if reused {
            // A pooled connection the owner had closed while idle: one new connection, once.
            let state = self.state
            let owner = self.owner
            state.openRelay(to: owner) { relay in
                guard let relay else {
                    state.relayFailed(post, response: response, owner: owner, id: id, why: why)
                    return
                }
                relay.resend(post, response: response)
            }
            return
        }
        state.relayFailed(post, response: response, owner: owner, id: id, why: why)
    }

    fileprivate func resend(_ post: MinervaPostCopy, response: MinervaHTTPResponse) {
        state.relayAgain(post, response: response, on: self)
    }

    private func streamID(of post: MinervaPostCopy) -> StreamID? {
        guard var end = post.body.firstIndex(of: UInt8(ascii: "\n")), end > 1 else { return nil }
        if post.body[end - 1] == UInt8(ascii: "\r") { end -= 1 }
        guard case .success(let hello) = HelloFrame.decode(json: post.body[..<(end - 1)]) else { return nil }
        return hello.streamID
    }

    // MARK: MinervaTCPConnectionHandler

    func connection(_ connection: MinervaTCPConnection, didReceive bytes: UnsafeRawBufferPointer) {
        receivedAny = true
        guard let response else {
            connection.closeNow()  // nothing asked: the owner misbehaves
            return
        }
        var finished = false
        var keepAlive = false
        do {
            try decoder.feed(bytes) { event in
                switch event {
                case .head(let status, let length):
                    response.status = status
                    response.writeHead(contentLength: length)
                case .body(let piece):
                    response.write(piece)
                case .end(let k):
                    finished = true
                    keepAlive = k
                }
            }
        } catch {
            state.logRelay("cluster: malformed answer from node \(owner): \(error)")
            finish(response)
            connection.closeNow()
            return
        }
        if finished {
            finish(response)
            if keepAlive && connection.isOpen {
                state.relayIdle(self)
            } else {
                connection.closeNow()
            }
        } else if !response.isWritable {
            connection.pauseReading()  // resumed by the response's onWritable
        }
    }

    private func finish(_ response: MinervaHTTPResponse) {
        self.response = nil
        post = nil
        response.onClose = nil
        response.onWritable = nil
        if !response.isFinished { response.end() }
    }

    func connectionPeerClosed(_ connection: MinervaTCPConnection) {
        if let response, let event = decoder.connectionClosed(), case .end = event {
            finish(response)
        }
        connection.closeNow()
    }

    func connectionDidClose(_ connection: MinervaTCPConnection) {
        self.connection = nil
        state.relayGone(self)
        guard let response else { return }
        self.response = nil
        response.onClose = nil
        response.onWritable = nil
        if !receivedAny, let post {
            self.post = nil
            retryOrFail(post, response, why: "connection lost before an answer")
            return
        }
        post = nil
        // The owner went away in the middle of its answer: end what was started (the client opens a new transport,
        // which learns the stream's fate), or answer 502 if nothing was sent yet.
        if response.headSent {
            if !response.isFinished { response.end() }
        } else {
            response.send(status: 502, body: "Minerva relay failed\n")
        }
    }
}

extension ClusterLoop {
    fileprivate func relayAgain(_ post: MinervaPostCopy, response: MinervaHTTPResponse, on relay: RelayConnection) {
        guard let secret else { return runHere(post, response: response) }
        let bytes = encodeRelayRequest(post, owner: relay.owner, secret: secret)
        relay.begin(bytes, post: post, response: response, reused: false)
    }
}

/// Appends the client's request headers to a request relayed to the owner, leaving out `skipping` (lowercase names:
/// hop-by-hop headers, framing the relay writes itself, and the cluster's own headers, which a client must not forge).
/// - Returns: whether a `Host` header was among them.
func appendForwardedHeaders(_ headers: [([UInt8], [UInt8])], skipping: Set<String>, to out: inout [UInt8]) -> Bool {
    var hasHost = false
    for (name, value) in headers {
        let lowercased = String(decoding: name, as: UTF8.self).lowercased()
        if skipping.contains(lowercased) { continue }
        if lowercased == "host" { hasHost = true }
        out.append(contentsOf: name)
        out.append(contentsOf: ": ".utf8)
        out.append(contentsOf: value)
        out.append(contentsOf: "\r\n".utf8)
    }
    return hasHost
}
