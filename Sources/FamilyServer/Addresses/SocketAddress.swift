import Glibc

/// One address value for every family FamilyServer serves: TCP and UDP over IPv4 and IPv6, and Unix
/// stream and datagram sockets at a filesystem path or in the Linux abstract namespace.
///
/// Its textual form is the one of the SPEC's address table: `tcp://127.0.0.1:80`, `tcp://[::1]:80`,
/// `udp://…`, `unix:/run/x.sock`, `unix:@name`, `unixgram:…`. Canonical forms parse and print back
/// identically; `tcp://*:80` prints as `tcp://[::]:80`, a host name as the address it resolved to.
public struct SocketAddress: Sendable, Hashable, CustomStringConvertible {
    /// Whether the socket carries a byte stream or datagrams.
    public enum Transport: Sendable, Hashable {
        /// SOCK_STREAM: TCP or a Unix stream socket.
        case stream
        /// SOCK_DGRAM: UDP or a Unix datagram socket.
        case datagram

        /// The C socket type.
        public var socketType: Int32 {
            switch self {
            case .stream: return Int32(SOCK_STREAM.rawValue)
            case .datagram: return Int32(SOCK_DGRAM.rawValue)
            }
        }
    }

    /// Where the socket is.
    public enum Endpoint: Sendable, Hashable {
        /// An IPv4 or IPv6 address and port.
        case inet(IPAddress, port: UInt16)
        /// A Unix socket at a filesystem path.
        case unixPath(String)
        /// A Unix socket in the Linux abstract namespace: the name bytes after the leading NUL.
        case unixAbstract([UInt8])
        /// A Unix socket with no name: a client that never bound one.
        case unnamed
    }

    /// Stream or datagram.
    public var transport: Transport
    /// The family-specific location.
    public var endpoint: Endpoint

    /// Creates an address from its parts.
    public init(_ transport: Transport, _ endpoint: Endpoint) {
        self.transport = transport
        self.endpoint = endpoint
    }

    /// The address family: `AF_INET`, `AF_INET6` or `AF_UNIX`.
    public var family: Int32 {
        switch endpoint {
        case .inet(let ip, _): return ip.family
        case .unixPath, .unixAbstract, .unnamed: return AF_UNIX
        }
    }

    /// The IP address of an inet endpoint, else `nil`.
    public var ip: IPAddress? {
        if case .inet(let ip, _) = endpoint { return ip }
        return nil
    }

    /// The port of an inet endpoint, else `nil`.
    public var port: UInt16? {
        if case .inet(_, let port) = endpoint { return port }
        return nil
    }

    /// The filesystem path of a Unix path endpoint, else `nil`.
    public var path: String? {
        if case .unixPath(let path) = endpoint { return path }
        return nil
    }

    /// Whether this is an AF_UNIX address of any kind.
    public var isUnix: Bool { family == AF_UNIX }

    /// The textual form (SPEC section 2).
    public var description: String {
        switch endpoint {
        case .inet(let ip, let port):
            let scheme = transport == .stream ? "tcp" : "udp"
            let host = ip.isIPv4 ? ip.description : "[\(ip)]"
            return "\(scheme)://\(host):\(port)"
        case .unixPath(let path):
            return "\(unixScheme):\(path)"
        case .unixAbstract(let name):
            return "\(unixScheme):@\(String(decoding: name, as: UTF8.self))"
        case .unnamed:
            return "\(unixScheme):(unnamed)"
        }
    }

    private var unixScheme: String { transport == .stream ? "unix" : "unixgram" }
}
