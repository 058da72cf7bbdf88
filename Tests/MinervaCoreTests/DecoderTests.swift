import MinervaCore
import MinervaTestSupport
import Testing

// PROTOCOL.md 3 and 9 group C (socket mode detection and framing, codec level), plus the HTTP body decoder.

// MARK: - Helpers

/// Splits `input` into chunks of `size` bytes.
func chunks(_ input: [UInt8], of size: Int) -> [[UInt8]] {
    stride(from: 0, to: input.count, by: size).map { Array(input[$0..<min($0 + size, input.count)]) }
}

/// Every way to cut `input` into two pieces, plus one-byte pieces.
func splits(_ input: [UInt8]) -> [[[UInt8]]] {
    (0...input.count).map { [Array(input[..<$0]), Array(input[$0...])] } + [chunks(input, of: 1)]
}

/// The outcome of an HTTP body fed in `pieces`: frames as byte arrays, or the failure.
func newlineOutcome(_ pieces: [[UInt8]], maxLength: Int = maxFrameLength) -> Result<[[UInt8]], FramingError> {
    var decoder = NewlineFrameDecoder(maxLength: maxLength)
    for piece in pieces { decoder.append(piece) }
    return decoder.finish().map { $0.map { Array($0) } }
}

/// The int32-framed form of `frames`.
func int32Framed(_ frames: [[UInt8]]) -> [UInt8] { frames.flatMap(int32Frame) }

/// What a socket pipeline (detector, then int32 decoder) made of `pieces`.
struct SocketOutcome: Equatable {
    var decisions: [String] = []
    var frames: [[UInt8]] = []
    var failure: FramingError?
}

/// Feeds `pieces` through mode detection and int32 framing like a server would.
func socketOutcome(_ pieces: [[UInt8]], policy: [UInt8]? = nil, earlyRejection: Bool = true) -> SocketOutcome {
    var detector = SocketModeDetector(policy: policy, now: 0, earlyRejection: earlyRejection)
    var decoder = Int32FrameDecoder()
    var outcome = SocketOutcome()
    var inInt32 = false
    func framesOf(_ bytes: some Sequence<UInt8>) {
        guard outcome.failure == nil else { return }
        switch decoder.receive(bytes) {
        case .success(let frames): outcome.frames += frames.map { Array($0) }
        case .failure(let error): outcome.failure = error
        }
    }
    for piece in pieces {
        if inInt32 {
            framesOf(piece)
            continue
        }
        switch detector.receive(piece) {
        case .needMoreBytes: break
        case .policyFile(let response): outcome.decisions.append("policy:" + String(decoding: response, as: UTF8.self))
        case .int32(let remainder):
            outcome.decisions.append("int32")
            inInt32 = true
            framesOf(remainder)
        case .abort(let reason): outcome.decisions.append("abort:\(reason)")
        case .ignore: break
        }
    }
    return outcome
}

// MARK: - HTTP bodies

@Test func newlineDecoderSplitsCRLFAndIgnoresTheRemainder() {
    let body = bytes("a \r\nb \r\r\n\n|-1A\nunterminated")
    let expected = [bytes("a "), bytes("b \r"), [], bytes("|-1A")]
    for pieces in splits(body) {
        #expect((try? newlineOutcome(pieces).get()) == expected)
    }
    var decoder = NewlineFrameDecoder()
    decoder.append(body)
    #expect(decoder.hasUnterminatedRemainder)
    #expect((try? NewlineFrameDecoder.decodeBody(bytes("x \n")).get())?.map { Array($0) } == [bytes("x ")])
    #expect((try? NewlineFrameDecoder.decodeBody([UInt8]()).get())?.isEmpty == true)
    #expect((try? NewlineFrameDecoder.decodeBody(bytes("no newline")).get())?.isEmpty == true)
    // A lone \r elsewhere stays.
    #expect(
        (try? NewlineFrameDecoder.decodeBody(bytes("a\rb \n\r\n")).get())?.map { Array($0) } == [bytes("a\rb "), []])
}

@Test func newlineDecoderLimitAtEverySplitPoint() {
    // With a limit of 4: lines of 4 pass (also as 4 + \r\n), 5 fail the whole body, even frames before them.
    let limit = 4
    let valid = bytes("abcd\nabcd\r\nab\n1234")
    for pieces in splits(valid) {
        #expect((try? newlineOutcome(pieces, maxLength: limit).get()) == [bytes("abcd"), bytes("abcd"), bytes("ab")])
    }
    for body in [bytes("ab\nabcde\nab\n"), bytes("ab\nabcde\r\n"), bytes("ab\nabcde"), bytes("ab\nabcd\r\r\n")] {
        for pieces in splits(body) {
            if case .success = newlineOutcome(pieces, maxLength: limit) {
                Issue.record("accepted \(body) split \(pieces.map { $0.count })")
            }
        }
    }
    // An unterminated remainder of exactly the limit is just ignored; one byte more is corruption.
    #expect((try? newlineOutcome([bytes("ab\nabcd")], maxLength: limit).get()) == [bytes("ab")])
    #expect((try? newlineOutcome([bytes("ab\nabcd\r")], maxLength: limit).get()) == nil)
}

