// One accepted TCP connection speaking HTTP/1.1: reads into the loop's shared buffer, decodes, dispatches one
// request at a time (pipelined requests wait their turn), and writes through an output queue with writev.
internal import CShims

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// One HTTP connection, confined to its loop.
final class HTTPConnection: DeadlineNode, HTTPRequestDecoderDelegate {
    let fd: Int32
    unowned let context: HTTPLoopContext
    private var watcher: IOWatcher!
    let decoder: HTTPRequestDecoder
    /// Position in `context.connections`.
    var index = 0

    // Output.
    private let output = OutputQueue(capacity: 1024)
    /// Bytes queued and not yet written.
    var pendingOutput: Int { output.count }
    private var writeBlocked = false
    var flushScheduled = false
    private(set) var producerPaused = false

    // Requests.
    private var current: HTTPResponse?
    private var spare: HTTPResponse?
    private var dispatching = false
    private var requestsSeen = 0
    private(set) var closeAfterFlush = false
    private var readStopped = false
    private(set) var isClosed = false

    init(fd: Int32, context: HTTPLoopContext) {
        self.fd = fd
        self.context = context
        let config = context.configuration
        decoder = HTTPRequestDecoder(
            limits: HTTPDecoderLimits(
                maxHeaderBytes: config.maxHeaderBytes, maxHeaderCount: config.maxHeaderCount,
                maxURLBytes: config.maxURLBytes, maxBodyBytes: config.maxBodyBytes))
        super.init()
        watcher = IOWatcher(loop: context.loop.raw, fd: fd) { [unowned self] revents in self.handleEvents(revents) }
        watcher.watch(cshims_EV_READ())
        context.headerTimeouts.add(self)
    }

    /// Whether a response is in progress (a handler owns it).
    var hasResponseInFlight: Bool { current != nil }

    private func handleEvents(_ revents: Int32) {
        if revents & cshims_EV_WRITE() != 0 { flush() }
        if revents & cshims_EV_READ() != 0 && !isClosed && !readStopped { readable() }
    }

    private func updateWatcher() {
        if isClosed { return }
        var events: Int32 = 0
        if !readStopped { events |= cshims_EV_READ() }
        if writeBlocked { events |= cshims_EV_WRITE() }
        watcher.watch(events)
    }

    private func stopReading() {
        if readStopped { return }
        readStopped = true
        updateWatcher()
    }

    // MARK: reading

    private func readable() {
        let buffer = context.readBuffer
        let n = cshims_read(fd, buffer.base, buffer.capacity)
        if n > 0 {
            decoder.feed(UnsafeRawBufferPointer(start: buffer.base, count: n), delegate: self)
            if isClosed { return }
            if decoder.phase == .paused && decoder.pendingCount > context.configuration.maxBufferedInputBytes {
                stopReading()  // a pipelining client ran too far ahead; resume when the response ends
            }
            armReadTimeout(dataArrived: true)
        } else if n == 0 || (n != -Int(EAGAIN) && n != -Int(EWOULDBLOCK)) {
            peerClosed()
        }
    }

    private func peerClosed() {
        if let current, !current.isFinished {
            close()
        } else if pendingOutput > 0 {
            closeAfterFlush = true
            stopReading()
        } else {
            close()
        }
    }

    /// Puts the connection in the deadline list its state calls for.
    private func armReadTimeout(dataArrived: Bool) {
        if isClosed || writeBlocked { return }
        switch decoder.phase {
        case .idle:
            if requestsSeen == 0 || closeAfterFlush {
                if list !== context.headerTimeouts { context.headerTimeouts.add(self) }
            } else if list !== context.idleTimeouts {
                context.idleTimeouts.add(self)
            }
        case .head:
            if list !== context.headerTimeouts { context.headerTimeouts.add(self) }
        case .body:
            if dataArrived || list !== context.bodyTimeouts { context.bodyTimeouts.touch(self) }
        case .paused, .failed:
            list?.remove(self)
        }
    }

    override func deadlineExpired(_ list: DeadlineList) {
        if list === context.writeTimeouts || list === context.idleTimeouts || closeAfterFlush {
            close()
            return
        }
        if decoder.phase == .idle && pendingOutput == 0 && current == nil {
            close()  // never sent anything
            return
        }
        sendError(408)
    }

    // MARK: decoder delegate

    func decoderDidReceiveRequest(_ decoder: HTTPRequestDecoder) -> Bool {
        requestsSeen += 1
        startResponse(decoder)
        if !writeBlocked { list?.remove(self) }
        dispatching = true
        context.router.dispatch(HTTPRequest(decoder: decoder, fd: fd), current!)
        dispatching = false
        if isClosed { return false }
        if current?.isFinished != true { return false }
        finishCurrent()
        return !closeAfterFlush
    }

