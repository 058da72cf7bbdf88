// Micro-benchmarks of MinervaServer's request path and of the server engine. Allocation counts are the
// deterministic figures; times are per iteration (`scalingFactor: .kilo` runs 1,000 per sample).
import Benchmark
import MinervaCore
@_spi(Benchmarks) import MinervaHTTP
import MinervaIO
import MinervaServer

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal],
        warmupIterations: 10,
        scalingFactor: .kilo,
        maxDuration: .seconds(2)
    )

    let simpleGet = Array(
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n".utf8)

    // The HTTP request parser wrapper alone: http-parser plus the byte-range header bookkeeping.
    Benchmark("HTTP parser wrapper: simple GET") { benchmark in
        let probe = HTTPRequestDecoderProbe()
        simpleGet.withUnsafeBytes { _ = probe.feed($0) }
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            simpleGet.withUnsafeBytes { blackHole(probe.feed($0)) }
        }
    }

    // One whole request on a real (socketpair) connection: read, parse, route, respond with writev, read the
    // response back on the client side (the client side's two syscalls are included).
    func measureRequestPath(_ benchmark: Benchmark, handler: @escaping MinervaHTTPRouter.Handler) {
        let router = MinervaHTTPRouter()
        router.route("/healthz", handler)
        let connection = try! EmbeddedHTTPConnection(router: router)
        let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
        defer { readBuffer.deallocate() }
        func once() {
            simpleGet.withUnsafeBytes { _ = connection.clientSend($0) }
            connection.step()
            blackHole(connection.clientReceive(into: readBuffer))
        }
        for _ in 0..<100 { once() }
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { once() }
    }

    // The demo's way: `send(status:body:)` with a String body.
    Benchmark("HTTP request path: GET /healthz -> 200 ok (socketpair)") { benchmark in
        measureRequestPath(benchmark) { _, response in response.send(status: 200, body: "ok") }
    }

    // The response writer's cheapest form: a header and a StaticString body through `end(_:)`.
    Benchmark("HTTP request path, response via setHeader + end(StaticString)") { benchmark in
        let body: StaticString = "ok"
        measureRequestPath(benchmark) { _, response in
            response.setHeader("Content-Type", "text/plain")
            response.end(body)
        }
    }

    // SACK processing with 10,000 strings queued: acknowledge them 100 at a time, refilling as we go.
    Benchmark("SendQueue: SACK 100 of 10,000 queued strings") { benchmark in
        var queue = SendQueue()
        let string: [UInt8] = Array("a string of about forty bytes, restricted".utf8)
        for _ in 0..<10_000 { _ = queue.append(string) }
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            let ack = queue.firstSequenceNumber! + 99
            blackHole(queue.process(SACK(ackNumber: ack)))
            for _ in 0..<100 { _ = queue.append(string) }
        }
    }

    // A full server-stream echo cycle, as a browser does it over long-poll: an upload POST carrying a string
    // (answered at once with a SACK), then a long-poll POST that receives the echo.
    Benchmark("Engine: long-poll echo cycle (2 HTTP transports, 1 string each way)") { benchmark in
        final class Echo: MinervaStreamHandler {
            func streamStarted(_ stream: ServerStream) throws {}
            func stringReceived(_ string: ArraySlice<UInt8>, on stream: ServerStream) throws {
                try stream.send(string)
            }
            func streamReset(_ stream: ServerStream, reason: String, applicationLevel: Bool) {}
        }
        let engine = MinervaServerEngine(now: 0) { _ in Echo() }
        let id = "abcdefghijklmnopqrstuvwxyz"
        let info = ConnectionInfo(localAddress: "127.0.0.1:80", peerAddress: "127.0.0.1:5000")
        var handle = 0
        var written = 0
        func post(_ body: [UInt8]) {
            handle += 1
            let transport = TransportHandle(handle)
            engine.openTransport(transport, kind: .http, connection: info, now: 0)
            engine.httpBodyReceived(transport, body: body, now: 0)
            engine.flush(now: 0)
            engine.drainBorrowedActions { action in  // the endpoint's way: write bytes lent, not copied
                if case .write(_, let bytes, _) = action { written += bytes.count }
            }
        }
        post(Array(#"{"tnum":0,"ver":2,"new":true,"id":"\#(id)","ming":false,"maxia":0,"seenack":"|-1"}H"#.utf8) + [10])
        // Request bodies are built before measuring, so the figures are the engine's alone.
        func bodies(cycle: Int) -> (upload: [UInt8], poll: [UInt8]) {
            let tnum = 2 * cycle + 1
            let upload =
                #"{"tnum":\#(tnum),"ver":2,"id":"\#(id)","ming":false,"maxia":0,"sack":"|\#(cycle - 1)","#
                + #""seenack":"|\#(cycle - 1)"}H"# + "\n\(cycle)N\nhello \n"
            let poll =
                #"{"tnum":\#(tnum + 1),"ver":2,"id":"\#(id)","ming":false,"maxia":0,"eeds":null,"#
                + #""sack":"|\#(cycle - 1)","seenack":"|\#(cycle)"}H"# + "\n"
            return (Array(upload.utf8), Array(poll.utf8))
        }
        let warmup = 100
        let prepared = (0..<(warmup + benchmark.scaledIterations.count)).map(bodies(cycle:))
        for cycle in 0..<warmup {
            post(prepared[cycle].upload)
            post(prepared[cycle].poll)
        }
        benchmark.startMeasurement()
        for cycle in warmup..<prepared.count {
            post(prepared[cycle].upload)
            post(prepared[cycle].poll)
        }
        benchmark.stopMeasurement()
        precondition(written > 0)
        blackHole(written)
    }

    // The endpoint's one-way path, whole: a browser's long-poll echo round trip over two real (socketpair) HTTP
    // connections on one loop. The primary's long-poll is held, the upload POST carries `echo:<n>`, the demo-like
    // handler echoes it (a String, as the demo does), the held long-poll is answered with the echo and the upload
    // with its SACK; both answers are read back. Requests are built before measuring.
    // Gate: <= 4 allocations per round trip. Thresholds/ServerBenchmarks.EndpointLongPollEchoRoundTrip.p90.json
    // stores 1,000 per 1,000 round trips (a sample), and the tolerance below allows 3,000 more:
    // `swift package benchmark thresholds check --target ServerBenchmarks --filter EndpointLongPollEchoRoundTrip`
    // fails above 4,000. Measured: 35 per round trip before the one-way endpoint path, 1 after (the echoed string
    // stored in the send queue).
    Benchmark(
        "EndpointLongPollEchoRoundTrip",  // no spaces: the static thresholds file is looked up by this name
        configuration: .init(
            metrics: [.wallClock, .mallocCountTotal],
            thresholds: [.mallocCountTotal: .init(absolute: [.p90: 3_000])]
        )
    ) { benchmark in
        final class Echo: MinervaStreamHandler {
            func streamStarted(_ stream: ServerStream) throws {}
            func stringReceived(_ string: ArraySlice<UInt8>, on stream: ServerStream) throws {
                let text = String(decoding: string, as: UTF8.self)
                if text.hasPrefix("echo:") { try stream.send(String(text.dropFirst(5))) }
            }
            func streamReset(_ stream: ServerStream, reason: String, applicationLevel: Bool) {}
        }
        let router = MinervaHTTPRouter()
        let endpoint = MinervaEndpoint { _ in Echo() }
        endpoint.mount(on: router)
        let primary = try! EmbeddedHTTPConnection(router: router)
        let upload = try! EmbeddedHTTPConnection(sharingServerWith: primary)
        let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65_536, alignment: 1)
        defer { readBuffer.deallocate() }

        let id = "abcdefghijklmnopqrstuvwx"
        func request(_ body: String) -> [UInt8] {
            Array(
                ("POST /_minerva/io/ HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: minerva-load\r\n"
                    + "Accept: */*\r\nContent-Type: application/octet-stream\r\nContent-Length: "
                    + "\(body.utf8.count)\r\n\r\n" + body).utf8)
        }
        // Round trip `cycle` (0-based): the stream is created by transport 0; cycle c uses transports 2c+1 (the
        // held primary) and 2c+2 (the upload carrying string c), and acknowledges the echo of cycle c-1.
        func hello(tnum: Int, primary: Bool, new: Bool = false, ack: Int, seen: Int) -> String {
            #"{"tnum":\#(tnum),"ver":2,"format":2,"# + (new ? #""new":true,"# : "")
                + #""id":"\#(id)","ming":false,"maxb":300000,"# + (primary ? #""maxt":25,"# : "")
                + #""maxia":0,"tcpack":false,"# + (primary ? #""eeds":null,"# : "")
                + #""sack":"|\#(ack)","seenack":"|\#(seen)"}H"# + "\n"
        }
        func requests(cycle c: Int) -> (poll: [UInt8], upload: [UInt8]) {
            let poll = hello(tnum: 2 * c + 1, primary: true, ack: c - 1, seen: c - 1)
            let upload = hello(tnum: 2 * c + 2, primary: false, ack: c - 1, seen: c - 1) + "\(c)N\necho:\(c) \n"
            return (request(poll), request(upload))
        }
        var received = 0
        func drain(_ connection: EmbeddedHTTPConnection) {
            while true {
                let n = connection.clientReceive(into: readBuffer)
                if n <= 0 { return }
                received += n
            }
        }
        func roundTrip(_ requests: (poll: [UInt8], upload: [UInt8])) {
            requests.poll.withUnsafeBytes { _ = primary.clientSend($0) }
            primary.step()  // the long-poll is held: nothing queued yet
            requests.upload.withUnsafeBytes { _ = upload.clientSend($0) }
            upload.step()  // the echo answers the held poll at the end of the turn, and the upload gets its SACK
            drain(primary)
            drain(upload)
        }
        // Transport 0 creates the stream and is answered at once (no strings wanted).
        request(hello(tnum: 0, primary: false, new: true, ack: -1, seen: -1)).withUnsafeBytes {
            _ = upload.clientSend($0)
        }
        upload.step()
        drain(upload)
        let warmup = 200
        let prepared = (0..<(warmup + benchmark.scaledIterations.count)).map { requests(cycle: $0) }
        for cycle in 0..<warmup { roundTrip(prepared[cycle]) }
        received = 0
        benchmark.startMeasurement()
        for cycle in warmup..<prepared.count { roundTrip(prepared[cycle]) }
        benchmark.stopMeasurement()
        precondition(received > 0)
        blackHole(received)
    }

    // The WebSocket codec alone (PROTOCOL.md 11.1): decode one masked 42-byte text message (unmasking, UTF-8 check)
    // and write one unmasked text frame into a reused buffer. 0 allocations after warm-up.
    Benchmark("WebSocket frame decode + encode, one 42-byte text message") { benchmark in
        let probe = MinervaWebSocketCodecProbe()
        let payload = Array("a string of about forty bytes, restricted ".utf8)
        let frame = MinervaWebSocketCodecProbe.maskedTextFrame(payload, maskKey: (0x37, 0xFA, 0x21, 0x3D))
        func once() {
            frame.withUnsafeBytes { blackHole(probe.feed($0)) }
            payload.withUnsafeBytes { blackHole(probe.writeTextFrame($0)) }
        }
        for _ in 0..<100 { once() }
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { once() }
    }

    // 32 masked messages arriving in one read (a burst), decoded together.
    Benchmark("WebSocket frame decode, 32 text messages in one read") { benchmark in
        let probe = MinervaWebSocketCodecProbe()
        let burst = (0..<32).flatMap { i in
            MinervaWebSocketCodecProbe.maskedTextFrame(Array("echo:\(i) message ".utf8), maskKey: (1, 2, 3, UInt8(i)))
        }
        for _ in 0..<100 { burst.withUnsafeBytes { _ = probe.feed($0) } }
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { burst.withUnsafeBytes { blackHole(probe.feed($0)) } }
    }

    // The endpoint's WebSocket path, whole: one upgraded WebSocket on a real (socketpair) connection; each round
    // trip sends the SACK of the previous echo and `echo:<n>` as two masked messages in one write, the demo-like
    // handler echoes the string, and the answer (SACK, string) is read back. Messages are built before measuring.
    Benchmark("EndpointWebSocketEchoRoundTrip") { benchmark in
        final class Echo: MinervaStreamHandler {
            func streamStarted(_ stream: ServerStream) throws {}
            func stringReceived(_ string: ArraySlice<UInt8>, on stream: ServerStream) throws {
                let text = String(decoding: string, as: UTF8.self)
                if text.hasPrefix("echo:") { try stream.send(String(text.dropFirst(5))) }
            }
            func streamReset(_ stream: ServerStream, reason: String, applicationLevel: Bool) {}
        }
        let router = MinervaHTTPRouter()
        let endpoint = MinervaEndpoint { _ in Echo() }
        endpoint.mount(on: router)
        let connection = try! EmbeddedHTTPConnection(router: router)
        let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65_536, alignment: 1)
        defer { readBuffer.deallocate() }
        var received = 0
        func drain() {
            while true {
                let n = connection.clientReceive(into: readBuffer)
                if n <= 0 { return }
                received += n
            }
        }
        func masked(_ text: String) -> [UInt8] {
            MinervaWebSocketCodecProbe.maskedTextFrame(Array(text.utf8), maskKey: (0x11, 0x22, 0x33, 0x44))
        }
        _ = connection.clientSend(
            "GET /_minerva/ws HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                + "Sec-WebSocket-Protocol: minerva.v2\r\n\r\n")
        let hello =
            #"{"tnum":0,"ver":2,"new":true,"id":"abcdefghijklmnopqrstuvwx","ming":true,"maxia":0,"#
            + #""eeds":null,"seenack":"|-1"}H"#
        masked(hello).withUnsafeBytes { _ = connection.clientSend($0) }
        connection.step(2)
        drain()
        precondition(received > 0)
        func messages(cycle c: Int) -> [UInt8] {
            (c > 0 ? masked("|\(c - 1)A") : []) + masked("echo:\(c) ")
        }
        let warmup = 200
        let prepared = (0..<(warmup + benchmark.scaledIterations.count)).map(messages(cycle:))
        func roundTrip(_ bytes: [UInt8]) {
            bytes.withUnsafeBytes { _ = connection.clientSend($0) }
            connection.step()
            drain()
        }
        for cycle in 0..<warmup { roundTrip(prepared[cycle]) }
        received = 0
        benchmark.startMeasurement()
        for cycle in warmup..<prepared.count { roundTrip(prepared[cycle]) }
        benchmark.stopMeasurement()
        precondition(received > 0)
        blackHole(received)
    }
}
