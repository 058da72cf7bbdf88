// minerva-fuzz: the parsers that read untrusted bytes, as fuzz targets, each with invariants that trap when broken.
//
// Built by `./dev.sh fuzz` with `-sanitize=fuzzer,address -D FUZZING`: libFuzzer then drives
// `LLVMFuzzerTestOneInput` (coverage-guided, the target named by MINERVA_FUZZ_TARGET). Built normally it is a
// command that runs seeded random and mutated inputs through every target (the test suite runs it briefly), or
// replays files: `minerva-fuzz <target> [file...]`.
import Glibc
import MinervaCore
@_spi(Benchmarks) @_spi(MinervaTools) import MinervaHTTP

/// One fuzz target: bytes in, a trap if an invariant breaks.
enum FuzzTarget: String, CaseIterable {
    /// HTTP/1.1 request decoding (http-parser and the strict checks), fed in two chunks.
    case http
    /// HTTP bodies cut into frames, each decoded as C2S; what decodes must re-encode to bytes that decode the same.
    case frames
    /// Hello JSON.
    case hello
    /// Socket byte streams cut by the int32 framing.
    case int32
    /// Whole engine: the bytes as an HTTP body, then as socket frames, of transports of one engine.
    case engine
    /// HTTP responses (the client side's http-parser wrapper), fed in two chunks.
    case response
    /// Socket-mode detection (policy file, `<int32/>`, abort), fed byte by byte.
    case mode
    /// WebSocket client frames (masking, fragmentation, control frames, size limit), in chunks.
    case websocket

    func run(_ bytes: UnsafeRawBufferPointer) {
        switch self {
        case .http: fuzzHTTP(bytes)
        case .frames: fuzzFrames(bytes)
        case .hello: fuzzHello(bytes)
        case .int32: fuzzInt32(bytes)
        case .engine: fuzzEngine(bytes)
        case .response: fuzzResponse(bytes)
        case .mode: fuzzMode(bytes)
        case .websocket: fuzzWebSocket(bytes)
        }
    }
}

func check(_ condition: Bool, _ what: @autoclosure () -> String) {
    if !condition { fatalError("invariant broken: \(what())") }
}

func fuzzHTTP(_ bytes: UnsafeRawBufferPointer) {
    let probe = HTTPRequestDecoderProbe()
    let split = bytes.isEmpty ? 0 : Int(bytes[0]) % (bytes.count + 1)
    probe.feed(UnsafeRawBufferPointer(rebasing: bytes[..<split]))
    probe.feed(UnsafeRawBufferPointer(rebasing: bytes[split...]))
    if let status = probe.failureStatus {
        check([400, 405, 408, 413, 414, 417, 431, 501, 505].contains(status), "unexpected status \(status)")
    }
    check(probe.bodyByteCount <= bytes.count, "more body bytes than input")
}

func fuzzFrames(_ bytes: UnsafeRawBufferPointer) {
    guard case .success(let frames) = NewlineFrameDecoder.decodeBody(bytes) else { return }
    for frame in frames {
        guard case .success(let decoded) = Frame.decode(frame, direction: .clientToServer) else { continue }
        let again = decoded.encoded
        guard case .success(let twice) = Frame.decode(again[...], direction: .clientToServer) else {
            fatalError("a decoded frame re-encodes to bytes that do not decode: \(again)")
        }
        check(twice.encoded == again, "re-encoding is not stable")
    }
}

func fuzzHello(_ bytes: UnsafeRawBufferPointer) {
    let input = Array(bytes)
    guard case .success(let hello) = HelloFrame.decode(json: input[...]) else { return }
    var encoded: [UInt8] = []
    hello.encode(into: &encoded)
    guard case .success(let again) = HelloFrame.decode(json: encoded[...]) else {
        fatalError("an accepted hello re-encodes to an invalid one")
    }
    check(again.streamID == hello.streamID, "stream id changed")
}

