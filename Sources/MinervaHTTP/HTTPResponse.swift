// The response object a handler answers through, now or over time.
import MinervaIO

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The owner of responses it keeps open (e.g. the Minerva endpoint's per-loop driver): it hears of their events
/// through this one object and a per-response tag instead of closures made per request. Loop thread only.
package protocol HTTPResponseDelegate: AnyObject {
    /// The connection closed before the response was finished (client gone, timeout, shutdown). The delegate was
    /// cleared first.
    func responseClosed(_ response: MinervaHTTPResponse, tag: Int)
    /// Buffered output fell below the low-water mark after `isWritable` had turned false.
    func responseWritable(_ response: MinervaHTTPResponse, tag: Int)
}

/// A response being written on a connection; a handler may keep it and finish it later.
///
/// Status and headers are committed at the first body write (`write`, `end`), so they can be decided late.
/// `end(_:)` on a response with nothing written yet sends an exact `Content-Length`. Streamed bodies are
/// chunked on HTTP/1.1 and close-delimited on HTTP/1.0, unless `writeHead(contentLength:)` gave a length.
/// All methods must be called on `eventLoop`'s thread.
public final class MinervaHTTPResponse {
    enum Framing {
        case none
        case length
        case chunked
        case closeDelimited
    }

    @exclusivity(unchecked) package var connection: HTTPConnection?
    /// The loop this response lives on; use `eventLoop.execute` to reach it from other threads.
    public let eventLoop: MinervaEventLoop
    /// The status code to send (default 200); ignored once the head was written.
    @exclusivity(unchecked) public var status = 200
    /// Header lines set one by one (`setHeader`): made at the first and kept across reuse of the response, so a
    /// response that only gets a constant block (a held long-poll) owns no header buffer.
    @exclusivity(unchecked) private var extraHeaders: ByteStorage?
    /// A constant block of header lines shared by reference (`appendHeaderBlock`, e.g. the endpoint's per-loop
    /// block): written before `extraHeaders`, never copied unless lines were set before it.
    @exclusivity(unchecked) private var sharedHeaders: ByteStorage?
    @exclusivity(unchecked) var isHeadRequest = false
    @exclusivity(unchecked) var requestMinor: UInt16 = 1
    @exclusivity(unchecked) var keepAlive = true
    @exclusivity(unchecked) var framing = Framing.none
    @exclusivity(unchecked) var remaining = 0
    /// Whether the status line and headers were written.
    @exclusivity(unchecked) public private(set) var headSent = false
    /// Whether `end` was called (or the connection closed).
    @exclusivity(unchecked) public private(set) var isFinished = false
    /// Called once if the connection closes before the response is finished (client gone, timeout, shutdown).
    @exclusivity(unchecked) public var onClose: (() -> Void)?
    /// Called when buffered output falls below the low-water mark after `isWritable` had turned false.
    @exclusivity(unchecked) public var onWritable: (() -> Void)?
    /// Hears the same events as `onClose` and `onWritable`, with ``delegateTag`` (no closure per request). Cleared
    /// when the response finishes or is reused.
    package weak var delegate: (any HTTPResponseDelegate)?
    /// The delegate's name for this response.
    @exclusivity(unchecked) package var delegateTag = 0

    init(connection: HTTPConnection, eventLoop: MinervaEventLoop) {
        self.connection = connection
        self.eventLoop = eventLoop
    }

    func reset(connection: HTTPConnection, isHead: Bool, minor: UInt16, keepAlive: Bool) {
        self.connection = connection
        status = 200
        extraHeaders?.count = 0
        sharedHeaders = nil
        isHeadRequest = isHead
        requestMinor = minor
        self.keepAlive = keepAlive
        framing = .none
        remaining = 0
        headSent = false
        isFinished = false
        onClose = nil
        onWritable = nil
        delegate = nil
    }

    /// Whether the client is still connected and the response is not finished.
    public var isOpen: Bool { connection != nil && !isFinished }

    /// Bytes queued on the connection and not yet accepted by the kernel.
    public var bufferedBytes: Int { connection?.pendingOutput ?? 0 }

    /// False while buffered output is above the high-water mark: the producer should wait for `onWritable`.
    public var isWritable: Bool {
        guard let connection else { return false }
        return !connection.producerPaused
    }

    /// Whether the request was HEAD (bodies written are then dropped).
    public var isHead: Bool { isHeadRequest }

    /// Adds a response header line (not `Content-Length`, `Transfer-Encoding`, `Date` or `Connection`).
    public func setHeader(_ name: String, _ value: String) {
        precondition(!headSent, "headers already sent")
        let lines = headerLines
        lines.append(name)
        lines.append(": ")
        lines.append(value)
        lines.append("\r\n")
    }

    /// Adds a response header line from static strings (no allocation).
    public func setHeader(_ name: StaticString, _ value: StaticString) {
        precondition(!headSent, "headers already sent")
        let lines = headerLines
        lines.append(name)
        lines.append(": ")
        lines.append(value)
        lines.append("\r\n")
    }

    /// The buffer of header lines set one by one, made at the first use.
    private var headerLines: ByteStorage {
        if let extraHeaders { return extraHeaders }
        let lines = ByteStorage(capacity: 128)
        extraHeaders = lines
        return lines
    }

    /// Adds pre-encoded header lines, each ending in CRLF. The block must not change while the response is open: the
    /// first block is kept by reference (no copy), a later one (or one after `setHeader`) is copied.
    package func appendHeaderBlock(_ block: ByteStorage) {
        precondition(!headSent, "headers already sent")
        if sharedHeaders == nil && (extraHeaders?.count ?? 0) == 0 {
            sharedHeaders = block
        } else {
            headerLines.append(block.bytes)
        }
    }

    /// Appends the headers set so far: the shared block, then the lines set one by one.
    private func appendHeaders(to out: ByteStorage) {
        if let sharedHeaders { out.append(sharedHeaders.bytes) }
        if let extraHeaders { out.append(extraHeaders.bytes) }
    }

    /// Writes the status line and headers now.
    /// - Parameter contentLength: the exact body length, or nil to stream (chunked or close-delimited).
    public func writeHead(contentLength: Int? = nil) {
        guard !headSent, !isFinished, let connection else { return }
        headSent = true
        let bodiless = status < 200 || status == 204 || status == 304
        if bodiless {
            framing = .none
        } else if let contentLength {
            framing = .length
            remaining = contentLength
        } else if requestMinor >= 1 {
            framing = .chunked
        } else {
            framing = .closeDelimited
            keepAlive = false
        }
        if connection.context.draining { keepAlive = false }
        let status = self.status
        connection.withOutput { out in
            connection.context.appendStatusLineAndDate(status, to: out)
            appendHeaders(to: out)
            switch framing {
            case .length:
                out.append("Content-Length: ")
                out.appendDecimal(remaining)
                out.append("\r\n")
            case .chunked: out.append("Transfer-Encoding: chunked\r\n")
            case .none:
                if status == 204 || status == 304 || status < 200 { break }
                out.append("Content-Length: 0\r\n")
            case .closeDelimited: break
            }
            if !keepAlive {
                out.append("Connection: close\r\n")
            } else if requestMinor == 0 {
                out.append("Connection: keep-alive\r\n")
            }
            out.append("\r\n")
        }
        if isHeadRequest || bodiless { remaining = 0 }
    }

    /// Writes body bytes (committing the head first, streamed, if needed).
    public func write(_ bytes: UnsafeRawBufferPointer) {
        guard !isFinished, let connection else { return }
        if !headSent { writeHead(contentLength: nil) }
        if isHeadRequest || bytes.isEmpty { return }
        guard let base = bytes.baseAddress else { return }
        switch framing {
        case .none: return
        case .length:
            let n = min(bytes.count, remaining)
            remaining -= n
            connection.withOutput { $0.append(base, count: n) }
        case .closeDelimited:
            connection.withOutput { $0.append(base, count: bytes.count) }
        case .chunked:
            connection.withOutput { out in
                out.appendHex(bytes.count)
                out.append("\r\n")
                out.append(base, count: bytes.count)
                out.append("\r\n")
            }
        }
    }

    /// Writes body bytes.
    public func write(_ bytes: [UInt8]) { bytes.withUnsafeBytes { write($0) } }

    /// Writes a string's UTF-8 bytes.
    public func write(_ string: String) {
        var string = string
        string.withUTF8 { write(UnsafeRawBufferPointer($0)) }
    }

    /// Writes a static string's bytes.
    public func write(_ string: StaticString) {
        write(UnsafeRawBufferPointer(start: string.utf8Start, count: string.utf8CodeUnitCount))
    }

    /// Finishes the response. With nothing written yet, `bytes` is the whole body and gets an exact Content-Length.
    public func end(_ bytes: UnsafeRawBufferPointer) {
        guard !isFinished, connection != nil else { return }
        if !headSent { writeHead(contentLength: bytes.count) }
        write(bytes)
        end()
    }

    /// Finishes the response with a final body chunk (exact Content-Length if nothing was written yet).
    public func end(_ bytes: [UInt8]) { bytes.withUnsafeBytes { end($0) } }

    /// Finishes the response with a final string (exact Content-Length if nothing was written yet).
    public func end(_ string: String) {
        var string = string
        string.withUTF8 { end(UnsafeRawBufferPointer($0)) }
    }

    /// Finishes the response with a final static string (exact Content-Length if nothing was written yet).
    public func end(_ string: StaticString) {
        end(UnsafeRawBufferPointer(start: string.utf8Start, count: string.utf8CodeUnitCount))
    }

    /// Finishes the response (an empty body if nothing was written).
    public func end() {
        guard !isFinished, let connection else { return }
        if !headSent { writeHead(contentLength: 0) }
        switch framing {
        case .chunked where !isHeadRequest:
            connection.withOutput { $0.append("0\r\n\r\n") }
        case .length where remaining > 0:
            keepAlive = false  // the body is short: only closing can delimit it now
        case .closeDelimited:
            keepAlive = false
        default: break
        }
        isFinished = true
        onClose = nil
        onWritable = nil
        delegate = nil
        connection.responseFinished(self)
    }

    /// Answers `101 Switching Protocols` with the headers set so far (the new protocol's `Upgrade`, `Connection:
    /// Upgrade` and the like) and hands the connection to `handler`: it gets every later socket event, starting with
    /// the bytes the client sent after the request. The response is finished. Call it only for a request whose
    /// ``MinervaHTTPRequest/isUpgrade`` is true, from its handler.
    /// - Parameter handler: the new protocol's handler (it writes and closes through the connection it is given).
    /// - Returns: the socket, or nil if the connection is gone or the head was already written.
    @discardableResult
    public func upgrade(to handler: any MinervaTCPConnectionHandler) -> MinervaTCPConnection? {
        guard !headSent, !isFinished, let connection, connection.decoder?.isUpgrade == true,
            connection.upgrade(to: handler, response: self)
        else { return nil }
        headSent = true
        isFinished = true
        onClose = nil
        onWritable = nil
        delegate = nil
        connection.withOutput { out in
            connection.context.appendStatusLineAndDate(101, to: out)
            appendHeaders(to: out)
            out.append("\r\n")
        }
        return connection.socket
    }

    /// Sends a complete response with an exact Content-Length.
    /// - Parameters:
    ///   - status: the status code.
    ///   - contentType: the Content-Type value.
    ///   - body: the body text.
    public func send(status: Int, contentType: String = "text/plain; charset=utf-8", body: String) {
        self.status = status
        setHeader("Content-Type", contentType)
        end(body)
    }

    /// Called by the connection when it closes before `end`.
    func connectionClosed() {
        connection = nil
        if isFinished { return }
        isFinished = true
        let callback = onClose
        let delegate = self.delegate
        onClose = nil
        onWritable = nil
        self.delegate = nil
        callback?()
        delegate?.responseClosed(self, tag: delegateTag)
    }

    /// Called by the connection when its buffered output fell below the low-water mark.
    func becameWritable() {
        onWritable?()
        delegate?.responseWritable(self, tag: delegateTag)
    }
}
