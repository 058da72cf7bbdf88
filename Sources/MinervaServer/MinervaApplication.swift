// The application API for servers that link MinervaServer: the stream handler protocol and ServerStream come from
// MinervaCore (re-exported here), plus a String convenience and a QAN wrapper (PROTOCOL.md 6.9, 6.11).
import MinervaCore
import MinervaHTTP
import MinervaIO

/// A stream handler that receives strings as `String`s (copied) instead of borrowed byte slices.
///
/// Conform and implement ``textReceived(_:on:)``; every received string is delivered to it in order, and an error it
/// throws is reported without stopping the delivery of the others (PROTOCOL.md 10.14).
public protocol MinervaTextStreamHandler: MinervaStreamHandler {
    /// One string arrived (ASCII 0x20...0x7E, so the conversion is exact).
    /// - Parameters:
    ///   - text: the string.
    ///   - stream: the stream it arrived on.
    func textReceived(_ text: String, on stream: ServerStream) throws
}

extension MinervaTextStreamHandler {
    /// Converts the borrowed bytes to a `String` and calls ``textReceived(_:on:)``.
    public func stringReceived(_ string: ArraySlice<UInt8>, on stream: ServerStream) throws {
        try textReceived(String(decoding: string, as: UTF8.self), on: stream)
    }
}

/// A stream handler that speaks QAN (question-answer-notify, PROTOCOL.md 8) over the stream's strings.
///
/// Every received string is decoded as a QAN frame; questions and notifications go to `bodyReceived`. Ask the
/// client questions with ``qan``. A QAN protocol violation resets the stream with the helper's reason (application
/// level); a stream reset fails every outstanding question.
public final class MinervaQANHandler: MinervaStreamHandler {
    /// Receives questions (answer them through the responder, now or later) and notifications.
    public typealias BodyHandler = (QANIncoming, ServerStream) throws -> Void

    private let bodyHandler: BodyHandler
    private let onStarted: ((ServerStream, QANHelper) -> Void)?
    private let onReset: ((ServerStream, String, Bool) -> Void)?
    /// The QAN helper of the stream, available from ``streamStarted(_:)`` on (ask and notify through it).
    public private(set) var qan: QANHelper!

    /// Creates the handler of one stream.
    /// - Parameters:
    ///   - onStarted: called when the stream starts, with its helper (e.g. to ask a first question).
    ///   - onReset: called when the stream ends, with the reason and whether it was application level.
    ///   - bodyReceived: handles received questions and notifications.
    public init(
        onStarted: ((ServerStream, QANHelper) -> Void)? = nil, onReset: ((ServerStream, String, Bool) -> Void)? = nil,
        bodyReceived: @escaping BodyHandler
    ) {
        self.bodyHandler = bodyReceived
        self.onStarted = onStarted
        self.onReset = onReset
    }

    /// Builds the QAN helper over the stream.
    public func streamStarted(_ stream: ServerStream) throws {
        let handler = bodyHandler
        qan = QANHelper(
            send: { [weak stream] bytes in
                guard let stream else { throw MinervaStreamError.streamIsReset }
                try stream.send(bytes)
            },
            bodyReceived: { [weak stream] incoming in
                if let stream { try handler(incoming, stream) }
            },
            fatalError: { [weak stream] error in
                if let stream, !stream.isReset { try? stream.reset(reason: error.resetReason) }
            },
            log: { [weak stream] message in stream?.engine?.report(QANLogMessage(message), in: "QAN body handler") })
        onStarted?(stream, qan)
    }

    /// Feeds each string to the QAN helper, stopping at a fatal error or a reset.
    public func stringsReceived(_ strings: [ArraySlice<UInt8>], on stream: ServerStream) {
        for string in strings {
            if stream.isReset || !qan.handleString(string) { return }
        }
    }

    /// Fails every outstanding question, then tells `onReset`.
    public func streamReset(_ stream: ServerStream, reason: String, applicationLevel: Bool) {
        qan?.failAll(reason: "Stream reset applicationLevel=\(applicationLevel ? "True" : "False"), reason: \(reason)")
        onReset?(stream, reason, applicationLevel)
    }
}

/// A message the QAN helper logged (an error thrown by the body handler).
struct QANLogMessage: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
