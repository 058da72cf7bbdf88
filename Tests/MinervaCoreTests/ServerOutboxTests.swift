// The engine's allocation-free I/O surface: borrowed action draining, reused transports and body storage, and
// request headers kept as bytes until the application reads them. Wire output must equal the copying API's.

import Testing

@testable import MinervaCore

@Suite("Server engine outbox and reuse")
struct ServerOutboxTests {
    final class Echo: MinervaStreamHandler {
        var infos: [TransportInfo] = []
        func streamStarted(_ stream: ServerStream) throws {}
        func stringReceived(_ string: ArraySlice<UInt8>, on stream: ServerStream) throws { try stream.send(string) }
        func streamReset(_ stream: ServerStream, reason: String, applicationLevel: Bool) {}
        func transportCreated(_ info: TransportInfo, on stream: ServerStream) { infos.append(info) }
    }

    static let id = "abcdefghijklmnopqrstuvwxyz"

    static func hello(tnum: Int, new: Bool = false, primary: Bool, ack: Int, seen: Int) -> String {
        #"{"tnum":\#(tnum),"ver":2,"format":2,"# + (new ? #""new":true,"# : "")
            + #""id":"\#(id)","ming":false,"maxia":0,"# + (primary ? #""eeds":null,"# : "")
            + #""sack":"|\#(ack)","seenack":"|\#(seen)"}H"# + "\n"
    }

    /// Runs the same long-poll echo cycles through two engines, one drained with copies and one with borrowed
    /// bytes (bodies given as `UnsafeRawBufferPointer`): the actions must be identical.
    @Test("borrowed draining and reused transports write exactly what the copying API writes")
    func borrowedEqualsCopied() {
        let copying = MinervaServerEngine(now: 0) { _ in Echo() }
        let borrowing = MinervaServerEngine(now: 0) { _ in Echo() }
        var handle = 0
        func post(_ body: String) {
            handle += 1
            let transport = TransportHandle(handle)
            let bytes = Array(body.utf8)
            copying.openTransport(transport, kind: .http, connection: ConnectionInfo(), now: 0)
            copying.httpBodyReceived(transport, body: bytes, now: 0)
            borrowing.openTransport(transport, kind: .http, connection: ConnectionInfo(), now: 0)
            bytes.withUnsafeBytes { borrowing.httpBodyReceived(transport, body: $0, now: 0) }
        }
        func compare() {
            copying.flush(now: 0)
            borrowing.flush(now: 0)
            let expected = copying.takeActions()
            var actual: [ServerAction] = []
            borrowing.drainBorrowedActions { action in
                switch action {
                case .write(let handle, let bytes, let kind): actual.append(.write(handle, Array(bytes), kind))
                case .finish(let handle): actual.append(.finish(handle))
                case .close(let handle): actual.append(.close(handle))
                }
            }
            #expect(actual == expected)
            #expect(!borrowing.hasActions)
        }
        post(Self.hello(tnum: 0, new: true, primary: false, ack: -1, seen: -1))
        compare()
        for cycle in 0..<50 {
            post(Self.hello(tnum: 2 * cycle + 1, primary: true, ack: cycle - 1, seen: cycle - 1))
            compare()
            post(
                Self.hello(tnum: 2 * cycle + 2, primary: false, ack: cycle - 1, seen: cycle - 1)
                    + "\(cycle)N\nx\(cycle)\n")
            compare()
        }
        #expect(borrowing.transportCount == copying.transportCount)
    }

