// A small RESP2 client for the cluster's few Redis commands, on the loop's one TCP connection type: commands are
// pipelined (replies answer them in order), a lost connection is re-made with backoff (0.1 s doubling to 2 s), and
// while it is down every command fails at once with an error reply (never a crash, a log line at most 1 per 5 s).
// A connection in subscriber mode hands every pushed message to `onPush` and re-subscribes on each reconnect.
import Logging
import MinervaIO

/// One Redis reply (RESP2).
enum RedisReply: Sendable, Equatable {
    case status(String)
    case error(String)
    case integer(Int)
    case bulk([UInt8]?)
    case array([RedisReply]?)

    /// The reply as text (status or bulk), if it is one.
    var text: String? {
        switch self {
        case .status(let s): return s
        case .bulk(let b?): return String(decoding: b, as: UTF8.self)
        default: return nil
        }
    }

    var isError: Bool {
        if case .error = self { return true }
        return false
    }
}

/// Incremental RESP2 parser: feed bytes, take whole replies.
struct RedisReplyParser {
    private var buffer: [UInt8] = []
    private var start = 0

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        if start > 0 && start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next whole reply, or nil if more bytes are needed. Throws on malformed input.
    mutating func next() throws(RedisProtocolError) -> RedisReply? {
        var index = start
        guard let reply = try parse(&index) else { return nil }
        start = index
        if start > 65_536 && start * 2 > buffer.count {
            buffer.removeFirst(start)
            start = 0
        }
        return reply
    }

    private func line(_ index: inout Int) -> ArraySlice<UInt8>? {
        var i = index
        while i + 1 < buffer.count {
            if buffer[i] == 13 && buffer[i + 1] == 10 {
                let slice = buffer[index..<i]
                index = i + 2
                return slice
            }
            i += 1
        }
        return nil
    }

    private func integer(_ slice: ArraySlice<UInt8>) throws(RedisProtocolError) -> Int {
        guard let value = Int(String(decoding: slice, as: UTF8.self)) else { throw RedisProtocolError() }
        return value
    }

    private func parse(_ index: inout Int) throws(RedisProtocolError) -> RedisReply? {
        guard index < buffer.count else { return nil }
        let type = buffer[index]
        var i = index + 1
        guard let head = line(&i) else { return nil }
        switch type {
        case UInt8(ascii: "+"):
            index = i
            return .status(String(decoding: head, as: UTF8.self))
        case UInt8(ascii: "-"):
            index = i
            return .error(String(decoding: head, as: UTF8.self))
        case UInt8(ascii: ":"):
            index = i
            return .integer(try integer(head))
        case UInt8(ascii: "$"):
            let length = try integer(head)
            if length < 0 {
                index = i
                return .bulk(nil)
            }
            guard length <= 512 * 1024 * 1024 else { throw RedisProtocolError() }
            guard buffer.count >= i + length + 2 else { return nil }
            index = i + length + 2
            return .bulk(Array(buffer[i..<(i + length)]))
        case UInt8(ascii: "*"):
            let count = try integer(head)
            if count < 0 {
                index = i
                return .array(nil)
            }
            var items: [RedisReply] = []
            items.reserveCapacity(min(count, 1024))
            for _ in 0..<count {
                guard let item = try parse(&i) else { return nil }
                items.append(item)
            }
            index = i
            return .array(items)
        default:
            throw RedisProtocolError()
        }
    }
}

struct RedisProtocolError: Error {}

/// Encodes a command as a RESP array of bulk strings.
func encodeRedisCommand(_ arguments: [String], into out: inout [UInt8]) {
    out.append(UInt8(ascii: "*"))
    out.append(contentsOf: String(arguments.count).utf8)
    out.append(contentsOf: [13, 10])
    for argument in arguments {
        let utf8 = argument.utf8
        out.append(UInt8(ascii: "$"))
        out.append(contentsOf: String(utf8.count).utf8)
        out.append(contentsOf: [13, 10])
        out.append(contentsOf: utf8)
        out.append(contentsOf: [13, 10])
    }
}

/// A Redis connection confined to one event loop, re-made with backoff when lost.
final class RedisConnection: MinervaTCPConnectionHandler {
    typealias Completion = (RedisReply) -> Void

    let loop: MinervaEventLoop
    let host: String
    let port: Int
    private let logger: Logger
    private let name: String
    private var connection: MinervaTCPConnection?
    private var connecting = false
    private var pending: [Completion] = []
    private var parser = RedisReplyParser()
    private var backoff = 0.1
    private var retryTimer: MinervaLoopTimer?
    private var stopped = false
    private var lastLog = -Double.infinity
    private var suppressed = 0
    private var scratch: [UInt8] = []
    /// Subscriber mode: every reply that answers no command (pushed messages) goes here.
    var onPush: ((RedisReply) -> Void)?
    /// Called after each (re)connection, before queued work (e.g. to subscribe again).
    var onConnect: (() -> Void)?
    /// How many times the connection was made (1 after the first success).
    private(set) var connectCount = 0

