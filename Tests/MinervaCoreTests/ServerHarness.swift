// Drives MinervaServerEngine without I/O for the conformance cases of PROTOCOL.md 9 (groups C-F).
//
// Socket transports take decoded frames: each listed C2S frame is one element of `frames` (int32 framing is the
// decoder's job); the engine's int32-framed output is split back into frames here. HTTP transports take a whole
// body; the response body, its Content-Length decision and whether it finished are recorded.

import MinervaTestSupport
import Testing

@testable import MinervaCore

/// An application handler that records every callback and can run hooks.
final class Recorder: MinervaStreamHandler {
    var started = 0
    var received: [[String]] = []
    var resets: [(reason: String, applicationLevel: Bool)] = []
    var created: [Int64] = []
    var destroyed: [Int64] = []
    var onStarted: ((ServerStream) throws -> Void)?
    var onStrings: ((ServerStream, [String]) -> Void)?

    func streamStarted(_ stream: ServerStream) throws {
        started += 1
        try onStarted?(stream)
    }

    func stringsReceived(_ strings: [ArraySlice<UInt8>], on stream: ServerStream) {
        let list = strings.map { String(decoding: $0, as: UTF8.self) }
        received.append(list)
        onStrings?(stream, list)
    }

    func streamReset(_ stream: ServerStream, reason: String, applicationLevel: Bool) {
        resets.append((reason, applicationLevel))
    }

    func transportCreated(_ info: TransportInfo, on stream: ServerStream) { created.append(info.transportNumber) }
    func transportDestroyed(_ info: TransportInfo, on stream: ServerStream) { destroyed.append(info.transportNumber) }

    /// All strings received, flattened.
    var allStrings: [String] { received.flatMap { $0 } }
}

/// The recorded HTTP response of one transport.
struct MinervaHTTPResponse {
    var body = ""
    var contentLength: Int?
    var finished = false
    var writes = 0
}

struct StartError: Error {}

/// Owns an engine, its recorders, and everything the engine wrote.
final class Harness {
    let engine: MinervaServerEngine
    var recorders: [Recorder] = []
    var configure: ((Recorder) -> Void)?
    /// Replaces the recording handler when set.
    var factory: ((ServerStream) -> any MinervaStreamHandler)?
    var now: Double = 0
    private var nextHandle = 0
    private var socketOutput: [TransportHandle: [String]] = [:]
    var socketWrites: [TransportHandle: Int] = [:]
    var responses: [TransportHandle: MinervaHTTPResponse] = [:]
    var closed: Set<TransportHandle> = []
    var errors: [String] = []

    init(configuration: ServerEngineConfiguration = ServerEngineConfiguration()) {
        var engine: MinervaServerEngine!
        var recorders: (Recorder) -> Void = { _ in }
        var override: (ServerStream) -> (any MinervaStreamHandler)? = { _ in nil }
        engine = MinervaServerEngine(configuration: configuration, now: 0) { stream in
            if let handler = override(stream) { return handler }
            let recorder = Recorder()
            recorders(recorder)
            return recorder
        }
        self.engine = engine
        recorders = { [unowned self] recorder in
            self.configure?(recorder)
            self.recorders.append(recorder)
        }
        override = { [unowned self] stream in self.factory?(stream) }
        engine.errorReporter = { [unowned self] _, callback in self.errors.append(callback) }
    }

    /// The recorder of the first stream.
    var app: Recorder { recorders[0] }

    /// The live stream with the case id.
    var stream: ServerStream? { engine.stream(StreamID(testStreamID)!) }

    /// Opens a socket transport.
    func socket() -> TransportHandle {
        nextHandle += 1
        let handle = TransportHandle(nextHandle)
        engine.openTransport(handle, kind: .socket, connection: ConnectionInfo(), now: now)
        return handle
    }

    /// Sends frames on a socket as one received chunk, then ends the turn (flush).
    func send(_ handle: TransportHandle, _ frames: [String], corrupted: Bool = false) {
        sendBytes(handle, frames.map { Array($0.utf8) }, corrupted: corrupted)
    }

    /// Sends raw frames on a socket as one received chunk, then ends the turn (flush).
    func sendBytes(_ handle: TransportHandle, _ frames: [[UInt8]], corrupted: Bool = false) {
        engine.framesReceived(handle, frames: frames.map { $0[...] }, frameCorruption: corrupted, now: now)
        drain()
        endTurn()
    }

    /// Opens an HTTP transport and delivers its whole body, then ends the turn.
    @discardableResult
    func post(_ body: String) -> TransportHandle {
        nextHandle += 1
        let handle = TransportHandle(nextHandle)
        engine.openTransport(handle, kind: .http, connection: ConnectionInfo(), now: now)
        responses[handle] = MinervaHTTPResponse()
        engine.httpBodyReceived(handle, body: Array(body.utf8), now: now)
        drain()
        endTurn()
        return handle
    }

    /// The end of an event-loop turn: application sends are written.
    func endTurn() {
        engine.flush(now: now)
        drain()
    }

    /// Moves the clock and runs the timers.
    func advance(to time: Double) {
        now = time
        engine.timersDue(now: now)
        drain()
        endTurn()
    }

    /// Runs `body` as application code (outside any engine call), then ends the turn.
    func app(_ body: () throws -> Void) rethrows {
        try body()
        endTurn()
    }

    /// Takes the frames written on a socket since the last call.
    func out(_ handle: TransportHandle) -> [String] {
        defer { socketOutput[handle] = [] }
        return socketOutput[handle] ?? []
    }

    private func drain() {
        for action in engine.takeActions() {
            switch action {
            case .write(let handle, let bytes, .socket):
                socketWrites[handle, default: 0] += 1
                var index = 0
                while index < bytes.count {
                    precondition(bytes.count - index >= 4, "truncated length prefix")
                    let length =
                        Int(bytes[index]) << 24 | Int(bytes[index + 1]) << 16 | Int(bytes[index + 2]) << 8
                        | Int(bytes[index + 3])
                    index += 4
                    socketOutput[handle, default: []].append(
                        String(decoding: bytes[index..<(index + length)], as: UTF8.self))
                    index += length
                }
            case .write(let handle, let bytes, let kind):
                var response = responses[handle]!
                precondition(!response.finished, "write after finish")
                if kind == .httpWholeBody {
                    precondition(response.writes == 0, "whole body after a chunk")
                    response.contentLength = bytes.count
                    response.finished = true
                }
                response.writes += 1
                response.body += String(decoding: bytes, as: UTF8.self)
                responses[handle] = response
            case .finish(let handle):
                precondition(responses[handle]?.finished == false, "finish twice")
                responses[handle]?.finished = true
            case .close(let handle):
                closed.insert(handle)
            }
        }
    }
}
