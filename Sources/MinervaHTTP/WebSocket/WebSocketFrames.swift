// RFC 6455 framing over byte buffers, for both ends: an incremental frame decoder (masking, fragmentation
// reassembly, control frames, close codes, UTF-8 validation of text, a message size limit enforced from the frame
// headers before anything is buffered) and a frame writer (masked for clients). Nothing here allocates per message
// once its buffers have grown.
import MinervaIO

/// WebSocket opcodes (RFC 6455 5.2).
package enum MinervaWebSocketOpcode {
    package static let continuation: UInt8 = 0x0
    package static let text: UInt8 = 0x1
    package static let binary: UInt8 = 0x2
    package static let close: UInt8 = 0x8
    package static let ping: UInt8 = 0x9
    package static let pong: UInt8 = 0xA
}

/// WebSocket close codes (RFC 6455 7.4.1).
package enum MinervaWebSocketCloseCode {
    package static let normal: UInt16 = 1000
    package static let goingAway: UInt16 = 1001
    package static let protocolError: UInt16 = 1002
    package static let unsupportedData: UInt16 = 1003
    package static let noStatus: UInt16 = 1005
    package static let invalidPayload: UInt16 = 1007
    package static let policyViolation: UInt16 = 1008
    package static let messageTooBig: UInt16 = 1009
    package static let internalError: UInt16 = 1011

    /// Whether a peer may send `code` in a close frame (RFC 6455 7.4.1, 7.4.2; IANA registry).
    package static func isValidReceived(_ code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1011, 3000...4999: return true
        default: return false
        }
    }
}

/// One thing the decoder found, in order.
package enum MinervaWebSocketEvent {
    /// A whole data message (fragments reassembled; text is valid UTF-8).
    /// - Warning: `payload` is valid only during the call that receives it.
    case message(text: Bool, payload: UnsafeRawBufferPointer)
    /// A ping with its payload (at most 125 bytes; valid only during the call).
    case ping(UnsafeRawBufferPointer)
    /// A pong with its payload (valid only during the call).
    case pong(UnsafeRawBufferPointer)
    /// A close frame: its code (nil if it had no payload) and reason (valid UTF-8; valid only during the call).
    case close(code: UInt16?, reason: UnsafeRawBufferPointer)
    /// A data frame's header announced a message of `length` bytes, over the limit: nothing of it is buffered and
    /// the rest of the message is skipped (later frames are decoded as usual).
    case messageTooLong(length: Int)
    /// The peer broke the protocol: close with `code`. The decoder ignores everything afterwards.
    case failure(code: UInt16, reason: StaticString)
}

/// Up to 14 bytes of a frame header, stored inline.
struct FrameHeaderBytes {
    private var bytes: (UInt64, UInt64) = (0, 0)
    private var stored: UInt8 = 0

    var count: Int { Int(stored) }

    subscript(index: Int) -> UInt8 {
        precondition(index >= 0 && index < count)
        return withUnsafeBytes(of: bytes) { $0[index] }
    }

    /// Appends `more` (the caller keeps the total at most 14 bytes).
    mutating func append(_ more: UnsafeRawBufferPointer) {
        precondition(count + more.count <= 16)
        let at = count
        withUnsafeMutableBytes(of: &bytes) { raw in
            UnsafeMutableRawBufferPointer(rebasing: raw[at..<(at + more.count)]).copyMemory(from: more)
        }
        stored += UInt8(more.count)
    }

    mutating func removeAll() { stored = 0 }
}

