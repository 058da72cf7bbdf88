// Subprotocol dispatch (PROTOCOL.md 6.10): the first string of a stream names the handler for the rest.

/// A stream handler that expects `subprotocol:NAME` as the first string and hands the stream to the handler
/// registered for NAME.
public final class SubprotocolDispatcher: MinervaStreamHandler {
    /// Builds the child handler of a subprotocol.
    public typealias Factory = (ServerStream) -> any MinervaStreamHandler

    private let factories: [String: Factory]
    /// The handler chosen by the first string, once there is one.
    public private(set) var child: (any MinervaStreamHandler)?

    /// Creates a dispatcher.
    /// - Parameter factories: child handler factories by subprotocol name.
    public init(factories: [String: Factory]) {
        self.factories = factories
    }

    /// Waits for the first string (nothing to do yet).
    public func streamStarted(_ stream: ServerStream) throws {}

    /// Chooses the child from the first string, then forwards every later string to it.
    public func stringsReceived(_ strings: [ArraySlice<UInt8>], on stream: ServerStream) {
        var rest = strings[...]
        if child == nil {
            guard let first = rest.popFirst() else { return }
            let prefix = Array("subprotocol:".utf8)
            guard first.starts(with: prefix) else {
                try? stream.reset(reason: "no subprotocol; send a subprotocol:... string first")
                return
            }
            let name = String(decoding: first.dropFirst(prefix.count), as: UTF8.self)
            guard let factory = factories[name] else {
                try? stream.reset(reason: "unknown subprotocol")
                return
            }
            let handler = factory(stream)
            child = handler
            do {
                try handler.streamStarted(stream)
            } catch {
                stream.engine?.report(error, in: "streamStarted")
                stream.resetInternal(reason: "streamStarted raised uncaught exception")
                return
            }
        }
        guard let child, !rest.isEmpty, !stream.isReset else { return }
        child.stringsReceived(Array(rest), on: stream)
    }

    /// Forwards the reset to the child, if any.
    public func streamReset(_ stream: ServerStream, reason: String, applicationLevel: Bool) {
        child?.streamReset(stream, reason: reason, applicationLevel: applicationLevel)
        child = nil
    }

    /// Forwards to the child, if any.
    public func transportCreated(_ info: TransportInfo, on stream: ServerStream) {
        child?.transportCreated(info, on: stream)
    }

    /// Forwards to the child, if any.
    public func transportDestroyed(_ info: TransportInfo, on stream: ServerStream) {
        child?.transportDestroyed(info, on: stream)
    }
}
