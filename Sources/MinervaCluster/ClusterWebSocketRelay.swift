// The WebSocket relay: a WebSocket whose hello names a stream another node owns is carried to that node as bytes.
// This node already answered the client's handshake (the stream is only known from the first message); it opens a
// connection to the owner's advertised address, repeats the upgrade there with the client's headers (Origin, Host,
// Sec-WebSocket-Key, subprotocol: the owner checks them as it would the client's), the cluster's secret and the
// client's address, and sends at once every byte the client sent since its upgrade (masked client frames, the hello
// first: valid client frames for the owner). The owner's 101 is read and dropped (the client already has ours);
// from then on bytes go both ways undecoded, each side's reading paused while the other side's output is above its
// high-water mark. Either side ending ends the other (a client's FIN after its close frame lets that frame reach
// the owner first). No answer from the owner (cannot connect, refused, closed, silent for 5 s): the WebSocket runs
// here instead, where the engine answers `stream_attach_failure` (the stream died with its owner) or, for a new
// stream, this node takes the id over; logged, rate-limited. A dedicated connection per WebSocket: it becomes a
// WebSocket on the owner, so it cannot be pooled. An int32 socket (the socket-mode listener) is relayed the same way,
// as a WebSocket to the owner's HTTP listener, its frames translated on the fly (ClusterInt32Translator.swift).
import MinervaCore
import MinervaHTTP
import MinervaIO
import MinervaServer

