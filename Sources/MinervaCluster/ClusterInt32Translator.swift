// An int32 socket (PROTOCOL.md 3.2) relayed to its stream's owner travels as a WebSocket (11.1) to the owner's HTTP
// listener (the only address nodes advertise): both carry one frame per message with socket semantics and the same
// 1048576-byte limit. This translates on the fly, without buffering whole frames: each int32 length prefix from the
// client becomes a masked text frame header (mask key 0, so the payload passes unchanged), and each text frame from
// the owner becomes an int32 length prefix before its payload. The owner never fragments its messages; its pings are
// answered; its close frame ends the relay.

/// The translation state of one relayed int32 socket (loop-confined, inside a `WebSocketRelay`).
struct ClusterInt32Translator {
    // Client to owner.
    private var prefix: [UInt8] = []
    private var payloadLeft = 0
    // Owner to client.
    private var header: [UInt8] = []
    private var headerNeeded = 2
    private var frameLeft = 0
    private var opcode: UInt8 = 0
    private var control: [UInt8] = []
    /// The owner sent a close frame (or a frame this translation cannot carry): the relay ends.
    private(set) var ownerClosed = false

    /// The masked close frame (1000) a relay sends the owner when the client's socket ends.
    static let closeFrame: [UInt8] = [0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8]

    /// Appends to `out` the WebSocket frames carrying the client's int32 `bytes`.
    mutating func fromClient(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        var i = 0
        let n = bytes.count
        while i < n {
            if payloadLeft > 0 {
                let take = min(payloadLeft, n - i)
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[i..<(i + take)]))
                payloadLeft -= take
                i += take
                continue
            }
            prefix.append(bytes[i])
            i += 1
            guard prefix.count == 4 else { continue }
            let length = Int(prefix[0]) << 24 | Int(prefix[1]) << 16 | Int(prefix[2]) << 8 | Int(prefix[3])
            prefix.removeAll(keepingCapacity: true)
            // An over-long length is announced as it is: the owner answers frame_corruption from the header alone.
            Self.appendMaskedHeader(opcode: 1, length: length, to: &out)
            payloadLeft = length
        }
    }

    /// Appends to `client` the int32 frames carried by the owner's WebSocket `bytes`, and to `owner` the pongs due.
    mutating func fromOwner(_ bytes: UnsafeRawBufferPointer, client: inout [UInt8], owner: inout [UInt8]) {
        var i = 0
        let n = bytes.count
        while i < n && !ownerClosed {
            if frameLeft > 0 {
                let take = min(frameLeft, n - i)
                let piece = UnsafeRawBufferPointer(rebasing: bytes[i..<(i + take)])
                if opcode < 8 { client.append(contentsOf: piece) } else { control.append(contentsOf: piece) }
                frameLeft -= take
                i += take
                if frameLeft == 0 { frameEnded(owner: &owner) }
                continue
            }
            header.append(bytes[i])
            i += 1
            if header.count == 2 {
                let length7 = header[1] & 0x7F
                headerNeeded = 2 + (length7 == 126 ? 2 : length7 == 127 ? 8 : 0) + (header[1] & 0x80 != 0 ? 4 : 0)
            }
            guard header.count >= 2, header.count == headerNeeded else { continue }
            let length7 = Int(header[1] & 0x7F)
            var length = length7
            if length7 == 126 {
                length = Int(header[2]) << 8 | Int(header[3])
            } else if length7 == 127 {
                length = 0
                for k in 2..<10 { length = length << 8 | Int(header[k]) }
            }
            opcode = header[0] & 0x0F
            let fin = header[0] & 0x80 != 0
            let masked = header[1] & 0x80 != 0
            header.removeAll(keepingCapacity: true)
            headerNeeded = 2
            // A server's frames are unmasked and (the owner's) never fragmented: anything else ends the relay.
            guard !masked, fin || opcode >= 8, opcode != 0, length <= 1 << 31 else {
                ownerClosed = true
                return
            }
            if opcode < 8 {
                client.append(UInt8(truncatingIfNeeded: length >> 24))
                client.append(UInt8(truncatingIfNeeded: length >> 16))
                client.append(UInt8(truncatingIfNeeded: length >> 8))
                client.append(UInt8(truncatingIfNeeded: length))
            } else {
                control.removeAll(keepingCapacity: true)
            }
            frameLeft = length
            if length == 0 { frameEnded(owner: &owner) }
        }
    }

    private mutating func frameEnded(owner: inout [UInt8]) {
        switch opcode {
        case 8: ownerClosed = true
        case 9:
            Self.appendMaskedHeader(opcode: 10, length: control.count, to: &owner)
            owner.append(contentsOf: control)
        default: break
        }
    }

    /// A client frame header: FIN, `opcode`, masked with the key 0 (the payload follows unchanged).
    static func appendMaskedHeader(opcode: UInt8, length: Int, to out: inout [UInt8]) {
        out.append(0x80 | opcode)
        if length < 126 {
            out.append(0x80 | UInt8(length))
        } else if length <= 0xFFFF {
            out.append(0x80 | 126)
            out.append(UInt8(length >> 8))
            out.append(UInt8(length & 0xFF))
        } else {
            out.append(0x80 | 127)
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: length >> shift)) }
        }
        out.append(contentsOf: [0, 0, 0, 0])
    }
}
