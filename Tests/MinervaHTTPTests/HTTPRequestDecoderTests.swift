// The http-parser wrapper alone: every split point, byte by byte, pipelining, limits.
import MinervaTestSupport
import Testing

@_spi(Benchmarks) @testable import MinervaHTTP
@testable import MinervaIO

/// What the decoder delivered, as plain values.
struct DecodedRequest: Equatable {
    var method: String
    var target: String
    var headers: [String]
    var body: [UInt8]
    var keepAlive: Bool
}

final class RecordingDelegate: HTTPRequestDecoderDelegate {
    var requests: [DecodedRequest] = []
    var failures: [Int] = []
    var continues = 0
    var pauseAfterEach = false

    func decoderDidReceiveRequest(_ decoder: HTTPRequestDecoder) -> Bool {
        let request = MinervaHTTPRequest(decoder: decoder, connection: nil)
        var headers: [String] = []
        request.forEachHeader { name, value in
            headers.append(String(decoding: name, as: UTF8.self) + "=" + String(decoding: value, as: UTF8.self))
        }
        requests.append(
            DecodedRequest(
                method: request.method.name, target: String(decoding: request.targetBytes, as: UTF8.self),
                headers: headers, body: request.bodyBytes, keepAlive: request.keepAlive))
        return !pauseAfterEach
    }

    func decoderWantsContinue(_ decoder: HTTPRequestDecoder) { continues += 1 }

    func decoderDidFail(_ decoder: HTTPRequestDecoder, status: Int) { failures.append(status) }
}

private let limits = HTTPDecoderLimits(maxHeaderBytes: 4096, maxHeaderCount: 50, maxURLBytes: 1024, maxBodyBytes: 4096)

private let twoRequests = Array(
    ("POST /upload/x?y=1 HTTP/1.1\r\nHost: example\r\nX-Long-Header-Name: some value here\r\n"
        + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: t\r\n\r\n"
        + "GET /second HTTP/1.1\r\nHost: example\r\nConnection: close\r\n\r\n").utf8)

private let expected = [
    DecodedRequest(
        method: "POST", target: "/upload/x?y=1",
        headers: ["Host=example", "X-Long-Header-Name=some value here", "Transfer-Encoding=chunked"],
        body: Array("hello, world".utf8), keepAlive: true),
    DecodedRequest(
        method: "GET", target: "/second", headers: ["Host=example", "Connection=close"], body: [], keepAlive: false),
]

private func decode(_ pieces: [ArraySlice<UInt8>], pause: Bool = false) -> RecordingDelegate {
    let decoder = HTTPRequestDecoder(limits: limits)
    let delegate = RecordingDelegate()
    delegate.pauseAfterEach = pause
    for piece in pieces {
        Array(piece).withUnsafeBytes { decoder.feed($0, delegate: delegate) }
        while pause && decoder.phase == .paused { decoder.resume(delegate: delegate) }
    }
    return delegate
}

@Suite struct HTTPRequestDecoderTests {
    @Test func wholeInputAtOnce() {
        let d = decode([twoRequests[...]])
        #expect(d.requests == expected)
        #expect(d.failures.isEmpty)
    }

    @Test func everySplitPoint() {
        for split in 1..<twoRequests.count {
            let d = decode([twoRequests[..<split], twoRequests[split...]])
            #expect(d.requests == expected, "split at \(split)")
            #expect(d.failures.isEmpty, "split at \(split)")
        }
    }

    @Test func everySplitPointWithPausing() {
        for split in 1..<twoRequests.count {
            let d = decode([twoRequests[..<split], twoRequests[split...]], pause: true)
            #expect(d.requests == expected, "split at \(split)")
        }
    }

    @Test func byteByByte() {
        let d = decode(twoRequests.indices.map { twoRequests[$0...$0] })
        #expect(d.requests == expected)
    }

    @Test func contentLengthBodyAndExpectContinue() {
        let input = Array("PUT /a HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc".utf8)
        // The head alone first: the decoder asks for 100 Continue, then takes the body.
        let d = decode([input[..<(input.count - 3)], input[(input.count - 3)...]])
        #expect(d.continues == 1)
        #expect(d.requests.map(\.body) == [Array("abc".utf8)])
    }

    @Test(arguments: [
        ("GET /\(String(repeating: "a", count: 1100)) HTTP/1.1\r\n\r\n", 414),
        ("GET / HTTP/1.1\r\nX: \(String(repeating: "b", count: 5000))\r\n\r\n", 431),
        ("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n", 413),
        ("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("BLAH\u{1} / HTTP/1.1\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400),
    ])
    func limitsAndMalformedInput(input: String, status: Int) {
        let whole = decode([Array(input.utf8)[...]])
        #expect(whole.failures == [status])
        #expect(whole.requests.isEmpty)
        let bytes = Array(input.utf8)
        let trickled = decode(bytes.indices.map { bytes[$0...$0] })
        #expect(trickled.failures == [status])
    }

    @Test func chunkedBodyOverLimit() {
        let chunk = String(repeating: "z", count: 3000)
        let input =
            "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nbb8\r\n\(chunk)\r\nbb8\r\n\(chunk)\r\n0\r\n\r\n"
        #expect(decode([Array(input.utf8)[...]]).failures == [413])
    }

    @Test func headerCountLimit() {
        let headers = (0..<60).map { "H\($0): v\r\n" }.joined()
        #expect(decode([Array("GET / HTTP/1.1\r\n\(headers)\r\n".utf8)[...]]).failures == [431])
    }
}

@Suite struct HTTPRequestDecoderProbeTests {
    @Test func countsRequestsAndReportsFailures() {
        let probe = HTTPRequestDecoderProbe()
        let input = Array(
            "GET / HTTP/1.1\r\nHost: t\r\n\r\nPOST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc".utf8)
        #expect(input.withUnsafeBytes { probe.feed($0) } == 2)
        #expect(probe.bodyByteCount == 3)
        #expect(probe.failureStatus == nil)
        probe.reset()
        _ = Array("GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n".utf8).withUnsafeBytes { probe.feed($0) }
        #expect(probe.failureStatus == 400)
    }
}

@Suite struct HTTPRequestDecoderRandomInputTests {
    @Test func mutatedRequestsInRandomPiecesNeverCrashAndAgreeWithWholeInput() {
        var rng = SeededGenerator(seed: 42)
        let alphabet = Array(
            "GET POST /a?b=c HTTP/1.1\r\n:Content-Length: 5\r\nTransfer-Encoding: chunked\r\n0123456789abcdef".utf8)
        for _ in 0..<1500 {
            var input = Array(
                "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n".utf8)
            for _ in 0..<Int.random(in: 0...4, using: &rng) {
                let i = Int.random(in: 0..<input.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: input[i] = alphabet.randomElement(using: &rng)!
                case 1: input.insert(alphabet.randomElement(using: &rng)!, at: i)
                default: input.remove(at: i)
                }
            }
            let whole = decode([input[...]])
            var pieces: [ArraySlice<UInt8>] = []
            var start = 0
            while start < input.count {
                let end = min(input.count, start + Int.random(in: 1...12, using: &rng))
                pieces.append(input[start..<end])
                start = end
            }
            let split = decode(pieces)
            #expect(
                split.requests == whole.requests, "input \(String(decoding: input, as: UTF8.self).debugDescription)")
            #expect(split.failures == whole.failures)
        }
    }
}