extension ClusterLoop {
    /// Relays `socket` (whose hello is `hello`) to `owner`.
    func relayWebSocket(_ socket: MinervaPlacedSocket, hello: HelloFrame, to owner: String, id: StreamID) {
        guard socket.isWaiting else { return }
        guard let secret else {
            socket.runHere()
            return
        }
        guard let colon = owner.lastIndex(of: ":"), let port = Int(owner[owner.index(after: colon)...]) else {
            webSocketRelayFailed(socket, hello: hello, owner: owner, id: id, why: "bad address")
            return
        }
        var host = String(owner[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        cluster.relayedOut.add(1, ordering: .relaxed)
        cluster.logger.debug(
            "cluster: \(socket.isWebSocket ? "WebSocket" : "int32 socket") of stream \(id.redacted) relayed to \(owner)"
        )
        let request = encodeUpgradeRequest(socket, owner: owner, secret: secret)
        loop.connectTCP(host: host, port: port, timeout: configuration.relayConnectTimeout) { [weak self] result in
            guard let self else { return }
            guard case .success(let connection) = result else {
                self.webSocketRelayFailed(socket, hello: hello, owner: owner, id: id, why: "cannot connect")
                return
            }
            guard socket.isWaiting else {
                connection.closeNow()  // the client left meanwhile
                return
            }
            let relay = WebSocketRelay(state: self, owner: owner, id: id, hello: hello, socket: socket)
            connection.handler = relay
            relay.start(connection, request: request)
        }
    }

    /// The owner could not be reached: the WebSocket runs here (a new stream's id is taken over).
    func webSocketRelayFailed(
        _ socket: MinervaPlacedSocket, hello: HelloFrame, owner: String, id: StreamID, why: String
    ) {
        cluster.relayFailures.add(1, ordering: .relaxed)
        ownerCache[id] = nil
        alive.remove(owner)
        logRelay(
            "cluster: cannot relay a\(socket.isWebSocket ? " WebSocket" : "n int32 socket") to node \(owner) (\(why));"
                + " running it here")
        guard socket.isWaiting else { return }
        if hello.requestNewStream { takeOver(id) }
        socket.runHere()
    }

    private func encodeUpgradeRequest(_ socket: MinervaPlacedSocket, owner: String, secret: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(1024)
        out.append(contentsOf: "GET \(configuration.endpointPrefix)ws HTTP/1.1\r\n".utf8)
        if !socket.isWebSocket {
            // An int32 socket has no handshake of its own: a WebSocket one for it (no Origin: not a browser's).
            out.append(contentsOf: "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n".utf8)
            out.append(contentsOf: "Sec-WebSocket-Protocol: minerva.v2\r\n".utf8)
        }
        let hasHost =
            appendForwardedHeaders(
                socket.headers,
                skipping: [
                    "connection", "upgrade", "keep-alive", "content-length", "transfer-encoding", "te", "trailer",
                    "sec-websocket-extensions", "x-minerva-relay", "x-minerva-relay-peer",
                ], to: &out)
        if !hasHost { out.append(contentsOf: "Host: \(owner)\r\n".utf8) }
        out.append(contentsOf: "Upgrade: websocket\r\nConnection: Upgrade\r\n".utf8)
        out.append(contentsOf: "\(cluster.relayHeader): \(secret)\r\n".utf8)
        out.append(contentsOf: "\(cluster.relayPeerHeader): \(socket.connection.peerAddress)\r\n\r\n".utf8)
        return out
    }
}

/// One relayed WebSocket: the connection to the owner (its handler) and, once the owner answered 101, the client's
/// connection (diverted to it). Loop-confined.
final class WebSocketRelay: MinervaTCPConnectionHandler {
    unowned let state: ClusterLoop
    let owner: String
    let id: StreamID
    let hello: HelloFrame
    /// The client's WebSocket until the owner answers.
    private var socket: MinervaPlacedSocket?
    private var upstream: MinervaTCPConnection?
    private var client: MinervaTCPConnection?
    /// How many of the client's bytes were sent to the owner before the diversion.
    private var sent = 0
    /// The owner's answer head, until complete.
    private var head: [UInt8] = []
    private var timer: MinervaLoopTimer?
    private var piping = false
    private var failed = false
    /// For an int32 socket: its frames and the owner's WebSocket frames translated (nil for a WebSocket).
    private var translator: ClusterInt32Translator?
    private var toOwner: [UInt8] = []
    private var toClient: [UInt8] = []

    init(state: ClusterLoop, owner: String, id: StreamID, hello: HelloFrame, socket: MinervaPlacedSocket) {
        self.state = state
        self.owner = owner
        self.id = id
        self.hello = hello
        self.socket = socket
        if !socket.isWebSocket { translator = ClusterInt32Translator() }
    }

    func start(_ connection: MinervaTCPConnection, request: [UInt8]) {
        upstream = connection
        connection.write(request)
        if let socket {
            let received = socket.received
            received.withUnsafeBytes { sendToOwner($0, connection) }
            sent = received.count
        }
        timer = state.loop.schedule(after: 5) { [weak self] in self?.fail("no answer in 5 s") }
    }

    /// The owner did not take the WebSocket: it runs here.
    private func fail(_ why: String) {
        guard !piping, !failed else { return }
        failed = true
        timer?.cancel()
        timer = nil
        let upstream = self.upstream
        self.upstream = nil
        upstream?.closeNow()
        guard let socket else { return }
        self.socket = nil
        state.webSocketRelayFailed(socket, hello: hello, owner: owner, id: id, why: why)
    }

    /// The owner's answer head arrived (complete in `head`, `end` bytes long).
    private func answered(_ upstream: MinervaTCPConnection, headLength end: Int) {
        let status = head.count >= 12 ? head[9..<12] : []
        guard status.elementsEqual("101".utf8) else {
            let line = head.prefix { $0 != UInt8(ascii: "\r") }
            fail("answered \(String(decoding: line, as: UTF8.self))")
            return
        }
        timer?.cancel()
        timer = nil
        guard let socket, let diverted = socket.divert(to: self) else {
            // The client left (or its hold timed out) meanwhile.
            self.socket = nil
            self.upstream = nil
            upstream.closeNow()
            return
        }
        let client = diverted.connection
        let received = diverted.received
        self.socket = nil
        self.client = client
        piping = true
        if received.count > sent { received[sent...].withUnsafeBytes { sendToOwner($0, upstream) } }
        if end < head.count { head[end...].withUnsafeBytes { sendToClient($0, client, upstream) } }
        head = []
        if !client.isWritable { upstream.pauseReading() }
        if !upstream.isWritable { client.pauseReading() }
    }

    // MARK: MinervaTCPConnectionHandler (both connections)

    func connection(_ connection: MinervaTCPConnection, didReceive bytes: UnsafeRawBufferPointer) {
        if connection === upstream {
            if piping {
                guard let client else { return }
                sendToClient(bytes, client, connection)
                if !client.isWritable { connection.pauseReading() }
                return
            }
            head.append(contentsOf: bytes)
            if let end = headEnd() {
                answered(connection, headLength: end)
            } else if head.count > 16384 {
                fail("answer head too long")
            }
        } else if let upstream {
            sendToOwner(bytes, upstream)
            if !upstream.isWritable { connection.pauseReading() }
        }
    }

    /// The client's bytes to the owner (translated for an int32 socket).
    private func sendToOwner(_ bytes: UnsafeRawBufferPointer, _ upstream: MinervaTCPConnection) {
        guard translator != nil else { return upstream.write(bytes) }
        toOwner.removeAll(keepingCapacity: true)
        translator!.fromClient(bytes, into: &toOwner)
        upstream.write(toOwner)
    }

    /// The owner's bytes to the client (translated for an int32 socket, whose relay ends with the owner's close
    /// frame).
    private func sendToClient(
        _ bytes: UnsafeRawBufferPointer, _ client: MinervaTCPConnection, _ upstream: MinervaTCPConnection
    ) {
        guard translator != nil else { return client.write(bytes) }
        toClient.removeAll(keepingCapacity: true)
        toOwner.removeAll(keepingCapacity: true)
        translator!.fromOwner(bytes, client: &toClient, owner: &toOwner)
        client.write(toClient)
        upstream.write(toOwner)
        if translator!.ownerClosed {
            upstream.write(ClusterInt32Translator.closeFrame)
            upstream.close()
            client.close()
        }
    }

    private func headEnd() -> Int? {
        guard head.count >= 4 else { return nil }
        for i in 0...(head.count - 4)
        where head[i] == 13 && head[i + 1] == 10 && head[i + 2] == 13 && head[i + 3] == 10 {
            return i + 4
        }
        return nil
    }

    func connectionBecameWritable(_ connection: MinervaTCPConnection) {
        // One side drained: the other side may be read again.
        if connection === upstream {
            client?.resumeReading()
        } else {
            upstream?.resumeReading()
        }
    }

    func connectionPeerClosed(_ connection: MinervaTCPConnection) {
        if connection === upstream {
            guard piping else {
                fail("closed before answering")
                return
            }
            if !connection.peerHalfClosed {
                state.logRelay("cluster: lost the owner node \(owner) of a relayed WebSocket; closing it")
            }
            // What the owner sent (its close frame, normally) is written, then the client's connection ends.
            client?.close()
            connection.closeNow()
        } else {
            // The client ended: what it sent (its close frame) reaches the owner, then the owner's connection ends.
            if translator != nil { upstream?.write(ClusterInt32Translator.closeFrame) }
            upstream?.close()
            if !connection.peerHalfClosed { connection.closeNow() }
        }
    }

    func connectionDidClose(_ connection: MinervaTCPConnection) {
        if connection === upstream {
            upstream = nil
            if !piping {
                fail("connection lost before an answer")
                return
            }
            client?.close()
        } else if connection === client {
            client = nil
            upstream?.close()
        }
    }
}
