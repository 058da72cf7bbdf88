// The framing layers (PROTOCOL.md 3): newline-delimited frames in HTTP bodies, int32 length-prefixed frames on
// sockets, and the detection of a socket's mode from its first bytes. The decoders own their input buffer and hand
// out frames as slices of it; nothing is rescanned when bytes arrive in small pieces.

/// Why bytes could not be split into frames; always means `frame_corruption` (PROTOCOL.md 3.3).
public struct FramingError: Error, Hashable, Sendable, CustomStringConvertible {
    @usableFromInline
    enum Code: UInt8, Sendable { case lineTooLong, remainderTooLong, lengthPrefixTooLarge }

    @usableFromInline let code: Code
    /// The over-long length: the line's, the remainder's, or the declared one.
    public let length: Int

    @usableFromInline
    init(_ code: Code, length: Int) {
        self.code = code
        self.length = length
    }

    /// The kill reason to send: always `frame_corruption`.
    public var killReason: KillReason { .frameCorruption }

    /// A short explanation for logs.
    public var description: String {
        switch code {
        case .lineTooLong: return "frame_corruption: line of \(length) bytes"
        case .remainderTooLong: return "frame_corruption: unterminated remainder of \(length) bytes"
        case .lengthPrefixTooLarge: return "frame_corruption: length prefix \(length)"
        }
    }
}

/// Frames cut from a decoder's buffer: a collection of slices (no copies).
///
/// - Warning: the slices share the decoder's storage. Drop them before feeding the decoder again, or the decoder's
///   next mutation has to copy its buffer.
public struct DecodedFrames: RandomAccessCollection, Sendable {
    @usableFromInline let storage: [UInt8]
    @usableFromInline let ranges: ArraySlice<Range<Int>>

    @usableFromInline
    init(storage: [UInt8], ranges: ArraySlice<Range<Int>>) {
        self.storage = storage
        self.ranges = ranges
    }

    /// An empty result.
    public static let empty = DecodedFrames(storage: [], ranges: [])

    /// The first position.
    @inlinable public var startIndex: Int { ranges.startIndex }
    /// One past the last position.
    @inlinable public var endIndex: Int { ranges.endIndex }
    /// The frame at `position`.
    @inlinable public subscript(position: Int) -> ArraySlice<UInt8> { storage[ranges[position]] }
}

// MARK: - HTTP bodies

/// Splits an HTTP request body into frames (PROTOCOL.md 3.1): each frame ends with `\n`, a `\r` right before it is
/// dropped (`\r\n` -> `\n`), a final unterminated line is ignored, a frame may have at most 1 MiB; one longer line
/// (or an unterminated remainder longer than that) fails the whole body with `frame_corruption`, so no frame is
/// handed out before ``finish()``.
///
/// Feed it with ``append(_:)`` as bytes arrive; each byte is scanned once.
public struct NewlineFrameDecoder: Sendable {
    /// The longest frame accepted (without its delimiter).
    public let maxLength: Int
    /// The body received so far.
    public private(set) var body: [UInt8] = []
    /// The first failure, once the body can no longer be valid.
    public private(set) var failure: FramingError?
    @usableFromInline var ranges: [Range<Int>] = []
    @usableFromInline var lineStart = 0
    @usableFromInline var scanned = 0

    /// Creates a decoder.
    /// - Parameter maxLength: the frame limit, 1 MiB by default.
    public init(maxLength: Int = maxFrameLength) { self.maxLength = maxLength }

    /// Adds body bytes and scans them (only them).
    /// - Parameter bytes: the next piece of the body.
    /// - Returns: false once the body is known to be corrupt (the caller may stop reading it).
    @discardableResult
    public mutating func append(_ bytes: some Sequence<UInt8>) -> Bool {
        guard failure == nil else { return false }
        body.append(contentsOf: bytes)
        scan()
        return failure == nil
    }

