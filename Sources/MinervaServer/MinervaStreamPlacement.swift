// The narrow hook a cluster (several servers sharing streams) plugs into the endpoint: before a POST of `io/` runs,
// the placement may take it (to relay it to the server that owns its stream, or to run it here once it has claimed
// the stream) and hand it back later as an owned copy. A WebSocket is offered likewise once its hello arrived (its
// stream is unknown before): the placement runs it here, refuses it, or takes the client's connection over (a relay
// that carries its bytes to another server). Nothing here knows of Redis or of other servers.
import MinervaCore
import MinervaHTTP
import MinervaIO

/// Decides where the transports of a stream run when several servers share streams (see `MinervaCluster`).
///
/// Set it as ``MinervaEndpointConfiguration/placement``. Called on the request's loop, for every POST of `io/`
/// whose first frame is a readable hello (the others are answered by the endpoint as usual), and for every
/// WebSocket whose first message is a readable hello.
public protocol MinervaStreamPlacement: AnyObject, Sendable {
    /// A POST of `io/` arrived; its response already carries the endpoint's headers (and CORS ones).
    /// - Parameters:
    ///   - request: the request (borrowed: valid only during the call; copy it with ``MinervaPostCopy/init(_:connection:)``).
    ///   - hello: the hello that opens its body.
    ///   - connection: its addresses as the endpoint sees them (the client's, through trusted proxies).
    ///   - response: its response.
    ///   - endpoint: the endpoint it reached.
    /// - Returns: false to let the endpoint run it here at once; true when the placement took it: it must then
    ///   answer `response` itself or give a copy back through ``MinervaEndpoint/runPost(_:response:)``.
    func takePost(
        _ request: MinervaHTTPRequest, hello: HelloFrame, connection: ConnectionInfo, response: MinervaHTTPResponse,
        endpoint: MinervaEndpoint
    ) -> Bool

    /// The first frame, a hello, of a WebSocket (the handshake is answered) or of an int32 socket of a
    /// ``MinervaSocketListener`` arrived. Not called for WebSockets that ``relayedUpgrade(_:connection:on:)``
    /// recognized. The default takes none.
    /// - Parameters:
    ///   - socket: the connection, held until the placement answers.
    ///   - hello: its hello.
    ///   - endpoint: the endpoint it reached.
    /// - Returns: false to let the endpoint run it here at once; true when the placement took it: it must then
    ///   answer through `socket` (``MinervaPlacedSocket/runHere()``, ``MinervaPlacedSocket/refuse(code:)`` or
    ///   ``MinervaPlacedSocket/divert(to:)``).
    func takeSocket(_ socket: MinervaPlacedSocket, hello: HelloFrame, endpoint: MinervaEndpoint) -> Bool

    /// A valid WebSocket upgrade arrived: if another server relayed it here (so its transport must run here, never
    /// be placed again), the client's addresses. Called before the handshake is answered. The default sees none.
    /// - Parameters:
    ///   - request: the upgrade request (borrowed: valid only during the call).
    ///   - connection: its addresses as the endpoint sees them.
    ///   - loop: the loop it arrived on.
    /// - Returns: nil for a client's own upgrade.
    func relayedUpgrade(
        _ request: MinervaHTTPRequest, connection: ConnectionInfo, on loop: MinervaEventLoop
    ) -> MinervaRelayedUpgrade?
}

/// A POST of `io/` copied out of its connection's buffers, to be run later (``MinervaEndpoint/runPost(_:response:)``).
public struct MinervaPostCopy: Sendable {
    /// The body.
    public var body: [UInt8]
    /// The request headers (names and values as received).
    public var headers: [([UInt8], [UInt8])]
    /// The addresses the engine and the application see (the peer is the client's, or what a relay says it was).
    public var connection: ConnectionInfo

    /// Copies `request`.
    /// - Parameters:
    ///   - request: a request of `io/`.
    ///   - connection: its addresses (nil: the TCP peer and local addresses).
    public init(_ request: MinervaHTTPRequest, connection: ConnectionInfo? = nil) {
        body = Array(request.body)
        var headers: [([UInt8], [UInt8])] = []
        headers.reserveCapacity(request.headerCount)
        request.forEachHeader { name, value in headers.append((Array(name), Array(value))) }
        self.headers = headers
        if let connection {
            self.connection = connection
        } else {
            self.connection = ConnectionInfo()
            let peer = request.remoteAddress?.description ?? ""
            self.connection.peerAddress = peer
            self.connection.localAddress = request.localAddress?.description ?? ""
            self.connection.rateLimitKey = hostPart(of: peer)
        }
    }

