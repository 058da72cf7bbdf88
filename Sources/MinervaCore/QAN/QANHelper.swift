// The QAN helper both peers run (PROTOCOL.md 8): asks questions and matches their answers, hands received
// questions and notifications to the application and sends its answers, in completion order. Callback-based and
// confined to its owner's thread (the stream's event loop).

/// How a question asked with ``QANHelper/ask(_:completion:)`` ended.
public enum QANOutcome: Equatable, Sendable {
    /// The peer answered (`K`).
    case answer(ArraySlice<UInt8>)
    /// The peer failed the question with a known error (`E`).
    case knownError(ArraySlice<UInt8>)
    /// The peer failed the question with an unknown error (`U`).
    case unknownError(ArraySlice<UInt8>)
    /// We cancelled the question (a later answer is ignored).
    case cancelled
    /// ``QANHelper/failAll(reason:)`` gave up on it (e.g. the stream was reset).
    case questionFailed(reason: String)
}

/// A known error a body handler throws to answer a question with `body|qidE`.
public struct QANKnownError: Error, Equatable, Sendable {
    /// The error body sent to the asker (a restricted string).
    public var body: [UInt8]
    /// Creates the error.
    /// - Parameter body: the bytes sent to the asker.
    public init(_ body: [UInt8]) { self.body = body }
    /// Creates the error from ASCII text.
    /// - Parameter text: the text sent to the asker.
    public init(_ text: String) { self.body = Array(text.utf8) }
}

/// A QAN protocol violation by the peer; the stream must be reset with ``resetReason`` (application level).
public struct QANFatalError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What went wrong, e.g. `Received an answer with invalid qid: 100`.
    public let message: String
    /// Whether the string was no QAN frame at all.
    public let isBadFrame: Bool

    /// The reason to reset the stream with: `QANHelper said: <message>`, or for an undecodable string
    /// `Bad QAN frame.  Did peer send a non-QAN string?` (two spaces, as the original).
    public var resetReason: String {
        isBadFrame ? "Bad QAN frame.  Did peer send a non-QAN string?" : "QANHelper said: " + message
    }

    /// The message.
    public var description: String { message }
}

/// Errors of the local API (never caused by the peer).
public struct QANUsageError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What was wrong.
    public let description: String

    /// A body that is not a restricted string (PROTOCOL.md 1), refused before anything was sent.
    public static let invalidBody = QANUsageError(description: "QAN body is not a restricted string")
}

/// Something the peer sent that the application handles.
public enum QANIncoming {
    /// A question: answer it through `responder`, now or later.
    case question(body: ArraySlice<UInt8>, responder: QANResponder)
    /// A notification: nothing is sent back.
    case notification(body: ArraySlice<UInt8>)
}

/// The handle for answering one received question. Only the first answer counts; later calls return false.
public final class QANResponder {
    /// The asker's number for the question.
    public let qid: Int64
    weak var helper: QANHelper?
    /// Whether an answer (of any kind) was sent or given up on.
    public private(set) var isSettled = false
    /// Whether the peer cancelled the question.
    public private(set) var isCancelled = false
    /// Called once when the peer cancels; it may answer (that answer is sent). If it does not, the helper answers
    /// `CancelledError|qidU`.
    public var onCancel: (() -> Void)?

    init(qid: Int64, helper: QANHelper) {
        self.qid = qid
        self.helper = helper
    }

    /// Answers with `body|qidK`.
    /// - Parameter body: the answer (a restricted string, or the helper sends `Uncaught exception|qidU`).
    /// - Returns: false if the question was already settled.
    @discardableResult
    public func answer(_ body: some Collection<UInt8>) -> Bool {
        settle { .okayAnswer(body: ArraySlice(body), qid: qid) }
    }

    /// Fails the question with a known error: `body|qidE`.
    /// - Parameter body: the error body (a restricted string).
    /// - Returns: false if the question was already settled.
    @discardableResult
    public func fail(knownError body: some Collection<UInt8>) -> Bool {
        settle { .knownErrorAnswer(body: ArraySlice(body), qid: qid) }
    }

