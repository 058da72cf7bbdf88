// Streams owned by one loop each (several loop threads): a request or socket for a stream that another loop owns is
// handed to the owner as messages. The receiving loop keeps the real connection and only carries bytes; the owner's
// engine runs the stream, produces every byte and calls the application, on the owner's thread. No lock is shared
// by loops: everything crosses through `MinervaEventLoop.execute`.
import MinervaCore
import MinervaHTTP
import MinervaIO

/// Receiving side: a transport of this loop whose stream another loop's engine runs.
struct ProxiedTransport {
    /// The owner loop's index.
    let owner: Int
    /// Whether the owner was told the connection's output backed up (and not yet that it drained).
    var backedUp = false
}

/// Owning side: where the connection of a transport this engine runs for another loop lives.
struct RemoteTransport {
    /// The receiving loop's index.
    let loop: Int
    /// The receiving loop's handle of the transport.
    let handle: Int
    /// A WebSocket: each received message is a batch of its own.
    var perMessage = false
}

/// A receiving loop's handle, named across loops.
struct RemoteKey: Hashable {
    let loop: Int
    let handle: Int
}

/// An owner engine's action for a connection on another loop (bytes copied: the engine's are borrowed).
enum RemoteAction: Sendable {
    case write(Int, [UInt8], WriteKind)
    case finish(Int)
    case close(Int)
}

/// What a receiving loop hands to the owner when a transport opens there (owned copies).
struct HandedOffTransport: Sendable {
    var kind: TransportKind
    var info: ConnectionInfo
    var headers: RawRequestHeaders?
    var bytes: [UInt8]
    /// A WebSocket: `bytes` and later bytes are int32-framed messages, each a batch of its own.
    var perMessage = false
}

extension MinervaEndpoint {
    /// The index of the loop that owns `streamID` among `loopCount` loops: FNV-1a of the id's bytes modulo the
    /// count, so every loop computes it alone, without asking.
    /// - Parameters:
    ///   - streamID: the stream id.
    ///   - loopCount: how many loops the server runs.
    /// - Returns: an index in `0..<loopCount`.
    public static func ownerIndex(of streamID: StreamID, loopCount: Int) -> Int {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(StreamID.maxLength)
        return ownerIndex(of: streamID, loopCount: loopCount, scratch: &bytes)
    }

    static func ownerIndex(of streamID: StreamID, loopCount: Int, scratch: inout [UInt8]) -> Int {
        guard loopCount > 1 else { return 0 }
        scratch.removeAll(keepingCapacity: true)
        streamID.append(to: &scratch)
        var hash: UInt32 = 2_166_136_261
        for byte in scratch { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        return Int(hash % UInt32(loopCount))
    }

    /// The loop that owns `streamID`: the one whose engine runs the stream and calls its handler.
    /// - Parameters:
    ///   - streamID: the stream id.
    ///   - loop: any loop of the server (its group names the others).
    /// - Returns: the owner loop (`loop` itself when it runs alone).
    public func ownerLoop(of streamID: StreamID, from loop: MinervaEventLoop) -> MinervaEventLoop {
        guard let group = loop.group, group.count > 1 else { return loop }
        return group.loops[Self.ownerIndex(of: streamID, loopCount: group.count)]
    }
}

extension MinervaLoopDriver {
    // MARK: Finding the owner

    /// The index of the loop owning the stream named by the hello that opens `body`, if that is another loop; nil
    /// when it is this loop or the body does not start with a readable hello (this engine then answers it).
    func owner(ofBody body: UnsafeRawBufferPointer) -> Int? {
        guard var end = body.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        if end > 0 && body[end - 1] == UInt8(ascii: "\r") { end -= 1 }  // as the frame decoder does
        return owner(ofFrame: UnsafeRawBufferPointer(rebasing: body[..<end]))
    }

