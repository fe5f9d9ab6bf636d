import Glibc

/// An IPv4 or IPv6 address: 4 or 16 bytes in network order, plus the IPv6 scope (interface) id.
public struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    /// The address bytes in network order: 4 for IPv4, 16 for IPv6.
    public let bytes: [UInt8]
    /// The IPv6 scope id (interface index) of a link-local address; 0 otherwise.
    public let scopeID: UInt32

    /// The IPv4 wildcard `0.0.0.0`.
    public static let anyIPv4 = IPAddress(bytes: [0, 0, 0, 0])
    /// The IPv6 wildcard `::`, which serves IPv4 clients too when bound dual-stack.
    public static let anyIPv6 = IPAddress(bytes: [UInt8](repeating: 0, count: 16))

    /// Creates an address from 4 or 16 bytes.
    public init(bytes: [UInt8], scopeID: UInt32 = 0) {
        precondition(bytes.count == 4 || bytes.count == 16, "an IP address has 4 or 16 bytes")
        self.bytes = bytes
        self.scopeID = scopeID
    }

    /// Parses a numeric IPv4 (`127.0.0.1`) or IPv6 (`::1`, unbracketed) literal; `nil` if it is neither.
    public init?(numeric text: String) {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            self.init(bytes: withUnsafeBytes(of: &v4) { Array($0) })
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            self.init(bytes: withUnsafeBytes(of: &v6) { Array($0) })
            return
        }
        return nil
    }

    /// Whether this is an IPv4 address.
    public var isIPv4: Bool { bytes.count == 4 }

    /// The address family: `AF_INET` or `AF_INET6`.
    public var family: Int32 { isIPv4 ? AF_INET : AF_INET6 }

    /// Whether this is a wildcard address (`0.0.0.0` or `::`).
    public var isWildcard: Bool { bytes.allSatisfy { $0 == 0 } }

    /// Whether this is a loopback address: `127.0.0.0/8`, `::1`, or an IPv4-mapped `127.x.y.z`.
    public var isLoopback: Bool {
        let ipv4 = mappedIPv4?.bytes ?? bytes
        if ipv4.count == 4 { return ipv4[0] == 127 }
        return bytes[0..<15].allSatisfy { $0 == 0 } && bytes[15] == 1
    }

    /// The IPv4 address inside an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`), else `nil`.
    public var mappedIPv4: IPAddress? {
        guard bytes.count == 16, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff
        else { return nil }
        return IPAddress(bytes: Array(bytes[12..<16]))
    }

    /// The canonical text (RFC 5952 for IPv6) without brackets, as `inet_ntop` prints it.
    public var description: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        bytes.withUnsafeBytes { raw in
            _ = inet_ntop(family, raw.baseAddress, &buffer, socklen_t(buffer.count))
        }
        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return scopeID == 0 ? text : "\(text)%\(scopeID)"
    }
}
