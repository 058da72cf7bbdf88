// The narrow hook a cluster (several servers sharing streams) plugs into the endpoint: before a POST of `io/` runs,
// the placement may take it (to relay it to the server that owns its stream, or to run it here once it has claimed
// the stream) and hand it back later as an owned copy. Nothing here knows of Redis or of other servers.
import MinervaCore
import MinervaHTTP
import MinervaIO

/// Decides where the transports of a stream run when several servers share streams (see `MinervaCluster`).
///
/// Set it as ``MinervaEndpointConfiguration/placement``. Called on the request's loop, for every POST of `io/`
/// whose first frame is a readable hello (the others are answered by the endpoint as usual).
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
            var headers: RawRequestHeaders?
            if includeHeaders {
                var raw = RawRequestHeaders()
                raw.reserveCapacity(
                    post.headers.reduce(0) {
                        $0 + RawRequestHeaders.storageSize(nameCount: $1.0.count, valueCount: $1.1.count)
                    })
                for (name, value) in post.headers {
                    name.withUnsafeBytes { name in value.withUnsafeBytes { raw.append(name: name, value: $0) } }
                }
                headers = raw
            }
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