/// An incremental RFC 6455 frame decoder for one connection.
///
/// A server expects masked frames and a client unmasked ones (RFC 6455 5.1); anything else, a reserved bit, a
/// reserved opcode, a fragmented or over-long (> 125 bytes) control frame, a continuation without a message or a new
/// message inside a fragmented one is a `.failure` with 1002. A text message that is not UTF-8 is a failure with 1007.
/// Pings and pongs may arrive between the fragments of a message.
package struct MinervaWebSocketFrameDecoder {
    private enum State { case header, payload, failed }

    // Words first, then the small fields together (a connection keeps one of these for its life).
    /// The largest data message accepted (after reassembly).
    package let maxMessageLength: Int
    private var headerNeeded = 2
    private var payloadLength = 0
    private var payloadDone = 0
    private var message: [UInt8] = []
    private var control: [UInt8] = []
    /// The frame header being read (at most 14 bytes), inline: an idle connection's decoder owns no allocation.
    private var header = FrameHeaderBytes()
    private var maskKey: (UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0)
    /// Whether frames must be masked (a server's decoder) or must not (a client's).
    package let expectsMaskedFrames: Bool
    private var state = State.header
    private var opcode: UInt8 = 0
    private var fin = false
    private var masked = false
    /// The opcode of the data message being reassembled (0: none).
    private var messageOpcode: UInt8 = 0
    /// The message in progress was too long: its remaining fragments are dropped.
    private var skippingMessage = false

    /// The most reassembly capacity kept between messages (a larger message's buffer is released).
    package static let keptMessageCapacity = 16_384

    /// Creates a decoder.
    /// - Parameters:
    ///   - maxMessageLength: the largest data message accepted.
    ///   - expectsMaskedFrames: true for a server, false for a client.
    package init(maxMessageLength: Int, expectsMaskedFrames: Bool) {
        self.maxMessageLength = maxMessageLength
        self.expectsMaskedFrames = expectsMaskedFrames
    }

    /// Whether a failure was reported (all further input is ignored).
    package var hasFailed: Bool { state == .failed }

    /// Whether a data message is partly received.
    package var isInsideMessage: Bool { messageOpcode != 0 }

    /// Gives the reassembly buffers' memory back (between messages; they grow again as needed).
    package mutating func releaseBuffers() {
        if !isInsideMessage { message = [] }
        control = []
    }

    /// Stops decoding: further input is ignored.
    package mutating func stop() { state = .failed }

    /// Decodes `bytes`, calling `handle` with each event, in order. `handle` returns false to stop decoding for good
    /// (the rest is ignored). It must not touch this decoder.
    package mutating func feed(_ bytes: UnsafeRawBufferPointer, _ handle: (MinervaWebSocketEvent) -> Bool) {
        let n = bytes.count
        var i = 0
        while i < n {
            switch state {
            case .failed:
                return
            case .header:
                let take = min(headerNeeded - header.count, n - i)
                header.append(UnsafeRawBufferPointer(rebasing: bytes[i..<(i + take)]))
                i += take
                if header.count < headerNeeded { continue }
                if header.count == 2 {
                    if let failure = checkFirstBytes() {
                        fail(failure, handle)
                        return
                    }
                    if header.count < headerNeeded { continue }
                }
                if !beginFrame(handle) { return }
            case .payload:
                let take = min(payloadLength - payloadDone, n - i)
                let chunk = UnsafeRawBufferPointer(rebasing: bytes[i..<(i + take)])
                let key = masked ? maskKey : nil
                if opcode >= 8 {
                    Self.appendUnmasked(chunk, to: &control, key: key, offset: payloadDone)
                } else if !skippingMessage {
                    Self.appendUnmasked(chunk, to: &message, key: key, offset: payloadDone)
                }
                payloadDone += take
                i += take
                if payloadDone == payloadLength && !frameComplete(handle) { return }
            }
        }
    }

    private mutating func fail(
        _ failure: (code: UInt16, reason: StaticString), _ handle: (MinervaWebSocketEvent) -> Bool
    ) {
        state = .failed
        message = []
        control = []
        _ = handle(.failure(code: failure.code, reason: failure.reason))
    }

    /// Checks the first two header bytes and sets how many header bytes the frame has.
    private mutating func checkFirstBytes() -> (code: UInt16, reason: StaticString)? {
        let b0 = header[0]
        let b1 = header[1]
        fin = b0 & 0x80 != 0
        opcode = b0 & 0x0F
        masked = b1 & 0x80 != 0
        if b0 & 0x70 != 0 { return (MinervaWebSocketCloseCode.protocolError, "reserved bit set") }
        switch opcode {
        case MinervaWebSocketOpcode.continuation, MinervaWebSocketOpcode.text, MinervaWebSocketOpcode.binary: break
        case MinervaWebSocketOpcode.close, MinervaWebSocketOpcode.ping, MinervaWebSocketOpcode.pong:
            if !fin { return (MinervaWebSocketCloseCode.protocolError, "fragmented control frame") }
            if b1 & 0x7F > 125 { return (MinervaWebSocketCloseCode.protocolError, "control frame over 125 bytes") }
        default:
            return (MinervaWebSocketCloseCode.protocolError, "reserved opcode")
        }
        if masked != expectsMaskedFrames {
            return (
                MinervaWebSocketCloseCode.protocolError, expectsMaskedFrames ? "unmasked client frame" : "masked frame"
            )
        }
        let length7 = b1 & 0x7F
        headerNeeded = 2 + (length7 == 126 ? 2 : length7 == 127 ? 8 : 0) + (masked ? 4 : 0)
        return nil
    }

    /// The header is whole: validates the frame against the message state and starts its payload.
    private mutating func beginFrame(_ handle: (MinervaWebSocketEvent) -> Bool) -> Bool {
        let length7 = Int(header[1] & 0x7F)
        var length = length7
        var at = 2
        if length7 == 126 {
            length = Int(header[2]) << 8 | Int(header[3])
            at = 4
        } else if length7 == 127 {
            if header[2] & 0x80 != 0 {
                fail((MinervaWebSocketCloseCode.protocolError, "64-bit length with the top bit set"), handle)
                return false
            }
            var value: UInt64 = 0
            for k in 2..<10 { value = value << 8 | UInt64(header[k]) }
            length = value > UInt64(Int.max / 2) ? Int.max / 2 : Int(value)
            at = 10
        }
        if masked { maskKey = (header[at], header[at + 1], header[at + 2], header[at + 3]) }
        header.removeAll()
        headerNeeded = 2
        payloadLength = length
        payloadDone = 0
        if opcode >= 8 {
            control.removeAll(keepingCapacity: true)
        } else {
            if opcode == MinervaWebSocketOpcode.continuation {
                if messageOpcode == 0 {
                    fail((MinervaWebSocketCloseCode.protocolError, "continuation without a message"), handle)
                    return false
                }
            } else {
                if messageOpcode != 0 {
                    fail((MinervaWebSocketCloseCode.protocolError, "new message inside a fragmented one"), handle)
                    return false
                }
                messageOpcode = opcode
                skippingMessage = false
            }
            if !skippingMessage && length > maxMessageLength - message.count {
                let announced = message.count + length
                skippingMessage = true
                releaseMessage()
                if !handle(.messageTooLong(length: announced)) {
                    state = .failed
                    return false
                }
            }
        }
        state = .payload
        if length == 0 { return frameComplete(handle) }
        return true
    }

    /// A frame's payload is complete: reports a control frame or a finished message.
    private mutating func frameComplete(_ handle: (MinervaWebSocketEvent) -> Bool) -> Bool {
        state = .header
        var goOn = true
        switch opcode {
        case MinervaWebSocketOpcode.ping:
            goOn = control.withUnsafeBytes { handle(.ping($0)) }
        case MinervaWebSocketOpcode.pong:
            goOn = control.withUnsafeBytes { handle(.pong($0)) }
        case MinervaWebSocketOpcode.close:
            if control.isEmpty {
                goOn = handle(.close(code: nil, reason: UnsafeRawBufferPointer(start: nil, count: 0)))
            } else if control.count == 1 {
                fail((MinervaWebSocketCloseCode.protocolError, "close payload of one byte"), handle)
                return false
            } else {
                let code = UInt16(control[0]) << 8 | UInt16(control[1])
                if !MinervaWebSocketCloseCode.isValidReceived(code) {
                    fail((MinervaWebSocketCloseCode.protocolError, "invalid close code"), handle)
                    return false
                }
                let valid = control.withUnsafeBytes { isValidUTF8(UnsafeRawBufferPointer(rebasing: $0[2...])) }
                if !valid {
                    fail((MinervaWebSocketCloseCode.invalidPayload, "close reason is not UTF-8"), handle)
                    return false
                }
                goOn = control.withUnsafeBytes {
                    handle(.close(code: code, reason: UnsafeRawBufferPointer(rebasing: $0[2...])))
                }
            }
        default:
            guard fin else { return true }
            let text = messageOpcode == MinervaWebSocketOpcode.text
            messageOpcode = 0
            if skippingMessage {
                skippingMessage = false
                return true
            }
            if text && !message.withUnsafeBytes({ isValidUTF8($0) }) {
                fail((MinervaWebSocketCloseCode.invalidPayload, "text message is not UTF-8"), handle)
                return false
            }
            goOn = message.withUnsafeBytes { handle(.message(text: text, payload: $0)) }
            releaseMessage()
        }
        if !goOn { state = .failed }
        return goOn
    }

    private mutating func releaseMessage() {
        if message.capacity > Self.keptMessageCapacity {
            message = []
        } else {
            message.removeAll(keepingCapacity: true)
        }
    }

    /// Appends `chunk` to `buffer`, unmasking it with `key` (nil: unmasked) from payload offset `offset`. Static: a
    /// method reading `self` while one of its arrays is passed `inout` would copy `self`, and the array's storage
    /// would no longer be unique (a copy per message).
    private static func appendUnmasked(
        _ chunk: UnsafeRawBufferPointer, to buffer: inout [UInt8], key: (UInt8, UInt8, UInt8, UInt8)?, offset: Int
    ) {
        let start = buffer.count
        buffer.append(contentsOf: chunk)
        guard let key else { return }
        buffer.withUnsafeMutableBytes { raw in
            minervaWebSocketMask(UnsafeMutableRawBufferPointer(rebasing: raw[start...]), key: key, offset: offset)
        }
    }
}