    @usableFromInline
    mutating func scan() {
        let count = body.count
        body.withUnsafeBufferPointer { buffer in
            var index = scanned
            while index < count {
                if buffer[index] == UInt8(ascii: "\n") {
                    var end = index
                    if end > lineStart && buffer[end - 1] == UInt8(ascii: "\r") { end -= 1 }
                    if end - lineStart > maxLength {
                        failure = FramingError(.lineTooLong, length: end - lineStart)
                        return
                    }
                    ranges.append(lineStart..<end)
                    lineStart = index + 1
                }
                index += 1
            }
            scanned = count
            // An unterminated line that can no longer end within the limit (one `\r` may still be dropped).
            let remainder = count - lineStart
            if remainder > maxLength + 1 || (remainder == maxLength + 1 && buffer[count - 1] != UInt8(ascii: "\r")) {
                failure = FramingError(.remainderTooLong, length: remainder)
            }
        }
    }

    /// Streaming use, for a client reading a response as it arrives (PROTOCOL.md 3.1, client side): takes a chunk
    /// and hands out the lines it completed at once (each without its `\n` and one trailing `\r`). Do not mix with
    /// ``append(_:)`` and ``finish()`` on the same decoder.
    /// - Parameter chunk: the next bytes of the response.
    /// - Returns: the completed frames (slices valid until the next call), or `frame_corruption` once a line is
    ///   longer than the limit (then for every later call: stop decoding).
    public mutating func receive(_ chunk: some Sequence<UInt8>) -> Result<DecodedFrames, FramingError> {
        if let failure { return .failure(failure) }
        if lineStart > 0 {
            body.removeSubrange(0..<lineStart)
            scanned -= lineStart
            lineStart = 0
        }
        ranges.removeAll(keepingCapacity: true)
        body.append(contentsOf: chunk)
        scan()
        if let failure {
            ranges.removeAll(keepingCapacity: true)
            return .failure(failure)
        }
        return .success(DecodedFrames(storage: body, ranges: ranges[...]))
    }

    /// Whether bytes after the last `\n` were received (they will be ignored; the original logs this as unusual).
    public var hasUnterminatedRemainder: Bool { lineStart < body.count }

    /// Ends the body.
    /// - Returns: every frame (possibly none), or `frame_corruption` if any line or the remainder was too long.
    public func finish() -> Result<DecodedFrames, FramingError> {
        if let failure { return .failure(failure) }
        let remainder = body.count - lineStart
        if remainder > maxLength { return .failure(FramingError(.remainderTooLong, length: remainder)) }
        return .success(DecodedFrames(storage: body, ranges: ranges[...]))
    }

    /// Forgets the body, keeping the buffers' capacity up to 64 KiB of body and 4,096 frames (drop the frames of
    /// ``finish()`` first): one 2 MiB body of tiny strings must not pin 6 MB for the decoder's life.
    public mutating func reset() {
        body.removeAll(keepingCapacity: body.capacity <= 65_536)
        ranges.removeAll(keepingCapacity: ranges.capacity <= 4_096)
        lineStart = 0
        scanned = 0
        failure = nil
    }

    /// Splits a complete body at once.
    /// - Parameters:
    ///   - body: the whole request body.
    ///   - maxLength: the frame limit.
    /// - Returns: the frames, or `frame_corruption`.
    public static func decodeBody(
        _ body: some Sequence<UInt8>, maxLength: Int = maxFrameLength
    ) -> Result<DecodedFrames, FramingError> {
        var decoder = NewlineFrameDecoder(maxLength: maxLength)
        decoder.append(body)
        return decoder.finish()
    }
}

// MARK: - Sockets: int32 framing

/// Splits a socket's byte stream into int32 length-prefixed frames (PROTOCOL.md 3.2): a 4-byte big-endian length,
/// then that many bytes. A declared length above 1 MiB is `frame_corruption` as soon as its 4 bytes are present;
/// the frames completed by the same chunk are then not handed out. Zero-length frames pass (they are invalid
/// frames, for the frame decoder to say).
public struct Int32FrameDecoder: Sendable {
    /// The longest frame accepted.
    public let maxLength: Int
    @usableFromInline var buffer: [UInt8] = []
    @usableFromInline var consumed = 0
    @usableFromInline var ranges: [Range<Int>] = []
    /// The failure, after which every input is ignored.
    public private(set) var failure: FramingError?

