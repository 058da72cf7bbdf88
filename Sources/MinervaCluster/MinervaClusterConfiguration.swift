// The settings of a Minerva cluster node (one Redis shared by every node; see MinervaCluster).

/// Settings of a ``MinervaCluster`` node.
public struct MinervaClusterConfiguration: Sendable {
    /// The Redis server's host (every node of the cluster uses the same Redis).
    public var redisHost: String
    /// The Redis server's port.
    public var redisPort: Int
    /// The `host:port` other nodes reach this node's HTTP listener at (nil: the address the server bound, which
    /// must then be reachable by the other nodes, i.e. not a wildcard address).
    public var advertisedAddress: String?
    /// Prefix of every Redis key and channel the cluster uses (several clusters can share one Redis).
    public var keyPrefix = "minerva:"
    /// Seconds a node's membership key lives without a refresh: a dead node disappears after at most this long.
    public var nodeTTL = 5.0
    /// Seconds between refreshes of this node's membership key and of its view of the live nodes.
    public var heartbeatInterval = 1.0
    /// Seconds a stream's ownership key lives without a refresh (the owner refreshes it every third of this, and
    /// deletes it when the stream ends).
    public var streamClaimTTL = 60.0
    /// Seconds a node remembers which node owns a stream it does not own (saves a Redis round trip per request).
    public var ownerCacheTime = 5.0
    /// Seconds a relay connection to another node may take to connect before the request is answered here.
    public var relayConnectTimeout = 1.0
    /// The path the Minerva endpoint is mounted at on every node (``MinervaEndpointConfiguration/prefix``).
    public var endpointPrefix = "/_minerva/"

    /// Settings for the Redis at `host:port`.
    /// - Parameters:
    ///   - redisHost: the Redis host.
    ///   - redisPort: the Redis port (6379 by default).
    public init(redisHost: String, redisPort: Int = 6379) {
        self.redisHost = redisHost
        self.redisPort = redisPort
    }

    /// Settings for the Redis named by a URL of the form `redis://HOST:PORT` (`redis://HOST` uses 6379; IPv6 hosts
    /// in brackets).
    /// - Parameter redisURL: the URL.
    /// - Throws: ``MinervaClusterConfigurationError`` if the URL is not of that form.
    public init(redisURL: String) throws(MinervaClusterConfigurationError) {
        guard let (host, port) = Self.parse(redisURL: redisURL) else {
            throw MinervaClusterConfigurationError(message: "not a redis://HOST:PORT URL: \(redisURL)")
        }
        self.init(redisHost: host, redisPort: port)
    }

    /// Splits `redis://HOST:PORT` (optionally with a trailing `/` or `/0`) into host and port.
    /// - Parameter redisURL: the URL.
    /// - Returns: host and port, or nil.
    public static func parse(redisURL: String) -> (host: String, port: Int)? {
        guard redisURL.hasPrefix("redis://") else { return nil }
        var rest = Substring(redisURL.dropFirst("redis://".count))
        if let slash = rest.firstIndex(of: "/") {
            let db = rest[rest.index(after: slash)...]
            guard db.isEmpty || db == "0" else { return nil }
            rest = rest[..<slash]
        }
        guard !rest.isEmpty, !rest.contains("@") else { return nil }
        var host: Substring
        var port = 6379
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { return nil }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let p = Int(after.dropFirst()) else { return nil }
                port = p
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            guard let p = Int(rest[rest.index(after: colon)...]) else { return nil }
            port = p
        } else {
            host = rest
        }
        guard !host.isEmpty, (1...65535).contains(port) else { return nil }
        return (String(host), port)
    }
}

/// A cluster setting that cannot be used.
public struct MinervaClusterConfigurationError: Error, Sendable, CustomStringConvertible {
    /// What is wrong.
    public let message: String
    /// What is wrong.
    public var description: String { message }
}