    /// Fails the question with an unknown error; the peer sees only `Uncaught exception|qidU` (no details leak).
    /// - Returns: false if the question was already settled.
    @discardableResult
    public func failUnknown() -> Bool {
        settle { .unknownErrorAnswer(body: ArraySlice(QANHelper.uncaughtExceptionBody), qid: qid) }
    }

    func settle(_ frame: () -> QANFrame) -> Bool {
        guard !isSettled else { return false }
        isSettled = true
        onCancel = nil
        helper?.sendAnswer(frame(), qid: qid)
        return true
    }

    func peerCancelled() {
        guard !isSettled, !isCancelled else { return }
        isCancelled = true
        let canceller = onCancel
        onCancel = nil
        canceller?()
        if !isSettled {
            _ = settle { .unknownErrorAnswer(body: ArraySlice(QANHelper.cancelledErrorBody), qid: qid) }
        }
    }
}

/// Question-answer-notify over a stream's strings (PROTOCOL.md 8). Give it every received string with
/// ``handleString(_:)``; it sends through the `send` closure.
///
/// Not thread-safe: use it from the thread (event loop) that owns the stream.
public final class QANHelper {
    static let uncaughtExceptionBody = Array("Uncaught exception".utf8)
    static let cancelledErrorBody = Array("CancelledError".utf8)

    /// Sends one string on the stream; throws if it cannot (then `ask` does not consume a qid).
    public typealias Send = ([UInt8]) throws -> Void
    /// Receives questions and notifications; throwing ``QANKnownError`` answers with `E`, any other error with
    /// `Uncaught exception|qidU` (and is logged).
    public typealias BodyHandler = (QANIncoming) throws -> Void

    struct Asked {
        var completion: ((QANOutcome) -> Void)?
    }

    let send: Send
    let bodyReceived: BodyHandler
    let fatal: (QANFatalError) -> Void
    let log: (String) -> Void
    /// Whether bodies sent by this side are checked to be restricted strings (default true).
    public let validateBodies: Bool
    var lastQid: Int64 = 0
    /// Questions we asked: pending ones have a completion; cancelled or failed ones wait for an answer to ignore.
    var asked: [Int64: Asked] = [:]
    /// Questions the peer asked that we have not answered yet.
    var received: [Int64: QANResponder] = [:]

    /// Creates a helper.
    /// - Parameters:
    ///   - validateBodies: refuse bodies that are not restricted strings (PROTOCOL.md 1).
    ///   - send: sends one string on the stream.
    ///   - bodyReceived: the application's handler for questions and notifications.
    ///   - fatalError: called on a protocol violation; reset the stream with its ``QANFatalError/resetReason``.
    ///   - log: receives descriptions of errors thrown by the handler.
    public init(
        validateBodies: Bool = true, send: @escaping Send, bodyReceived: @escaping BodyHandler,
        fatalError: @escaping (QANFatalError) -> Void, log: @escaping (String) -> Void = { _ in }
    ) {
        self.validateBodies = validateBodies
        self.send = send
        self.bodyReceived = bodyReceived
        self.fatal = fatalError
        self.log = log
    }

    /// The number of questions asked and not yet answered (including cancelled and failed ones).
    public var outstandingQuestionCount: Int { asked.count }

    /// The number of received questions not yet answered.
    public var pendingAnswerCount: Int { received.count }

    /// Asks the peer a question: sends `body|qidQ`.
    /// - Parameters:
    ///   - body: the question (a restricted string).
    ///   - completion: called once with the outcome.
    /// - Returns: the question's qid (1, 2, 3, ...).
    /// - Throws: ``QANUsageError/invalidBody``, or what `send` throws (then no qid is used up).
    @discardableResult
    public func ask(
        _ body: some Collection<UInt8>, completion: @escaping (QANOutcome) -> Void
    ) throws -> Int64 {
        if validateBodies && !RestrictedString.isValid(body) { throw QANUsageError.invalidBody }
        let qid = lastQid + 1
        // Reserved before sending: a synchronous answer may ask again from inside `send`.
        lastQid = qid
        asked[qid] = Asked(completion: completion)
        do {
            try send(QANFrame.question(body: ArraySlice(body), qid: qid).encoded)
        } catch {
            asked[qid] = nil
            if lastQid == qid { lastQid = qid - 1 }
            throw error
        }
        return qid
    }