@Test func newlineDecoderReportsCorruptionEarly() {
    var decoder = NewlineFrameDecoder(maxLength: 4)
    let result1 = decoder.append(bytes("ab\nabcd\r"))
    #expect(result1)  // could still end with \n
    let result2 = decoder.append(bytes("x"))
    #expect(!result2)
    #expect(decoder.failure != nil)
    var other = NewlineFrameDecoder(maxLength: 4)
    let result3 = other.append(bytes("abcde"))
    #expect(result3 == false)
    var reused = NewlineFrameDecoder(maxLength: 4)
    reused.append(bytes("abcdef\n"))
    reused.reset()
    reused.append(bytes("ok \n"))
    #expect((try? reused.finish().get())?.map { Array($0) } == [bytes("ok ")])
}

@Test func newlineDecoderOneMebibyte() {
    let line = [UInt8](repeating: UInt8(ascii: "x"), count: maxFrameLength)
    #expect((try? newlineOutcome([line + [0x0A]]).get())?.first?.count == maxFrameLength)
    #expect((try? newlineOutcome([line + [0x0D, 0x0A]]).get())?.first?.count == maxFrameLength)
    #expect((try? newlineOutcome([bytes("a \n"), line, [0x78, 0x0A]]).get()) == nil)
    if case .failure(let error) = newlineOutcome([bytes("a \n"), line + [0x78, 0x0A]]) {
        #expect(error.killReason == .frameCorruption)
    } else {
        Issue.record("over-long line accepted")
    }
    #expect((try? newlineOutcome([bytes("a \n"), line]).get()) == [bytes("a ")])
    #expect((try? newlineOutcome([bytes("a \n"), line + [0x78]]).get()) == nil)
    // A few split points across the long line.
    for split in [1, 4095, maxFrameLength - 1, maxFrameLength, maxFrameLength + 1] {
        let body = bytes("s \n") + line + [0x0A]
        let pieces = [Array(body[..<split]), Array(body[split...])]
        #expect((try? newlineOutcome(pieces).get())?.count == 2)
    }
}

@Test func newlineDecoderDribbledBytesAreScannedOnce() {
    // 300,000 single-byte appends without a newline: quadratic rescanning would take minutes.
    var decoder = NewlineFrameDecoder()
    let piece: [UInt8] = [UInt8(ascii: "z")]
    for _ in 0..<300_000 { decoder.append(piece) }
    decoder.append(bytes(" \n"))
    #expect((try? decoder.finish().get())?.first?.count == 300_001)
}

// MARK: - Sockets

@Test func case28_undecidedBytesAbortAt512() {
    let spaces = [UInt8](repeating: 0x20, count: 512)
    for size in [1, 2, 200, 511, 512] {
        var detector = SocketModeDetector(now: 0, earlyRejection: false)
        var received = 0
        for piece in chunks(spaces, of: size) {
            received += piece.count
            let decision = detector.receive(piece)
            if received < 512 {
                #expect(decision == .needMoreBytes, "size \(size) at \(received)")
            } else {
                #expect(decision == .abort(.tooManyBytes), "size \(size)")
            }
        }
        let result4 = detector.receive(bytes("more"))
        #expect(result4 == .ignore)
    }
    // With early rejection (the default), the first byte that matches no prefix aborts.
    var early = SocketModeDetector(now: 0)
    let result5 = early.receive([0x20])
    #expect(result5 == .abort(.unrecognizedPrefix))
    var almost = SocketModeDetector(now: 0)
    let result6 = almost.receive(bytes("<int32/"))
    #expect(result6 == .needMoreBytes)
    let result7 = almost.receive(bytes(">\r"))
    #expect(result7 == .abort(.unrecognizedPrefix))
    var policyThenWrong = SocketModeDetector(now: 0)
    let result8 = policyThenWrong.receive(bytes("<policy-file-request/>"))
    #expect(result8 == .needMoreBytes)
    let result9 = policyThenWrong.receive(bytes("\n"))
    #expect(result9 == .abort(.unrecognizedPrefix))
}