    /// The value of the first header named `name` (ASCII case-insensitive), if any.
    /// - Parameter name: the header name.
    /// - Returns: its value as a String.
    public func header(_ name: String) -> String? {
        let wanted = Array(name.utf8)
        for (key, value) in headers where key.count == wanted.count {
            if zip(key, wanted).allSatisfy({ lowercased($0) == lowercased($1) }) {
                return String(decoding: value, as: UTF8.self)
            }
        }
        return nil
    }
}

@inline(__always) private func lowercased(_ byte: UInt8) -> UInt8 {
    byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
}

extension MinervaEndpoint {
    /// Runs a POST that a ``MinervaStreamPlacement`` took, on this server (on the owner loop of its stream).
    ///
    /// Call on `response`'s loop. The response must be the one the placement was given, still unanswered.
    /// - Parameters:
    ///   - post: the copied request.
    ///   - response: its response.
    public func runPost(_ post: MinervaPostCopy, response: MinervaHTTPResponse) {
        guard response.isOpen else { return }
        driver(for: response.eventLoop).runCopiedPost(post, response)
    }
}

extension MinervaLoopDriver {
    /// Asks the placement (if any) whether it takes this POST. True if it did.
    func placementTakes(_ request: MinervaHTTPRequest, _ response: MinervaHTTPResponse, _ info: ConnectionInfo) -> Bool
    {
        guard let placement = endpoint.configuration.placement else { return false }
        let body = request.body
        guard var end = body.firstIndex(of: UInt8(ascii: "\n")) else { return false }
        if end > 0 && body[end - 1] == UInt8(ascii: "\r") { end -= 1 }
        guard end > 1, end <= engine.maxFrameLength, body[end - 1] == FrameType.hello else { return false }
        peekScratch.removeAll(keepingCapacity: true)
        peekScratch.append(contentsOf: UnsafeRawBufferPointer(rebasing: body[..<(end - 1)]))
        guard case .success(let hello) = HelloFrame.decode(json: peekScratch[...]) else { return false }
        return placement.takePost(request, hello: hello, connection: info, response: response, endpoint: endpoint)
    }

    /// ``MinervaEndpoint/runPost(_:response:)`` on this loop: as `handlePost`, from owned bytes.
    func runCopiedPost(_ post: MinervaPostCopy, _ response: MinervaHTTPResponse) {
        let handle = newHandle()
        responses[handle.rawValue] = response
        response.delegate = self
        response.delegateTag = handle.rawValue
        let includeHeaders = endpoint.configuration.includeRequestHeaders
        if !peers.isEmpty, let owner = post.body.withUnsafeBytes({ owner(ofBody: $0) }) {
            let headers = includeHeaders ? RawRequestHeaders(pairs: post.headers) : nil
            let transport = HandedOffTransport(kind: .http, info: post.connection, headers: headers, bytes: post.body)
            handOff(transport, handle: handle.rawValue, to: owner)
            return
        }
        let now = self.now
        if includeHeaders {
            engine.openTransport(handle, kind: .http, connection: post.connection, now: now) { raw in
                for (name, value) in post.headers {
                    name.withUnsafeBytes { name in value.withUnsafeBytes { raw.append(name: name, value: $0) } }
                }
            }
        } else {
            engine.openTransport(handle, kind: .http, connection: post.connection, now: now)
        }
        engine.httpBodyReceived(handle, body: post.body, now: now)
        perform()
    }
}

// MARK: - WebSockets

/// What a placement says of a WebSocket upgrade that another server relayed here
/// (``MinervaStreamPlacement/relayedUpgrade(_:connection:on:)``).
public struct MinervaRelayedUpgrade: Sendable {
    /// The addresses the engine and the application see (the client's, as the relaying server saw them).
    public var connection: ConnectionInfo
    /// Names (lowercase) of the request headers the application must not see (the relay's own marks).
    public var hiddenHeaders: [String]

    /// - Parameters:
    ///   - connection: the client's addresses.
    ///   - hiddenHeaders: lowercase names of headers to drop from what the application sees.
    public init(connection: ConnectionInfo, hiddenHeaders: [String] = []) {
        self.connection = connection
        self.hiddenHeaders = hiddenHeaders
    }
}