    /// Creates a decoder.
    /// - Parameter maxLength: the frame limit, 1 MiB by default.
    public init(maxLength: Int = maxFrameLength) { self.maxLength = maxLength }

    /// Bytes received but not yet part of a complete frame.
    public var bufferedByteCount: Int { buffer.count - consumed }

    /// Takes one received chunk.
    /// - Parameter chunk: the bytes.
    /// - Returns: the frames this chunk completed (slices of the decoder's buffer, valid until the next call), or
    ///   `frame_corruption` (then and for every later call; the caller kills the transport once).
    public mutating func receive(_ chunk: some Sequence<UInt8>) -> Result<DecodedFrames, FramingError> {
        if let failure { return .failure(failure) }
        if consumed > 0 {
            buffer.removeSubrange(0..<consumed)
            consumed = 0
        }
        ranges.removeAll(keepingCapacity: true)
        buffer.append(contentsOf: chunk)
        var position = 0
        let count = buffer.count
        while count - position >= 4 {
            let length =
                Int(buffer[position]) << 24 | Int(buffer[position + 1]) << 16 | Int(buffer[position + 2]) << 8
                | Int(buffer[position + 3])
            if length > maxLength {
                failure = FramingError(.lengthPrefixTooLarge, length: length)
                ranges.removeAll(keepingCapacity: true)
                return .failure(failure!)
            }
            guard count - position - 4 >= length else { break }
            ranges.append((position + 4)..<(position + 4 + length))
            position += 4 + length
        }
        consumed = position
        return .success(DecodedFrames(storage: buffer, ranges: ranges[...]))
    }
}

extension Frame {
    /// Appends the frame followed by `\n` (HTTP mode).
    /// - Parameter buffer: the output.
    public func encodeLine(into buffer: inout [UInt8]) {
        encode(into: &buffer)
        buffer.append(UInt8(ascii: "\n"))
    }

    /// Appends the frame with its 4-byte big-endian length prefix (socket mode).
    /// - Parameter buffer: the output.
    public func encodeLengthPrefixed(into buffer: inout [UInt8]) {
        let start = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: 4))
        encode(into: &buffer)
        let length = UInt32(truncatingIfNeeded: buffer.count - start - 4)
        buffer[start] = UInt8(truncatingIfNeeded: length >> 24)
        buffer[start + 1] = UInt8(truncatingIfNeeded: length >> 16)
        buffer[start + 2] = UInt8(truncatingIfNeeded: length >> 8)
        buffer[start + 3] = UInt8(truncatingIfNeeded: length)
    }
}

// MARK: - Sockets: mode detection

/// What a socket's first bytes asked for (PROTOCOL.md 3.2).
public enum SocketModeDecision: Equatable, Sendable {
    /// Not enough bytes yet: keep reading (and keep the detection deadline).
    case needMoreBytes
    /// A Flash policy-file request: write `response` (the policy and a NUL), then ignore all input; the client
    /// closes the connection.
    case policyFile(response: [UInt8])
    /// `<int32/>\n`: int32 framing; `remainder` is the start of the frame stream.
    case int32(remainder: ArraySlice<UInt8>)
    /// Abort the connection (TCP RST when possible) without writing anything.
    case abort(SocketModeAbortReason)
    /// Input after a policy-file answer or an abort: ignore it.
    case ignore
}

/// Why mode detection gave up.
public enum SocketModeAbortReason: Equatable, Sendable {
    /// 512 bytes arrived without a known prefix (the original's rule).
    case tooManyBytes
    /// The bytes can no longer become either prefix (early rejection, PROTOCOL.md 10.8).
    case unrecognizedPrefix
    /// The detection deadline passed (PROTOCOL.md 10.8).
    case timeout
}

