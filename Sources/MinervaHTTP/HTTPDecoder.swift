// The C boundary, part 2: the one file over http-parser, used both ways (a request decoder for the server, a
// response decoder for the Swift client and the load tool). Nothing else in the package sees http-parser, so it can
// be replaced (llhttp) by rewriting this file alone.
//
// Header names, values and the URL are recorded as byte offsets from the start of the request head. While a
// head is complete in the caller's buffer nothing is copied; when a head (or a head followed by a body) spans
// reads, its bytes are copied once into `headStore`, where the same offsets stay valid.
internal import CShims
import MinervaIO

/// Request size limits enforced by the decoder.
package struct HTTPDecoderLimits {
    var maxHeaderBytes: Int
    var maxHeaderCount: Int
    var maxURLBytes: Int
    var maxBodyBytes: Int
}

/// Receives the decoder's results.
package protocol HTTPRequestDecoderDelegate: AnyObject {
    /// A whole request (head and body) is available through `decoder.request`.
    /// - Returns: true to go on parsing the following bytes now, false to stop until `resume`.
    func decoderDidReceiveRequest(_ decoder: HTTPRequestDecoder) -> Bool
    /// The head asked for `Expect: 100-continue` and its body has not arrived yet.
    func decoderWantsContinue(_ decoder: HTTPRequestDecoder)
    /// The input is unacceptable; answer `status` and close.
    func decoderDidFail(_ decoder: HTTPRequestDecoder, status: Int)
}

/// The buffers request decoders borrow while a request is in progress (one pool per loop): an idle keep-alive
/// connection, or one whose request is being answered (a held long-poll), owns none of them, and taking one back
/// from the pool costs no allocation.
package final class HTTPDecoderBufferPool {
    @exclusivity(unchecked) private var buffers: [ByteStorage] = []
    @exclusivity(unchecked) private var headerLists: [[HTTPRequestDecoder.HeaderRange]] = []
    /// The most spare buffers (and header lists) kept.
    static let limit = 256
    /// The largest capacity a spare buffer keeps (a larger one shrinks back when returned).
    static let bufferCapacity = 16 * 1024

    package init() {}

    func takeBuffer() -> ByteStorage { buffers.popLast() ?? ByteStorage(capacity: 256) }

    func recycle(_ buffer: ByteStorage) {
        buffer.count = 0
        guard buffers.count < HTTPDecoderBufferPool.limit else { return }
        buffer.trim(toCapacity: HTTPDecoderBufferPool.bufferCapacity)
        buffers.append(buffer)
    }

    func takeHeaderList() -> [HTTPRequestDecoder.HeaderRange] {
        if let list = headerLists.popLast() { return list }
        var list: [HTTPRequestDecoder.HeaderRange] = []
        list.reserveCapacity(16)
        return list
    }

    func recycle(_ list: inout [HTTPRequestDecoder.HeaderRange]) {
        guard list.capacity > 0 else { return }
        var taken: [HTTPRequestDecoder.HeaderRange] = []
        swap(&taken, &list)
        guard headerLists.count < HTTPDecoderBufferPool.limit, taken.capacity <= 256 else { return }
        taken.removeAll(keepingCapacity: true)
        headerLists.append(taken)
    }
}