@Test func case29_policyFileRequest() {
    let request = SocketModeDetector.policyFileRequest
    #expect(request.count == 23 && request.last == 0)
    for size in 1...19 {
        let outcome = socketOutcome(chunks(request, of: size), policy: bytes("<nonsense-policy/>"))
        #expect(outcome.decisions == ["policy:<nonsense-policy/>\u{0}"], "size \(size)")
        #expect(outcome.frames.isEmpty)
    }
    var unconfigured = SocketModeDetector(now: 0)
    let result10 = unconfigured.receive(request)
    #expect(result10 == .policyFile(response: [0]))
}

@Test func case30_policyFileRequestPlusGarbage() {
    let input = SocketModeDetector.policyFileRequest + bytes("BLAH, BLAH, BLAH")
    for pieces in splits(input) {
        let outcome = socketOutcome(pieces, policy: bytes("<nonsense-policy/>"))
        #expect(outcome.decisions == ["policy:<nonsense-policy/>\u{0}"])
    }
    var detector = SocketModeDetector(policy: bytes("<p/>"), now: 0)
    let result11 = detector.receive(input)
    #expect(result11 == .policyFile(response: bytes("<p/>") + [0]))
    let result12 = detector.receive(bytes("<int32/>\n"))
    #expect(result12 == .ignore)
}

@Test func case31_int32ModeWithNulStreamID() throws {
    let nulID = "\"" + String(repeating: "\\u0000", count: 26) + "\""
    let hello = bytes(helloJSON([.set("id", nulID), .remove("new")]) + "H")
    let input = SocketModeDetector.int32Prefix + int32Framed([hello])
    for size in 1...19 {
        let outcome = socketOutcome(chunks(input, of: size))
        #expect(outcome.decisions == ["int32"] && outcome.frames == [hello] && outcome.failure == nil, "size \(size)")
    }
    guard case .hello(let decoded) = try Frame.decode(ArraySlice(hello), direction: .clientToServer).get() else {
        Issue.record("not a hello")
        return
    }
    #expect(decoded.streamID == StreamID(bytes: [UInt8](repeating: 0, count: 26)))
    #expect(!decoded.requestNewStream)
}

@Test func case32_int32FrameCorruption() {
    let input = SocketModeDetector.int32Prefix + bytes("1:xxxxxxxx")
    for pieces in splits(input) {
        let outcome = socketOutcome(pieces)
        #expect(outcome.decisions == ["int32"])
        #expect(outcome.failure?.killReason == .frameCorruption)
        #expect(outcome.failure?.length == 0x313A_7878)
        #expect(outcome.frames.isEmpty)
    }
    // After corruption nothing more is decoded.
    var decoder = Int32FrameDecoder()
    _ = decoder.receive(bytes("1:xx"))
    if case .success = decoder.receive(int32Framed([bytes("?")])) { Issue.record("decoded after corruption") }
}

@Test func case33_int32LengthLimit() {
    var tooLong = Int32FrameDecoder()
    let result13 = tooLong.receive([0x00, 0x10, 0x00])
    #expect((try? result13.get())?.isEmpty == true)
    if case .failure(let error) = tooLong.receive([0x01]) {
        #expect(error.length == 1_048_577)
    } else {
        Issue.record("1048577 accepted")
    }
    var limit = Int32FrameDecoder()
    let result14 = limit.receive([0x00, 0x10, 0x00, 0x00])
    #expect((try? result14.get())?.isEmpty == true)
    let payload = [UInt8](repeating: 0x20, count: maxFrameLength)
    let result15 = limit.receive(payload[..<(maxFrameLength - 1)])
    #expect((try? result15.get())?.isEmpty == true)
    #expect(limit.bufferedByteCount == maxFrameLength + 3)
    let result16 = limit.receive(payload[(maxFrameLength - 1)...])
    #expect((try? result16.get())?.first?.count == maxFrameLength)
    #expect(limit.bufferedByteCount == 0)
}

@Test func int32ChunkWithFramesThenCorruptionYieldsNone() {
    var decoder = Int32FrameDecoder()
    let chunk = int32Framed([bytes("a "), bytes("b ")]) + [0x7F, 0, 0, 0]
    if case .success(let frames) = decoder.receive(chunk) {
        Issue.record("frames \(frames.count) handed out before corruption")
    }
    // Frames of earlier chunks were handed out; the corrupt chunk's are not.
    var split = Int32FrameDecoder()
    let result17 = split.receive(int32Framed([bytes("a ")]))
    #expect((try? result17.get())?.count == 1)
    let result18 = split.receive(int32Framed([bytes("b ")]) + [0x7F, 0, 0, 0])
    #expect((try? result18.get()) == nil)
}

