// The request view handed to handlers: byte ranges into the connection's buffers, strings only on demand.
import MinervaIO

/// A received HTTP request, valid only during the handler call it is passed to.
///
/// - Warning: every `UnsafeRawBufferPointer` it returns points into the server's buffers and is valid only until
///   the handler returns. Copy what a response that stays open needs (`path`, `header(_:)`, `bodyBytes`).
public struct MinervaHTTPRequest {
    unowned(unsafe) let decoder: HTTPRequestDecoder
    let generation: UInt64
    /// The connection the request arrived on (nil for requests decoded without one).
    package unowned(unsafe) let connection: HTTPConnection?

    init(decoder: HTTPRequestDecoder, connection: HTTPConnection?) {
        self.decoder = decoder
        self.generation = decoder.generation
        self.connection = connection
    }

    /// The client's address (a system call; nil if unknown or already disconnected).
    public var remoteAddress: MinervaSocketAddress? { connection?.socket.remoteAddress }

    /// The server-side address the request arrived on (a system call; nil if unknown).
    public var localAddress: MinervaSocketAddress? { connection?.socket.localAddress }

    @inline(__always) private func check() {
        precondition(
            decoder.generation == generation && decoder.headBase != nil, "MinervaHTTPRequest used after its handler")
    }

    /// The request method.
    public var method: MinervaHTTPMethod { decoder.methodName }

    /// The HTTP version's major number.
    public var versionMajor: Int { Int(decoder.versionMajor) }

    /// The HTTP version's minor number.
    public var versionMinor: Int { Int(decoder.versionMinor) }

    /// Whether the connection may stay open after this request (per its version and `Connection` header).
    public var keepAlive: Bool { decoder.keepAlive }

    /// Whether the request asks to switch protocols (`Connection: upgrade` with an `Upgrade` header): the parser
    /// stopped after its head, and the bytes that follow belong to the new protocol
    /// (``MinervaHTTPResponse/upgrade(to:)``).
    public var isUpgrade: Bool { decoder.isUpgrade }

    /// The request target as sent (path and query). - Warning: valid only during the handler call.
    public var targetBytes: UnsafeRawBufferPointer {
        check()
        return decoder.bytes(decoder.urlStart, decoder.urlEnd)
    }

    /// The path part of the request target (before `?`). - Warning: valid only during the handler call.
    public var pathBytes: UnsafeRawBufferPointer {
        let target = targetBytes
        if let q = target.firstIndex(of: UInt8(ascii: "?")) { return UnsafeRawBufferPointer(rebasing: target[..<q]) }
        return target
    }

    /// The path part of the request target, as a String (copied).
    public var path: String { String(decoding: pathBytes, as: UTF8.self) }

    /// The query string after `?`, if any (copied).
    public var query: String? {
        let target = targetBytes
        guard let q = target.firstIndex(of: UInt8(ascii: "?")) else { return nil }
        return String(decoding: target[(q + 1)...], as: UTF8.self)
    }

    /// The number of header lines.
    public var headerCount: Int { decoder.headers.count }

    /// Calls `body` with each header's name and value bytes, in order.
    /// - Warning: the buffers are valid only during the handler call.
    public func forEachHeader(_ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void) {
        check()
        for h in decoder.headers {
            body(
                decoder.bytes(Int(h.nameStart), Int(h.nameEnd)),
                decoder.bytes(Int(h.valueStart), Int(h.valueEnd)))
        }
    }

    /// The value bytes of the first header named `name` (ASCII case-insensitive), if present.
    /// - Warning: valid only during the handler call.
    public func headerBytes(_ name: String) -> UnsafeRawBufferPointer? {
        check()
        let utf8 = name.utf8
        let n = utf8.count
        for h in decoder.headers where Int(h.nameEnd - h.nameStart) == n {
            let candidate = decoder.bytes(Int(h.nameStart), Int(h.nameEnd))
            var i = 0
            var same = true
            for b in utf8 {
                if asciiLower(candidate[i]) != asciiLower(b) {
                    same = false
                    break
                }
                i += 1
            }
            if same { return decoder.bytes(Int(h.valueStart), Int(h.valueEnd)) }
        }
        return nil
    }

    /// The value of the first header named `name` (ASCII case-insensitive), copied into a String.
    public func header(_ name: String) -> String? {
        headerBytes(name).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The whole request body (de-chunked). - Warning: valid only during the handler call.
    public var body: UnsafeRawBufferPointer {
        check()
        return decoder.body
    }

    /// A copy of the request body.
    public var bodyBytes: [UInt8] { Array(body) }
}