    /// ``owner(ofBody:)`` for one frame (a socket's first int32 frame).
    func owner(ofFrame frame: UnsafeRawBufferPointer) -> Int? {
        guard peers.count > 1, frame.count > 1, frame.count <= engine.maxFrameLength,
            frame[frame.count - 1] == FrameType.hello
        else { return nil }
        peekScratch.removeAll(keepingCapacity: true)
        peekScratch.append(contentsOf: UnsafeRawBufferPointer(rebasing: frame[..<(frame.count - 1)]))
        guard case .success(let hello) = HelloFrame.decode(json: peekScratch[...]) else { return nil }
        let owner = MinervaEndpoint.ownerIndex(of: hello.streamID, loopCount: peers.count, scratch: &peekScratch)
        return owner == loopIndex ? nil : owner
    }

    // MARK: Receiving side

    /// Hands a POST to the owner loop: its body, headers and addresses copied; the response stays here.
    func handOffPost(
        _ request: MinervaHTTPRequest, handle: TransportHandle, info: ConnectionInfo, to owner: Int
    ) {
        let headers = endpoint.configuration.includeRequestHeaders ? rawHeaders(of: request) : nil
        let transport = HandedOffTransport(kind: .http, info: info, headers: headers, bytes: Array(request.body))
        handOff(transport, handle: handle.rawValue, to: owner)
    }

    /// Hands a socket transport to the owner loop, with the bytes received so far (its first frames).
    func handOffSocket(_ handle: TransportHandle, info: ConnectionInfo, bytes: [UInt8], to owner: Int) {
        handOff(
            HandedOffTransport(kind: .socket, info: info, headers: nil, bytes: bytes), handle: handle.rawValue,
            to: owner)
    }

    func handOff(_ transport: HandedOffTransport, handle: Int, to owner: Int) {
        proxied[handle] = ProxiedTransport(owner: owner)
        let from = loopIndex
        sendToLoop(owner) { $0.remoteOpened(transport, from: from, handle: handle) }
    }

    /// More bytes of a proxied socket, for the owner.
    func forwardSocketBytes(_ handle: TransportHandle, _ bytes: [UInt8]) {
        guard let proxy = proxied[handle.rawValue] else { return }
        let from = loopIndex
        let raw = handle.rawValue
        sendToLoop(proxy.owner) { $0.remoteSocketBytes(bytes, from: from, handle: raw) }
    }

    /// A proxied transport's connection closed (client gone): tell the owner. False if `handle` is not proxied.
    func proxiedClosed(_ handle: Int) -> Bool {
        guard let proxy = proxied.removeValue(forKey: handle) else { return false }
        let from = loopIndex
        sendToLoop(proxy.owner) { $0.remoteClosed(from: from, handle: handle) }
        return true
    }

    /// A proxied transport's output backed up or drained: tell the owner (once per change). False if `handle` is
    /// not proxied.
    func proxiedWritable(_ handle: Int, _ writable: Bool) -> Bool {
        guard var proxy = proxied[handle] else { return false }
        guard proxy.backedUp == writable else { return true }
        proxy.backedUp = !writable
        proxied[handle] = proxy
        let from = loopIndex
        sendToLoop(proxy.owner) { $0.remoteWritable(writable, from: from, handle: handle) }
        return true
    }

    /// The owner's actions for connections of this loop, in the order its engine produced them.
    func remoteActionsArrived(_ actions: [RemoteAction]) {
        for action in actions {
            switch action {
            case .write(let handle, let bytes, let kind):
                switch kind {
                case .httpWholeBody:
                    guard let response = responses.removeValue(forKey: handle) else { continue }
                    proxied[handle] = nil
                    response.delegate = nil
                    response.end(bytes)
                case .httpChunk:
                    guard let response = responses[handle] else { continue }
                    response.write(bytes)
                    if !response.isWritable { _ = proxiedWritable(handle, false) }
                case .socket:
                    guard let socket = sockets[handle] else { continue }
                    bytes.withUnsafeBytes { socket.write($0) }
                }
            case .finish(let handle):
                guard let response = responses.removeValue(forKey: handle) else { continue }
                proxied[handle] = nil
                response.delegate = nil
                response.end()
            case .close(let handle):
                sockets[handle]?.close(abort: false)
            }
        }
    }

    // MARK: Owning side