/// Incremental HTTP/1.x request decoder over http-parser.
///
/// Debian's http-parser is built without `HTTP_PARSER_STRICT`, so the strict RFC 9112 rules it skips are enforced
/// here, in its callbacks: a field name must be a token (no whitespace before the colon: 400); only HTTP/1.0 and
/// HTTP/1.1 (else 505); an HTTP/1.1 request has exactly one `Host` (400); chunk data must be followed by CRLF (400);
/// a `Content-Length`, or a chunk size that would take the body past `maxBodyBytes`, is refused with 413 as soon as
/// it is read. Both Content-Length and Transfer-Encoding: 400.
package final class HTTPRequestDecoder {
    /// Where the decoder stands.
    enum Phase {
        /// Between requests.
        case idle
        /// Inside a request head.
        case head
        /// Inside a request body.
        case body
        /// A request was delivered and the delegate asked to wait.
        case paused
        /// Bad input was seen; the decoder is finished.
        case failed
    }

    struct HeaderRange {
        var nameStart: Int32
        var nameEnd: Int32
        var valueStart: Int32
        var valueEnd: Int32
    }

    let limits: HTTPDecoderLimits
    /// Where the head, body and pipelined-input buffers come from while they are needed.
    private let pool: HTTPDecoderBufferPool
    private let parser = UnsafeMutablePointer<http_parser>.allocate(capacity: 1)
    @exclusivity(unchecked) private(set) var phase = Phase.idle

    // Current message.
    @exclusivity(unchecked) private(set) var headers: [HeaderRange] = []
    @exclusivity(unchecked) private var lastWasValue = false
    @exclusivity(unchecked) private(set) var urlStart = 0
    @exclusivity(unchecked) private(set) var urlEnd = 0
    @exclusivity(unchecked) private var maxTokenEnd = 0
    @exclusivity(unchecked) private var headersDone = false
    @exclusivity(unchecked) private(set) var methodCode: UInt32 = 0
    @exclusivity(unchecked) private(set) var versionMajor: UInt16 = 1
    @exclusivity(unchecked) private(set) var versionMinor: UInt16 = 1
    @exclusivity(unchecked) private(set) var keepAlive = false
    @exclusivity(unchecked) private(set) var isUpgrade = false
    @exclusivity(unchecked) private(set) var expectsContinue = false
    @exclusivity(unchecked) private var continueHandled = false
    @exclusivity(unchecked) private var messageDone = false
    @exclusivity(unchecked) private var failureStatus = 0
    /// Data bytes of the current chunk not yet seen (chunked bodies).
    @exclusivity(unchecked) private var chunkRemaining: UInt64 = 0
    /// Bytes of the CRLF that must follow a chunk's data and have not been checked yet (0, 1 or 2): http-parser's
    /// non-strict build skips any two bytes there.
    @exclusivity(unchecked) private var chunkCRLFPending = 0
    /// End of the bytes given to the current `http_parser_execute` call.
    @exclusivity(unchecked) private var chunkEnd: UnsafeRawPointer?
    /// The request body received so far (borrowed from the pool from its first byte until the request was delivered).
    @exclusivity(unchecked) private var bodyStore: ByteStorage?

    // Where the head's bytes are: the store (borrowed while a head spans reads) or the caller's buffer.
    @exclusivity(unchecked) private var headStoreIfAny: ByteStorage?
    @exclusivity(unchecked) private var headInStore = false
    @exclusivity(unchecked) private var chunkBase: UnsafeRawPointer?
    @exclusivity(unchecked) private var chunkHeadOffset = 0
    /// Base of the head bytes while a request is delivered.
    @exclusivity(unchecked) private(set) var headBase: UnsafeRawPointer?

    // Unparsed input kept while paused (borrowed while there is some).
    @exclusivity(unchecked) private var pendingStore: ByteStorage?
    @exclusivity(unchecked) private var pendingStart = 0

    /// Increases with every delivered request (lets `MinervaHTTPRequest` views detect misuse).
    @exclusivity(unchecked) private(set) var generation: UInt64 = 0

    init(limits: HTTPDecoderLimits, pool: HTTPDecoderBufferPool = HTTPDecoderBufferPool()) {
        self.limits = limits
        self.pool = pool
        http_parser_init(parser, HTTP_REQUEST)
        // `data` points to self, unretained: the parser memory is owned and freed by self.
        parser.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit {
        parser.deallocate()
        releaseMessageBuffers()
        releasePending()
    }

    /// Whether the decoder holds nothing of its connection's input: between requests, or paused after a keep-alive
    /// request was delivered, with no bytes kept and no protocol switch under way. A fresh decoder (``reuse(paused:)``)
    /// would then go on exactly as this one.
    var isAtRest: Bool {
        switch phase {
        case .idle: return pendingStore == nil && headStoreIfAny == nil && bodyStore == nil
        case .paused: return keepAlive && !isUpgrade && pendingStore == nil && bodyStore == nil
        case .head, .body, .failed: return false
        }
    }

    /// Makes the decoder new at a message boundary, for another connection (or the same one later): idle, or paused
    /// as after a delivered request. Its generation goes on counting, so views of earlier requests stay invalid.
    func reuse(paused: Bool) {
        releaseMessageBuffers()
        releasePending()
        http_parser_init(parser, HTTP_REQUEST)  // keeps `data`
        phase = paused ? .paused : .idle
        failureStatus = 0
        chunkRemaining = 0
        chunkCRLFPending = 0
        messageDone = false
        isUpgrade = false
        keepAlive = paused  // only a keep-alive request's decoder rests paused
        headInStore = false
        headBase = nil
    }

    /// Bytes received but not parsed yet (kept while paused).
    var pendingCount: Int { (pendingStore?.count ?? 0) - pendingStart }

    /// The body of the request being delivered.
    var body: UnsafeRawBufferPointer { bodyStore?.bytes ?? UnsafeRawBufferPointer(start: nil, count: 0) }

    private var headStore: ByteStorage {
        if let store = headStoreIfAny { return store }
        let store = pool.takeBuffer()
        headStoreIfAny = store
        return store
    }

    private var pending: ByteStorage {
        if let store = pendingStore { return store }
        let store = pool.takeBuffer()
        pendingStore = store
        return store
    }

    /// Gives the current message's buffers back to the pool (once it was delivered, or when the decoder ends).
    private func releaseMessageBuffers() {
        if let store = bodyStore {
            bodyStore = nil
            pool.recycle(store)
        }
        if let store = headStoreIfAny {
            headStoreIfAny = nil
            headInStore = false
            pool.recycle(store)
        }
        pool.recycle(&headers)
    }

    private func releasePending() {
        pendingStart = 0
        if let store = pendingStore {
            pendingStore = nil
            pool.recycle(store)
        }
    }

    /// Parses `bytes`, which must not be retained by the caller's expectations beyond this call.
    func feed<D: HTTPRequestDecoderDelegate>(_ bytes: UnsafeRawBufferPointer, delegate: D) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        switch phase {
        case .paused:
            pending.append(bytes)
            return
        case .failed:
            return
        default:
            break
        }
        let consumed = run(base, bytes.count, delegate: delegate)
        if phase == .paused && consumed < bytes.count {
            let pending = self.pending
            pending.count = 0
            pendingStart = 0
            pending.append(base + consumed, count: bytes.count - consumed)
        }
    }

    /// Hands out the bytes received after the paused request (an upgrade's first bytes of the new protocol) and
    /// forgets them; the decoder stays paused for good.
    /// - Parameter body: receives the bytes, valid only during the call.
    func takeRemainder(_ body: (UnsafeRawBufferPointer) -> Void) {
        phase = .failed  // nothing more is parsed as HTTP
        if let pending = pendingStore {
            let start = pendingStart
            let count = pending.count - start
            if count > 0 { body(UnsafeRawBufferPointer(start: pending.base + start, count: count)) }
        }
        // The decoder is done: its buffers go back.
        releaseMessageBuffers()
        releasePending()
    }

    /// Continues after a paused request was answered: parses the bytes kept meanwhile.
    func resume<D: HTTPRequestDecoderDelegate>(delegate: D) {
        guard phase == .paused else { return }
        phase = .idle
        http_parser_pause(parser, 0)
        guard let pending = pendingStore else { return }
        while pendingStart < pending.count && phase != .paused && phase != .failed {
            let start = pendingStart
            let consumed = run(UnsafeRawPointer(pending.base + start), pending.count - start, delegate: delegate)
            pendingStart = start + consumed
        }
        if pendingStart >= pending.count {
            if pendingStore === pending { releasePending() }
        } else if pendingStart > 0 {
            pending.removeFirst(pendingStart)
            pendingStart = 0
        }
    }

    private func resetMessage() {
        if headers.capacity == 0 {
            headers = pool.takeHeaderList()
        } else {
            headers.removeAll(keepingCapacity: true)
        }
        lastWasValue = false
        urlStart = 0
        urlEnd = 0
        maxTokenEnd = 0
        headersDone = false
        expectsContinue = false
        continueHandled = false
        messageDone = false
        isUpgrade = false
        chunkRemaining = 0
        chunkCRLFPending = 0
        bodyStore?.count = 0
    }

    /// Runs http-parser over `count` bytes; returns how many it consumed.
    private func run<D: HTTPRequestDecoderDelegate>(_ base: UnsafeRawPointer, _ count: Int, delegate: D) -> Int {
        var offset = 0
        while offset < count {
            let start = base + offset
            if phase == .idle {
                headInStore = false
                headStoreIfAny?.count = 0
                chunkHeadOffset = 0
            } else {
                chunkHeadOffset = headStoreIfAny?.count ?? 0
            }
            chunkBase = start
            chunkEnd = base + count
            if chunkCRLFPending > 0 && !checkChunkCRLF(start, count - offset) {
                phase = .failed
                delegate.decoderDidFail(self, status: 400)
                return offset
            }
            let n = http_parser_execute(
                parser, decoderSettings, start.assumingMemoryBound(to: CChar.self), count - offset)
            let errno = cshims_http_parser_errno(parser)
            if errno == HPE_PAUSED && messageDone {
                if headInStore && maxTokenEnd > headStore.count {
                    headStore.append(start, count: maxTokenEnd - headStore.count)
                }
                headBase = headInStore ? UnsafeRawPointer(headStore.base) : start
                offset += n
                phase = .paused
                generation &+= 1
                if isUpgrade { keepAlive = false }
                let goOn = delegate.decoderDidReceiveRequest(self)
                headBase = nil
                // The request views are gone: what held its head and body goes back to the pool (a held long-poll or
                // an idle keep-alive connection owns none of it).
                releaseMessageBuffers()
                if !goOn || phase == .failed { return offset }
                phase = .idle
                http_parser_pause(parser, 0)
                continue
            }
            if errno != HPE_OK {
                phase = .failed
                let status = failureStatus != 0 ? failureStatus : (errno == HPE_HEADER_OVERFLOW ? 431 : 400)
                delegate.decoderDidFail(self, status: status)
                return offset + n
            }
            offset += n
            // Everything consumed; the message (if any) continues in the next read.
            if phase == .head {
                if !headInStore {
                    headInStore = true
                    headStore.count = 0
                }
                headStore.append(start, count: n)
                if headStore.count > limits.maxHeaderBytes {
                    phase = .failed
                    delegate.decoderDidFail(self, status: 431)
                    return offset
                }
            } else if phase == .body {
                if !headInStore {
                    headInStore = true
                    headStore.count = 0
                    headStore.append(start, count: maxTokenEnd)
                } else if maxTokenEnd > headStore.count {
                    headStore.append(start, count: maxTokenEnd - headStore.count)
                }
                if expectsContinue && !continueHandled {
                    continueHandled = true
                    delegate.decoderWantsContinue(self)
                }
            }
        }
        return offset
    }

    // MARK: http-parser callbacks (called only from inside `run`)

    fileprivate func fail(_ status: Int) -> Int32 {
        failureStatus = status
        return -1  // nonzero is an error for every callback; for on_headers_complete 1 would mean "no body"
    }

    @inline(__always) private func offsetOf(_ at: UnsafePointer<CChar>) -> Int {
        chunkHeadOffset + (UnsafeRawPointer(at) - chunkBase!)
    }

    fileprivate func onMessageBegin() -> Int32 {
        resetMessage()
        phase = .head
        return 0
    }

    fileprivate func onURL(_ at: UnsafePointer<CChar>, _ length: Int) -> Int32 {
        let start = offsetOf(at)
        if urlEnd == urlStart { urlStart = start }
        urlEnd = start + length
        maxTokenEnd = urlEnd
        if urlEnd - urlStart > limits.maxURLBytes { return fail(414) }
        if urlEnd > limits.maxHeaderBytes { return fail(431) }
        return 0
    }

    fileprivate func onHeaderField(_ at: UnsafePointer<CChar>, _ length: Int) -> Int32 {
        // RFC 9112 5.1 and RFC 9110 5.1: a field name is a token; no whitespace before the colon (http-parser's
        // non-strict build takes `Content-Length : 5` and names with spaces). Checked in trailers too.
        let name = UnsafeRawBufferPointer(start: at, count: length)
        for byte in name where !isTokenByte(byte) { return fail(400) }
        if headersDone { return 0 }  // trailers are ignored
        let start = offsetOf(at)
        let end = start + length
        if !lastWasValue, let last = headers.indices.last, Int(headers[last].nameEnd) == start {
            headers[last].nameEnd = Int32(end)
        } else {
            if headers.count >= limits.maxHeaderCount { return fail(431) }
            headers.append(
                HeaderRange(nameStart: Int32(start), nameEnd: Int32(end), valueStart: Int32(end), valueEnd: Int32(end)))
            lastWasValue = false
        }
        maxTokenEnd = end
        if end > limits.maxHeaderBytes { return fail(431) }
        return 0
    }

    fileprivate func onHeaderValue(_ at: UnsafePointer<CChar>, _ length: Int) -> Int32 {
        if headersDone { return 0 }
        guard let last = headers.indices.last else { return 0 }
        let start = offsetOf(at)
        let end = start + length
        if !lastWasValue {
            headers[last].valueStart = Int32(start)
            lastWasValue = true
        }
        headers[last].valueEnd = Int32(end)
        maxTokenEnd = end
        if end > limits.maxHeaderBytes { return fail(431) }
        return 0
    }

    fileprivate func onHeadersComplete() -> Int32 {
        headersDone = true
        phase = .body
        methodCode = cshims_http_parser_method(parser)
        versionMajor = parser.pointee.http_major
        versionMinor = parser.pointee.http_minor
        isUpgrade = cshims_http_parser_upgrade(parser) != 0
        // HTTP/1.0 and 1.1 only (RFC 9110 6.2): http-parser takes any digits.
        if versionMajor != 1 || versionMinor > 1 { return fail(505) }
        // Which headers matter for framing: scan once (names are short).
        let base = chunkHeadBase()
        var sawLength = false
        var sawTransferEncoding = false
        var hosts = 0
        for h in headers {
            let name = UnsafeRawBufferPointer(
                start: base + Int(h.nameStart), count: Int(h.nameEnd - h.nameStart))
            switch name.count {
            case 4 where equalsLowercase(name, "host"): hosts += 1
            case 14 where equalsLowercase(name, "content-length"): sawLength = true
            case 17 where equalsLowercase(name, "transfer-encoding"): sawTransferEncoding = true
            case 6 where equalsLowercase(name, "expect"):
                let value = UnsafeRawBufferPointer(
                    start: base + Int(h.valueStart), count: Int(h.valueEnd - h.valueStart))
                if equalsLowercase(value, "100-continue") { expectsContinue = true }
            default: break
            }
        }
        if sawLength && sawTransferEncoding { return fail(400) }
        // RFC 9112 3.2: an HTTP/1.1 request has exactly one Host field.
        if hosts > 1 || (hosts == 0 && versionMinor == 1) { return fail(400) }
        let flags = cshims_http_parser_flags(parser)
        if flags & UInt32(F_CONTENTLENGTH.rawValue) != 0 {
            let length = cshims_http_parser_content_length(parser)
            if length > UInt64(limits.maxBodyBytes) { return fail(413) }
        }
        return 0
    }

    /// The head's bytes while inside `run` (the store if part of the head came in an earlier read).
    private func chunkHeadBase() -> UnsafeRawPointer {
        if headInStore {
            if maxTokenEnd > headStore.count {
                // The chunk's byte 0 is head offset `chunkHeadOffset` (== the store's count before this).
                headStore.append(chunkBase!, count: maxTokenEnd - headStore.count)
            }
            return UnsafeRawPointer(headStore.base)
        }
        return chunkBase!
    }

    fileprivate func onBody(_ at: UnsafePointer<CChar>, _ length: Int) -> Int32 {
        let body: ByteStorage
        if let store = bodyStore {
            body = store
        } else {
            body = pool.takeBuffer()
            bodyStore = body
        }
        if body.count + length > limits.maxBodyBytes { return fail(413) }
        body.append(UnsafeRawPointer(at), count: length)
        if chunkRemaining > 0 {
            chunkRemaining -= UInt64(min(UInt64(length), chunkRemaining))
            if chunkRemaining == 0 {
                // The chunk's data ends here: CRLF must follow (RFC 9112 7.1), in this input or the next.
                let end = UnsafeRawPointer(at) + length
                chunkCRLFPending = 2
                if !checkChunkCRLF(end, chunkEnd! - end) { return fail(400) }
            }
        }
        return 0
    }

    /// A chunk size line was read: refuses a chunk that would take the body over its limit before its data comes.
    fileprivate func onChunkHeader() -> Int32 {
        let size = cshims_http_parser_content_length(parser)
        if size > UInt64(limits.maxBodyBytes - (bodyStore?.count ?? 0)) { return fail(413) }
        chunkRemaining = size
        return 0
    }

    /// Checks the pending bytes of the CRLF after a chunk's data against the first of `count` bytes at `start`.
    /// - Returns: false if a byte there is not the CR or LF expected.
    private func checkChunkCRLF(_ start: UnsafeRawPointer, _ count: Int) -> Bool {
        var i = 0
        while chunkCRLFPending > 0 && i < count {
            let expected: UInt8 = chunkCRLFPending == 2 ? 13 : 10
            if start.load(fromByteOffset: i, as: UInt8.self) != expected { return false }
            chunkCRLFPending -= 1
            i += 1
        }
        return true
    }

    fileprivate func onMessageComplete() -> Int32 {
        messageDone = true
        keepAlive = http_should_keep_alive(parser) != 0
        http_parser_pause(parser, 1)
        return 0
    }

    // MARK: request view accessors

    @inline(__always) func bytes(_ start: Int, _ end: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: headBase! + start, count: end - start)
    }

    var methodName: MinervaHTTPMethod {
        Int(methodCode) < methodTable.count ? methodTable[Int(methodCode)] : MinervaHTTPMethod("UNKNOWN")
    }
}

