// One accepted TCP connection speaking HTTP/1.1: reads into the loop's shared buffer, decodes, dispatches one
// request at a time (pipelined requests wait their turn), and writes through an output queue with writev.
internal import CShims
import MinervaIO

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The HTTP/1.1 protocol state of one accepted connection: a handler on the loop's one socket type
/// (`MinervaTCPConnection` reads, writes and closes). Confined to its loop.
package final class HTTPConnection: MinervaTCPConnectionHandler, DeadlineTarget, HTTPRequestDecoderDelegate {
    // Stored properties: words first, then the flags together (a held long-poll keeps one of these: no padding
    // between fields).

    /// The socket.
    package let socket: MinervaTCPConnection
    unowned let context: HTTPLoopContext
    /// The request decoder, borrowed from the loop's spares when bytes arrive and given back whenever it rests at a
    /// message boundary with no input kept (an idle keep-alive connection or a held long-poll owns none); after a
    /// protocol switch, kept until it handed over its last bytes, then released.
    @exclusivity(unchecked) private(set) var decoder: HTTPRequestDecoder?
    /// The connection's place in the read-side deadline lists (header, body, idle); released once the connection
    /// switched protocols (no HTTP timeout applies any more).
    @exclusivity(unchecked) private var timeoutNode: DeadlineNode! = DeadlineNode()
    /// Position in `context.connections`.
    @exclusivity(unchecked) var index = 0

    // Requests.
    @exclusivity(unchecked) private var current: MinervaHTTPResponse?
    @exclusivity(unchecked) private var spare: MinervaHTTPResponse?
    @exclusivity(unchecked) private var requestsSeen = 0
    /// After a protocol switch (``MinervaHTTPResponse/upgrade(to:)``): the handler that gets every socket event from
    /// now on. The connection stays counted (and drained) as one of the loop's HTTP connections.
    @exclusivity(unchecked) private(set) var upgraded: (any MinervaTCPConnectionHandler)?
    /// The addresses as text, formatted at the first request that asks (``addressText``).
    @exclusivity(unchecked) private var addressTextIfMade: HTTPConnectionAddressText?

    /// Where decoding stands while no decoder is borrowed: paused (a request was delivered and is being answered;
    /// input that arrives waits) or idle.
    @exclusivity(unchecked) private var restingPaused = false
    @exclusivity(unchecked) private var dispatching = false
    /// The connection closes once its output is written (no more requests are read).
    @exclusivity(unchecked) private(set) var closeAfterFlush = false
    /// Reading is paused because pipelined input ran too far ahead of the responses.
    @exclusivity(unchecked) private var readStopped = false
    /// Decoding (and reading) is paused because the output reached the high-water mark: a client that pipelines
    /// requests without reading the answers must not make the server buffer them without bound.
    @exclusivity(unchecked) private var outputBackpressure = false
    /// The peer ended its data cleanly (FIN) while requests it sent were still being answered: they are answered
    /// in full, then the connection closes.
    @exclusivity(unchecked) private var peerHalfClosed = false
    @exclusivity(unchecked) private(set) var isClosed = false
    /// Whether the bytes that followed the upgrade request were handed to `upgraded`.
    @exclusivity(unchecked) private var upgradeRemainderDelivered = false

    init(socket: MinervaTCPConnection, context: HTTPLoopContext) {
        self.socket = socket
        self.context = context
        timeoutNode.target = self
        socket.handler = self
        context.headerTimeouts.add(timeoutNode)
    }

    /// The local and peer addresses as text (`host:port`, `[v6]:port`) and the peer's host, formatted once per
    /// connection at the first request that asks and kept with it (a keep-alive connection's later requests, or a
    /// held long-poll, cost nothing more; empty strings once the socket is closed).
    package var addressText: HTTPConnectionAddressText {
        if let addressTextIfMade { return addressTextIfMade }
        let peer = socket.remoteAddress?.description ?? ""
        let text = HTTPConnectionAddressText(
            local: socket.localAddress?.description ?? "", peer: peer, peerHost: Self.hostPart(of: peer))
        addressTextIfMade = text
        return text
    }

    /// The host part of `host:port` or `[v6]:port`.
    package static func hostPart(of address: String) -> String {
        guard let colon = address.lastIndex(of: ":") else { return address }
        return String(address[..<colon])
    }

    /// Bytes queued and not yet written.
    var pendingOutput: Int { socket.bufferedBytes }

    /// Whether buffered output is above the high-water mark.
    var producerPaused: Bool { !socket.isWritable }

    private func stopReading() {
        if readStopped { return }
        readStopped = true
        socket.pauseReading()
    }

    // MARK: socket events

    package func connection(_ connection: MinervaTCPConnection, didReceive bytes: UnsafeRawBufferPointer) {
        if let upgraded, upgradeRemainderDelivered {
            upgraded.connection(connection, didReceive: bytes)
            return
        }
        let decoder = borrowDecoder()
        decoder.feed(bytes, delegate: self)
        if isClosed { return }
        if upgraded != nil {
            deliverUpgradeRemainder()
            return
        }
        if decoder.phase == .paused && decoder.pendingCount > context.configuration.maxBufferedInputBytes {
            stopReading()  // a pipelining client ran too far ahead; resume when the response ends
        }
        armReadTimeout()
        returnDecoderIfResting()
    }

    /// The decoder, borrowed from the loop's spares if the connection has none (in the state decoding rests in).
    private func borrowDecoder() -> HTTPRequestDecoder {
        if let decoder { return decoder }
        let decoder = context.takeDecoder(paused: restingPaused)
        self.decoder = decoder
        return decoder
    }

    /// Gives the decoder back to the loop's spares if it holds nothing of this connection. Called only when no
    /// decoder call is in progress (never from its delegate methods).
    private func returnDecoderIfResting() {
        guard let decoder, upgraded == nil, !isClosed, decoder.isAtRest else { return }
        restingPaused = decoder.phase == .paused
        self.decoder = nil
        context.recycle(decoder)
    }

    /// The decoder's phase, or the phase it rests in while none is borrowed.
    private var decoderPhase: HTTPRequestDecoder.Phase {
        if let decoder { return decoder.phase }
        return restingPaused ? .paused : .idle
    }

    package func connectionPeerClosed(_ connection: MinervaTCPConnection) {
        if let upgraded {
            upgraded.connectionPeerClosed(connection)
            return
        }
        let inProgress = current.map { !$0.isFinished } ?? false
        if connection.peerHalfClosed && (inProgress || decoderPhase == .paused) {
            // A clean EOF: the client half-closed after its request(s) and may still read (RFC 9112 9.6). Answer
            // what it sent, a streamed response to its end, then close. A reset or read error is not a half-close
            // and closes at once below, so an aborted long poll is still noticed at once.
            peerHalfClosed = true
            stopReading()
            return
        }
        if inProgress {
            close()
        } else {
            closeAfterFlush = true
            socket.close()  // writes what is queued first
        }
    }

    package func connectionBecameWritable(_ connection: MinervaTCPConnection) {
        if let upgraded {
            upgraded.connectionBecameWritable(connection)
            return
        }
        current?.becameWritable()
        if isClosed { return }
        relieveBackpressure()
    }

    package func connection(_ connection: MinervaTCPConnection, writeBlocked blocked: Bool) {
        if let upgraded {
            upgraded.connection(connection, writeBlocked: blocked)
            return
        }
        if blocked {
            // The socket's write-stall timeout takes over from the idle timeout (which would drop the output). A
            // request head or body being received keeps its total deadline: its 408 queues behind the output.
            let phase = decoderPhase
            if phase != .head && phase != .body { timeoutNode.list?.remove(timeoutNode) }
        } else {
            armReadTimeout()
        }
    }

    package func connectionDidClose(_ connection: MinervaTCPConnection) {
        if connection.closeReason == .writeTimeout, let notLogged = context.rejectionLog.admit(now: context.loop.now) {
            context.logger.info(
                "closing a connection whose peer stopped reading (write timeout)",
                metadata: ["earlierRejectionsNotLogged": "\(notLogged)"])
        }
        closed()
        if let upgraded {
            self.upgraded = nil
            upgraded.connectionDidClose(connection)
        }
    }

    /// Puts the connection in the deadline list its state calls for. The header and body deadlines are totals: a
    /// connection enters the list when the head (or body) starts and is not moved by the bytes that follow, so a
    /// request trickled byte by byte still ends at `headerTimeout` (`bodyTimeout`).
    private func armReadTimeout() {
        if isClosed || upgraded != nil { return }
        switch decoderPhase {
        case .idle:
            if socket.isWriteBlocked { return }  // the write-stall timeout governs until the output is written
            if requestsSeen == 0 || closeAfterFlush {
                if timeoutNode.list !== context.headerTimeouts { context.headerTimeouts.add(timeoutNode) }
            } else if timeoutNode.list !== context.idleTimeouts {
                context.idleTimeouts.add(timeoutNode)
            }
        case .head:
            if timeoutNode.list !== context.headerTimeouts { context.headerTimeouts.add(timeoutNode) }
        case .body:
            if timeoutNode.list !== context.bodyTimeouts { context.bodyTimeouts.add(timeoutNode) }
        case .paused, .failed:
            timeoutNode.list?.remove(timeoutNode)
        }
    }

    package func deadlineExpired(_ list: DeadlineList) {
        if list === context.idleTimeouts || closeAfterFlush || upgraded != nil {
            close()
            return
        }
        if decoderPhase == .idle && pendingOutput == 0 && current == nil {
            close()  // never sent anything
            return
        }
        sendError(408)
    }

    /// Whether the connection waits for its next request (an idle keep-alive connection).
    var isIdle: Bool { timeoutNode?.list === context.idleTimeouts }

    /// Closes the connection to make room for a new client at the connection limit: an idle keep-alive one with a
    /// FIN (HTTP/1.1 allows closing an idle connection at any time), a slow one with a reset (like nginx's
    /// `reset_timedout_connection`: nothing is kept for it in the kernel).
    func shed() {
        if isClosed || upgraded != nil { return }
        let idle = isIdle
        if let notLogged = context.rejectionLog.admit(now: context.loop.now) {
            let peer = socket.remoteAddress?.description ?? "?"
            context.logger.info(
                "connection limit: closing \(idle ? "an idle" : "a slow") connection for a new client",
                metadata: ["peer": "\(peer)", "earlierRejectionsNotLogged": "\(notLogged)"])
        }
        if idle { socket.closeNow() } else { socket.abort() }
    }

    // MARK: decoder delegate

    package func decoderDidReceiveRequest(_ decoder: HTTPRequestDecoder) -> Bool {
        requestsSeen += 1
        startResponse(decoder)
        timeoutNode.list?.remove(timeoutNode)
        dispatching = true
        context.router.dispatch(MinervaHTTPRequest(decoder: decoder, connection: self), current!)
        dispatching = false
        if isClosed || upgraded != nil { return false }
        if current?.isFinished != true { return false }
        finishCurrent()
        return !closeAfterFlush && !pauseForOutput()
    }

    /// Pauses decoding and reading while the queued output is at or above the high-water mark; true if paused.
    private func pauseForOutput() -> Bool {
        guard !socket.isWritable else { return false }
        outputBackpressure = true
        stopReading()
        return true
    }

    /// Makes `current` a fresh response, reusing the last one if nobody else kept it (checked now rather than when
    /// it finished, when its owner may still hold it for the duration of the call that ended it).
    private func startResponse(_ decoder: HTTPRequestDecoder) {
        let isHead = decoder.methodCode == 2  // HTTP_HEAD
        let keepAlive = decoder.keepAlive && !context.draining
        if spare == nil || !isKnownUniquelyReferenced(&spare!) {
            spare = MinervaHTTPResponse(connection: self, eventLoop: context.loop)
        }
        spare!.reset(connection: self, isHead: isHead, minor: decoder.versionMinor, keepAlive: keepAlive)
        swap(&current, &spare)
    }

    package func decoderWantsContinue(_ decoder: HTTPRequestDecoder) {
        withOutput { $0.append("HTTP/1.1 100 Continue\r\n\r\n") }
    }

    package func decoderDidFail(_ decoder: HTTPRequestDecoder, status: Int) {
        sendError(status)
    }

    /// Answers `status` with a short text body and closes once it is written.
    private func sendError(_ status: Int) {
        closeAfterFlush = true
        stopReading()
        logRejection(status)
        if let current, !current.isFinished {
            close()
            return
        }
        socket.withOutput { out in
            context.appendStatusLineAndDate(status, to: out)
            out.append("Content-Type: text/plain\r\nConnection: close\r\nContent-Length: ")
            let reason = reasonPhrase(status)
            out.appendDecimal(reason.utf8CodeUnitCount + 1)
            out.append("\r\n\r\n")
            out.append(reason)
            out.append("\n")
        }
        socket.close()
    }

    /// One log line per rejected request (rate limited per loop: hostile input must not flood the log).
    private func logRejection(_ status: Int) {
        guard let notLogged = context.rejectionLog.admit(now: context.loop.now) else { return }
        let peer = socket.remoteAddress?.description ?? "?"
        context.logger.info(
            "rejected request: \(status) \(reasonPhrase(status))",
            metadata: ["peer": "\(peer)", "earlierRejectionsNotLogged": "\(notLogged)"])
    }

    /// Called by `MinervaHTTPResponse.end`.
    func responseFinished(_ response: MinervaHTTPResponse) {
        if dispatching || response !== current { return }
        finishCurrent()
        if isClosed || closeAfterFlush || pauseForOutput() { return }
        continueDecoding()
    }

    /// Decodes the pipelined input held while a response was in progress or the output was backed up, then reads
    /// again unless decoding paused once more.
    private func continueDecoding() {
        if let decoder {
            decoder.resume(delegate: self)
        } else {
            restingPaused = false  // no input arrived meanwhile: nothing to decode
        }
        if isClosed { return }
        if upgraded != nil {
            deliverUpgradeRemainder()
            return
        }
        let phase = decoderPhase
        if peerHalfClosed && phase != .paused {
            // Every request the half-closed peer sent is answered.
            closeAfterFlush = true
            socket.close()
            return
        }
        if readStopped && !closeAfterFlush && !outputBackpressure && !peerHalfClosed && phase != .paused {
            readStopped = false
            socket.resumeReading()
        }
        armReadTimeout()
        returnDecoderIfResting()
    }

    /// Ends an output backpressure pause once the output drained to the low-water mark.
    private func relieveBackpressure() {
        guard outputBackpressure, socket.isWritable else { return }
        outputBackpressure = false
        if current != nil || closeAfterFlush { return }  // the response in progress resumes decoding when it ends
        continueDecoding()
    }

    private func finishCurrent() {
        guard let response = current else { return }
        current = nil
        response.connection = nil
        spare = response  // reused by the next request if nobody else keeps it (see startResponse)
        if !response.keepAlive || context.draining {
            closeAfterFlush = true
            stopReading()
            socket.close()  // once the answer is written
            if isClosed { return }
        }
        armReadTimeout()
    }

    // MARK: protocol switch

    /// Switches the connection to another protocol after its current request (whose response wrote the 101 head):
    /// from now on `handler` gets the socket's events, starting with the bytes that followed the request. No HTTP
    /// timeout applies any more; the connection still counts against the loop's connection limit.
    /// - Returns: false (and nothing changes) if `response` is not the current request's or the connection was
    ///   already switched.
    func upgrade(to handler: any MinervaTCPConnectionHandler, response: MinervaHTTPResponse) -> Bool {
        guard response === current, upgraded == nil, !isClosed else { return false }
        upgraded = handler
        current = nil
        spare = nil
        response.connection = nil
        timeoutNode.list?.remove(timeoutNode)
        if readStopped {
            readStopped = false
            socket.resumeReading()
        }
        return true
    }

    /// Hands the bytes received after the upgrade request to the new handler (once, after the decoder stopped).
    private func deliverUpgradeRemainder() {
        guard let upgraded, !upgradeRemainderDelivered else { return }
        upgradeRemainderDelivered = true
        timeoutNode.list?.remove(timeoutNode)
        timeoutNode = nil
        let decoder = self.decoder!
        self.decoder = nil  // an upgraded connection parses no more HTTP: the decoder's memory goes
        decoder.takeRemainder { upgraded.connection(socket, didReceive: $0) }
    }

    // MARK: writing

    /// Appends bytes to the output through `body`; they are written at the end of the turn.
    @inline(__always) func withOutput(_ body: (ByteStorage) -> Void) {
        if isClosed { return }
        socket.withOutput(body)
    }

    /// Queues a range of an immutable shared buffer without copying it.
    func enqueueShared(_ storage: ByteStorage, start: Int, end: Int) {
        if isClosed { return }
        socket.writeShared(storage, start: start, end: end)
    }

    // MARK: closing

    /// Closes the socket now, dropping queued output; an unfinished response hears `onClose`.
    func close() {
        if isClosed { return }
        socket.closeNow()  // calls connectionDidClose
    }

    private func closed() {
        if isClosed { return }
        isClosed = true
        if let timeoutNode { timeoutNode.list?.remove(timeoutNode) }
        let response = current
        current = nil
        spare = nil
        context.connectionClosed(self)
        response?.connectionClosed()
    }

    /// Shutdown: close if nothing is in flight, else close once the current response is written.
    func drain() {
        if upgraded != nil { return }  // the new protocol's owner ends it (or the drain's grace period does)
        if current == nil {
            closeAfterFlush = true
            stopReading()
            socket.close()
        }
    }
}

/// A connection's addresses as text (``HTTPConnection/addressText``).
package struct HTTPConnectionAddressText {
    /// The local address, `host:port`.
    package let local: String
    /// The peer's address, `host:port`.
    package let peer: String
    /// The peer's host, without the port.
    package let peerHost: String
}