    /// A transport of another loop's connection opens here: the engine runs it under a handle of its own (negative,
    /// so local transports never pay for the lookup).
    func remoteOpened(_ transport: HandedOffTransport, from loop: Int, handle remote: Int) {
        nextRemoteHandle &-= 1
        let handle = TransportHandle(nextRemoteHandle)
        remoteTransports[handle.rawValue] = RemoteTransport(
            loop: loop, handle: remote, perMessage: transport.perMessage)
        remoteHandles[RemoteKey(loop: loop, handle: remote)] = handle.rawValue
        let now = self.now
        switch transport.kind {
        case .socket where transport.perMessage:
            if let headers = transport.headers {
                engine.openTransport(handle, kind: .socket, connection: transport.info, now: now, headers: headers)
            } else {
                engine.openTransport(handle, kind: .socket, connection: transport.info, now: now)
            }
            deliverMessages(handle, transport.bytes)
        case .socket:
            engine.openTransport(handle, kind: .socket, connection: transport.info, now: now)
            engine.socketBytesReceived(handle, bytes: transport.bytes, now: now)
        default:
            if let headers = transport.headers {
                engine.openTransport(
                    handle, kind: transport.kind, connection: transport.info, now: now, headers: headers)
            } else {
                engine.openTransport(handle, kind: transport.kind, connection: transport.info, now: now)
            }
            engine.httpBodyReceived(handle, body: transport.bytes, now: now)
        }
        perform()
    }

    func remoteSocketBytes(_ bytes: [UInt8], from loop: Int, handle remote: Int) {
        guard let handle = remoteHandles[RemoteKey(loop: loop, handle: remote)] else { return }
        if remoteTransports[handle]?.perMessage == true {
            deliverMessages(TransportHandle(handle), bytes)
        } else {
            engine.socketBytesReceived(TransportHandle(handle), bytes: bytes, now: now)
        }
        perform()
    }

    func remoteClosed(from loop: Int, handle remote: Int) {
        guard let handle = remoteHandles.removeValue(forKey: RemoteKey(loop: loop, handle: remote)) else { return }
        remoteTransports[handle] = nil
        engine.transportClosed(TransportHandle(handle), now: now)
        perform()
    }

    func remoteWritable(_ writable: Bool, from loop: Int, handle remote: Int) {
        guard let handle = remoteHandles[RemoteKey(loop: loop, handle: remote)] else { return }
        engine.transportWritable(TransportHandle(handle), writable)
        perform()
    }

    /// Queues the action for the loop holding the connection if `action` is for a remote transport (true), so that
    /// `perform` sends each loop one message per batch.
    func forwardIfRemote(_ action: BorrowedServerAction) -> Bool {
        let handle: TransportHandle
        switch action {
        case .write(let h, _, _), .finish(let h), .close(let h): handle = h
        }
        guard handle.rawValue < 0 else { return false }
        guard let remote = remoteTransports[handle.rawValue] else { return true }
        switch action {
        case .write(_, let bytes, let kind):
            outbox[remote.loop].append(.write(remote.handle, Array(bytes), kind))
            if kind == .httpWholeBody { forget(handle.rawValue, remote) }
        case .finish:
            outbox[remote.loop].append(.finish(remote.handle))
            forget(handle.rawValue, remote)
        case .close:
            outbox[remote.loop].append(.close(remote.handle))  // the connection's close comes back as remoteClosed
        }
        outboxPending = true
        return true
    }

    private func forget(_ handle: Int, _ remote: RemoteTransport) {
        remoteTransports[handle] = nil
        remoteHandles[RemoteKey(loop: remote.loop, handle: remote.handle)] = nil
    }

    /// Sends each loop the actions gathered for it, one message per loop.
    func sendOutbox() {
        outboxPending = false
        for index in outbox.indices where !outbox[index].isEmpty {
            let actions = outbox[index]
            outbox[index] = []
            sendToLoop(index) { $0.remoteActionsArrived(actions) }
        }
    }

    /// Runs `work` with the endpoint's driver of loop `index`, on that loop.
    func sendToLoop(_ index: Int, _ work: @escaping @Sendable (MinervaLoopDriver) -> Void) {
        let loop = peers[index]
        let endpoint = self.endpoint
        // Unowned: the closure lives in `loop`'s own inbox (a strong capture would keep a stopped loop alive).
        loop.execute { [unowned loop] in work(endpoint.driver(for: loop)) }
    }
}