/// Whether `byte` may appear in a token (RFC 9110 5.6.2 tchar): a field name, a method.
@inline(__always) private func isTokenByte(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
        UInt8(ascii: "0")...UInt8(ascii: "9"):
        return true
    case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
        UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
        UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
        return true
    default:
        return false
    }
}

/// http-parser's method codes (enum http_method) as names, built once.
private let methodTable: [MinervaHTTPMethod] = (0..<40).map { code in
    guard let name = http_method_str(http_method(rawValue: UInt32(code))) else { return MinervaHTTPMethod("UNKNOWN") }
    return MinervaHTTPMethod(String(cString: name))
}

@inline(__always) private func decoder(_ parser: UnsafeMutablePointer<http_parser>?) -> HTTPRequestDecoder {
    Unmanaged<HTTPRequestDecoder>.fromOpaque(parser!.pointee.data).takeUnretainedValue()
}

/// One settings struct for every decoder, at a fixed address, never freed and never written after its creation
/// (so every loop thread may read it): capture-free callbacks that forward to the decoder in `data`.
nonisolated(unsafe) private let decoderSettings: UnsafePointer<http_parser_settings> = {
    var s = http_parser_settings()
    s.on_message_begin = { decoder($0).onMessageBegin() }
    s.on_url = { decoder($0).onURL($1!, $2) }
    s.on_header_field = { decoder($0).onHeaderField($1!, $2) }
    s.on_header_value = { decoder($0).onHeaderValue($1!, $2) }
    s.on_headers_complete = { decoder($0).onHeadersComplete() }
    s.on_body = { decoder($0).onBody($1!, $2) }
    s.on_message_complete = { decoder($0).onMessageComplete() }
    s.on_chunk_header = { decoder($0).onChunkHeader() }
    let pointer = UnsafeMutablePointer<http_parser_settings>.allocate(capacity: 1)
    pointer.initialize(to: s)
    return UnsafePointer(pointer)
}()

