// A raw WebSocket client for the tests (RFC 6455 written out again here, independently of MinervaHTTP's codec, so a
// bug shared by both ends cannot hide): the opening handshake, frames built byte by byte (masked or not, any
// opcode, reserved bits, fragments), and a frame reader.

/// One frame read from the server.
package struct WSFrame: Equatable, CustomStringConvertible {
    package var fin: Bool
    package var opcode: UInt8
    package var masked: Bool
    package var payload: [UInt8]

    package var text: String { String(decoding: payload, as: UTF8.self) }

    /// The close code of a close frame (nil if it has none).
    package var closeCode: Int? {
        guard opcode == 8, payload.count >= 2 else { return nil }
        return Int(payload[0]) << 8 | Int(payload[1])
    }

    package var description: String {
        switch opcode {
        case 1: return text
        case 8: return "close \(closeCode.map(String.init) ?? "-")"
        case 9: return "ping \(text)"
        case 10: return "pong \(text)"
        default: return "op\(opcode) \(payload.count) bytes"
        }
    }
}

/// The key of RFC 6455's example handshake (section 1.3) and its accept value.
package let wsExampleKey = "dGhlIHNhbXBsZSBub25jZQ=="
package let wsExampleAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

/// Bytes of one client frame.
/// - Parameters:
///   - opcode: the opcode (any 4-bit value).
///   - payload: the unmasked payload.
///   - fin: the FIN bit.
///   - mask: the masking key, or nil for an unmasked frame.
///   - rsv: the three reserved bits (0...7).
package func wsFrameBytes(
    opcode: UInt8, _ payload: [UInt8], fin: Bool = true, mask: [UInt8]? = [0x37, 0xFA, 0x21, 0x3D], rsv: UInt8 = 0
) -> [UInt8] {
    var bytes: [UInt8] = [(fin ? 0x80 : 0) | (rsv & 7) << 4 | (opcode & 0x0F)]
    let maskBit: UInt8 = mask == nil ? 0 : 0x80
    if payload.count < 126 {
        bytes.append(maskBit | UInt8(payload.count))
    } else if payload.count < 65536 {
        bytes += [maskBit | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
    } else {
        bytes.append(maskBit | 127)
        for shift in stride(from: 56, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: payload.count >> shift))
        }
    }
    if let mask {
        bytes += mask
        for (i, byte) in payload.enumerated() { bytes.append(byte ^ mask[i % 4]) }
    } else {
        bytes += payload
    }
    return bytes
}

/// A masked text frame.
package func wsText(_ text: String) -> [UInt8] { wsFrameBytes(opcode: 1, Array(text.utf8)) }

/// A masked close frame with `code`.
package func wsClose(_ code: Int) -> [UInt8] { wsFrameBytes(opcode: 8, [UInt8(code >> 8), UInt8(code & 0xFF)]) }

extension RawClient {
    /// Sends the opening handshake for `path` and reads the answer's head (the body too, if it is not a 101).
    /// - Parameters:
    ///   - subprotocol: the `Sec-WebSocket-Protocol` value, or nil for none.
    ///   - origin: the `Origin` value, or nil for none.
    ///   - version: the `Sec-WebSocket-Version` value.
    ///   - method: the request method.
    ///   - extra: more header lines, each ending in CRLF.
    package func webSocketHandshake(
        path: String = "/_minerva/ws", subprotocol: String? = "minerva.v2", origin: String? = nil,
        version: String = "13", key: String = wsExampleKey, method: String = "GET", host: String = "test",
        extra: String = ""
    ) throws -> HTTPReply {
        var request = "\(method) \(path) HTTP/1.1\r\nHost: \(host)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        request += "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: \(version)\r\n"
        if let subprotocol { request += "Sec-WebSocket-Protocol: \(subprotocol)\r\n" }
        if let origin { request += "Origin: \(origin)\r\n" }
        try send(request + extra + "\r\n")
        let head = try readHead()
        var reply = HTTPReply(status: head.status, headers: head.headers, body: [])
        if reply.status != 101, let length = reply.header("Content-Length").flatMap({ Int($0) }) {
            reply.body = try take(length)
        }
        return reply
    }

    /// A WebSocket to the server at `port` that passed the handshake (101 checked).
    package static func webSocket(port: Int, subprotocol: String? = "minerva.v2") throws -> RawClient {
        let client = try RawClient(port: port)
        let reply = try client.webSocketHandshake(subprotocol: subprotocol)
        guard reply.status == 101 else { throw TestError("upgrade answered \(reply.status)") }
        return client
    }

    /// Sends each text as one masked text message, all in one write.
    package func sendMessages(_ texts: [String]) throws { try send(texts.flatMap { wsText($0) }) }

    /// Reads one frame.
    package func readWSFrame(timeout: Double? = nil) throws -> WSFrame {
        let head = try take(2, timeout: timeout)
        var length = Int(head[1] & 0x7F)
        if length == 126 {
            length = try take(2, timeout: timeout).reduce(0) { $0 << 8 | Int($1) }
        } else if length == 127 {
            length = try take(8, timeout: timeout).reduce(0) { $0 << 8 | Int($1) }
        }
        let masked = head[1] & 0x80 != 0
        var mask: [UInt8] = []
        if masked { mask = try take(4, timeout: timeout) }
        var payload = try take(length, timeout: timeout)
        if masked { for i in payload.indices { payload[i] ^= mask[i % 4] } }
        return WSFrame(fin: head[0] & 0x80 != 0, opcode: head[0] & 0x0F, masked: masked, payload: payload)
    }

    /// Reads `count` Minerva frames (text messages), skipping server pings and heartbeat comment frames; a close
    /// frame is returned as `close N`.
    package func readMessages(_ count: Int, timeout: Double? = nil) throws -> [String] {
        var out: [String] = []
        while out.count < count {
            let frame = try readWSFrame(timeout: timeout)
            switch frame.opcode {
            case 9, 10: continue
            case 1 where frame.text.hasSuffix("^"): continue
            case 1:
                guard !frame.masked, frame.fin else { throw TestError("server frame masked or fragmented: \(frame)") }
                out.append(frame.text)
            default: out.append(frame.description)
            }
        }
        return out
    }

    /// Reads Minerva frames until a close frame (included as `close N`); at most `limit` frames.
    package func readMessagesUntilClose(limit: Int = 10_000, timeout: Double? = nil) throws -> [String] {
        var out: [String] = []
        while out.count < limit {
            let next = try readMessages(1, timeout: timeout)[0]
            out.append(next)
            if next.hasPrefix("close") { return out }
        }
        throw TestError("no close frame in \(limit) frames")
    }
}
