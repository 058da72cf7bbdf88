// Cuts what the server sends to a client into frames as the bytes arrive (PROTOCOL.md 3.1, 3.2, client side):
// HTTP responses are `\n`-terminated lines (one trailing `\r` dropped), sockets are int32 length-prefixed. Unlike
// the server's request-body decoder, frames are handed out at once (a streaming response never ends), and an
// over-long frame only stops decoding; the caller closes the transport.

/// An incremental splitter of S2C bytes into frames.
struct ClientResponseSplitter {
    /// Whether frames are int32 length-prefixed (socket) rather than `\n`-terminated (HTTP).
    let lengthPrefixed: Bool
    private var buffer: [UInt8] = []
    // Start of the first byte not yet handed out.
    private var start = 0
    // Newline mode: where the search for the next `\n` resumes.
    private var scan = 0

    init(lengthPrefixed: Bool) {
        self.lengthPrefixed = lengthPrefixed
    }

    /// Adds received bytes.
    mutating func append(_ bytes: some Sequence<UInt8>) {
        if start > 0, start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
            scan = 0
        } else if start > 4096, start * 2 > buffer.count {
            buffer.removeFirst(start)
            scan -= start
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete frame, `.failure` once a frame is longer than 1 MiB, nil if no frame is complete yet.
    mutating func next() -> Result<ArraySlice<UInt8>, FrameTooLong>? {
        if lengthPrefixed {
            guard buffer.count - start >= 4 else { return nil }
            var length = 0
            for index in start..<(start + 4) { length = length << 8 | Int(buffer[index]) }
            guard length <= maxFrameLength else { return .failure(FrameTooLong()) }
            guard buffer.count - start - 4 >= length else { return nil }
            let frame = buffer[(start + 4)..<(start + 4 + length)]
            start += 4 + length
            return .success(frame)
        }
        while scan < buffer.count, buffer[scan] != UInt8(ascii: "\n") { scan += 1 }
        guard scan < buffer.count else {
            // Unterminated: too long already if more than a maximal frame plus its `\r` is pending.
            return buffer.count - start > maxFrameLength + 1 ? .failure(FrameTooLong()) : nil
        }
        var end = scan
        if end > start, buffer[end - 1] == UInt8(ascii: "\r") { end -= 1 }
        let frame = buffer[start..<end]
        scan += 1
        start = scan
        return frame.count > maxFrameLength ? .failure(FrameTooLong()) : .success(frame)
    }

    /// Marker of an over-long frame.
    struct FrameTooLong: Error {}
}