    init(loop: MinervaEventLoop, host: String, port: Int, name: String, logger: Logger) {
        self.loop = loop
        self.host = host
        self.port = port
        self.name = name
        self.logger = logger
    }

    /// Whether the connection is up.
    var isConnected: Bool { connection?.isOpen ?? false }

    /// Connects (and keeps reconnecting until `stop`).
    func start() {
        stopped = false
        connect()
    }

    /// Closes the connection for good; queued commands fail.
    func stop() {
        stopped = true
        retryTimer?.cancel()
        retryTimer = nil
        connection?.closeNow()
        connection = nil
        failPending("stopped")
    }

    /// Sends a command; `completion` gets its reply on the loop (an error reply if Redis cannot be reached).
    func send(_ arguments: [String], _ completion: @escaping Completion = { _ in }) {
        guard let connection, connection.isOpen else {
            loop.executeAtEndOfTurn { completion(.error("ERR minerva: redis unreachable")) }
            return
        }
        scratch.removeAll(keepingCapacity: true)
        encodeRedisCommand(arguments, into: &scratch)
        pending.append(completion)
        connection.write(scratch)
    }

    /// Sends a command whose reply (if any) is not awaited in order (subscriber mode: SUBSCRIBE's confirmations are
    /// pushes too).
    func sendUnanswered(_ arguments: [String]) {
        guard let connection, connection.isOpen else { return }
        scratch.removeAll(keepingCapacity: true)
        encodeRedisCommand(arguments, into: &scratch)
        connection.write(scratch)
    }

    private func connect() {
        guard !stopped, !connecting, connection == nil else { return }
        connecting = true
        loop.connectTCP(host: host, port: port, timeout: 2) { [weak self] result in
            guard let self else {
                if case .success(let c) = result { c.closeNow() }
                return
            }
            self.connecting = false
            switch result {
            case .success(let c):
                if self.stopped {
                    c.closeNow()
                    return
                }
                c.handler = self
                self.connection = c
                self.parser = RedisReplyParser()
                self.backoff = 0.1
                self.connectCount += 1
                if self.connectCount > 1 {
                    self.logger.notice("\(self.name): reconnected to redis \(self.host):\(self.port)")
                }
                self.onConnect?()
            case .failure(let error):
                self.log("\(self.name): cannot reach redis \(self.host):\(self.port): \(error)")
                self.scheduleRetry()
            }
        }
    }

    private func scheduleRetry() {
        guard !stopped, retryTimer == nil else { return }
        let delay = backoff
        backoff = min(backoff * 2, 2)
        retryTimer = loop.schedule(after: delay) { [weak self] in
            guard let self else { return }
            self.retryTimer = nil
            self.connect()
        }
    }

    private func log(_ message: String) {
        let now = loop.now
        if now - lastLog < 5 {
            suppressed += 1
            return
        }
        lastLog = now
        let extra = suppressed > 0 ? " (\(suppressed) similar lines not logged)" : ""
        suppressed = 0
        logger.warning("\(message)\(extra)")
    }

    private func failPending(_ reason: String) {
        let failed = pending
        pending = []
        for completion in failed { completion(.error("ERR minerva: \(reason)")) }
    }

    // MARK: MinervaTCPConnectionHandler

    func connection(_ connection: MinervaTCPConnection, didReceive bytes: UnsafeRawBufferPointer) {
        parser.append(bytes)
        do {
            while let reply = try parser.next() {
                if let onPush, pending.isEmpty || isPush(reply) {
                    onPush(reply)
                } else if !pending.isEmpty {
                    pending.removeFirst()(reply)
                }
            }
        } catch {
            log("\(name): malformed reply from redis; reconnecting")
            connection.closeNow()
        }
    }

    private func isPush(_ reply: RedisReply) -> Bool {
        guard case .array(let items?) = reply, let kind = items.first?.text else { return false }
        return ["message", "pmessage", "subscribe", "psubscribe", "unsubscribe", "punsubscribe"].contains(kind)
    }

    func connectionDidClose(_ connection: MinervaTCPConnection) {
        guard self.connection === connection else { return }
        self.connection = nil
        failPending("redis connection lost")
        if !stopped {
            log("\(name): lost the connection to redis \(host):\(port); reconnecting with backoff")
            scheduleRetry()
        }
    }
}