// MARK: - Responses

/// One thing an `HTTPResponseDecoder` found, in order.
@_spi(MinervaTools) public enum HTTPResponseEvent {
    /// The final (non-1xx) response head. `contentLength` is nil for chunked or close-delimited bodies.
    case head(status: Int, contentLength: Int?)
    /// Body bytes (chunked framing removed). - Warning: they point into the fed bytes; valid only during the call.
    case body(UnsafeRawBufferPointer)
    /// The response is complete; `keepAlive` says whether the connection may carry another request.
    case end(keepAlive: Bool)
}

/// Why a response could not be decoded.
@_spi(MinervaTools) public struct HTTPResponseDecodingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// http-parser's name for the error (e.g. `HPE_INVALID_CONSTANT`).
    public let reason: String
    /// The reason.
    public var description: String { reason }
}

/// Incremental decoder of the HTTP/1.x responses on one client connection (pipelined responses in order), over the
/// same http-parser boundary as the request decoder. Body bytes are handed out as they arrive, so a streaming
/// response reaches its reader without waiting for its end; nothing is copied.
@_spi(MinervaTools) public final class HTTPResponseDecoder {
    private let parser = UnsafeMutablePointer<http_parser>.allocate(capacity: 1)
    @exclusivity(unchecked) private var sink: ((HTTPResponseEvent) -> Void)?
    @exclusivity(unchecked) private var informational = false
    @exclusivity(unchecked) private var inMessage = false
    @exclusivity(unchecked) private var headersDone = false
    /// Set when the request being answered was HEAD (its response has no body).
    @exclusivity(unchecked) public var requestWasHead = false

