// The WebSocket transport (PROTOCOL.md 11.1): `GET <prefix>ws` upgrades through http-parser's upgrade path, and the
// connection becomes one socket transport of the engine (socket semantics, section 5), like an int32 socket
// (MinervaSocketListener.swift): each text message is one frame, fed to the engine as a batch of its own; the
// engine's int32-framed output is rewritten as one text message per frame, several per write. With several loops,
// a WebSocket whose stream another loop owns is handed over like a socket (MinervaLoopHandOff.swift).
import Logging
import MinervaCore
import MinervaHTTP
import MinervaIO

/// A connection carrying a transport with socket semantics (an int32 socket or a WebSocket): the driver writes the
/// engine's output (int32-framed frames) to it and closes it.
protocol MinervaSocketTransportConnection: AnyObject {
    /// Queues the engine's int32-framed output (borrowed: copied before returning).
    func write(_ bytes: UnsafeRawBufferPointer)
    /// Closes the connection (the engine's grace period after `Y` ran out).
    func close(abort: Bool)
}

extension MinervaSocketConnection: MinervaSocketTransportConnection {}

/// The subprotocol a WebSocket client may offer (PROTOCOL.md 11.1).
let minervaWebSocketSubprotocol = "minerva.v2"

// MARK: - The handshake

extension MinervaLoopDriver {
    /// Answers `GET <prefix>ws`: validates the RFC 6455 handshake and the origin (PROTOCOL.md 11.1), then switches
    /// the connection to a ``MinervaWebSocketConnection``.
    func handleWebSocketUpgrade(_ request: MinervaHTTPRequest, _ response: MinervaHTTPResponse) {
        guard request.method == .GET else {
            refuseUpgrade(response, 405, "Method Not Allowed", request: request) { $0.setHeader("Allow", "GET") }
            return
        }
        guard request.isUpgrade, request.versionMajor == 1, request.versionMinor >= 1,
            let upgrade = request.headerBytes("Upgrade"),
            MinervaWebSocketHandshake.listContains(upgrade, "websocket"),
            let connectionHeader = request.headerBytes("Connection"),
            MinervaWebSocketHandshake.listContains(connectionHeader, "upgrade"),
            let rawKey = request.headerBytes("Sec-WebSocket-Key")
        else {
            refuseUpgrade(response, 400, "Not a WebSocket upgrade", request: request)
            return
        }
        let key = MinervaWebSocketHandshake.trimmed(rawKey)
        guard MinervaWebSocketHandshake.isValidKey(key) else {
            refuseUpgrade(response, 400, "Bad Sec-WebSocket-Key", request: request)
            return
        }
        let version = request.headerBytes("Sec-WebSocket-Version").map(MinervaWebSocketHandshake.trimmed)
        guard let version, version.elementsEqual("13".utf8) else {
            refuseUpgrade(response, 426, "Upgrade Required", request: request) {
                $0.setHeader("Sec-WebSocket-Version", "13")
            }
            return
        }
        guard endpoint.originPermitted(request) else {
            refuseUpgrade(response, 403, "Origin not allowed", request: request)
            return
        }
        var offered = false
        var selected = false
        request.forEachHeader { name, value in
            guard equalsLowercase(name, "sec-websocket-protocol") else { return }
            MinervaWebSocketHandshake.forEachToken(value) { token in
                offered = true
                if token.elementsEqual(minervaWebSocketSubprotocol.utf8) { selected = true }
                return false
            }
        }
        if offered && !selected {
            refuseUpgrade(response, 400, "Unsupported subprotocol", request: request)
            return
        }

        let peer = request.remoteAddress?.description ?? ""
        var info = ConnectionInfo(
            localAddress: request.localAddress?.description ?? "", peerAddress: peer,
            rateLimitKey: endpoint.rateLimitKey(forHost: hostPart(of: peer)))
        // In a cluster: a WebSocket another server relayed here runs here (with the client's addresses); any other
        // is offered to the placement once its hello names the stream, with the upgrade's headers (a relay repeats
        // them to the server it picks).
        let placement = endpoint.configuration.placement
        var relayed: MinervaRelayedUpgrade?
        if let placement { relayed = placement.relayedUpgrade(request, connection: info, on: response.eventLoop) }
        if let relayed { info = relayed.connection }
        var headers: RawRequestHeaders?
        var placementHeaders: [([UInt8], [UInt8])]?
        if endpoint.configuration.includeRequestHeaders || (placement != nil && relayed == nil) {
            var list: [([UInt8], [UInt8])] = []
            request.forEachHeader { name, value in list.append((Array(name), Array(value))) }
            if placement != nil && relayed == nil { placementHeaders = list }
            if let hidden = relayed?.hiddenHeaders, !hidden.isEmpty {
                list.removeAll { header in
                    hidden.contains { name in
                        name.utf8.count == header.0.count
                            && zip(name.utf8, header.0).allSatisfy { $0 == ($1 >= 0x41 && $1 <= 0x5A ? $1 | 0x20 : $1) }
                    }
                }
            }
            if endpoint.configuration.includeRequestHeaders { headers = RawRequestHeaders(pairs: list) }
        }
        response.setHeader("Upgrade", "websocket")
        response.setHeader("Connection", "Upgrade")
        response.setHeader("Sec-WebSocket-Accept", MinervaWebSocketHandshake.acceptValue(key: key))
        if selected { response.setHeader("Sec-WebSocket-Protocol", minervaWebSocketSubprotocol) }
        let connection = MinervaWebSocketConnection(
            driver: self, info: info, headers: headers, placementHeaders: placementHeaders)
        guard let tcp = response.upgrade(to: connection) else { return }
        connection.start(tcp)
    }

