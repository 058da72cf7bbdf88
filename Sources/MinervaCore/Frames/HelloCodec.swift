// HelloFrame decoding (a strict JSON reader written for this purpose, PROTOCOL.md 2.5) and encoding (the original
// client's byte layout, PROTOCOL.md 7.3).
//
// The reader makes one pass over the bytes and allocates nothing for an ordinary hello: known keys are recognised
// by their decoded bytes packed into a UInt64, values are remembered as byte ranges and validated after the whole
// object was read (duplicate keys: the last occurrence wins, as with a Python dict). Nested arrays and objects are
// validated and skipped with a bit stack (depth at most 32, the top-level object counting as 1).

/// The keys a hello may be restricted to when encoding (see ``HelloFrame/encode(into:keys:)``).
public struct HelloKeys: OptionSet, Sendable {
    /// The raw bit set, one bit per ``HelloKey``.
    public let rawValue: UInt16
    /// Creates a set from raw bits.
    /// - Parameter rawValue: one bit per ``HelloKey`` raw value.
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// A set with one key.
    /// - Parameter key: the key.
    public init(_ key: HelloKey) { self.rawValue = 1 << UInt16(key.rawValue) }
    /// Every key.
    public static let all = HelloKeys(rawValue: (1 << UInt16(HelloKey.allCases.count)) - 1)
}

/// A JSON number as the original's Python decoder sees it: integer literals are exact (arbitrarily large ones only
/// need to be known as out of range), anything with a fraction or exponent is an IEEE double.
@usableFromInline
enum HelloNumber {
    case integer(Int64)
    case hugeInteger
    case double(Double)

    /// The value if it is integral and within `range` (`-0` counts as 0; NaN and infinities never qualify).
    func integer(in range: ClosedRange<Int64>) -> Int64? {
        switch self {
        case .integer(let value):
            return range.contains(value) ? value : nil
        case .hugeInteger:
            return nil
        case .double(let value):
            guard value.isFinite, value == value.rounded(.towardZero) else { return nil }
            guard value >= Double(range.lowerBound), value <= Double(range.upperBound) else { return nil }
            return Int64(value)
        }
    }

    /// Whether the number equals `target` (Python `==` between a number and a small integer).
    func equals(_ target: Int64) -> Bool {
        switch self {
        case .integer(let value): return value == target
        case .hugeInteger: return false
        case .double(let value): return value == Double(target)
        }
    }
}

/// A top-level value, remembered until the whole object has been read.
@usableFromInline
enum HelloRawValue {
    case absent, null, composite
    case bool(Bool)
    case number(HelloNumber)
    /// The bytes between the quotes; `escaped` if they contain a backslash, `ascii` if the decoded string is ASCII.
    case string(start: Int, end: Int, escaped: Bool, ascii: Bool)
}

/// The fourteen known keys' last values.
@usableFromInline
struct HelloSlots {
    var values:
        (
            HelloRawValue, HelloRawValue, HelloRawValue, HelloRawValue, HelloRawValue, HelloRawValue, HelloRawValue,
            HelloRawValue, HelloRawValue, HelloRawValue, HelloRawValue, HelloRawValue, HelloRawValue, HelloRawValue
        ) = (
            .absent, .absent, .absent, .absent, .absent, .absent, .absent, .absent, .absent, .absent, .absent, .absent,
            .absent, .absent
        )

    subscript(key: HelloKey) -> HelloRawValue {
        get {
            switch key {
            case .tnum: return values.0
            case .ver: return values.1
            case .format: return values.2
            case .new: return values.3
            case .id: return values.4
            case .ming: return values.5
            case .pad: return values.6
            case .maxb: return values.7
            case .maxt: return values.8
            case .maxia: return values.9
            case .tcpack: return values.10
            case .eeds: return values.11
            case .sack: return values.12
            case .seenack: return values.13
            }
        }
        set {
            switch key {
            case .tnum: values.0 = newValue
            case .ver: values.1 = newValue
            case .format: values.2 = newValue
            case .new: values.3 = newValue
            case .id: values.4 = newValue
            case .ming: values.5 = newValue
            case .pad: values.6 = newValue
            case .maxb: values.7 = newValue
            case .maxt: values.8 = newValue
            case .maxia: values.9 = newValue
            case .tcpack: values.10 = newValue
            case .eeds: values.11 = newValue
            case .sack: values.12 = newValue
            case .seenack: values.13 = newValue
            }
        }
    }
}