    /// Creates a decoder waiting for a response.
    public init() {
        http_parser_init(parser, HTTP_RESPONSE)
        // `data` points to self, unretained: the parser memory is owned and freed by self.
        parser.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit { parser.deallocate() }

    /// Whether the decoder is between responses (nothing of a new one seen).
    public var isIdle: Bool { !inMessage }

    /// Whether a head was decoded and its body is still open.
    public var inBody: Bool { inMessage && headersDone }

    /// Forgets any partial response (a new connection, or a new request on this one).
    public func reset() {
        http_parser_init(parser, HTTP_RESPONSE)
        parser.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        informational = false
        inMessage = false
        headersDone = false
    }

    /// Decodes `bytes`, calling `handle` with each event found, in order.
    /// - Throws: `HTTPResponseDecodingError` on malformed input (the decoder is then finished; `reset` it).
    public func feed(
        _ bytes: UnsafeRawBufferPointer, _ handle: (HTTPResponseEvent) -> Void
    ) throws(HTTPResponseDecodingError) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        try withoutActuallyEscaping(handle) { handle throws(HTTPResponseDecodingError) in
            sink = handle
            defer { sink = nil }
            let n = http_parser_execute(
                parser, responseSettings, base.assumingMemoryBound(to: CChar.self), bytes.count)
            try check(consumed: n, of: bytes.count)
        }
    }

