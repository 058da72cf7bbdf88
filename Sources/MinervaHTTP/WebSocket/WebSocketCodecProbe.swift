// The WebSocket codec alone, behind a small public face, for micro-benchmarks (malloc counting).
import MinervaIO

/// Decodes client frames with the server's WebSocket decoder and writes server frames with its writer, counting
/// what passes; the codec's own types stay `package`.
@_spi(Benchmarks) public final class MinervaWebSocketCodecProbe {
    private var decoder = MinervaWebSocketFrameDecoder(maxMessageLength: 1 << 20, expectsMaskedFrames: true)
    private let output = ByteStorage(capacity: 256)

    /// Creates a probe.
    public init() {}

    /// Messages decoded so far.
    public private(set) var messageCount = 0
    /// Payload bytes of the messages decoded so far.
    public private(set) var messageBytes = 0

    /// Feeds client bytes (masked frames) to the decoder.
    /// - Returns: the number of messages decoded so far.
    @discardableResult
    public func feed(_ bytes: UnsafeRawBufferPointer) -> Int {
        decoder.feed(bytes) { event in
            if case .message(_, let payload) = event {
                messageCount += 1
                messageBytes += payload.count
            }
            return true
        }
        return messageCount
    }

    /// Writes `payload` as one unmasked text frame into the probe's reused output buffer (emptied first).
    /// - Returns: the frame's length.
    @discardableResult
    public func writeTextFrame(_ payload: UnsafeRawBufferPointer) -> Int {
        output.count = 0
        MinervaWebSocketFrameWriter.append(opcode: MinervaWebSocketOpcode.text, payload: payload, to: output)
        return output.count
    }

    /// A masked client text frame with `payload` (for building benchmark input; allocates).
    public static func maskedTextFrame(_ payload: [UInt8], maskKey: (UInt8, UInt8, UInt8, UInt8)) -> [UInt8] {
        var frame: [UInt8] = []
        payload.withUnsafeBytes {
            MinervaWebSocketFrameWriter.append(
                opcode: MinervaWebSocketOpcode.text, payload: $0, maskKey: maskKey, to: &frame)
        }
        return frame
    }
}