extension HelloKey {
    /// The key whose name, packed little-endian into a UInt64 with its length in the top byte, is `value` (every
    /// key is exercised by the hello tests).
    static func lookup(packed value: UInt64) -> HelloKey? {
        switch value {
        case 0x0400_0000_6D75_6E74: return .tnum
        case 0x0300_0000_0072_6576: return .ver
        case 0x0600_7461_6D72_6F66: return .format
        case 0x0300_0000_0077_656E: return .new
        case 0x0200_0000_0000_6469: return .id
        case 0x0400_0000_676E_696D: return .ming
        case 0x0300_0000_0064_6170: return .pad
        case 0x0400_0000_6278_616D: return .maxb
        case 0x0400_0000_7478_616D: return .maxt
        case 0x0500_0061_6978_616D: return .maxia
        case 0x0600_6B63_6170_6374: return .tcpack
        case 0x0400_0000_7364_6565: return .eeds
        case 0x0400_0000_6B63_6173: return .sack
        case 0x076B_6361_6E65_6573: return .seenack
        default: return nil
        }
    }
}

/// The strict JSON scanner over the hello's bytes.
@usableFromInline
struct HelloJSONScanner {
    /// The deepest nesting accepted; the hello object itself is depth 1.
    static let maxDepth = 32

    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0

    init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    /// The byte at `position`, or 0 (never valid where it matters) past the end.
    @inline(__always)
    func at(_ position: Int) -> UInt8 { position < bytes.count ? bytes[position] : 0 }

    @inline(__always)
    func fail(_ code: HelloDecodingError.Code) -> HelloDecodingError { HelloDecodingError(code, offset: index) }