    /// Makes `current` a fresh response, reusing the last one if nobody else kept it.
    private func startResponse(_ decoder: HTTPRequestDecoder) {
        let isHead = decoder.methodCode == 2  // HTTP_HEAD
        let keepAlive = decoder.keepAlive && !context.draining
        if spare == nil { spare = HTTPResponse(connection: self, eventLoop: context.loop) }
        spare!.reset(connection: self, isHead: isHead, minor: decoder.versionMinor, keepAlive: keepAlive)
        swap(&current, &spare)
    }

    func decoderWantsContinue(_ decoder: HTTPRequestDecoder) {
        withOutput { $0.append("HTTP/1.1 100 Continue\r\n\r\n") }
    }

    func decoderDidFail(_ decoder: HTTPRequestDecoder, status: Int) {
        sendError(status)
    }

    /// Answers `status` with a short text body and closes once it is written.
    private func sendError(_ status: Int) {
        closeAfterFlush = true
        stopReading()
        if let current, !current.isFinished {
            close()
            return
        }
        withOutput { out in
            out.append("HTTP/1.1 ")
            out.appendDecimal(status)
            out.append(byte: 32)
            out.append(reasonPhrase(status))
            out.append("\r\n")
            out.append(context.dateLine().bytes)
            out.append("Content-Type: text/plain\r\nConnection: close\r\nContent-Length: ")
            let reason = reasonPhrase(status)
            out.appendDecimal(reason.utf8CodeUnitCount + 1)
            out.append("\r\n\r\n")
            out.append(reason)
            out.append("\n")
        }
    }

    /// Called by `HTTPResponse.end`.
    func responseFinished(_ response: HTTPResponse) {
        if dispatching || response !== current { return }
        finishCurrent()
        if isClosed || closeAfterFlush { return }
        decoder.resume(delegate: self)
        if isClosed { return }
        if readStopped && !closeAfterFlush && decoder.phase != .paused {
            readStopped = false
            updateWatcher()
        }
        armReadTimeout(dataArrived: false)
    }

    private func finishCurrent() {
        guard var response = current else { return }
        current = nil
        if !response.keepAlive || context.draining {
            closeAfterFlush = true
            stopReading()
            if pendingOutput == 0 { scheduleFlush() }
        }
        response.connection = nil
        if isKnownUniquelyReferenced(&response) { spare = response }
        if !isClosed && !writeBlocked { armReadTimeout(dataArrived: false) }
    }

    // MARK: writing

    /// Appends bytes to the output through `body`, then schedules a flush.
    @inline(__always) func withOutput(_ body: (ByteStorage) -> Void) {
        if isClosed { return }
        let added = output.append(body)
        if added > 0 { enqueued() }
    }

    /// Queues a range of an immutable shared buffer without copying it.
    func enqueueShared(_ storage: ByteStorage, start: Int, end: Int) {
        if isClosed || end <= start { return }
        output.appendShared(storage, start: start, end: end)
        enqueued()
    }

    private func enqueued() {
        if output.count >= context.configuration.highWaterMark { producerPaused = true }
        scheduleFlush()
    }

    private func scheduleFlush() {
        if flushScheduled || writeBlocked { return }
        flushScheduled = true
        context.flushQueue.append(self)
    }

    /// Writes as much queued output as the socket takes.
    func flush() {
        flushScheduled = false
        if isClosed { return }
        while output.count > 0 {
            let n = output.writeOnce(fd: fd, iovecs: context.loop.iovecs, maxIovecs: EventLoop.maxIovecs)
            if n < 0 {
                if n == -Int(EAGAIN) || n == -Int(EWOULDBLOCK) {
                    if !writeBlocked {
                        writeBlocked = true
                        context.writeTimeouts.add(self)
                        updateWatcher()
                    }
                    return
                }
                close()
                return
            }
            if writeBlocked { context.writeTimeouts.touch(self) }
            if producerPaused && output.count <= context.configuration.lowWaterMark {
                producerPaused = false
                current?.onWritable?()
                if isClosed { return }
            }
        }
        if writeBlocked {
            writeBlocked = false
            context.writeTimeouts.remove(self)
            updateWatcher()
            armReadTimeout(dataArrived: false)
        }
        if closeAfterFlush && current == nil {
            close()
        }
    }

    // MARK: closing

    /// Closes the socket now; an unfinished response hears `onClose`.
    func close() {
        if isClosed { return }
        isClosed = true
        list?.remove(self)
        watcher.watch(0)
        _ = cshims_close(fd)
        output.removeAll()
        let response = current
        current = nil
        spare = nil
        context.connectionClosed(self)
        response?.connectionClosed()
    }

    /// Shutdown: close if nothing is in flight, else close once the current response is written.
    func drain() {
        if current == nil && pendingOutput == 0 {
            close()
            return
        }
        if current == nil {
            closeAfterFlush = true
            stopReading()
        }
    }
}
