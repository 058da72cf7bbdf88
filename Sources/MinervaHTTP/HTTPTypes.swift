// Small HTTP vocabulary types of the server's public API.
import MinervaIO

/// An HTTP request method.
public struct MinervaHTTPMethod: Hashable, Sendable, CustomStringConvertible {
    /// The method token, e.g. "GET".
    public let name: String

    /// Creates a method from its token.
    public init(_ name: String) { self.name = name }

    /// The method token.
    public var description: String { name }

    /// GET.
    public static let GET = MinervaHTTPMethod("GET")
    /// HEAD.
    public static let HEAD = MinervaHTTPMethod("HEAD")
    /// POST.
    public static let POST = MinervaHTTPMethod("POST")
    /// PUT.
    public static let PUT = MinervaHTTPMethod("PUT")
    /// DELETE.
    public static let DELETE = MinervaHTTPMethod("DELETE")
    /// OPTIONS.
    public static let OPTIONS = MinervaHTTPMethod("OPTIONS")
    /// PATCH.
    public static let PATCH = MinervaHTTPMethod("PATCH")
    /// CONNECT.
    public static let CONNECT = MinervaHTTPMethod("CONNECT")
    /// TRACE.
    public static let TRACE = MinervaHTTPMethod("TRACE")
}

/// Reason phrases for the status codes the server itself uses (others get "Status").
package func reasonPhrase(_ status: Int) -> StaticString {
    switch status {
    case 100: return "Continue"
    case 101: return "Switching Protocols"
    case 200: return "OK"
    case 201: return "Created"
    case 202: return "Accepted"
    case 204: return "No Content"
    case 206: return "Partial Content"
    case 301: return "Moved Permanently"
    case 302: return "Found"
    case 303: return "See Other"
    case 304: return "Not Modified"
    case 307: return "Temporary Redirect"
    case 308: return "Permanent Redirect"
    case 400: return "Bad Request"
    case 401: return "Unauthorized"
    case 403: return "Forbidden"
    case 404: return "Not Found"
    case 405: return "Method Not Allowed"
    case 408: return "Request Timeout"
    case 409: return "Conflict"
    case 410: return "Gone"
    case 411: return "Length Required"
    case 413: return "Content Too Large"
    case 414: return "URI Too Long"
    case 415: return "Unsupported Media Type"
    case 417: return "Expectation Failed"
    case 426: return "Upgrade Required"
    case 429: return "Too Many Requests"
    case 431: return "Request Header Fields Too Large"
    case 500: return "Internal Server Error"
    case 501: return "Not Implemented"
    case 502: return "Bad Gateway"
    case 503: return "Service Unavailable"
    case 504: return "Gateway Timeout"
    case 505: return "HTTP Version Not Supported"
    default: return "Status"
    }
}

/// An error starting or running the server: a code plus a message, so new cases do not break users.
public struct MinervaHTTPServerError: Error, CustomStringConvertible, Sendable {
    /// The kind of failure.
    public struct Code: Hashable, Sendable {
        let raw: Int
        /// The listening socket could not be created, bound or put into listening state.
        public static let bindFailed = Code(raw: 1)
        /// A file could not be read.
        public static let fileUnreadable = Code(raw: 2)
        /// The server was started twice or used after shutdown.
        public static let invalidState = Code(raw: 3)
    }

    /// The kind of failure.
    public let code: Code
    /// A human-readable explanation.
    public let message: String

    /// The message.
    public var description: String { message }
}