/// Decides the mode of a socket connection from its first bytes: policy-file request, `<int32/>\n`, or abort
/// (PROTOCOL.md 3.2 plus the recommendations of 10.8). Time is passed in (seconds on any monotonic clock).
public struct SocketModeDetector: Sendable {
    /// `<policy-file-request/>` followed by a NUL.
    public static let policyFileRequest: [UInt8] = Array("<policy-file-request/>".utf8) + [0]
    /// `<int32/>` followed by a line feed.
    public static let int32Prefix: [UInt8] = Array("<int32/>\n".utf8)
    /// The original's limit: this many unrecognised bytes abort the connection.
    public static let maxUndecidedBytes = 512
    /// The recommended detection timeout, in seconds.
    public static let defaultTimeout = 30.0

    enum State: Sendable { case detecting, policyServed, int32, aborted }

    var state = State.detecting
    var buffer: [UInt8] = []
    /// The policy answer: the configured policy (up to its first NUL, which it may not contain) and a NUL.
    public let policyResponse: [UInt8]
    /// Whether to abort as soon as the bytes cannot match either prefix (recommended); false waits for 512 bytes
    /// like the original.
    public let earlyRejection: Bool
    /// When detection times out, on the clock of `now`.
    public let deadline: Double

    /// Creates a detector for a new connection.
    /// - Parameters:
    ///   - policy: the socket policy to serve, or nil to answer a lone NUL.
    ///   - now: the current time in seconds.
    ///   - timeout: seconds until ``checkTimeout(now:)`` aborts an undecided connection.
    ///   - earlyRejection: abort as soon as no prefix can match.
    public init(
        policy: [UInt8]? = nil, now: Double, timeout: Double = defaultTimeout, earlyRejection: Bool = true
    ) {
        let policyBytes = policy ?? []
        self.policyResponse = Array(policyBytes.prefix { $0 != 0 }) + [0]
        self.deadline = now + timeout
        self.earlyRejection = earlyRejection
    }

    /// Whether the mode is still undecided.
    public var isDetecting: Bool { state == .detecting }

    /// Takes received bytes.
    /// - Parameter bytes: the chunk.
    /// - Returns: the decision. After `.int32`, feed later bytes to an ``Int32FrameDecoder`` directly (calling this
    ///   again passes them through as `.int32(remainder:)`).
    public mutating func receive(_ bytes: some Sequence<UInt8>) -> SocketModeDecision {
        switch state {
        case .policyServed, .aborted: return .ignore
        case .int32: return .int32(remainder: ArraySlice(bytes))
        case .detecting: break
        }
        buffer.append(contentsOf: bytes)
        if buffer.starts(with: Self.policyFileRequest) {
            state = .policyServed
            buffer = []
            return .policyFile(response: policyResponse)
        }
        if buffer.starts(with: Self.int32Prefix) {
            state = .int32
            let remainder = buffer[Self.int32Prefix.count...]
            buffer = []
            return .int32(remainder: remainder)
        }
        if buffer.count >= Self.maxUndecidedBytes {
            return abort(.tooManyBytes)
        }
        if earlyRejection && !Self.couldStart(buffer, Self.policyFileRequest)
            && !Self.couldStart(buffer, Self.int32Prefix)
        {
            return abort(.unrecognizedPrefix)
        }
        return .needMoreBytes
    }

    /// Aborts an undecided connection whose deadline has passed.
    /// - Parameter now: the current time in seconds.
    /// - Returns: `.abort(.timeout)` if detection is still running at or after ``deadline``, else nil.
    public mutating func checkTimeout(now: Double) -> SocketModeDecision? {
        guard state == .detecting, now >= deadline else { return nil }
        return abort(.timeout)
    }

    mutating func abort(_ reason: SocketModeAbortReason) -> SocketModeDecision {
        state = .aborted
        buffer = []
        return .abort(reason)
    }

    /// Whether `buffer` (shorter than `prefix`, or not starting with it) is still a prefix of `prefix`.
    static func couldStart(_ buffer: [UInt8], _ prefix: [UInt8]) -> Bool {
        buffer.count < prefix.count && prefix.starts(with: buffer)
    }
}
