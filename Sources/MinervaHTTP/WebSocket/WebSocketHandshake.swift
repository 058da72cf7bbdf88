// The RFC 6455 opening handshake's arithmetic, without Foundation: SHA-1 (FIPS 180-4), base64, the
// `Sec-WebSocket-Accept` value, the key's syntax and the token lists of `Connection`, `Upgrade` and
// `Sec-WebSocket-Protocol`. Used once per upgrade (the server) or per connection (a client), never per message.
import MinervaIO

/// SHA-1 (FIPS 180-4). Only for the WebSocket handshake (RFC 6455 4.2.2), where it is not a security measure.
package struct MinervaSHA1 {
    private var h: (UInt32, UInt32, UInt32, UInt32, UInt32) = (
        0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0
    )
    private var block = [UInt8](repeating: 0, count: 64)
    private var blockCount = 0
    private var totalBytes: UInt64 = 0

    /// An empty hash.
    package init() {}

    /// Hashes more bytes.
    package mutating func update(_ bytes: some Sequence<UInt8>) {
        for byte in bytes {
            block[blockCount] = byte
            blockCount += 1
            totalBytes &+= 1
            if blockCount == 64 {
                compress()
                blockCount = 0
            }
        }
    }

    /// The 20-byte digest of everything hashed (the hash is finished afterwards).
    package mutating func finish() -> [UInt8] {
        let bitLength = totalBytes &* 8
        update(CollectionOfOne(0x80))
        while blockCount != 56 { update(CollectionOfOne(0)) }
        for shift in stride(from: 56, through: 0, by: -8) {
            block[blockCount] = UInt8(truncatingIfNeeded: bitLength >> UInt64(shift))
            blockCount += 1
        }
        compress()
        blockCount = 0
        var digest: [UInt8] = []
        digest.reserveCapacity(20)
        for word in [h.0, h.1, h.2, h.3, h.4] {
            for shift in stride(from: 24, through: 0, by: -8) {
                digest.append(UInt8(truncatingIfNeeded: word >> shift))
            }
        }
        return digest
    }

    /// The digest of `bytes`.
    package static func hash(_ bytes: some Sequence<UInt8>) -> [UInt8] {
        var sha = MinervaSHA1()
        sha.update(bytes)
        return sha.finish()
    }

    private mutating func compress() {
        var w = [UInt32](repeating: 0, count: 80)
        for i in 0..<16 {
            w[i] =
                UInt32(block[4 * i]) << 24 | UInt32(block[4 * i + 1]) << 16 | UInt32(block[4 * i + 2]) << 8
                | UInt32(block[4 * i + 3])
        }
        for i in 16..<80 {
            let x = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]
            w[i] = x << 1 | x >> 31
        }
        var (a, b, c, d, e) = h
        for i in 0..<80 {
            let f: UInt32
            let k: UInt32
            switch i {
            case 0..<20:
                f = (b & c) | (~b & d)
                k = 0x5A82_7999
            case 20..<40:
                f = b ^ c ^ d
                k = 0x6ED9_EBA1
            case 40..<60:
                f = (b & c) | (b & d) | (c & d)
                k = 0x8F1B_BCDC
            default:
                f = b ^ c ^ d
                k = 0xCA62_C1D6
            }
            let temp = (a << 5 | a >> 27) &+ f &+ e &+ k &+ w[i]
            e = d
            d = c
            c = b << 30 | b >> 2
            b = a
            a = temp
        }
        h = (h.0 &+ a, h.1 &+ b, h.2 &+ c, h.3 &+ d, h.4 &+ e)
    }
}

/// Base64 (RFC 4648, with padding).
package enum MinervaBase64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// `bytes` in base64.
    package static func encode(_ bytes: some Collection<UInt8>) -> String {
        let input = Array(bytes)
        var out: [UInt8] = []
        out.reserveCapacity((input.count + 2) / 3 * 4)
        var i = 0
        while i < input.count {
            let b0 = UInt32(input[i])
            let b1 = i + 1 < input.count ? UInt32(input[i + 1]) : 0
            let b2 = i + 2 < input.count ? UInt32(input[i + 2]) : 0
            let n = b0 << 16 | b1 << 8 | b2
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
            out.append(i + 1 < input.count ? alphabet[Int(n >> 6 & 63)] : UInt8(ascii: "="))
            out.append(i + 2 < input.count ? alphabet[Int(n & 63)] : UInt8(ascii: "="))
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Whether `byte` is one of the 64 digits.
    static func isDigit(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "+"), UInt8(ascii: "/"):
            return true
        default:
            return false
        }
    }
}

/// The handshake rules of RFC 6455 section 4 that both ends need.
package enum MinervaWebSocketHandshake {
    /// The GUID appended to the key before hashing (RFC 6455 1.3).
    package static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key` value.
    package static func acceptValue(key: some Sequence<UInt8>) -> String {
        var sha = MinervaSHA1()
        sha.update(key)
        sha.update(guid.utf8)
        return MinervaBase64.encode(sha.finish())
    }

    /// Whether `key` (surrounding whitespace already trimmed) is base64 for 16 bytes (RFC 6455 4.1): 22 digits and
    /// `==`, the last digit carrying no bits beyond the 16 bytes.
    package static func isValidKey(_ key: UnsafeRawBufferPointer) -> Bool {
        guard key.count == 24, key[22] == UInt8(ascii: "="), key[23] == UInt8(ascii: "=") else { return false }
        for i in 0..<22 where !MinervaBase64.isDigit(key[i]) { return false }
        // The 22nd digit holds the last 2 bits of byte 16; its low 4 bits must be zero.
        switch key[21] {
        case UInt8(ascii: "A"), UInt8(ascii: "Q"), UInt8(ascii: "g"), UInt8(ascii: "w"): return true
        default: return false
        }
    }

    /// A random key for a client's handshake (16 random bytes in base64).
    package static func makeKey<G: RandomNumberGenerator>(using generator: inout G) -> String {
        MinervaBase64.encode((0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }

    /// Calls `body` with each comma-separated token of a header value, without surrounding spaces and tabs; stops
    /// when `body` returns true.
    /// - Returns: whether `body` returned true for a token.
    @discardableResult
    package static func forEachToken(
        _ value: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> Bool
    ) -> Bool {
        var start = 0
        while start <= value.count {
            var end = start
            while end < value.count && value[end] != UInt8(ascii: ",") { end += 1 }
            var a = start
            var b = end
            while a < b && (value[a] == 32 || value[a] == 9) { a += 1 }
            while b > a && (value[b - 1] == 32 || value[b - 1] == 9) { b -= 1 }
            if b > a && body(UnsafeRawBufferPointer(rebasing: value[a..<b])) { return true }
            start = end + 1
        }
        return false
    }

    /// Whether the comma-separated list `value` contains `token` (ASCII case-insensitive; `token` lowercase).
    package static func listContains(_ value: UnsafeRawBufferPointer, _ token: StaticString) -> Bool {
        forEachToken(value) { equalsLowercase($0, token) }
    }

    /// `bytes` without leading and trailing spaces and tabs.
    package static func trimmed(_ bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        var a = 0
        var b = bytes.count
        while a < b && (bytes[a] == 32 || bytes[a] == 9) { a += 1 }
        while b > a && (bytes[b - 1] == 32 || bytes[b - 1] == 9) { b -= 1 }
        return UnsafeRawBufferPointer(rebasing: bytes[a..<b])
    }
}