    private func refuseUpgrade(
        _ response: MinervaHTTPResponse, _ status: Int, _ text: String, request: MinervaHTTPRequest,
        _ headers: (MinervaHTTPResponse) -> Void = { _ in }
    ) {
        logWebSocket("upgrade refused: \(status) \(text)", peer: request.remoteAddress?.description ?? "")
        response.status = status
        headers(response)
        response.setHeader("Content-Type", "text/plain")
        response.end(text + "\n")
    }

    /// Logs a refused upgrade or a WebSocket closed for bad input, rate-limited (the engine's rejection budget).
    func logWebSocket(_ message: String, peer: String) {
        guard let suppressed = webSocketLog.admit(now: now) else { return }
        var metadata: Logger.Metadata = ["peer": "\(peer)"]
        if suppressed > 0 { metadata["earlierRejectionsNotLogged"] = "\(suppressed)" }
        endpoint.logger.notice("websocket \(message)", metadata: metadata)
    }

    // MARK: Messages to the engine

    /// Feeds a WebSocket's received messages (int32-framed, as the connection encodes them) to the engine, each
    /// message a batch of its own (PROTOCOL.md 11.1). A length over the engine's frame limit (an over-long message,
    /// of which nothing was kept) is `frame_corruption`.
    func deliverMessages(_ handle: TransportHandle, _ bytes: [UInt8]) {
        var i = 0
        let now = self.now
        while i + 4 <= bytes.count {
            let length = Int(bytes[i]) << 24 | Int(bytes[i + 1]) << 16 | Int(bytes[i + 2]) << 8 | Int(bytes[i + 3])
            if length > engine.maxFrameLength || i + 4 + length > bytes.count {
                engine.messageTooLong(handle, length: length, now: now)
                return
            }
            engine.messageReceived(handle, frame: bytes[(i + 4)..<(i + 4 + length)], now: now)
            i += 4 + length
        }
        // What the application sent in answer is written now, beside the SACKs just queued on the same socket, so
        // they leave in one writev at the end of the turn (the engine's end-of-turn flush runs after the sockets'
        // flushes and would cost a second system call per round trip).
        if engine.needsFlush { engine.flush(now: now) }
    }

    /// A socket transport's connection ended, or its transport is abandoned: the engine running it (this loop's, or
    /// the owner loop's when `proxied`) detaches it.
    func socketTransportClosed(_ handle: TransportHandle, proxied: Bool) {
        if proxied {
            _ = proxiedClosed(handle.rawValue)
        } else {
            engine.transportClosed(handle, now: now)
            perform()
        }
    }

    /// A socket transport's output backed up (`false`) or drained (`true`): the engine running it pauses or resumes
    /// the stream's producer.
    func socketTransportWritable(_ handle: TransportHandle, proxied: Bool, _ writable: Bool) {
        if proxied {
            _ = proxiedWritable(handle.rawValue, writable)
        } else {
            engine.transportWritable(handle, writable)
            if writable { perform() }
        }
    }