    /// The connection ended: ends a close-delimited body.
    /// - Returns: the `.end` event if the connection's end legitimately ends the response in progress.
    public func connectionClosed() -> HTTPResponseEvent? {
        guard inMessage else { return nil }
        var ended: HTTPResponseEvent?
        withoutActuallyEscaping({ (event: HTTPResponseEvent) in
            if case .end = event { ended = event }
        }) { handle in
            sink = handle
            _ = http_parser_execute(parser, responseSettings, nil, 0)
            sink = nil
        }
        return ended
    }

    private func check(consumed: Int, of count: Int) throws(HTTPResponseDecodingError) {
        let errno = cshims_http_parser_errno(parser)
        if errno != HPE_OK {
            throw HTTPResponseDecodingError(reason: String(cString: http_errno_name(errno)))
        }
        if consumed != count { throw HTTPResponseDecodingError(reason: "unexpected upgrade") }
    }

    // MARK: http-parser callbacks (called only from inside `feed` and `connectionClosed`)

    fileprivate func onMessageBegin() -> Int32 {
        inMessage = true
        headersDone = false
        informational = false
        return 0
    }

    fileprivate func onHeadersComplete() -> Int32 {
        headersDone = true
        let status = Int(cshims_http_parser_status_code(parser))
        if status < 200 {
            informational = true
            return 0
        }
        let flags = cshims_http_parser_flags(parser)
        let length: Int? =
            flags & UInt32(F_CONTENTLENGTH.rawValue) != 0 ? Int(cshims_http_parser_content_length(parser)) : nil
        sink?(.head(status: status, contentLength: length))
        return requestWasHead ? 1 : 0  // 1: no body follows
    }

