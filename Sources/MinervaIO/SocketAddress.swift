// Socket addresses as plain values for the public API.
internal import CShims

/// An IP address and port.
public struct MinervaSocketAddress: Hashable, Sendable, CustomStringConvertible {
    /// The address as text ("127.0.0.1", "::1"); empty for non-IP sockets.
    public var host: String
    /// The port (0 for non-IP sockets).
    public var port: Int

    /// Creates an address.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// "host:port", with brackets around IPv6 hosts.
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// The local or remote address of a socket, if it has one.
    package static func of(fd: Int32, peer: Bool) -> MinervaSocketAddress? {
        if fd < 0 { return nil }
        var text = [CChar](repeating: 0, count: 64)
        let port = cshims_socket_address(fd, peer ? 1 : 0, &text, 64)
        if port < 0 { return nil }
        let host = text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return MinervaSocketAddress(host: String(decoding: host, as: UTF8.self), port: Int(port))
    }
}
