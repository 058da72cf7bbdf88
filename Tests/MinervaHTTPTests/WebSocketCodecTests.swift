// The WebSocket codec of MinervaHTTP without sockets: SHA-1 against FIPS 180 vectors, base64, the handshake's accept
// value (RFC 6455 1.3), key syntax, token lists; the frame decoder fed at every split point, masking, fragmentation,
// control frames, close codes, UTF-8 and the size limit; the writer read back by the decoder.
import MinervaTestSupport
import Testing

@testable import MinervaHTTP
@testable import MinervaIO

private func hex(_ bytes: [UInt8]) -> String {
    bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
}

/// Everything the decoder reports for `bytes` fed in the given pieces, as text.
private func decode(
    _ pieces: [[UInt8]], max: Int = 1 << 20, masked: Bool = true
) -> [String] {
    var decoder = MinervaWebSocketFrameDecoder(maxMessageLength: max, expectsMaskedFrames: masked)
    var events: [String] = []
    for piece in pieces {
        piece.withUnsafeBytes { raw in
            decoder.feed(raw) { event in
                switch event {
                case .message(let text, let payload):
                    events.append((text ? "text " : "binary ") + String(decoding: payload, as: UTF8.self))
                case .ping(let payload): events.append("ping " + String(decoding: payload, as: UTF8.self))
                case .pong(let payload): events.append("pong " + String(decoding: payload, as: UTF8.self))
                case .close(let code, let reason):
                    events.append("close \(code.map(String.init) ?? "-") " + String(decoding: reason, as: UTF8.self))
                case .messageTooLong(let length): events.append("too long \(length)")
                case .failure(let code, _): events.append("failure \(code)")
                }
                return true
            }
        }
    }
    return events
}

/// Every way of cutting `bytes` in two, and one byte at a time, must decode alike.
private func decodeAtEverySplit(_ bytes: [UInt8], max: Int = 1 << 20) -> [String] {
    let whole = decode([bytes], max: max)
    for cut in 0...bytes.count {
        let split = decode([Array(bytes[..<cut]), Array(bytes[cut...])], max: max)
        #expect(split == whole, "cut at \(cut)")
    }
    #expect(decode(bytes.map { [$0] }, max: max) == whole, "byte by byte")
    return whole
}