    /// Actions produced while a drain is carrying out the outbox wait for the next drain, in order.
    @Test("a drain may re-enter the engine; the new actions wait for the next drain")
    func reentrantDrain() {
        let engine = MinervaServerEngine(now: 0) { _ in Echo() }
        engine.openTransport(TransportHandle(1), kind: .http, connection: ConnectionInfo(), now: 0)
        engine.httpBodyReceived(
            TransportHandle(1), body: Array(Self.hello(tnum: 0, new: true, primary: false, ack: -1, seen: -1).utf8),
            now: 0)
        var first: [String] = []
        engine.drainBorrowedActions { action in
            if case .write(_, let bytes, _) = action { first.append(String(decoding: bytes, as: UTF8.self)) }
            engine.openTransport(TransportHandle(2), kind: .http, connection: ConnectionInfo(), now: 0)
            engine.httpBodyReceived(
                TransportHandle(2), body: Array(Self.hello(tnum: 1, primary: false, ack: -1, seen: 0).utf8), now: 0)
        }
        #expect(first.count == 1)
        #expect(engine.hasActions)
        let second = engine.takeActions()
        #expect(second.count == 1)
        if case .write(let handle, _, .httpWholeBody) = second.first { #expect(handle == TransportHandle(2)) }
    }

    /// Header bytes become Strings when read, per transport, also after its storage was reused for a later request.
    @Test("request headers given as bytes read back as Strings, for each transport of a reused pool")
    func lazyHeaders() {
        let echo = Echo()
        let engine = MinervaServerEngine(now: 0) { _ in echo }
        var handle = 0
        func post(_ body: String, header value: String) {
            handle += 1
            engine.openTransport(TransportHandle(handle), kind: .http, connection: ConnectionInfo(), now: 0) {
                headers in
                Array("X-Test".utf8).withUnsafeBytes { name in
                    Array(value.utf8).withUnsafeBytes { headers.append(name: name, value: $0) }
                }
            }
            engine.httpBodyReceived(TransportHandle(handle), body: Array(body.utf8), now: 0)
            engine.flush(now: 0)
            _ = engine.takeActions()
        }
        post(Self.hello(tnum: 0, new: true, primary: false, ack: -1, seen: -1), header: "first")
        for tnum in 1..<6 {
            post(Self.hello(tnum: tnum, primary: false, ack: -1, seen: 0), header: "value \(tnum)")
        }
        #expect(echo.infos.count == 6)
        #expect(echo.infos[0].connection.requestHeaders?.first?.name == "X-Test")
        #expect(echo.infos[0].connection.requestHeaders?.first?.value == "first")
        for tnum in 1..<6 {
            #expect(echo.infos[tnum].connection.requestHeaders?.map(\.value) == ["value \(tnum)"])
        }
        // Without header bytes the headers are nil (as for sockets), and a String list set by hand wins.
        var info = ConnectionInfo()
        #expect(info.requestHeaders == nil)
        info.requestHeaders = [("A", "b")]
        #expect(info.requestHeaders?.first?.value == "b")
    }
    /// The engine keeps a transport's request headers until the application has seen them (the authorizer and
    /// `transportCreated`), then drops them, unless `keepsRequestHeaders`; a copy the application kept stays valid.
    @Test(
        "request headers reach the authorizer and transportCreated, then are dropped unless kept",
        arguments: [false, true])
    func headersForgottenAfterTransportCreated(keep: Bool) {
        final class Seen: MinervaStreamHandler {
            var created: [TransportInfo] = []
            var destroyed: [[String]?] = []
            func streamStarted(_ stream: ServerStream) throws {}
            func streamReset(_ stream: ServerStream, reason: String, applicationLevel: Bool) {}
            func transportCreated(_ info: TransportInfo, on stream: ServerStream) { created.append(info) }
            func transportDestroyed(_ info: TransportInfo, on stream: ServerStream) {
                destroyed.append(info.connection.requestHeaders?.map(\.value))
            }
        }
        var configuration = ServerEngineConfiguration()
        configuration.keepsRequestHeaders = keep
        let seen = Seen()
        let engine = MinervaServerEngine(configuration: configuration, now: 0) { _ in seen }
        var authorized: [String?] = []
        engine.streamAuthorizer = { request in
            authorized.append(request.header("x-test"))
            return nil
        }
        let hello = Array(Self.hello(tnum: 0, new: true, primary: true, ack: -1, seen: -1).utf8.dropLast())
        for n in 1...2 {
            let handle = TransportHandle(n)
            engine.openTransport(handle, kind: .socket, connection: ConnectionInfo(), now: 0) { headers in
                Array("X-Test".utf8).withUnsafeBytes { name in
                    Array("socket \(n)".utf8).withUnsafeBytes { headers.append(name: name, value: $0) }
                }
            }
            engine.messageReceived(handle, frame: hello[...], now: 0)
            engine.transportClosed(handle, now: 1)
            _ = engine.takeActions()
        }
        #expect(authorized == ["socket 1"])  // the second transport attached to the existing stream
        #expect(seen.created.map { $0.connection.requestHeaders?.map(\.value) } == [["socket 1"], ["socket 2"]])
        #expect(seen.destroyed == (keep ? [["socket 1"], ["socket 2"]] : [nil, nil]))
    }
}
