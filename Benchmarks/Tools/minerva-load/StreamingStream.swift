// One fan-out receiver over HTTP streaming (PROTOCOL.md 7.3 with `ming`): a primary POST whose hello asks for a
// streaming response and carries `begin_chat`, read as a chunked body that never ends, and SACKs on a keep-alive
// upload (a secondary POST, hello without `eeds`) every 32 strings (the browser client sends one after each batch
// received, one at a time: more requests than this). The uploads share a pool of keep-alive connections (10,000
// streaming responses plus an upload connection each would pass the server's connection limit under the 20,000
// open-files cap); a stream's first SACK is sent as soon as it exists, so that no connect falls in the measured time.

/// Keep-alive connections shared by the streams' uploads: stream `i` always uses connection `i % count`, and each
/// connection answers its requests in order, so a queue per connection says whose answer arrived.
final class UploadPool {
    private let connections: [Connection]
    private var waiting: [[StreamingStream]]
    private var heads: [Int]
    private var next = 0

    /// Creates `count` connections (connected on their first request).
    init(loop: LoadLoop, stats: LoadStats, count: Int) {
        connections = (0..<count).map { _ in Connection(loop: loop) }
        waiting = Array(repeating: [], count: count)
        heads = Array(repeating: 0, count: count)
        for (index, connection) in connections.enumerated() {
            connection.onResponse = { [unowned self] _ in self.answered(index) }
            connection.onFailure = { [unowned self] reason in
                stats.error("upload connection: \(reason)")
                // Its streams' requests are lost: let them send again.
                let lost = self.waiting[index][self.heads[index]...]
                self.waiting[index] = []
                self.heads[index] = 0
                for stream in lost { stream.uploadAnswered() }
            }
        }
    }

    /// The slot a new stream uses.
    func assign() -> Int {
        defer { next += 1 }
        return next % connections.count
    }

    /// Sends `request` for `stream` on its connection.
    func send(_ request: [UInt8], slot: Int, for stream: StreamingStream) {
        waiting[slot].append(stream)
        connections[slot].send(request)
    }

    private func answered(_ index: Int) {
        guard heads[index] < waiting[index].count else { return }
        let stream = waiting[index][heads[index]]
        heads[index] += 1
        if heads[index] == waiting[index].count {
            waiting[index].removeAll(keepingCapacity: true)
            heads[index] = 0
        }
        stream.uploadAnswered()
    }
}

/// A fan-out stream whose strings arrive on an HTTP streaming response.
final class StreamingStream: LoadClient {
    private unowned let loop: LoadLoop
    private let stats: LoadStats
    private let template: RequestTemplate
    private let uploads: UploadPool
    private let uploadSlot: Int
    private(set) var fd: Int32 = -1
    private var connecting = false
    private var watchingWritable = false
    private var output: [UInt8] = []
    private var outputOffset = 0
    private var input: [UInt8] = []
    private var id: [UInt8] = []
    private var headDone = false
    /// Chunked decoding: bytes left in the current chunk (-1: reading a size line), and the CRLF after a chunk.
    private var chunkLeft = -1
    private var skipCRLF = 0
    /// The de-chunked bytes of the incomplete last line.
    private var line: [UInt8] = []
    private var sawPreamble = false
    private var receivedAck = -1
    private var ackedSent = -1
    private var nextTransportNumber = 1
    private var lastSackSeen: [UInt8] = Array("|-1".utf8)
    private var uploadBusy = false
    private var created = false
    /// True once the stream exists (its `C` arrived), the streaming response is open and the upload connected.
    private(set) var holding = false
    /// Set when the run ends: nothing more is sent.
    var stopped = false

    /// Creates a receiver; call `start()` to begin.
    init(loop: LoadLoop, stats: LoadStats, template: RequestTemplate, uploads: UploadPool) {
        self.loop = loop
        self.stats = stats
        self.template = template
        self.uploads = uploads
        uploadSlot = uploads.assign()
    }

    /// The answer to this stream's upload arrived (or its connection failed).
    func uploadAnswered() {
        uploadBusy = false
        if created && fd >= 0 { holding = true }
        sendAckIfDue()
    }

    private static let idAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".utf8)