    @inline(__always)
    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }

    /// Reads one hex digit's value, or nil.
    @inline(__always)
    static func hex(_ byte: UInt8) -> UInt32? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt32(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt32(byte - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }

    /// Reads four hex digits at `index` (after `\u`).
    @inline(__always)
    mutating func hex4() throws(HelloDecodingError) -> UInt32 {
        guard let a = Self.hex(at(index)), let b = Self.hex(at(index + 1)), let c = Self.hex(at(index + 2)),
            let d = Self.hex(at(index + 3))
        else { throw fail(.badEscape) }
        index += 4
        return a << 12 | b << 8 | c << 4 | d
    }

    /// Scans a string starting at its opening quote; leaves `index` after the closing quote. `packed` receives the
    /// first eight decoded bytes when they are ASCII (for key lookup), `length` the decoded length in code points.
    mutating func scanString(
        packed: inout UInt64, length: inout Int
    ) throws(HelloDecodingError) -> (start: Int, end: Int, escaped: Bool, ascii: Bool) {
        index += 1
        let start = index
        var escaped = false
        var ascii = true
        packed = 0
        length = 0
        while true {
            guard index < bytes.count else { throw fail(.syntax) }
            let byte = bytes[index]
            var scalar: UInt32
            if byte == UInt8(ascii: "\"") {
                index += 1
                return (start, index - 1, escaped, ascii)
            } else if byte == UInt8(ascii: "\\") {
                escaped = true
                let next = at(index + 1)
                index += 2
                switch next {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): scalar = UInt32(next)
                case UInt8(ascii: "b"): scalar = 0x08
                case UInt8(ascii: "f"): scalar = 0x0C
                case UInt8(ascii: "n"): scalar = 0x0A
                case UInt8(ascii: "r"): scalar = 0x0D
                case UInt8(ascii: "t"): scalar = 0x09
                case UInt8(ascii: "u"):
                    scalar = try hex4()
                    if scalar >= 0xD800 && scalar <= 0xDBFF {
                        guard at(index) == UInt8(ascii: "\\"), at(index + 1) == UInt8(ascii: "u") else {
                            throw fail(.badEscape)
                        }
                        index += 2
                        let low = try hex4()
                        guard low >= 0xDC00 && low <= 0xDFFF else { throw fail(.badEscape) }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if scalar >= 0xDC00 && scalar <= 0xDFFF {
                        throw fail(.badEscape)
                    }
                default:
                    index -= 2
                    throw fail(.badEscape)
                }
            } else if byte < 0x20 {
                throw fail(.controlCharacter)
            } else if byte < 0x80 {
                scalar = UInt32(byte)
                index += 1
            } else {
                scalar = 0x80  // any non-ASCII value; only ASCII-ness matters below
                try skipUTF8Sequence(lead: byte)
            }
            if scalar >= 0x80 {
                ascii = false
            } else if length < 8 {
                packed |= UInt64(scalar) << UInt64(8 * length)
            }
            length += 1
        }
    }

    /// Validates one multi-byte UTF-8 sequence starting at `index` (strict: no overlongs, surrogates or values above
    /// U+10FFFF) and moves past it.
    @inline(__always)
    mutating func skipUTF8Sequence(lead: UInt8) throws(HelloDecodingError) {
        @inline(__always) func continuation(_ byte: UInt8) -> Bool { byte & 0xC0 == 0x80 }
        let second = at(index + 1)
        switch lead {
        case 0xC2...0xDF:
            guard continuation(second) else { throw fail(.invalidUTF8) }
            index += 2
        case 0xE0...0xEF:
            let low: UInt8 = lead == 0xE0 ? 0xA0 : 0x80
            let high: UInt8 = lead == 0xED ? 0x9F : 0xBF
            guard second >= low, second <= high, continuation(at(index + 2)) else { throw fail(.invalidUTF8) }
            index += 3
        case 0xF0...0xF4:
            let low: UInt8 = lead == 0xF0 ? 0x90 : 0x80
            let high: UInt8 = lead == 0xF4 ? 0x8F : 0xBF
            guard second >= low, second <= high, continuation(at(index + 2)), continuation(at(index + 3)) else {
                throw fail(.invalidUTF8)
            }
            index += 4
        default:
            throw fail(.invalidUTF8)
        }
    }

    /// Scans a number (`-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`).
    mutating func scanNumber() throws(HelloDecodingError) -> HelloNumber {
        let start = index
        let negative = at(index) == UInt8(ascii: "-")
        if negative { index += 1 }
        @inline(__always) func isDigit(_ byte: UInt8) -> Bool { byte &- UInt8(ascii: "0") < 10 }
        let first = at(index)
        guard isDigit(first) else { throw fail(.syntax) }
        // Significant digits (leading zeros skipped) accumulated into a UInt64 while there are at most 19.
        var significand: UInt64 = 0
        var significantDigits = 0
        if first == UInt8(ascii: "0") {
            index += 1
        } else {
            while isDigit(at(index)) {
                if significantDigits < 19 {
                    significand = significand &* 10 &+ UInt64(at(index) &- UInt8(ascii: "0"))
                }
                significantDigits += 1
                index += 1
            }
        }
        var fractionDigits = 0
        var isInteger = true
        if at(index) == UInt8(ascii: ".") {
            isInteger = false
            index += 1
            guard isDigit(at(index)) else { throw fail(.syntax) }
            while isDigit(at(index)) {
                let digit = at(index) &- UInt8(ascii: "0")
                if significantDigits > 0 || digit != 0 {
                    if significantDigits < 19 {
                        significand = significand &* 10 &+ UInt64(digit)
                        fractionDigits += 1
                    }
                    significantDigits += 1
                } else {
                    fractionDigits += 1
                }
                index += 1
            }
        }
        var exponent = 0
        var exponentTooLarge = false
        if at(index) == UInt8(ascii: "e") || at(index) == UInt8(ascii: "E") {
            isInteger = false
            index += 1
            var exponentNegative = false
            if at(index) == UInt8(ascii: "+") || at(index) == UInt8(ascii: "-") {
                exponentNegative = at(index) == UInt8(ascii: "-")
                index += 1
            }
            guard isDigit(at(index)) else { throw fail(.syntax) }
            while isDigit(at(index)) {
                if exponent < 100_000 {
                    exponent = exponent * 10 + Int(at(index) &- UInt8(ascii: "0"))
                } else {
                    exponentTooLarge = true
                }
                index += 1
            }
            if exponentNegative { exponent = -exponent }
        }
        if isInteger {
            guard significantDigits <= 18 else { return .hugeInteger }
            let magnitude = Int64(significand)
            return .integer(negative ? -magnitude : magnitude)
        }
        // Fast path (exact, hence correctly rounded): a significand below 2^53 scaled by an exact power of ten.
        if !exponentTooLarge && significantDigits <= 19 {
            let decimalExponent = exponent - fractionDigits
            if significand == 0 {
                return .double(negative ? -0.0 : 0.0)
            }
            if significand <= 1 << 53 && decimalExponent >= -22 && decimalExponent <= 22 {
                var value = Double(significand)
                let power = Self.powersOfTen[abs(decimalExponent)]
                value = decimalExponent < 0 ? value / power : value * power
                return .double(negative ? -value : value)
            }
        }
        // Slow path: the standard library's correctly rounded conversion (allocates only for long numbers).
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        guard let value = Double(text) else { throw HelloDecodingError(.badNumber, offset: start) }
        return .double(value)
    }

    static let powersOfTen: [Double] = (0...22).map { exponent in
        var value = 1.0
        for _ in 0..<exponent { value *= 10 }
        return value
    }

    /// Scans `true`, `false` or `null` (the first byte already identified the candidate).
    @inline(__always)
    mutating func scanLiteral(_ literal: StaticString) throws(HelloDecodingError) {
        let matched = literal.withUTF8Buffer { word -> Bool in
            guard index + word.count <= bytes.count else { return false }
            for offset in 0..<word.count where bytes[index + offset] != word[offset] { return false }
            return true
        }
        guard matched else { throw fail(.syntax) }
        index += literal.utf8CodeUnitCount
    }

    /// Scans any value at top level of the hello object (depth 1); composites are validated and skipped.
    mutating func scanTopLevelValue() throws(HelloDecodingError) -> HelloRawValue {
        switch at(index) {
        case UInt8(ascii: "\""):
            var packed: UInt64 = 0
            var length = 0
            let string = try scanString(packed: &packed, length: &length)
            return .string(start: string.start, end: string.end, escaped: string.escaped, ascii: string.ascii)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return .number(try scanNumber())
        case UInt8(ascii: "t"):
            try scanLiteral("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try scanLiteral("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try scanLiteral("null")
            return .null
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            try skipComposite()
            return .composite
        default:
            throw fail(.syntax)
        }
    }

    /// Validates and skips an array or object nested inside the hello object, iteratively.
    mutating func skipComposite() throws(HelloDecodingError) {
        // Bit stack of open containers: 1 = object, 0 = array; `depth` counts the hello object too.
        var stack: UInt64 = 0
        var depth = 1
        var packed: UInt64 = 0
        var length = 0
        // Opens the container at `index`; true if it was empty and closed at once.
        func open(_ scanner: inout HelloJSONScanner) throws(HelloDecodingError) -> Bool {
            let isObject = scanner.at(scanner.index) == UInt8(ascii: "{")
            depth += 1
            guard depth <= HelloJSONScanner.maxDepth else { throw scanner.fail(.tooDeep) }
            stack = stack << 1 | (isObject ? 1 : 0)
            scanner.index += 1
            scanner.skipWhitespace()
            if scanner.at(scanner.index) == (isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")) {
                scanner.index += 1
                stack >>= 1
                depth -= 1
                return true
            }
            return false
        }
        if try open(&self) { return }
        while true {
            // At the start of an element of the innermost container.
            if stack & 1 == 1 {
                guard at(index) == UInt8(ascii: "\"") else { throw fail(.syntax) }
                _ = try scanString(packed: &packed, length: &length)
                skipWhitespace()
                guard at(index) == UInt8(ascii: ":") else { throw fail(.syntax) }
                index += 1
                skipWhitespace()
            }
            var startsElement = false
            switch at(index) {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                startsElement = !(try open(&self))
            case UInt8(ascii: "\""):
                _ = try scanString(packed: &packed, length: &length)
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                _ = try scanNumber()
            case UInt8(ascii: "t"): try scanLiteral("true")
            case UInt8(ascii: "f"): try scanLiteral("false")
            case UInt8(ascii: "n"): try scanLiteral("null")
            default: throw fail(.syntax)
            }
            if startsElement { continue }
            // After a value: a comma continues the container, its closer ends it (and maybe its parents).
            while true {
                skipWhitespace()
                let byte = at(index)
                if byte == UInt8(ascii: ",") {
                    index += 1
                    skipWhitespace()
                    break
                }
                let closer = stack & 1 == 1 ? UInt8(ascii: "}") : UInt8(ascii: "]")
                guard byte == closer else { throw fail(.syntax) }
                index += 1
                stack >>= 1
                depth -= 1
                if depth == 1 { return }
            }
        }
    }
}

extension HelloFrame {
    /// The largest hello JSON text accepted, in bytes (the frame limit; a real hello is under 300 bytes).
    public static let maxJSONLength = maxFrameLength

    /// Decodes and validates the JSON payload of a HelloFrame (the bytes before the final `H`), PROTOCOL.md 2.5.
    ///
    /// Strict JSON (RFC 8259) with the original's extra rules: the text must start with `{` (no leading whitespace)
    /// and end with the object's `}`; nesting deeper than 32 is rejected; invalid UTF-8, lone surrogate escapes,
    /// raw control characters, `NaN`/`Infinity` are rejected; every top-level string value must be ASCII; the last
    /// occurrence of a duplicate key wins. Integer literals are exact; other numbers are IEEE doubles, so `1e400`
    /// is infinite and fails the integral check cleanly.
    /// - Parameter json: the JSON text.
    /// - Returns: the hello, or why it is invalid. Allocates nothing for an ordinary hello whose SACKs have empty
    ///   lists and whose strings have no escapes.
    public static func decode(json: ArraySlice<UInt8>) -> Result<HelloFrame, HelloDecodingError> {
        guard json.count <= maxJSONLength else { return .failure(HelloDecodingError(.tooLarge)) }
        return json.withUnsafeBufferPointer { buffer -> Result<HelloFrame, HelloDecodingError> in
            do throws(HelloDecodingError) {
                return .success(try decode(buffer, base: json))
            } catch {
                return .failure(error)
            }
        }
    }

    /// The reader proper; `base` is the same bytes as `buffer`, for slicing SACK strings without copying.
    static func decode(
        _ buffer: UnsafeBufferPointer<UInt8>, base: ArraySlice<UInt8>
    ) throws(HelloDecodingError) -> HelloFrame {
        var scanner = HelloJSONScanner(buffer)
        guard scanner.at(0) == UInt8(ascii: "{") else { throw HelloDecodingError(.notAnObject) }
        scanner.index = 1
        var slots = HelloSlots()
        // Unknown keys are only tracked (allocating) if one of them has a non-ASCII string value.
        var unknownNonASCII = false
        var unknownKeys: [(keyStart: Int, keyEnd: Int, keyEscaped: Bool, nonASCII: Bool)] = []
        scanner.skipWhitespace()
        if scanner.at(scanner.index) == UInt8(ascii: "}") {
            scanner.index += 1
        } else {
            while true {
                guard scanner.at(scanner.index) == UInt8(ascii: "\"") else { throw scanner.fail(.syntax) }
                var packed: UInt64 = 0
                var length = 0
                let key = try scanner.scanString(packed: &packed, length: &length)
                scanner.skipWhitespace()
                guard scanner.at(scanner.index) == UInt8(ascii: ":") else { throw scanner.fail(.syntax) }
                scanner.index += 1
                scanner.skipWhitespace()
                let value = try scanner.scanTopLevelValue()
                var known: HelloKey?
                if key.ascii && length <= 7 {
                    known = HelloKey.lookup(packed: packed | UInt64(length) << 56)
                }
                if let known {
                    slots[known] = value
                } else {
                    var nonASCII = false
                    if case .string(_, _, _, false) = value { nonASCII = true }
                    unknownNonASCII = unknownNonASCII || nonASCII
                    unknownKeys.append((key.start, key.end, key.escaped, nonASCII))
                }
                scanner.skipWhitespace()
                let byte = scanner.at(scanner.index)
                scanner.index += 1
                if byte == UInt8(ascii: "}") { break }
                guard byte == UInt8(ascii: ",") else {
                    scanner.index -= 1
                    throw scanner.fail(.syntax)
                }
                scanner.skipWhitespace()
            }
        }
        guard scanner.index == buffer.count else { throw scanner.fail(.trailingGarbage) }
        if unknownNonASCII {
            // The last value of every unknown key decides (Python dict semantics).
            var last: [[UInt8]: Bool] = [:]
            for entry in unknownKeys {
                let name = decodeString(base, buffer, entry.keyStart, entry.keyEnd, escaped: entry.keyEscaped)
                last[name] = entry.nonASCII
            }
            if last.values.contains(true) { throw HelloDecodingError(.nonASCIIString) }
        }
        for key in HelloKey.allCases {
            if case .string(_, _, _, false) = slots[key] { throw HelloDecodingError(.nonASCIIString, key: key) }
        }
        return try validate(slots, buffer, base)
    }

    /// The decoded bytes of the string between `start` and `end` (UTF-8; escapes resolved). Allocates.
    static func decodeString(
        _ base: ArraySlice<UInt8>, _ buffer: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int, escaped: Bool
    ) -> [UInt8] {
        let raw = base[(base.startIndex + start)..<(base.startIndex + end)]
        guard escaped else { return Array(raw) }
        var output: [UInt8] = []
        output.reserveCapacity(end - start)
        var index = start
        func hex4(_ at: Int) -> UInt32 {
            var value: UInt32 = 0
            for offset in 0..<4 { value = value << 4 | (HelloJSONScanner.hex(buffer[at + offset]) ?? 0) }
            return value
        }
        while index < end {
            let byte = buffer[index]
            guard byte == UInt8(ascii: "\\") else {
                output.append(byte)
                index += 1
                continue
            }
            let next = buffer[index + 1]
            index += 2
            var scalar: UInt32
            switch next {
            case UInt8(ascii: "b"): scalar = 0x08
            case UInt8(ascii: "f"): scalar = 0x0C
            case UInt8(ascii: "n"): scalar = 0x0A
            case UInt8(ascii: "r"): scalar = 0x0D
            case UInt8(ascii: "t"): scalar = 0x09
            case UInt8(ascii: "u"):
                scalar = hex4(index)
                index += 4
                if scalar >= 0xD800 && scalar <= 0xDBFF {
                    let low = hex4(index + 2)
                    index += 6
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                }
            default: scalar = UInt32(next)
            }
            output.append(contentsOf: String(Character(Unicode.Scalar(scalar) ?? "?")).utf8)
        }
        return output
    }

    /// Applies PROTOCOL.md 2.5's table to the known keys' values.
    static func validate(
        _ slots: HelloSlots, _ buffer: UnsafeBufferPointer<UInt8>, _ base: ArraySlice<UInt8>
    ) throws(HelloDecodingError) -> HelloFrame {
        func invalid(_ key: HelloKey) -> HelloDecodingError { HelloDecodingError(.invalidValue, key: key) }
        func required(_ key: HelloKey) throws(HelloDecodingError) -> HelloRawValue {
            if case .absent = slots[key] { throw HelloDecodingError(.missingKey, key: key) }
            return slots[key]
        }
        func integer(_ value: HelloRawValue, _ key: HelloKey, _ range: ClosedRange<Int64>) throws(HelloDecodingError)
            -> Int64
        {
            guard case .number(let number) = value, let result = number.integer(in: range) else { throw invalid(key) }
            return result
        }
        func optionalInteger(_ key: HelloKey, _ range: ClosedRange<Int64>) throws(HelloDecodingError) -> Int64? {
            if case .absent = slots[key] { return nil }
            return try integer(slots[key], key, range)
        }
        func boolLike(_ value: HelloRawValue, _ key: HelloKey) throws(HelloDecodingError) -> Bool {
            switch value {
            case .bool(let flag): return flag
            case .number(let number) where number.equals(1): return true
            case .number(let number) where number.equals(0): return false
            default: throw invalid(key)
            }
        }
        func sack(_ value: HelloRawValue, _ key: HelloKey) throws(HelloDecodingError) -> SACK {
            guard case .string(let start, let end, let escaped, _) = value else { throw invalid(key) }
            let parsed: SACK?
            if escaped {
                parsed = SACK(decoding: ArraySlice(decodeString(base, buffer, start, end, escaped: true)))
            } else {
                parsed = SACK(decoding: base[(base.startIndex + start)..<(base.startIndex + end)])
            }
            guard let parsed else { throw invalid(key) }
            return parsed
        }

        let transportNumber = try integer(try required(.tnum), .tnum, 0...maxProtocolInteger)
        guard case .number(let version) = try required(.ver), version.equals(2) else { throw invalid(.ver) }
        var format: Int?
        switch slots[.format] {
        case .absent: format = nil
        case .number(let number) where number.equals(2): format = 2
        case .number(let number) where number.equals(3): format = 3
        default: throw invalid(.format)
        }
        var requestNewStream = false
        if case .absent = slots[.new] {} else { requestNewStream = try boolLike(slots[.new], .new) }
        guard case .string(let idStart, let idEnd, let idEscaped, _) = try required(.id) else { throw invalid(.id) }
        let streamID: StreamID?
        if idEscaped {
            streamID = StreamID(bytes: decodeString(base, buffer, idStart, idEnd, escaped: true))
        } else {
            streamID = StreamID(bytes: UnsafeBufferPointer(rebasing: buffer[idStart..<idEnd]))
        }
        guard let streamID else { throw invalid(.id) }
        let streaming = try boolLike(try required(.ming), .ming)
        let pad = try optionalInteger(.pad, 0...16384)
        let maxb = try optionalInteger(.maxb, 0...maxProtocolInteger)
        let maxt = try optionalInteger(.maxt, 0...maxProtocolInteger)
        let maxia = try integer(try required(.maxia), .maxia, 0...600)
        var tcpack: Bool?
        if case .bool(let flag) = slots[.tcpack] { tcpack = flag }
        let succeeds: SucceedsTransport
        switch slots[.eeds] {
        case .absent: succeeds = .absent
        case .null: succeeds = .none
        default: succeeds = .transport(try integer(slots[.eeds], .eeds, 0...maxProtocolInteger))
        }
        var clientSack: SACK?
        if case .absent = slots[.sack] {} else { clientSack = try sack(slots[.sack], .sack) }
        let seenack = try sack(try required(.seenack), .seenack)

        var hello = HelloFrame(
            transportNumber: transportNumber, streamID: streamID, streamingResponse: streaming,
            maxInactivity: Int(maxia), lastSackSeenByClient: seenack)
        hello.httpFormat = format
        hello.requestNewStream = requestNewStream
        hello.needPaddingBytes = Int(pad ?? 0)
        hello.maxReceiveBytes = maxb ?? maxProtocolInteger
        hello.maxOpenTime = maxt
        hello.useMyTcpAcks = tcpack
        hello.succeedsTransport = succeeds
        hello.sack = clientSack
        return hello
    }

    /// The hello as a socket transport uses it: `ming` forced true, `maxb` 2^53, no `maxt` (PROTOCOL.md 2.5).
    /// - Returns: the sanitised copy.
    public func sanitizedForSocket() -> HelloFrame {
        var copy = self
        copy.streamingResponse = true
        copy.maxReceiveBytes = maxProtocolInteger
        copy.maxOpenTime = nil
        return copy
    }

    /// Appends the hello as compact JSON (without the `H`) in the original client's key order (PROTOCOL.md 7.3).
    ///
    /// `tnum`, `ver`, `id`, `ming`, `maxia` and `seenack` are always written; `format`, `maxt`, `tcpack`, `sack`
    /// when non-nil; `new` when true; `pad` when not 0; `maxb` when not 2^53; `eeds` unless absent.
    /// - Parameters:
    ///   - buffer: the output.
    ///   - keys: restricts the keys written (for tests reproducing partial hellos); default every key.
    public func encode(into buffer: inout [UInt8], keys: HelloKeys = .all) {
        var first = true
        func key(_ key: HelloKey, _ name: StaticString, _ buffer: inout [UInt8]) -> Bool {
            guard keys.contains(HelloKeys(key)) else { return false }
            buffer.append(first ? UInt8(ascii: "{") : UInt8(ascii: ","))
            first = false
            buffer.append(UInt8(ascii: "\""))
            name.withUTF8Buffer { buffer.append(contentsOf: $0) }
            buffer.append(UInt8(ascii: "\""))
            buffer.append(UInt8(ascii: ":"))
            return true
        }
        func bool(_ value: Bool, _ buffer: inout [UInt8]) {
            let word: StaticString = value ? "true" : "false"
            word.withUTF8Buffer { buffer.append(contentsOf: $0) }
        }
        func quotedSACK(_ sack: SACK, _ buffer: inout [UInt8]) {
            buffer.append(UInt8(ascii: "\""))
            sack.encode(into: &buffer)
            buffer.append(UInt8(ascii: "\""))
        }
        if key(.tnum, "tnum", &buffer) { ProtocolInteger.append(transportNumber, to: &buffer) }
        if key(.ver, "ver", &buffer) { ProtocolInteger.append(Int64(protocolVersion), to: &buffer) }
        if let httpFormat, key(.format, "format", &buffer) { ProtocolInteger.append(Int64(httpFormat), to: &buffer) }
        if requestNewStream, key(.new, "new", &buffer) { bool(true, &buffer) }
        if key(.id, "id", &buffer) {
            buffer.append(UInt8(ascii: "\""))
            let start = buffer.count
            streamID.append(to: &buffer)
            // Client ids are alphanumeric; escape in place only in the rare case that it is needed.
            if buffer[start...].contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
                let raw = Array(buffer[start...])
                buffer.removeSubrange(start...)
                for byte in raw { Self.appendEscaped(byte, to: &buffer) }
            }
            buffer.append(UInt8(ascii: "\""))
        }
        if key(.ming, "ming", &buffer) { bool(streamingResponse, &buffer) }
        if needPaddingBytes != 0, key(.pad, "pad", &buffer) {
            ProtocolInteger.append(Int64(needPaddingBytes), to: &buffer)
        }
        if maxReceiveBytes != maxProtocolInteger, key(.maxb, "maxb", &buffer) {
            ProtocolInteger.append(maxReceiveBytes, to: &buffer)
        }
        if let maxOpenTime, key(.maxt, "maxt", &buffer) { ProtocolInteger.append(maxOpenTime, to: &buffer) }
        if key(.maxia, "maxia", &buffer) { ProtocolInteger.append(Int64(maxInactivity), to: &buffer) }
        if let useMyTcpAcks, key(.tcpack, "tcpack", &buffer) { bool(useMyTcpAcks, &buffer) }
        switch succeedsTransport {
        case .absent: break
        case .none:
            if key(.eeds, "eeds", &buffer) {
                let word: StaticString = "null"
                word.withUTF8Buffer { buffer.append(contentsOf: $0) }
            }
        case .transport(let number):
            if key(.eeds, "eeds", &buffer) { ProtocolInteger.append(number, to: &buffer) }
        }
        if let sack, key(.sack, "sack", &buffer) { quotedSACK(sack, &buffer) }
        if key(.seenack, "seenack", &buffer) { quotedSACK(lastSackSeenByClient, &buffer) }
        if first { buffer.append(UInt8(ascii: "{")) }
        buffer.append(UInt8(ascii: "}"))
    }

    /// Appends one ASCII byte of a JSON string, escaped the way JavaScript's `JSON.stringify` does.
    static func appendEscaped(_ byte: UInt8, to buffer: inout [UInt8]) {
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"):
            buffer.append(UInt8(ascii: "\\"))
            buffer.append(byte)
        case 0x08: buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
        case 0x0C: buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
        case 0x0A: buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
        case 0x0D: buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
        case 0x09: buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
        case 0..<0x20:
            let digits: StaticString = "0123456789abcdef"
            buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
            digits.withUTF8Buffer { hex in
                buffer.append(hex[Int(byte >> 4)])
                buffer.append(hex[Int(byte & 0xF)])
            }
        default:
            buffer.append(byte)
        }
    }
}
