import Glibc

/// An IPv4 or IPv6 address: 4 or 16 bytes in network order, plus the IPv6 scope (interface) id.
///
/// The bytes are held inline, not in an array: decoding a peer's address (every accepted connection, every
/// datagram) allocates nothing.
public struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    /// The address bytes in the first 4 (IPv4) or 16 (IPv6) bytes, the rest zero.
    private var storage: (UInt64, UInt64) = (0, 0)
    /// 4 or 16.
    private let length: UInt8
    /// The IPv6 scope id (interface index) of a link-local address; 0 otherwise.
    public let scopeID: UInt32

    /// The IPv4 wildcard `0.0.0.0`.
    public static let anyIPv4 = IPAddress(bytes: [0, 0, 0, 0])
    /// The IPv6 wildcard `::`, which serves IPv4 clients too when bound dual-stack.
    public static let anyIPv6 = IPAddress(bytes: [UInt8](repeating: 0, count: 16))

    /// Creates an address from 4 or 16 bytes.
    public init(bytes: [UInt8], scopeID: UInt32 = 0) {
        self = bytes.withUnsafeBytes { IPAddress($0, scopeID: scopeID) }
    }

    /// Creates an address from 4 or 16 bytes in network order, copied from `raw`.
    public init(_ raw: UnsafeRawBufferPointer, scopeID: UInt32 = 0) {
        precondition(raw.count == 4 || raw.count == 16, "an IP address has 4 or 16 bytes")
        length = UInt8(raw.count)
        self.scopeID = scopeID
        withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: raw) }
    }

    /// The address bytes in network order: 4 for IPv4, 16 for IPv6.
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// Calls `body` with the address bytes in network order (4 or 16), without copying them into an array.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try Swift.withUnsafeBytes(of: storage) { try body(UnsafeRawBufferPointer(rebasing: $0.prefix(Int(length)))) }
    }

    public static func == (lhs: IPAddress, rhs: IPAddress) -> Bool {
        lhs.length == rhs.length && lhs.storage == rhs.storage && lhs.scopeID == rhs.scopeID
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(length)
        hasher.combine(storage.0)
        hasher.combine(storage.1)
        hasher.combine(scopeID)
    }

    /// Parses a numeric IPv4 (`127.0.0.1`) or IPv6 (`::1`, unbracketed) literal; `nil` if it is neither.
    public init?(numeric text: String) {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            self = Swift.withUnsafeBytes(of: &v4) { IPAddress($0) }
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            self = Swift.withUnsafeBytes(of: &v6) { IPAddress($0) }
            return
        }
        return nil
    }

    /// Byte `index` of the address (below 4 or 16).
    private func byte(_ index: Int) -> UInt8 {
        Swift.withUnsafeBytes(of: storage) { $0[index] }
    }

    /// Whether this is an IPv4 address.
    public var isIPv4: Bool { length == 4 }

    /// The address family: `AF_INET` or `AF_INET6`.
    public var family: Int32 { isIPv4 ? AF_INET : AF_INET6 }

    /// Whether this is a wildcard address (`0.0.0.0` or `::`).
    public var isWildcard: Bool { storage == (0, 0) }

    /// Whether this is a loopback address: `127.0.0.0/8`, `::1`, or an IPv4-mapped `127.x.y.z`.
    public var isLoopback: Bool {
        if isIPv4 { return byte(0) == 127 }
        if isIPv4Mapped { return byte(12) == 127 }
        return (0..<15).allSatisfy { byte($0) == 0 } && byte(15) == 1
    }

    /// Whether this is an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`).
    private var isIPv4Mapped: Bool {
        length == 16 && (0..<10).allSatisfy { byte($0) == 0 } && byte(10) == 0xff && byte(11) == 0xff
    }

    /// The IPv4 address inside an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`), else `nil`.
    public var mappedIPv4: IPAddress? {
        guard isIPv4Mapped else { return nil }
        return withUnsafeBytes { IPAddress(UnsafeRawBufferPointer(rebasing: $0[12..<16])) }
    }

    /// The canonical text (RFC 5952 for IPv6) without brackets, as `inet_ntop` prints it.
    public var description: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        withUnsafeBytes { raw in
            _ = inet_ntop(family, raw.baseAddress, &buffer, socklen_t(buffer.count))
        }
        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return scopeID == 0 ? text : "\(text)%\(scopeID)"
    }
}
