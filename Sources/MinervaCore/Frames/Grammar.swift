// Restricted strings, the integer grammar and decimal output (PROTOCOL.md 1 and 2.2). Everything here works on
// bytes and never allocates.

/// Validation of restricted strings: bytes 0x20 (space) ... 0x7E (`~`); the empty string is valid (PROTOCOL.md 1).
public enum RestrictedString {
    /// The longest reason a ResetFrame may carry, in bytes.
    public static let maxResetReasonLength = 255

    /// Whether every byte is in 0x20...0x7E.
    /// - Parameter bytes: the candidate string.
    /// - Returns: true for a restricted string (including the empty one).
    @inlinable
    public static func isValid(_ bytes: some Sequence<UInt8>) -> Bool {
        for byte in bytes where byte &- 0x20 > 0x5E {
            return false
        }
        return true
    }

    /// Whether `bytes` is a valid reset reason: restricted and at most 255 bytes (PROTOCOL.md 2.3).
    /// - Parameter bytes: the candidate reason.
    /// - Returns: true if a ResetFrame may carry it.
    @inlinable
    public static func isValidResetReason(_ bytes: some Collection<UInt8>) -> Bool {
        bytes.count <= maxResetReasonLength && isValid(bytes)
    }
}

/// The protocol's decimal integer grammar (PROTOCOL.md 2.2), strict: no sign on non-negative numbers, no leading
/// zeros, no spaces, no trailing newline (the Python-only quirk of PROTOCOL.md 10.5 is not reproduced).
public enum ProtocolInteger {
    /// Parses `^(0|[1-9][0-9]*)$` with a value of at most 2^53; anything longer than 16 bytes is rejected unread.
    /// - Parameter bytes: the digits.
    /// - Returns: the value, or nil if the bytes do not follow the grammar or exceed 2^53.
    @inlinable
    public static func parseNonNegative(_ bytes: some Collection<UInt8>) -> Int64? {
        let count = bytes.count
        guard count >= 1, count <= 16 else { return nil }
        guard let first = bytes.first, first != UInt8(ascii: "0") else {
            return count == 1 ? 0 : nil
        }
        var value: Int64 = 0
        for byte in bytes {
            let digit = byte &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            value = value &* 10 &+ Int64(digit)
        }
        return value <= maxProtocolInteger ? value : nil
    }

    /// Parses a SACK ack number: `^(0|-?[1-9][0-9]*)$` with a value in -1...2^53 (so `-0` is invalid).
    /// - Parameter bytes: the digits, optionally preceded by `-`.
    /// - Returns: the value, or nil if invalid.
    @inlinable
    public static func parseAckNumber(_ bytes: some Collection<UInt8>) -> Int64? {
        if bytes.first == UInt8(ascii: "-") {
            // Only -1 is both grammatical and in range.
            return bytes.count == 2 && bytes.dropFirst().first == UInt8(ascii: "1") ? -1 : nil
        }
        return parseNonNegative(bytes)
    }

    /// Appends the decimal form of `value` (ASCII digits, `-` first if negative) without allocating beyond the
    /// buffer's own growth.
    /// - Parameters:
    ///   - value: any Int64.
    ///   - buffer: the output.
    @inlinable
    public static func append(_ value: Int64, to buffer: inout [UInt8]) {
        if value < 0 { buffer.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        var digits = 1
        var probe = magnitude
        while probe >= 10 {
            probe /= 10
            digits += 1
        }
        let start = buffer.count
        buffer.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: digits))
        var index = start + digits - 1
        while magnitude >= 10 {
            buffer[index] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: magnitude % 10)
            magnitude /= 10
            index -= 1
        }
        buffer[index] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: magnitude)
    }
}

extension SACK {
    /// Decodes a SACK string `<list>|<ack>` (PROTOCOL.md 2.2): split at the last `|`, the list is empty or
    /// comma-separated non-negative integers (not required to be sorted or unique), the ack is -1...2^53.
    /// - Parameter bytes: the SACK string.
    /// - Returns: nil if invalid. Allocates only for a non-empty list.
    public init?(decoding bytes: ArraySlice<UInt8>) {
        guard let bar = bytes.lastIndex(of: UInt8(ascii: "|")) else { return nil }
        guard let ack = ProtocolInteger.parseAckNumber(bytes[(bar + 1)...]) else { return nil }
        let listBytes = bytes[..<bar]
        if listBytes.isEmpty {
            self.init(ackNumber: ack, sackList: [])
            return
        }
        var list: [Int64] = []
        var start = listBytes.startIndex
        var commas = 0
        for byte in listBytes where byte == UInt8(ascii: ",") { commas += 1 }
        list.reserveCapacity(commas + 1)
        while true {
            let end = listBytes[start...].firstIndex(of: UInt8(ascii: ",")) ?? listBytes.endIndex
            guard let number = ProtocolInteger.parseNonNegative(listBytes[start..<end]) else { return nil }
            list.append(number)
            if end == listBytes.endIndex { break }
            start = end + 1
        }
        self.init(ackNumber: ack, sackList: list)
    }

    /// Appends the SACK string, e.g. `1,4|2`; the list is written in ascending order (sorted on a copy if needed).
    /// - Parameter buffer: the output.
    public func encode(into buffer: inout [UInt8]) {
        var sorted = true
        var previous = Int64.min
        for number in sackList {
            if number < previous {
                sorted = false
                break
            }
            previous = number
        }
        let list = sorted ? sackList : sackList.sorted()
        for (position, number) in list.enumerated() {
            if position > 0 { buffer.append(UInt8(ascii: ",")) }
            ProtocolInteger.append(number, to: &buffer)
        }
        buffer.append(UInt8(ascii: "|"))
        ProtocolInteger.append(ackNumber, to: &buffer)
    }

    /// The encoded SACK string as bytes (allocates; for tests and hellos built by clients).
    public var encoded: [UInt8] {
        var buffer: [UInt8] = []
        encode(into: &buffer)
        return buffer
    }
}