/// XORs `bytes` with the mask key, the first byte being at payload offset `offset` (RFC 6455 5.3); eight bytes at
/// a time where possible.
package func minervaWebSocketMask(
    _ bytes: UnsafeMutableRawBufferPointer, key: (UInt8, UInt8, UInt8, UInt8), offset: Int
) {
    guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
    // The key as a 32-bit pattern in memory order, rotated so that its first byte applies to bytes[0].
    let natural = UInt32(key.0) | UInt32(key.1) << 8 | UInt32(key.2) << 16 | UInt32(key.3) << 24
    let shift = UInt32((offset & 3) * 8)
    let rotated = shift == 0 ? natural : (natural >> shift | natural << (32 - shift))
    let word = UInt64(rotated) | UInt64(rotated) << 32
    let n = bytes.count
    var i = 0
    while i + 8 <= n {
        let value = (base + i).loadUnaligned(as: UInt64.self)
        (base + i).storeBytes(of: value ^ UInt64(littleEndian: word), as: UInt64.self)
        i += 8
    }
    while i < n {
        bytes[i] ^= UInt8(truncatingIfNeeded: rotated >> UInt32((i & 3) * 8))
        i += 1
    }
}

/// Whether `bytes` is well-formed UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF).
package func isValidUTF8(_ bytes: UnsafeRawBufferPointer) -> Bool {
    let n = bytes.count
    var i = 0
    while i < n {
        // ASCII fast path, eight bytes at a time.
        if let base = bytes.baseAddress {
            while i + 8 <= n && (base + i).loadUnaligned(as: UInt64.self) & 0x8080_8080_8080_8080 == 0 { i += 8 }
        }
        guard i < n else { break }
        let c = bytes[i]
        if c < 0x80 {
            i += 1
            continue
        }
        @inline(__always) func cont(_ j: Int) -> Bool { j < n && bytes[j] & 0xC0 == 0x80 }
        if c < 0xC2 { return false }
        if c < 0xE0 {
            guard cont(i + 1) else { return false }
            i += 2
        } else if c < 0xF0 {
            guard i + 1 < n else { return false }
            let c1 = bytes[i + 1]
            let low: UInt8 = c == 0xE0 ? 0xA0 : 0x80
            let high: UInt8 = c == 0xED ? 0x9F : 0xBF
            guard c1 >= low && c1 <= high, cont(i + 2) else { return false }
            i += 3
        } else if c < 0xF5 {
            guard i + 1 < n else { return false }
            let c1 = bytes[i + 1]
            let low: UInt8 = c == 0xF0 ? 0x90 : 0x80
            let high: UInt8 = c == 0xF4 ? 0x8F : 0xBF
            guard c1 >= low && c1 <= high, cont(i + 2), cont(i + 3) else { return false }
            i += 4
        } else {
            return false
        }
    }
    return true
}