    /// Hands a WebSocket transport to the owner loop (its messages follow with ``forwardSocketBytes(_:_:)``).
    func handOffWebSocket(_ handle: TransportHandle, info: ConnectionInfo, headers: RawRequestHeaders?, to owner: Int) {
        proxied[handle.rawValue] = ProxiedTransport(owner: owner)
        let from = loopIndex
        let raw = handle.rawValue
        let transport = HandedOffTransport(kind: .socket, info: info, headers: headers, bytes: [], perMessage: true)
        sendToLoop(owner) { $0.remoteOpened(transport, from: from, handle: raw) }
    }
}

// MARK: - The connection

/// One upgraded WebSocket (a handler on the loop's one socket type, reached through the HTTP connection it
/// upgraded): RFC 6455 framing around one socket transport of the engine, PROTOCOL.md 11.1.
final class MinervaWebSocketConnection: MinervaTCPConnectionHandler, MinervaSocketTransportConnection,
    MinervaPlaceableSocket
{
    private enum State {
        /// Upgraded; the first message (the hello) has not arrived.
        case awaitingHello
        /// The hello arrived and the placement (a cluster) decides where the transport runs: received bytes are
        /// kept, not decoded.
        case placing
        /// The placement took the connection over (a relay): every event goes to `diverted`.
        case diverted
        /// Carrying the transport (this loop's engine, or another's).
        case open
        /// Our close frame is written: waiting for the client's (or the close timeout).
        case closing
        case closed
    }

    // Words first, then the small fields together (an idle WebSocket keeps this object: no padding between them).
    private unowned let driver: MinervaLoopDriver
    private var tcp: MinervaTCPConnection!
    let handle: TransportHandle
    /// Received messages of the current chunk, int32-framed, for the engine (reused).
    private var inbound: [UInt8] = []
    /// The connection (with the upgrade's headers until the transport opens).
    private var info: ConnectionInfo
    private var timer: MinervaLoopTimer?
    /// The upgrade's headers while the WebSocket may still be offered to the placement (nil: it runs here).
    private var placementHeaders: [([UInt8], [UInt8])]?
    /// Every byte received since the upgrade, kept while the WebSocket may go to the placement (nil otherwise).
    private var raw: [UInt8]?
    private var diverted: (any MinervaTCPConnectionHandler)?
    private var decoder: MinervaWebSocketFrameDecoder
    private var state = State.awaitingHello
    /// The decoder failed: a fresh one replaces it after the current chunk (to find the client's close frame).
    private var restartDecoder = false
    /// Whether the engine runs a transport for this connection (until it detaches).
    private var transportOpen = false
    /// Whether another loop's engine runs it (this connection only carries bytes).
    private var proxied = false
    private var backedUp = false
    /// The last frame written was `frame_corruptionK` (so the close after `Y` is 1009).
    private var lastFrameWasCorruption = false
    private var inFeed = false
    /// The placement chose to run the transport here while the decoder was running: replay `raw` after it.
    private var replayPending = false

    private static let corruptionFrame: [UInt8] = {
        var bytes = Array(KillReason.frameCorruption.rawValue.utf8)
        bytes.append(UInt8(ascii: "K"))
        return bytes
    }()

    init(
        driver: MinervaLoopDriver, info: ConnectionInfo, headers: RawRequestHeaders?,
        placementHeaders: [([UInt8], [UInt8])]? = nil
    ) {
        self.driver = driver
        self.info = info
        self.info.rawHeaders = headers
        self.placementHeaders = placementHeaders
        if placementHeaders != nil { raw = [] }
        handle = driver.newHandle()
        decoder = MinervaWebSocketFrameDecoder(
            maxMessageLength: driver.engine.maxFrameLength, expectsMaskedFrames: true)
    }

    /// The upgrade's 101 is queued: register and wait for the hello (bounded by the socket mode timeout).
    func start(_ tcp: MinervaTCPConnection) {
        self.tcp = tcp
        driver.sockets[handle.rawValue] = self
        let timeout = driver.endpoint.configuration.socketModeTimeout
        timer = tcp.eventLoop.schedule(after: timeout) { [unowned self] in
            self.timer = nil
            switch self.state {
            case .awaitingHello:
                self.driver.logWebSocket("closed: no hello in time", peer: self.info.peerAddress)
            case .placing:
                self.driver.logWebSocket("closed: not placed in time", peer: self.info.peerAddress)
                self.state = .awaitingHello
                self.raw = nil
                self.decoder = MinervaWebSocketFrameDecoder(maxMessageLength: 0, expectsMaskedFrames: true)
                self.tcp.resumeReading()
            default:
                return
            }
            self.startClosing(MinervaWebSocketCloseCode.policyViolation)
        }
    }

    // MARK: Receiving

    func connection(_ connection: MinervaTCPConnection, didReceive bytes: UnsafeRawBufferPointer) {
        switch state {
        case .closed:
            return
        case .diverted:
            diverted?.connection(connection, didReceive: bytes)
            return
        case .placing:
            record(bytes)
            return
        case .awaitingHello:
            if raw != nil { record(bytes) }
        default:
            break
        }
        feedDecoder(bytes)
    }

    /// Keeps received bytes while the WebSocket may be placed elsewhere; past the largest hello's worth (plus the
    /// control frames a client may send before it) it runs here, and while held it stops reading.
    private func record(_ bytes: UnsafeRawBufferPointer) {
        raw?.append(contentsOf: bytes)
        guard let count = raw?.count, count > driver.engine.maxFrameLength + 65536 else { return }
        if state == .placing {
            tcp.pauseReading()  // resumed when the placement answers
        } else {
            raw = nil
            placementHeaders = nil
        }
    }

    private func feedDecoder(_ bytes: UnsafeRawBufferPointer) {
        let wasAwaitingHello = state == .awaitingHello
        inFeed = true
        decoder.feed(bytes) { event in self.received(event) }
        inFeed = false
        if replayPending {
            replayPending = false
            replay()
            return
        }
        if state == .placing || state == .diverted { return }
        deliverInbound()
        if wasAwaitingHello && state != .awaitingHello {
            // The hello was the largest message so far and the handshake the largest output: an idle WebSocket
            // keeps only what its later, usually small, messages need.
            decoder.releaseBuffers()
            inbound = []
        }
        if restartDecoder {
            restartDecoder = false
            decoder = MinervaWebSocketFrameDecoder(maxMessageLength: 0, expectsMaskedFrames: true)
        }
    }

    /// One decoded event; false stops decoding this connection for good.
    private func received(_ event: MinervaWebSocketEvent) -> Bool {
        switch event {
        case .message(let text, let payload):
            guard state == .awaitingHello || state == .open else { return true }
            guard text else {
                deliverInbound()
                fail(MinervaWebSocketCloseCode.unsupportedData, "binary message")
                return true
            }
            if state == .awaitingHello {
                if placementHeaders != nil && offerToPlacement(payload) { return false }
                settle(firstMessage: payload)
            }
            appendInbound(length: payload.count, payload)
        case .messageTooLong(let length):
            guard state == .awaitingHello || state == .open else { return true }
            if state == .awaitingHello {
                raw = nil
                placementHeaders = nil
                settle(firstMessage: nil)
            }
            // Announced as it is: the engine's frame limit turns it into frame_corruption, nothing was buffered.
            appendInbound(length: max(length, driver.engine.maxFrameLength + 1), nil)
        case .ping(let payload):
            guard state == .awaitingHello || state == .open else { return true }
            writeFrame(MinervaWebSocketOpcode.pong, payload)
        case .pong:
            break
        case .close(let code, _):
            deliverInbound()
            if state == .closing {
                tcp.close()
                return false
            }
            // RFC 6455 5.5.1: answer with a close frame (echoing the code), then the TCP connection ends; the
            // transport detaches like a closed socket's.
            if let code {
                let payload: [UInt8] = [UInt8(code >> 8), UInt8(code & 0xFF)]
                payload.withUnsafeBytes { writeFrame(MinervaWebSocketOpcode.close, $0) }
            } else {
                writeFrame(MinervaWebSocketOpcode.close, UnsafeRawBufferPointer(start: nil, count: 0))
            }
            state = .closing
            detachTransport()
            tcp.close()
            return false
        case .failure(let code, let reason):
            deliverInbound()
            if state == .closing {
                tcp.close()
                return false
            }
            fail(code, String(describing: reason))
            restartDecoder = true
            return false
        }
        return true
    }

    /// A WebSocket-level error (PROTOCOL.md 11.1): a close frame only, and the transport detaches as if the
    /// connection had been lost.
    private func fail(_ code: UInt16, _ reason: String) {
        driver.logWebSocket("closed with \(code): \(reason)", peer: info.peerAddress)
        detachTransport()
        startClosing(code)
    }

    private func appendInbound(length: Int, _ payload: UnsafeRawBufferPointer?) {
        let length = UInt32(clamping: length)
        inbound.append(UInt8(truncatingIfNeeded: length >> 24))
        inbound.append(UInt8(truncatingIfNeeded: length >> 16))
        inbound.append(UInt8(truncatingIfNeeded: length >> 8))
        inbound.append(UInt8(truncatingIfNeeded: length))
        if let payload { inbound.append(contentsOf: payload) }
    }

    // MARK: Placement (a cluster)

    /// Offers the WebSocket to the placement if its first message is a hello; true if the placement took it (then
    /// decoding stops: the kept bytes are replayed if it runs here after all).
    private func offerToPlacement(_ payload: UnsafeRawBufferPointer) -> Bool {
        let headers = placementHeaders ?? []
        placementHeaders = nil
        guard let placement = driver.endpoint.configuration.placement, payload.count > 1,
            payload[payload.count - 1] == FrameType.hello,
            case .success(let hello) = HelloFrame.decode(json: Array(payload[..<(payload.count - 1)])[...])
        else {
            raw = nil
            return false
        }
        state = .placing
        var connection = info
        connection.rawHeaders = nil
        let placed = MinervaPlacedSocket(
            self, eventLoop: tcp.eventLoop, connection: connection, headers: headers, isWebSocket: true)
        if placement.takeSocket(placed, hello: hello, endpoint: driver.endpoint) { return true }
        if state == .placing {
            state = .awaitingHello
            raw = nil
        }
        return false
    }

    var isPlacing: Bool { state == .placing }
    var placingBytes: [UInt8] { state == .placing ? raw ?? [] : [] }

    func placementRunsHere() {
        guard state == .placing else { return }
        state = .awaitingHello
        decoder = MinervaWebSocketFrameDecoder(
            maxMessageLength: driver.engine.maxFrameLength, expectsMaskedFrames: true)
        tcp.resumeReading()
        if inFeed {
            replayPending = true
        } else {
            replay()
        }
    }

    /// Decodes the kept bytes from the start, the transport running here.
    private func replay() {
        let bytes = raw ?? []
        raw = nil
        bytes.withUnsafeBytes { feedDecoder($0) }
    }

    func placementRefuses(_ code: UInt16) {
        guard state == .placing else { return }
        state = .awaitingHello
        raw = nil
        driver.logWebSocket("closed with \(code): the placement refused it", peer: info.peerAddress)
        // The kept bytes are dropped: a fresh decoder looks for the client's close frame (or the timeout ends it).
        decoder = MinervaWebSocketFrameDecoder(maxMessageLength: 0, expectsMaskedFrames: true)
        tcp.resumeReading()
        startClosing(code)
    }

    func placementDiverts(
        to handler: any MinervaTCPConnectionHandler
    ) -> (connection: MinervaTCPConnection, received: [UInt8])? {
        guard state == .placing, tcp.isOpen else { return nil }
        state = .diverted
        diverted = handler
        timer?.cancel()
        timer = nil
        let bytes = raw ?? []
        raw = nil
        decoder.releaseBuffers()
        inbound = []
        tcp.resumeReading()
        return (tcp, bytes)
    }

    func connectionPeerClosed(_ connection: MinervaTCPConnection) {
        if state == .diverted, let diverted {
            diverted.connectionPeerClosed(connection)
        } else {
            connection.closeNow()
        }
    }

    /// The first message decides which loop's engine runs the transport (its hello names the stream).
    private func settle(firstMessage: UnsafeRawBufferPointer?) {
        state = .open
        timer?.cancel()
        timer = nil
        transportOpen = true
        let owner = firstMessage.flatMap { driver.peers.isEmpty ? nil : driver.owner(ofFrame: $0) }
        var connection = info
        info.rawHeaders = nil
        let headers = connection.rawHeaders
        connection.rawHeaders = nil
        if let owner {
            proxied = true
            driver.handOffWebSocket(handle, info: connection, headers: headers, to: owner)
        } else if let headers {
            driver.engine.openTransport(
                handle, kind: .socket, connection: connection, now: driver.now, headers: headers)
        } else {
            driver.engine.openTransport(handle, kind: .socket, connection: connection, now: driver.now)
        }
    }

    /// Gives the messages received so far to the engine (each its own batch), or to the owner loop.
    private func deliverInbound() {
        guard !inbound.isEmpty else { return }
        if transportOpen {
            if proxied {
                driver.forwardSocketBytes(handle, inbound)
            } else {
                driver.deliverMessages(handle, inbound)
                driver.perform()
            }
        }
        if inbound.capacity > MinervaWebSocketFrameDecoder.keptMessageCapacity {
            inbound = []
        } else {
            inbound.removeAll(keepingCapacity: true)
        }
    }

    /// The transport ends as if the connection had been lost (the engine detaches it; no Minerva frames).
    private func detachTransport() {
        guard transportOpen else { return }
        transportOpen = false
        driver.socketTransportClosed(handle, proxied: proxied)
    }

    // MARK: Writing

    /// The engine's output: int32-framed frames, each written as one text message (all in this turn's write).
    func write(_ bytes: UnsafeRawBufferPointer) {
        guard state == .open else { return }
        var sawYouCloseIt = false
        var closeCode = MinervaWebSocketCloseCode.normal
        tcp.withOutput { out in
            var i = 0
            while i + 4 <= bytes.count {
                let length = Int(bytes[i]) << 24 | Int(bytes[i + 1]) << 16 | Int(bytes[i + 2]) << 8 | Int(bytes[i + 3])
                let end = min(i + 4 + length, bytes.count)
                let frame = UnsafeRawBufferPointer(rebasing: bytes[(i + 4)..<end])
                MinervaWebSocketFrameWriter.append(opcode: MinervaWebSocketOpcode.text, payload: frame, to: out)
                if frame.count == 1 && frame[0] == FrameType.youCloseIt {
                    sawYouCloseIt = true
                    if lastFrameWasCorruption { closeCode = MinervaWebSocketCloseCode.messageTooBig }
                }
                lastFrameWasCorruption = frame.elementsEqual(Self.corruptionFrame)
                i = end
            }
        }
        if sawYouCloseIt {
            // PROTOCOL.md 11.1: `Y`, then the close frame. The engine has detached the transport; it forgets it
            // when the connection ends.
            startClosing(closeCode)
            return
        }
        if !backedUp && !tcp.isWritable && tcp.isOpen {
            backedUp = true
            driver.socketTransportWritable(handle, proxied: proxied, false)
        }
    }

    private func writeFrame(_ opcode: UInt8, _ payload: UnsafeRawBufferPointer) {
        tcp.withOutput { MinervaWebSocketFrameWriter.append(opcode: opcode, payload: payload, to: $0) }
    }

    /// Writes our close frame; the TCP connection ends when the client's close frame arrives or after the close
    /// timeout.
    private func startClosing(_ code: UInt16) {
        guard state != .closing && state != .closed else { return }
        state = .closing
        MinervaWebSocketFrameWriter.closePayload(code: code).withUnsafeBytes {
            writeFrame(MinervaWebSocketOpcode.close, $0)
        }
        timer?.cancel()
        timer = tcp.eventLoop.schedule(after: driver.endpoint.configuration.webSocketCloseTimeout) {
            [unowned self] in
            self.timer = nil
            self.tcp.close()
        }
    }

    /// The engine's grace period after `Y` ran out (the close timeout normally ends the connection first).
    func close(abort: Bool) {
        if abort { tcp.abort() } else { tcp.close() }
    }

    func connectionBecameWritable(_ connection: MinervaTCPConnection) {
        if state == .diverted {
            diverted?.connectionBecameWritable(connection)
            return
        }
        guard backedUp else { return }
        backedUp = false
        if transportOpen { driver.socketTransportWritable(handle, proxied: proxied, true) }
    }

    func connectionDidClose(_ connection: MinervaTCPConnection) {
        state = .closed
        timer?.cancel()
        timer = nil
        raw = nil
        driver.sockets[handle.rawValue] = nil
        detachTransport()
        if let diverted {
            self.diverted = nil
            diverted.connectionDidClose(connection)
        }
    }
}