    fileprivate func onBody(_ at: UnsafePointer<CChar>, _ length: Int) -> Int32 {
        sink?(.body(UnsafeRawBufferPointer(start: at, count: length)))
        return 0
    }

    fileprivate func onMessageComplete() -> Int32 {
        inMessage = false
        headersDone = false
        if informational { return 0 }
        sink?(.end(keepAlive: http_should_keep_alive(parser) != 0))
        return 0
    }
}

@inline(__always) private func responseDecoder(_ parser: UnsafeMutablePointer<http_parser>?) -> HTTPResponseDecoder {
    Unmanaged<HTTPResponseDecoder>.fromOpaque(parser!.pointee.data).takeUnretainedValue()
}

/// The settings of every response decoder (fixed address, never written after creation).
nonisolated(unsafe) private let responseSettings: UnsafePointer<http_parser_settings> = {
    var s = http_parser_settings()
    s.on_message_begin = { responseDecoder($0).onMessageBegin() }
    s.on_headers_complete = { responseDecoder($0).onHeadersComplete() }
    s.on_body = { responseDecoder($0).onBody($1!, $2) }
    s.on_message_complete = { responseDecoder($0).onMessageComplete() }
    let pointer = UnsafeMutablePointer<http_parser_settings>.allocate(capacity: 1)
    pointer.initialize(to: s)
    return UnsafePointer(pointer)
}()