    /// Sends a notification `body#`.
    /// - Parameter body: the notification (a restricted string).
    /// - Throws: ``QANUsageError/invalidBody`` or what `send` throws.
    public func notify(_ body: some Collection<UInt8>) throws {
        if validateBodies && !RestrictedString.isValid(body) { throw QANUsageError.invalidBody }
        try send(QANFrame.notification(body: ArraySlice(body)).encoded)
    }

    /// Cancels a question we asked: sends `qidC` and completes it with `.cancelled`; its answer will be ignored.
    /// - Parameter qid: the question.
    /// - Returns: false if the question is not pending (unknown, answered, cancelled or failed).
    @discardableResult
    public func cancel(_ qid: Int64) -> Bool {
        guard let completion = asked[qid]?.completion else { return false }
        asked[qid]?.completion = nil
        do {
            try send(QANFrame.cancellation(qid: qid).encoded)
        } catch {
            log("QAN: could not send cancellation of question \(qid): \(error)")
        }
        completion(.cancelled)
        return true
    }

    /// Fails every pending question with `.questionFailed(reason)` (skipping settled ones, PROTOCOL.md 10.15);
    /// their answers, if any arrive, are ignored. Call it when the stream resets.
    /// - Parameter reason: e.g. `Stream reset applicationLevel=True, reason: ...`.
    public func failAll(reason: String) {
        for qid in asked.keys.sorted() {
            guard let completion = asked[qid]?.completion else { continue }
            asked[qid]?.completion = nil
            completion(.questionFailed(reason: reason))
        }
    }

    /// Handles one string received on the stream.
    /// - Parameter string: the string.
    /// - Returns: false if it caused a fatal error (already reported through `fatalError`).
    @discardableResult
    public func handleString(_ string: ArraySlice<UInt8>) -> Bool {
        guard let frame = QANFrame.decode(string) else {
            fatal(QANFatalError(message: "Bad QAN frame", isBadFrame: true))
            return false
        }
        switch frame {
        case .question(let body, let qid):
            if received[qid] != nil {
                fatal(QANFatalError(message: "Received Question with duplicate qid: \(qid)", isBadFrame: false))
                return false
            }
            let responder = QANResponder(qid: qid, helper: self)
            received[qid] = responder
            do {
                try bodyReceived(.question(body: body, responder: responder))
            } catch let error as QANKnownError {
                if !responder.fail(knownError: error.body) { log("QAN: error after answering \(qid): \(error)") }
            } catch {
                log("QAN: question \(qid) raised \(error)")
                responder.failUnknown()
            }
        case .notification(let body):
            do {
                try bodyReceived(.notification(body: body))
            } catch {
                log("QAN: notification raised \(error)")
            }
        case .okayAnswer(let body, let qid):
            return answerReceived(qid, .answer(body))
        case .knownErrorAnswer(let body, let qid):
            return answerReceived(qid, .knownError(body))
        case .unknownErrorAnswer(let body, let qid):
            return answerReceived(qid, .unknownError(body))
        case .cancellation(let qid):
            received[qid]?.peerCancelled()
        }
        return true
    }

    func answerReceived(_ qid: Int64, _ outcome: QANOutcome) -> Bool {
        guard let entry = asked.removeValue(forKey: qid) else {
            fatal(QANFatalError(message: "Received an answer with invalid qid: \(qid)", isBadFrame: false))
            return false
        }
        entry.completion?(outcome)
        return true
    }

    /// Sends the answer of a received question (called by its responder).
    func sendAnswer(_ frame: QANFrame, qid: Int64) {
        received[qid] = nil
        var frame = frame
        if validateBodies {
            switch frame {
            case .okayAnswer(let body, _), .knownErrorAnswer(let body, _):
                if !RestrictedString.isValid(body) {
                    log("QAN: answer to question \(qid) is not a restricted string")
                    frame = .unknownErrorAnswer(body: ArraySlice(Self.uncaughtExceptionBody), qid: qid)
                }
            default: break
            }
        }
        do {
            try send(frame.encoded)
        } catch {
            log("QAN: could not send the answer to question \(qid): \(error)")
        }
    }
}
