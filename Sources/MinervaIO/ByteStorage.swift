// A growable byte buffer at a stable heap address (until it grows), used for read, head, body and output
// buffers. Manual memory avoids copy-on-write checks and exclusivity bookkeeping on the hot path.
#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A growable, manually managed byte buffer.
package final class ByteStorage {
    @exclusivity(unchecked) package private(set) var base: UnsafeMutableRawPointer
    @exclusivity(unchecked) package private(set) var capacity: Int
    /// Number of valid bytes from `base`.
    @exclusivity(unchecked) package var count: Int = 0

    package init(capacity: Int) {
        self.capacity = max(capacity, 16)
        self.base = malloc(self.capacity)!
    }

    /// Takes ownership of a malloc'ed block.
    package init(adopting pointer: UnsafeMutableRawPointer, count: Int) {
        self.base = pointer
        self.capacity = max(count, 1)
        self.count = count
    }

    deinit { free(base) }

    /// Gives memory back: an empty buffer shrinks to the minimum capacity (a connection that will not need it again,
    /// say after a protocol switch).
    package func shrinkIfEmpty() {
        guard count == 0, capacity > 16 else { return }
        base = realloc(base, 16)!
        capacity = 16
    }

    /// Shrinks an empty buffer whose capacity is above `limit` to `limit` (a pooled buffer that once grew large).
    package func trim(toCapacity limit: Int) {
        guard count == 0, capacity > limit else { return }
        base = realloc(base, limit)!
        capacity = limit
    }

    /// The valid bytes. - Warning: invalid after the next mutation.
    package var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    /// Ensures room for `extra` more bytes.
    @inline(__always) package func reserve(_ extra: Int) {
        let needed = count + extra
        if needed <= capacity { return }
        var newCapacity = capacity * 2
        while newCapacity < needed { newCapacity *= 2 }
        base = realloc(base, newCapacity)!
        capacity = newCapacity
    }

    @inline(__always) package func append(_ pointer: UnsafeRawPointer, count n: Int) {
        if n == 0 { return }
        reserve(n)
        (base + count).copyMemory(from: pointer, byteCount: n)
        count += n
    }

    package func append(_ buffer: UnsafeRawBufferPointer) {
        if let p = buffer.baseAddress { append(p, count: buffer.count) }
    }

    package func append(_ bytes: [UInt8]) { bytes.withUnsafeBytes { append($0) } }

    package func append(_ string: StaticString) { append(string.utf8Start, count: string.utf8CodeUnitCount) }

    package func append(_ string: String) {
        var string = string
        string.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    @inline(__always) package func append(byte: UInt8) {
        reserve(1)
        base.storeBytes(of: byte, toByteOffset: count, as: UInt8.self)
        count += 1
    }

    /// Appends a non-negative integer in decimal.
    package func appendDecimal(_ value: Int) {
        var v = value
        var digits = 1
        while v >= 10 {
            v /= 10
            digits += 1
        }
        reserve(digits)
        v = value
        var i = count + digits - 1
        repeat {
            base.storeBytes(of: UInt8(48 + v % 10), toByteOffset: i, as: UInt8.self)
            v /= 10
            i -= 1
        } while v > 0
        count += digits
    }

    /// Appends a non-negative integer in lowercase hexadecimal.
    package func appendHex(_ value: Int) {
        var v = value
        var digits = 1
        while v >= 16 {
            v >>= 4
            digits += 1
        }
        reserve(digits)
        v = value
        var i = count + digits - 1
        repeat {
            let d = UInt8(v & 15)
            base.storeBytes(of: d < 10 ? 48 + d : 87 + d, toByteOffset: i, as: UInt8.self)
            v >>= 4
            i -= 1
        } while v > 0
        count += digits
    }

    /// Drops the first `n` bytes, moving the rest to the front.
    package func removeFirst(_ n: Int) {
        if n >= count {
            count = 0
            return
        }
        memmove(base, base + n, count - n)
        count -= n
    }
}

/// Lowercases an ASCII byte.
@inline(__always) package func asciiLower(_ b: UInt8) -> UInt8 { b >= 65 && b <= 90 ? b | 0x20 : b }

/// Case-insensitive ASCII comparison of raw bytes with a lowercase literal.
@inline(__always) package func equalsLowercase(_ bytes: UnsafeRawBufferPointer, _ lower: StaticString) -> Bool {
    let n = lower.utf8CodeUnitCount
    if bytes.count != n { return false }
    let l = lower.utf8Start
    for i in 0..<n where asciiLower(bytes[i]) != l[i] { return false }
    return true
}
