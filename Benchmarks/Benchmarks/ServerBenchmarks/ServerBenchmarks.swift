// Micro-benchmarks of MinervaServer's request path and of the server engine. Allocation counts are the
// deterministic figures; times are per iteration (`scalingFactor: .kilo` runs 1,000 per sample).
import Benchmark
import MinervaCore
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
            engine.drainActions { action in
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
}