    /// Begins a fresh stream: one streaming primary carrying `begin_chat`.
    func start() {
        var generator = SystemRandomNumberGenerator()
        id = (0..<24).map { _ in Self.idAlphabet[Int(generator.next() % UInt64(Self.idAlphabet.count))] }
        headDone = false
        chunkLeft = -1
        skipCRLF = 0
        line.removeAll()
        sawPreamble = false
        receivedAck = -1
        ackedSent = -1
        nextTransportNumber = 1
        lastSackSeen = Array("|-1".utf8)
        uploadBusy = false
        created = false
        holding = false
        input.removeAll(keepingCapacity: true)
        var body = Array(#"{"tnum":0,"ver":2,"format":2,"new":true,"id":""#.utf8)
        body += id
        body += Array(
            (#"","ming":true,"maxb":1000000000,"maxt":3580,"maxia":10,"tcpack":false,"eeds":null,"#
                + #""sack":"|-1","seenack":"|-1"}H"# + "\n0N\nbegin_chat \n").utf8)
        output = template.request(body: body)
        outputOffset = 0
        connecting = true
        loop.requestConnect(self)
    }

    func beginConnect() {
        guard connecting, fd < 0 else {
            loop.connectFinished()
            return
        }
        guard let newFD = startConnect(host: loop.host, port: loop.port) else {
            connecting = false
            loop.connectFinished()
            fail("connect failed")
            return
        }
        fd = newFD
        enableReceiveTimestamps(fd)
        watchingWritable = true
        loop.register(self)
    }

    func handle(readable: Bool, writable: Bool, hangUp: Bool) {
        if connecting {
            guard writable || hangUp else { return }
            connecting = false
            loop.connectFinished()
            let error = socketError(fd)
            guard error == 0 else {
                fail("connect error \(error)")
                return
            }
        }
        if writable || outputOffset < output.count { flush() }
        if fd >= 0 && (readable || hangUp) { receive() }
    }

    private func flush() {
        guard flushOutput(fd, loop, &output, &outputOffset, &watchingWritable) else { return fail("write failed") }
    }

    private func receive() {
        while fd >= 0 {
            switch loop.readStamped(fd) {
            case .bytes(let count):
                if headDone {
                    dechunk(loop.readBuffer[0..<count])
                } else {
                    input.append(contentsOf: loop.readBuffer[0..<count])
                    guard let end = headEnd() else { break }
                    guard input.starts(with: Array("HTTP/1.1 200".utf8)) else {
                        fail("HTTP status: \(String(decoding: input.prefix(20), as: UTF8.self))")
                        return
                    }
                    headDone = true
                    let rest = Array(input[end...])
                    input.removeAll(keepingCapacity: true)
                    dechunk(rest[...])
                }
                if count < loop.readBuffer.count { return }
            case .wouldBlock:
                return
            case .endOfFile:
                fail("the server ended the streaming response")
                return
            case .failed(let code):
                fail("read error \(code)")
                return
            }
        }
    }

    private func headEnd() -> Int? {
        guard input.count >= 4 else { return nil }
        for i in 3..<input.count where input[i] == 10 && input[i - 1] == 13 && input[i - 2] == 10 && input[i - 3] == 13
        {
            return i + 1
        }
        return nil
    }

    /// Cuts chunked transfer coding; the chunks' bytes go to `lines`.
    private func dechunk(_ bytes: ArraySlice<UInt8>) {
        var at = bytes.startIndex
        while at < bytes.endIndex && fd >= 0 {
            if skipCRLF > 0 {
                at += 1
                skipCRLF -= 1
            } else if chunkLeft < 0 {
                // Size line: hex digits then CRLF (accumulated in `input`).
                let byte = bytes[at]
                at += 1
                if byte == 10 {
                    let size = input.prefix { $0 != 13 && $0 != 59 }.reduce(0) { value, digit in
                        value * 16 + Int(digit <= 57 ? digit - 48 : (digit | 0x20) - 87)
                    }
                    input.removeAll(keepingCapacity: true)
                    if size == 0 {
                        fail("the server ended the streaming response (last chunk)")
                        return
                    }
                    chunkLeft = size
                } else {
                    input.append(byte)
                }
            } else {
                let take = min(chunkLeft, bytes.endIndex - at)
                lines(bytes[at..<(at + take)])
                at += take
                chunkLeft -= take
                if chunkLeft == 0 {
                    chunkLeft = -1
                    skipCRLF = 2
                }
            }
        }
    }

    /// Splits de-chunked bytes into frame lines.
    private func lines(_ bytes: ArraySlice<UInt8>) {
        var start = bytes.startIndex
        while fd >= 0, let newline = bytes[start...].firstIndex(of: 10) {
            if line.isEmpty {
                frame(bytes[start..<newline])
            } else {
                line.append(contentsOf: bytes[start..<newline])
                let whole = line
                line.removeAll(keepingCapacity: true)
                frame(whole[...])
            }
            start = newline + 1
        }
        if start < bytes.endIndex { line.append(contentsOf: bytes[start...]) }
    }

    /// One frame line from the server.
    private func frame(_ bytes: ArraySlice<UInt8>) {
        guard sawPreamble else {
            guard bytes.elementsEqual(";)]}^".utf8) else {
                fail("no preamble: \(String(decoding: bytes.prefix(40), as: UTF8.self))")
                return
            }
            sawPreamble = true
            return
        }
        guard let type = bytes.last else { return }
        switch type {
        case UInt8(ascii: "C"):
            created = true
            sendAckIfDue(force: true)
        case UInt8(ascii: " "):
            receivedAck += 1
            stats.chatLine(bytes, readAt: loop.lastReadRealtime)
            if receivedAck - ackedSent >= 32 { sendAckIfDue() }
        case UInt8(ascii: "N"):
            if let n = parseDecimal(bytes.dropLast()) { receivedAck = n - 1 }
        case UInt8(ascii: "A"):
            lastSackSeen = Array(bytes.dropLast())
        case UInt8(ascii: "T"), UInt8(ascii: "^"):
            break
        default:
            stats.error("unexpected frame \(String(decoding: bytes, as: UTF8.self))")
        }
    }

    /// Sends the SACK of what arrived on the upload connection (one request at a time).
    private func sendAckIfDue(force: Bool = false) {
        guard !stopped, !uploadBusy, force || receivedAck > ackedSent else { return }
        uploadBusy = true
        ackedSent = receivedAck
        var body = Array(#"{"tnum":"#.utf8)
        appendDecimal(&body, nextTransportNumber)
        nextTransportNumber += 1
        body += Array(#","ver":2,"format":2,"id":""#.utf8)
        body += id
        body += Array(#"","ming":false,"maxb":300000,"maxia":0,"tcpack":false,"sack":"|"#.utf8)
        appendDecimal(&body, receivedAck)
        body += Array(#"","seenack":""#.utf8)
        body += lastSackSeen
        body += Array("\"}H\n".utf8)
        stats.requests += 1
        uploads.send(template.request(body: body), slot: uploadSlot, for: self)
    }

    private func fail(_ reason: String) {
        if fd >= 0 {
            if connecting { loop.connectFinished() }
            loop.unregister(fd)
            closeSocket(fd)
        }
        fd = -1
        connecting = false
        holding = false
        if stopped { return }
        stats.error(reason)
        start()
    }
}