extension MinervaStreamPlacement {
    /// Takes no socket: every WebSocket and int32 socket runs here.
    public func takeSocket(_ socket: MinervaPlacedSocket, hello: HelloFrame, endpoint: MinervaEndpoint) -> Bool {
        false
    }

    /// Sees no relayed upgrade: every upgrade is a client's.
    public func relayedUpgrade(
        _ request: MinervaHTTPRequest, connection: ConnectionInfo, on loop: MinervaEventLoop
    ) -> MinervaRelayedUpgrade? {
        nil
    }
}

/// A connection carrying a socket transport whose placement is being decided (a WebSocket or an int32 socket).
protocol MinervaPlaceableSocket: AnyObject {
    var isPlacing: Bool { get }
    var placingBytes: [UInt8] { get }
    func placementRunsHere()
    func placementRefuses(_ code: UInt16)
    func placementDiverts(
        to handler: any MinervaTCPConnectionHandler
    ) -> (connection: MinervaTCPConnection, received: [UInt8])?
}

/// A WebSocket or an int32 socket whose first frame (its hello) arrived, held while a ``MinervaStreamPlacement``
/// decides where its transport runs. Loop-confined (its ``eventLoop``).
///
/// A WebSocket's handshake is already answered; the bytes received since the upgrade (or, for an int32 socket,
/// since its `<int32/>\n` prefix) are kept as they came: masked client frames or int32 frames, the hello's first.
/// The placement answers exactly once, later (not from inside
/// ``MinervaStreamPlacement/takeSocket(_:hello:endpoint:)``, though that is tolerated): ``runHere()``,
/// ``refuse(code:)`` or ``divert(to:)``. A socket held longer than the endpoint's `socketModeTimeout` is closed
/// (a WebSocket with 1008).
public final class MinervaPlacedSocket {
    private weak var socket: (any MinervaPlaceableSocket)?
    /// The loop the connection lives on.
    public let eventLoop: MinervaEventLoop
    /// The client's addresses as the endpoint sees them.
    public let connection: ConnectionInfo
    /// The headers of the client's upgrade request (names and values as received); empty for an int32 socket.
    public let headers: [([UInt8], [UInt8])]
    /// Whether it is a WebSocket (its bytes are WebSocket frames) rather than an int32 socket (int32 frames).
    public let isWebSocket: Bool

    init(
        _ socket: any MinervaPlaceableSocket, eventLoop: MinervaEventLoop, connection: ConnectionInfo,
        headers: [([UInt8], [UInt8])], isWebSocket: Bool
    ) {
        self.socket = socket
        self.eventLoop = eventLoop
        self.connection = connection
        self.headers = headers
        self.isWebSocket = isWebSocket
    }

    /// Whether the client is still connected and no answer was given.
    public var isWaiting: Bool { socket?.isPlacing ?? false }

    /// The bytes received so far (raw WebSocket frames or int32 frames as the client sent them).
    public var received: [UInt8] { socket?.placingBytes ?? [] }

    /// Runs the transport here after all: the kept bytes are decoded as if they had just arrived.
    public func runHere() { socket?.placementRunsHere() }

    /// Closes the connection (a WebSocket with a close frame of `code`), no Minerva frames: the client retries.
    /// - Parameter code: an RFC 6455 close code, e.g. 1013 (try again later).
    public func refuse(code: UInt16) { socket?.placementRefuses(code) }

    /// Hands the client's connection to `handler`, which then gets every later event of it (bytes as they arrive,
    /// the peer closing, becoming writable, closing) and writes to it directly; nothing of the transport runs here.
    /// - Parameter handler: the new owner of the connection (e.g. a relay to another server).
    /// - Returns: the client's connection and every byte received so far (see ``received``), or nil if the client
    ///   left (or an answer was already given).
    public func divert(
        to handler: any MinervaTCPConnectionHandler
    ) -> (connection: MinervaTCPConnection, received: [UInt8])? {
        socket?.placementDiverts(to: handler)
    }
}

extension RawRequestHeaders {
    /// A copy of headers given as name and value bytes, without spare capacity.
    init(pairs: [([UInt8], [UInt8])]) {
        self.init()
        reserveCapacity(pairs.reduce(0) { $0 + Self.storageSize(nameCount: $1.0.count, valueCount: $1.1.count) })
        for (name, value) in pairs {
            name.withUnsafeBytes { name in value.withUnsafeBytes { append(name: name, value: $0) } }
        }
    }
}