/// Writes WebSocket frames (always final: messages are never fragmented by this writer).
package enum MinervaWebSocketFrameWriter {
    /// The header size of a frame of `payloadCount` bytes.
    package static func headerLength(payloadCount: Int, masked: Bool) -> Int {
        (payloadCount < 126 ? 2 : payloadCount <= 0xFFFF ? 4 : 10) + (masked ? 4 : 0)
    }

    /// Writes a frame header at `p` (which has room for ``headerLength(payloadCount:masked:)`` bytes).
    /// - Returns: the header length.
    @discardableResult
    package static func writeHeader(
        opcode: UInt8, payloadCount: Int, maskKey: (UInt8, UInt8, UInt8, UInt8)?, at p: UnsafeMutableRawPointer
    ) -> Int {
        p.storeBytes(of: 0x80 | opcode, toByteOffset: 0, as: UInt8.self)
        let maskBit: UInt8 = maskKey == nil ? 0 : 0x80
        var at: Int
        if payloadCount < 126 {
            p.storeBytes(of: maskBit | UInt8(payloadCount), toByteOffset: 1, as: UInt8.self)
            at = 2
        } else if payloadCount <= 0xFFFF {
            p.storeBytes(of: maskBit | 126, toByteOffset: 1, as: UInt8.self)
            p.storeBytes(of: UInt8(payloadCount >> 8), toByteOffset: 2, as: UInt8.self)
            p.storeBytes(of: UInt8(payloadCount & 0xFF), toByteOffset: 3, as: UInt8.self)
            at = 4
        } else {
            p.storeBytes(of: maskBit | 127, toByteOffset: 1, as: UInt8.self)
            for k in 0..<8 {
                p.storeBytes(
                    of: UInt8(truncatingIfNeeded: UInt64(payloadCount) >> UInt64(56 - 8 * k)), toByteOffset: 2 + k,
                    as: UInt8.self)
            }
            at = 10
        }
        if let key = maskKey {
            p.storeBytes(of: key.0, toByteOffset: at, as: UInt8.self)
            p.storeBytes(of: key.1, toByteOffset: at + 1, as: UInt8.self)
            p.storeBytes(of: key.2, toByteOffset: at + 2, as: UInt8.self)
            p.storeBytes(of: key.3, toByteOffset: at + 3, as: UInt8.self)
            at += 4
        }
        return at
    }

    /// Appends one whole frame to `out` (masked with `maskKey` if given: a client's frame).
    package static func append(
        opcode: UInt8, payload: UnsafeRawBufferPointer, maskKey: (UInt8, UInt8, UInt8, UInt8)? = nil,
        to out: ByteStorage
    ) {
        let headerCount = headerLength(payloadCount: payload.count, masked: maskKey != nil)
        out.reserve(headerCount + payload.count)
        let start = out.base + out.count
        writeHeader(opcode: opcode, payloadCount: payload.count, maskKey: maskKey, at: start)
        if let source = payload.baseAddress, !payload.isEmpty {
            (start + headerCount).copyMemory(from: source, byteCount: payload.count)
        }
        out.count += headerCount + payload.count
        if let key = maskKey {
            minervaWebSocketMask(
                UnsafeMutableRawBufferPointer(start: start + headerCount, count: payload.count), key: key, offset: 0)
        }
    }

    /// Appends one whole frame to `out` (masked with `maskKey` if given: a client's frame).
    package static func append(
        opcode: UInt8, payload: UnsafeRawBufferPointer, maskKey: (UInt8, UInt8, UInt8, UInt8)? = nil,
        to out: inout [UInt8]
    ) {
        let headerCount = headerLength(payloadCount: payload.count, masked: maskKey != nil)
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: headerCount))
        out.withUnsafeMutableBytes { raw in
            _ = writeHeader(opcode: opcode, payloadCount: payload.count, maskKey: maskKey, at: raw.baseAddress! + start)
        }
        out.append(contentsOf: payload)
        if let key = maskKey {
            out.withUnsafeMutableBytes { raw in
                minervaWebSocketMask(
                    UnsafeMutableRawBufferPointer(rebasing: raw[(start + headerCount)...]), key: key, offset: 0)
            }
        }
    }

    /// The payload of a close frame: the code (big-endian) and a reason (at most 123 bytes of UTF-8).
    package static func closePayload(code: UInt16, reason: StaticString = "") -> [UInt8] {
        var payload: [UInt8] = [UInt8(code >> 8), UInt8(code & 0xFF)]
        let count = min(reason.utf8CodeUnitCount, 123)
        payload.append(contentsOf: UnsafeBufferPointer(start: reason.utf8Start, count: count))
        return payload
    }
}
