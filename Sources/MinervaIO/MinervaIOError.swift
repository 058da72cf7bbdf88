// The errors of the I/O layer: a code plus a message, so new cases do not break users.

/// An error creating a socket.
public struct MinervaIOError: Error, CustomStringConvertible, Sendable {
    /// The kind of failure.
    public struct Code: Hashable, Sendable {
        let raw: Int
        /// The listening socket could not be created, bound or put into listening state.
        public static let bindFailed = Code(raw: 1)
        /// A socket pair could not be created.
        public static let socketFailed = Code(raw: 2)
    }

    /// The kind of failure.
    public let code: Code
    /// A human-readable explanation.
    public let message: String

    /// Creates an error.
    /// - Parameters:
    ///   - code: the kind of failure.
    ///   - message: a human-readable explanation.
    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    /// The message.
    public var description: String { message }
}