func fuzzInt32(_ bytes: UnsafeRawBufferPointer) {
    var decoder = Int32FrameDecoder()
    var total = 0
    var index = 0
    while index < bytes.count {
        let size = 1 + Int(bytes[index]) % 64
        let end = min(bytes.count, index + size)
        if case .success(let frames) = decoder.receive(bytes[index..<end]) {
            for frame in frames { total += frame.count + 4 }
        }
        index = end
    }
    check(total <= bytes.count, "frames longer than the input")
}

func fuzzEngine(_ bytes: UnsafeRawBufferPointer) {
    let engine = MinervaServerEngine(now: 0) { _ in EchoHandler() }
    let prefix = Array(
        "{\"tnum\":0,\"new\":1,\"ver\":2,\"id\":\"abcdefghijklmnopqrstuv\",\"ming\":1,\"maxia\":0,\"seenack\":\"|-1\",\"eeds\":null}H\n"
            .utf8)
    let http = TransportHandle(1)
    engine.openTransport(http, kind: .http, connection: ConnectionInfo(), now: 0)
    engine.httpBodyReceived(http, body: prefix + Array(bytes), now: 0.1)
    let socket = TransportHandle(2)
    engine.openTransport(socket, kind: .socket, connection: ConnectionInfo(), now: 0.2)
    engine.socketBytesReceived(socket, bytes: Array(bytes), now: 0.3)
    engine.flush(now: 0.4)
    engine.timersDue(now: 500)
    var wrote = false
    engine.drainBorrowedActions { action in
        if case .write(let handle, let out, _) = action, handle == http, !wrote {
            wrote = true
            check(out.starts(with: Array(";)]}^\n".utf8)), "an HTTP answer without the preamble")
        }
    }
    engine.transportClosed(http, now: 600)
    engine.transportClosed(socket, now: 600)
    engine.resetIdleStreams()
}

func fuzzResponse(_ bytes: UnsafeRawBufferPointer) {
    let decoder = HTTPResponseDecoder()
    let split = bytes.isEmpty ? 0 : Int(bytes[0]) % (bytes.count + 1)
    var bodyBytes = 0
    do {
        for part in [bytes[..<split], bytes[split...]] {
            try decoder.feed(UnsafeRawBufferPointer(rebasing: part)) { event in
                if case .body(let body) = event { bodyBytes += body.count }
            }
        }
        _ = decoder.connectionClosed()
    } catch {}
    check(bodyBytes <= bytes.count, "more body bytes than input")
}

func fuzzMode(_ bytes: UnsafeRawBufferPointer) {
    var detector = SocketModeDetector(policy: Array("<policy/>".utf8), now: 0)
    var decided = false
    for (index, byte) in bytes.enumerated() {
        switch detector.receive(CollectionOfOne(byte)) {
        case .needMoreBytes:
            check(!decided, "undecided again after a decision")
            check(index < SocketModeDetector.maxUndecidedBytes, "more than 512 bytes without a decision")
        case .int32(let remainder):
            // The decision, then every later byte passes through as the frame stream.
            check(decided ? remainder.elementsEqual(CollectionOfOne(byte)) : remainder.isEmpty, "int32 bytes lost")
            decided = true
        case .policyFile, .abort:
            check(!decided, "a second decision")
            decided = true
        case .ignore:
            check(decided, "ignoring before a decision")
        }
    }
}

func fuzzWebSocket(_ bytes: UnsafeRawBufferPointer) {
    let probe = MinervaWebSocketCodecProbe()
    var index = 0
    while index < bytes.count {
        let size = 1 + Int(bytes[index]) % 97
        let end = min(bytes.count, index + size)
        probe.feed(UnsafeRawBufferPointer(rebasing: bytes[index..<end]))
        index = end
    }
    check(probe.messageBytes <= bytes.count, "more message bytes than input")
}

/// Sends every string back.
final class EchoHandler: MinervaStreamHandler {
    func streamStarted(_ stream: ServerStream) throws {}
    func stringsReceived(_ strings: [ArraySlice<UInt8>], on stream: ServerStream) {
        for string in strings { try? stream.send(string) }
    }
    func streamReset(_ stream: ServerStream, reason: String, applicationLevel: Bool) {}
}