@Suite("WebSocket codec")
struct WebSocketCodecTests {
    @Test("SHA-1: FIPS 180 vectors")
    func sha1() {
        #expect(hex(MinervaSHA1.hash(Array("abc".utf8))) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(hex(MinervaSHA1.hash([])) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(
            hex(MinervaSHA1.hash(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)))
                == "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        var million = MinervaSHA1()
        let a = [UInt8](repeating: UInt8(ascii: "a"), count: 1000)
        for _ in 0..<1000 { million.update(a) }
        #expect(hex(million.finish()) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
        // Lengths around the padding boundary (55, 56, 63, 64, 65 bytes), checked against the one-shot hash of the
        // same bytes fed in two pieces.
        for length in [55, 56, 63, 64, 65, 119, 120] {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            var pieces = MinervaSHA1()
            pieces.update(bytes[..<(length / 2)])
            pieces.update(bytes[(length / 2)...])
            #expect(pieces.finish() == MinervaSHA1.hash(bytes), "length \(length)")
        }
        #expect(
            hex(MinervaSHA1.hash([UInt8](repeating: UInt8(ascii: "a"), count: 64)))
                == "0098ba824b5c16427bd7a1122a5a442a25ec644d")
    }

    @Test("base64 and the RFC 6455 example accept value")
    func acceptValue() {
        #expect(MinervaBase64.encode(Array("".utf8)) == "")
        #expect(MinervaBase64.encode(Array("f".utf8)) == "Zg==")
        #expect(MinervaBase64.encode(Array("fo".utf8)) == "Zm8=")
        #expect(MinervaBase64.encode(Array("foo".utf8)) == "Zm9v")
        #expect(MinervaBase64.encode(Array("foobar".utf8)) == "Zm9vYmFy")
        #expect(MinervaWebSocketHandshake.acceptValue(key: Array(wsExampleKey.utf8)) == wsExampleAccept)
        #expect(wsExampleAccept == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    @Test("keys: base64 of exactly 16 bytes")
    func keys() {
        func valid(_ key: String) -> Bool {
            Array(key.utf8).withUnsafeBytes { MinervaWebSocketHandshake.isValidKey($0) }
        }
        #expect(valid(wsExampleKey))
        #expect(valid("AAAAAAAAAAAAAAAAAAAAAA=="))
        #expect(!valid("AAAAAAAAAAAAAAAAAAAAAB=="))  // bits beyond 16 bytes
        #expect(!valid("AAAAAAAAAAAAAAAAAAAAAAA="))
        #expect(!valid("AAAAAAAAAAAAAAAAAAAA===="))
        #expect(!valid("AAAAAAAAAAAAAAAAAAAAA*=="))
        #expect(!valid(""))
        var generator = SeededGenerator(seed: 7)
        for _ in 0..<20 { #expect(valid(MinervaWebSocketHandshake.makeKey(using: &generator))) }
    }

    @Test("token lists: case-insensitive, spaces and empty entries ignored")
    func tokens() {
        func contains(_ value: String, _ token: StaticString) -> Bool {
            Array(value.utf8).withUnsafeBytes { MinervaWebSocketHandshake.listContains($0, token) }
        }
        #expect(contains("Upgrade", "upgrade"))
        #expect(contains("keep-alive, Upgrade", "upgrade"))
        #expect(contains(" ,\tUPGRADE ,", "upgrade"))
        #expect(!contains("upgrades", "upgrade"))
        #expect(!contains("", "upgrade"))
    }

    @Test("a masked text message, at every split point")
    func maskedText() {
        #expect(decodeAtEverySplit(wsText("hello")) == ["text hello"])
        let medium = String(repeating: "m", count: 300)
        #expect(decodeAtEverySplit(wsText(medium)) == ["text " + medium])
        let large = String(repeating: "L", count: 70_000)
        #expect(decode([wsText(large)]) == ["text " + large])
        #expect(decodeAtEverySplit(wsText("")) == ["text "])
    }

    @Test("fragments are reassembled; control frames between them are reported at once")
    func fragments() {
        let bytes =
            wsFrameBytes(opcode: 1, Array("fra".utf8), fin: false) + wsFrameBytes(opcode: 9, Array("p".utf8))
            + wsFrameBytes(opcode: 0, [], fin: false) + wsFrameBytes(opcode: 10, [])
            + wsFrameBytes(opcode: 0, Array("gment".utf8))
        #expect(decodeAtEverySplit(bytes) == ["ping p", "pong ", "text fragment"])
        #expect(decodeAtEverySplit(wsFrameBytes(opcode: 2, [0, 1, 2])) == ["binary \u{0}\u{1}\u{2}"])
    }

    @Test("close frames: code and reason; bad codes, one-byte payloads and bad reasons fail")
    func closeFrames() {
        #expect(decodeAtEverySplit(wsFrameBytes(opcode: 8, [])) == ["close - "])
        #expect(decodeAtEverySplit(wsFrameBytes(opcode: 8, [0x03, 0xE8] + Array("bye".utf8))) == ["close 1000 bye"])
        #expect(decode([wsFrameBytes(opcode: 8, [0x0F, 0xA0])]) == ["close 4000 "])
        for code in [0, 999, 1004, 1005, 1006, 1015, 2999, 5000] {
            #expect(decode([wsFrameBytes(opcode: 8, [UInt8(code >> 8), UInt8(code & 0xFF)])]) == ["failure 1002"])
        }
        #expect(decode([wsFrameBytes(opcode: 8, [3])]) == ["failure 1002"])
        #expect(decode([wsFrameBytes(opcode: 8, [0x03, 0xE8, 0xFF])]) == ["failure 1007"])
    }

    @Test("protocol errors: 1002, and nothing is decoded afterwards")
    func protocolErrors() {
        let after = wsText("after")
        #expect(decode([wsFrameBytes(opcode: 1, [], mask: nil) + after]) == ["failure 1002"])
        #expect(decode([wsText("x")], masked: false) == ["failure 1002"])
        #expect(decode([wsFrameBytes(opcode: 1, [], rsv: 1) + after]) == ["failure 1002"])
        for opcode: UInt8 in [3, 4, 5, 6, 7, 11, 12, 13, 14, 15] {
            #expect(decode([wsFrameBytes(opcode: opcode, [])]) == ["failure 1002"], "opcode \(opcode)")
        }
        #expect(decode([wsFrameBytes(opcode: 9, [UInt8](repeating: 0, count: 126))]) == ["failure 1002"])
        #expect(decode([wsFrameBytes(opcode: 8, [], fin: false)]) == ["failure 1002"])
        #expect(decode([wsFrameBytes(opcode: 0, [])]) == ["failure 1002"])
        #expect(decode([wsFrameBytes(opcode: 1, [], fin: false) + wsFrameBytes(opcode: 2, [])]) == ["failure 1002"])
        // A 64-bit length with its top bit set.
        #expect(decode([[0x81, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]]) == ["failure 1002"])
    }

    @Test("UTF-8: valid text passes, invalid sequences fail with 1007 (also across fragments)")
    func utf8() {
        #expect(decode([wsFrameBytes(opcode: 1, Array("κόσμε 𝄞 €".utf8))]) == ["text κόσμε 𝄞 €"])
        let euro = Array("€".utf8)
        #expect(
            decode([wsFrameBytes(opcode: 1, [euro[0]], fin: false) + wsFrameBytes(opcode: 0, Array(euro[1...]))])
                == ["text €"])
        let invalid: [[UInt8]] = [
            [0xC3, 0x28], [0xA0], [0xC0, 0x80], [0xE0, 0x80, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80],
            [0xF5, 0x80, 0x80, 0x80], [0xE2, 0x82], [0xFF],
        ]
        for bytes in invalid {
            #expect(decode([wsFrameBytes(opcode: 1, Array("ok".utf8) + bytes)]) == ["failure 1007"], "\(bytes)")
            #expect(bytes.withUnsafeBytes { !isValidUTF8($0) })
        }
        let long = Array(String(repeating: "abcdefgh€", count: 100).utf8)
        #expect(long.withUnsafeBytes { isValidUTF8($0) })
    }

    @Test("the size limit is enforced from the header; the rest of the message is skipped, later ones decoded")
    func sizeLimit() {
        #expect(decodeAtEverySplit(wsText("12345"), max: 5) == ["text 12345"])
        #expect(decodeAtEverySplit(wsText("123456") + wsText("ok"), max: 5) == ["too long 6", "text ok"])
        let fragmented =
            wsFrameBytes(opcode: 1, Array("abc".utf8), fin: false)
            + wsFrameBytes(opcode: 0, Array("def".utf8), fin: false)
            + wsFrameBytes(opcode: 9, []) + wsFrameBytes(opcode: 0, Array("g".utf8)) + wsText("next")
        #expect(decodeAtEverySplit(fragmented, max: 5) == ["too long 6", "ping ", "text next"])
        // Announced before any payload byte arrives.
        let header = Array(wsFrameBytes(opcode: 1, [UInt8](repeating: 65, count: 100_000))[..<14])
        #expect(decode([header], max: 65_536) == ["too long 100000"])
    }

    @Test("the writer's frames (unmasked and masked, every length class) decode back")
    func writerRoundTrip() {
        for length in [0, 1, 125, 126, 127, 65_535, 65_536, 100_000] {
            let payload = (0..<length).map { UInt8(ascii: "a") + UInt8($0 % 26) }
            for key: (UInt8, UInt8, UInt8, UInt8)? in [nil, (1, 2, 3, 4), (0xFF, 0, 0x80, 0x7F)] {
                var out: [UInt8] = []
                payload.withUnsafeBytes {
                    MinervaWebSocketFrameWriter.append(opcode: 1, payload: $0, maskKey: key, to: &out)
                }
                let storage = ByteStorage(capacity: 4)
                payload.withUnsafeBytes {
                    MinervaWebSocketFrameWriter.append(opcode: 1, payload: $0, maskKey: key, to: storage)
                }
                #expect(Array(storage.bytes) == out)
                #expect(
                    out.count == MinervaWebSocketFrameWriter.headerLength(payloadCount: length, masked: key != nil)
                        + length)
                #expect(decode([out], masked: key != nil) == ["text " + String(decoding: payload, as: UTF8.self)])
            }
        }
    }

    @Test("masking at any offset equals byte-by-byte XOR")
    func masking() {
        let key: (UInt8, UInt8, UInt8, UInt8) = (0x12, 0x34, 0x56, 0x78)
        let keyBytes: [UInt8] = [0x12, 0x34, 0x56, 0x78]
        let data = (0..<61).map { UInt8($0 * 3 & 0xFF) }
        for offset in 0..<8 {
            var bytes = data
            bytes.withUnsafeMutableBytes { minervaWebSocketMask($0, key: key, offset: offset) }
            #expect(
                bytes == data.enumerated().map { $0.element ^ keyBytes[($0.offset + offset) % 4] }, "offset \(offset)")
        }
    }

    @Test("the client's close payload")
    func closePayload() {
        #expect(
            MinervaWebSocketFrameWriter.closePayload(code: 1009, reason: "big") == [0x03, 0xF1] + Array("big".utf8))
    }
}