@Test func int32EverySplitPoint() {
    let frames = [bytes("{}H"), [], bytes("hello "), [UInt8](repeating: 0x41, count: 300), bytes("|-1A")]
    let stream = SocketModeDetector.int32Prefix + int32Framed(frames)
    for pieces in splits(stream) {
        let outcome = socketOutcome(pieces)
        #expect(outcome.decisions == ["int32"] && outcome.frames == frames && outcome.failure == nil)
    }
    // Three-way splits around the prefix boundary.
    for first in 0...12 {
        for second in first...min(first + 8, stream.count) {
            let pieces = [Array(stream[..<first]), Array(stream[first..<second]), Array(stream[second...])]
            #expect(socketOutcome(pieces).frames == frames)
        }
    }
}

@Test func int32EncodingRoundTrips() {
    var out: [UInt8] = []
    let frames: [Frame] = [.streamCreated, .sack(.initial), .string(slice("x y")), .transportKill(.rwinOverflow)]
    for frame in frames { frame.encodeLengthPrefixed(into: &out) }
    var decoder = Int32FrameDecoder()
    let decoded = (try? decoder.receive(out).get())?.map { try? Frame.decode($0, direction: .serverToClient).get() }
    #expect(decoded == frames)
    var lines: [UInt8] = []
    for frame in frames { frame.encodeLine(into: &lines) }
    #expect(String(decoding: lines, as: UTF8.self) == "C\n|-1A\nx y \nrwin_overflowK\n")
}

@Test func socketModeDetectionTimeout() {
    var detector = SocketModeDetector(now: 100, timeout: 30)
    #expect(detector.deadline == 130)
    let result19 = detector.receive(bytes("<in"))
    #expect(result19 == .needMoreBytes)
    let result20 = detector.checkTimeout(now: 129.9)
    #expect(result20 == nil)
    let result21 = detector.checkTimeout(now: 130)
    #expect(result21 == .abort(.timeout))
    #expect(!detector.isDetecting)
    let result22 = detector.receive(bytes("t32/>\n"))
    #expect(result22 == .ignore)
    var decided = SocketModeDetector(now: 0, timeout: 1)
    let result23 = decided.receive(SocketModeDetector.int32Prefix)
    #expect(result23 == .int32(remainder: []))
    let result24 = decided.checkTimeout(now: 5)
    #expect(result24 == nil)
    let result25 = decided.receive(bytes("ab"))
    #expect(result25 == .int32(remainder: ArraySlice(bytes("ab"))))
}

@Test func newlineStreamingReceiveAtEverySplitPoint() {
    let response = bytes(";)]}^\r\nC\n|-1A\nhello \npartial")
    let expected = [bytes(";)]}^"), bytes("C"), bytes("|-1A"), bytes("hello ")]
    for pieces in splits(response) {
        var decoder = NewlineFrameDecoder()
        var frames: [[UInt8]] = []
        for piece in pieces {
            if case .success(let completed) = decoder.receive(piece) { frames += completed.map { Array($0) } }
        }
        #expect(frames == expected)
    }
    // Frames are handed out as soon as their line ends; an over-long line stops decoding.
    var decoder = NewlineFrameDecoder(maxLength: 4)
    let first = decoder.receive(bytes("ab\nabc"))
    #expect((try? first.get())?.map { Array($0) } == [bytes("ab")])
    let second = decoder.receive(bytes("de"))
    #expect((try? second.get()) == nil)
    let third = decoder.receive(bytes("\nok\n"))
    #expect((try? third.get()) == nil)
}

@Test func case34_zeroLengthInt32FrameIsAnInvalidFrame() {
    var decoder = Int32FrameDecoder()
    let result = decoder.receive(int32Framed([bytes(helloJSON() + "H"), []]))
    guard case .success(let frames) = result, frames.count == 2 else {
        Issue.record("expected two frames")
        return
    }
    if case .success(.hello) = Frame.decode(frames[0], direction: .clientToServer) {
    } else {
        Issue.record("first frame is not a hello")
    }
    if case .failure(let error) = Frame.decode(frames[1], direction: .clientToServer) {
        #expect(error.kind == .emptyFrame && error.frameType == nil)
    } else {
        Issue.record("zero-length frame accepted")
    }
}

@Test func errorDescriptionsAreReadableAndLeakNoPayload() {
    if case .failure(let error) = decode(bytes: [0x73, 0x65, 0x63, 0x72, 0x65, 0x74, 0x01]) {
        #expect(error.description == "unknown frame type (type 0x1)")
    }
    let json = helloJSON([.set("tnum", "-1")])
    if case .failure(let error) = decode(json + "H", .clientToServer) {
        #expect(error.description == "invalid hello: invalid value for key tnum (type 'H')")
        #expect(!error.description.contains("xxxx"))
    } else {
        Issue.record("negative tnum accepted")
    }
    if case .failure(let error) = NewlineFrameDecoder.decodeBody(bytes("abcdef\n"), maxLength: 4) {
        #expect(error.description == "frame_corruption: line of 6 bytes")
    }
}