#if FUZZING
    /// libFuzzer's entry point; the target is `MINERVA_FUZZ_TARGET` (default `http`).
    @_cdecl("LLVMFuzzerTestOneInput")
    public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
        fuzzTarget.run(UnsafeRawBufferPointer(start: data, count: size))
        return 0
    }

    /// libFuzzer's driver (its public entry point since LLVM 12).
    @_silgen_name("LLVMFuzzerRunDriver")
    func llvmFuzzerRunDriver(
        _ argc: UnsafeMutablePointer<CInt>,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    ) -> CInt

    /// The program's `main`: SwiftPM links an executable target's `main` to this name, and libFuzzer's own `main`
    /// is then not used, so this starts libFuzzer's driver itself.
    @_cdecl("minerva_fuzz_main")
    public func minervaFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
        var argc = argc
        var argv = argv
        return llvmFuzzerRunDriver(&argc, &argv) { data, size in fuzzerTestOneInput(data, size) }
    }

    let fuzzTarget: FuzzTarget = {
        guard let name = getenv("MINERVA_FUZZ_TARGET"), let target = FuzzTarget(rawValue: String(cString: name))
        else { return .http }
        return target
    }()
#else
    @main
    struct MinervaFuzz {
        static func main() {
            let arguments = Array(CommandLine.arguments.dropFirst())
            if let name = arguments.first, let target = FuzzTarget(rawValue: name), arguments.count > 1 {
                for path in arguments.dropFirst() { replay(target, path) }
                return
            }
            let count = arguments.first.flatMap { Int($0) } ?? 2_000
            for target in FuzzTarget.allCases {
                var generator = SplitMix(seed: 0x4D49_4E45_5256_41)
                for round in 0..<count { target.run(input(round, &generator)) }
                print("\(target.rawValue): \(count) inputs, no invariant broken")
            }
        }

        /// Random bytes, or a valid sample with a few bytes changed.
        static func input(_ round: Int, _ generator: inout SplitMix) -> UnsafeRawBufferPointer {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<Int(generator.next() % 300)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            } else {
                bytes = Array(samples[round / 2 % samples.count].utf8)
                for _ in 0..<(1 + Int(generator.next() % 4)) where !bytes.isEmpty {
                    bytes[Int(generator.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: generator.next())
                }
            }
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 1)
            bytes.withUnsafeBytes { buffer.copyMemory(from: $0) }
            return UnsafeRawBufferPointer(buffer)  // leaked on purpose: a short-lived command
        }

        static let samples = [
            "POST /_minerva/io/ HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n0N\necho:hi \n",
            "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            "0N\necho:hi \n|0A\n5N\nx \nbye|1!\n",
            "{\"tnum\":0,\"new\":1,\"ver\":2,\"id\":\"abcdefghijklmnopqrstuv\",\"ming\":1,\"maxia\":0,\"seenack\":\"|-1\"}",
            "\u{0}\u{0}\u{0}\u{2}0N\u{0}\u{0}\u{0}\u{8}echo:hi \u{0}\u{0}\u{0}\u{3}|0A",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n;)]}^\n\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
            "<int32/>\n\u{0}\u{0}\u{0}\u{1}C",
            "\u{81}\u{83}abcd\u{2}\u{3}\u{4}\u{1}\u{82}abcd\u{1}\u{89}\u{80}abcd\u{80}\u{81}abcd\u{5}",
        ]

        static func replay(_ target: FuzzTarget, _ path: String) {
            guard let file = fopen(path, "rb") else {
                print("cannot open \(path)")
                return
            }
            defer { fclose(file) }
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65_536)
            while true {
                let n = fread(&chunk, 1, chunk.count, file)
                if n <= 0 { break }
                bytes += chunk[..<n]
            }
            bytes.withUnsafeBytes { target.run($0) }
            print("\(path): ok")
        }
    }

    /// A small seeded generator (SplitMix64).
    struct SplitMix {
        var state: UInt64
        init(seed: UInt64) { state = seed }
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }
#endif
