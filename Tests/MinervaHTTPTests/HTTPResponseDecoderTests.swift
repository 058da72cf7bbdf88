// The response decoder (MinervaHTTP's http-parser wrapper, used by the Swift client and the load tool):
// Content-Length, chunked and close-delimited bodies, split at every byte.
import Testing

@_spi(MinervaTools) @testable import MinervaHTTP
@testable import MinervaIO

/// A decoder event with owned bytes, comparable in expectations.
enum HTTPResponseEvent: Equatable {
    case head(status: Int, contentLength: Int?)
    case body([UInt8])
    case end(keepAlive: Bool)

    init(_ event: MinervaHTTP.HTTPResponseEvent) {
        switch event {
        case .head(let status, let contentLength): self = .head(status: status, contentLength: contentLength)
        case .body(let bytes): self = .body(Array(bytes))
        case .end(let keepAlive): self = .end(keepAlive: keepAlive)
        }
    }
}

private func parseAll(_ text: String, splitEvery step: Int) throws -> [HTTPResponseEvent] {
    let decoder = HTTPResponseDecoder()
    var events: [HTTPResponseEvent] = []
    let bytes = Array(text.utf8)
    var index = 0
    while index < bytes.count {
        let end = min(bytes.count, index + step)
        try bytes[index..<end].withUnsafeBytes { raw in
            try decoder.feed(raw) { events.append(HTTPResponseEvent($0)) }
        }
        index = end
    }
    if let end = decoder.connectionClosed() { events.append(HTTPResponseEvent(end)) }
    return events
}

/// Merges adjacent body events (splitting changes their boundaries, not their bytes).
private func merged(_ events: [HTTPResponseEvent]) -> [HTTPResponseEvent] {
    var result: [HTTPResponseEvent] = []
    for event in events {
        if case .body(let more) = event, case .body(let previous)? = result.last {
            result[result.count - 1] = .body(previous + more)
        } else if case .body(let bytes) = event, bytes.isEmpty {
            continue
        } else {
            result.append(event)
        }
    }
    return result
}

@Suite("HTTPResponseDecoder")
struct HTTPResponseDecoderTests {
    @Test("Content-Length body, keep-alive", arguments: [1, 2, 7, 1000])
    func contentLength(step: Int) throws {
        let text = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
        #expect(
            merged(try parseAll(text, splitEvery: step)) == [
                .head(status: 200, contentLength: 5), .body(Array("hello".utf8)), .end(keepAlive: true),
            ])
    }

    @Test("chunked body with an extension and a trailer; Connection: close", arguments: [1, 3, 1000])
    func chunked(step: Int) throws {
        let text =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            + "4;x=y\r\nabcd\r\nA\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n"
        #expect(
            merged(try parseAll(text, splitEvery: step)) == [
                .head(status: 200, contentLength: nil), .body(Array("abcd0123456789".utf8)),
                .end(keepAlive: false),
            ])
    }

    @Test("100 Continue is skipped; a body without framing ends with the connection")
    func interimAndClose() throws {
        let text = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 500 Oops\r\n\r\nbody"
        #expect(
            merged(try parseAll(text, splitEvery: 4)) == [
                .head(status: 500, contentLength: nil), .body(Array("body".utf8)), .end(keepAlive: false),
            ])
    }

    @Test(
        "malformed input is rejected",
        arguments: [
            "XTTP/1.1 200 OK\r\n\r\n", "HTTP/1.1 2x0 OK\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nextra",
        ])
    func malformed(text: String) {
        #expect(throws: HTTPResponseDecodingError.self) { _ = try parseAll(text, splitEvery: 1000) }
    }
}
