// Socket mode's int32 framing (PROTOCOL.md 3.2) on the test side: a 4-byte big-endian length before each frame.

/// `payload` with its 4-byte big-endian length prefix.
package func int32Frame(_ payload: [UInt8]) -> [UInt8] {
    let n = UInt32(payload.count)
    return [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + payload
}

/// Frames given as text, each int32-framed, concatenated.
package func int32Bytes(_ frames: [String]) -> [UInt8] {
    frames.flatMap { int32Frame(Array($0.utf8)) }
}

/// Splits int32-framed bytes (after an optional `<int32/>\n`) into frames as text; an incomplete tail is ignored.
package func int32Frames(_ bytes: [UInt8]) -> [String] {
    var index = 0
    let prefix = Array("<int32/>\n".utf8)
    if bytes.starts(with: prefix) { index = prefix.count }
    var frames: [String] = []
    while index + 4 <= bytes.count {
        let length = bytes[index..<(index + 4)].reduce(0) { $0 << 8 | Int($1) }
        guard index + 4 + length <= bytes.count else { break }
        frames.append(String(decoding: bytes[(index + 4)..<(index + 4 + length)], as: UTF8.self))
        index += 4 + length
    }
    return frames
}
