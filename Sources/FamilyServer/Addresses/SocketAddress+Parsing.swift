import Glibc

extension SocketAddress {
    /// The longest Unix socket path or abstract name, in bytes: `sun_path` holds 108 with the NUL.
    public static let maxUnixPathBytes = 107

    /// Parses the textual form of SPEC section 2: `tcp://HOST:PORT`, `udp://HOST:PORT`, `unix:PATH`,
    /// `unix:@NAME`, `unixgram:PATH`, `unixgram:@NAME`.
    ///
    /// HOST is an IPv4 literal, a bracketed IPv6 literal (`[::1]`), `*` (the dual-stack IPv6
    /// wildcard `[::]`) or a host name, which is resolved here; the address it resolves to is the
    /// one kept (and printed). Port 0 asks for an ephemeral port at bind time.
    /// - Throws: ``AddressError`` naming the text and what is wrong with it.
    public init(parsing text: String) throws(AddressError) {
        if let rest = text.dropPrefix("tcp://") {
            self = try Self.parseInet(rest, transport: .stream, text: text)
        } else if let rest = text.dropPrefix("udp://") {
            self = try Self.parseInet(rest, transport: .datagram, text: text)
        } else if let rest = text.dropPrefix("unixgram:") {
            self = SocketAddress(.datagram, try Self.parseUnix(rest, text: text))
        } else if let rest = text.dropPrefix("unix:") {
            self = SocketAddress(.stream, try Self.parseUnix(rest, text: text))
        } else {
            throw AddressError(text, .unknownScheme)
        }
    }

    private static func parseInet(_ rest: String, transport: Transport, text: String) throws(AddressError) -> SocketAddress {
        let host: String
        let portText: String
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else {
                throw AddressError(text, .badIPv6(String(rest.dropFirst())))
            }
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            let after = rest[rest.index(after: close)...]
            guard after.hasPrefix(":") else { throw AddressError(text, .missingPort) }
            portText = String(after.dropFirst())
            guard let ip = IPAddress(numeric: host), !ip.isIPv4 else { throw AddressError(text, .badIPv6(host)) }
            return SocketAddress(transport, .inet(ip, port: try parsePort(portText, text: text)))
        }
        guard let colon = rest.lastIndex(of: ":") else {
            throw AddressError(text, rest.isEmpty ? .missingHost : .missingPort)
        }
        host = String(rest[..<colon])
        portText = String(rest[rest.index(after: colon)...])
        guard !host.isEmpty else { throw AddressError(text, .missingHost) }
        if host.contains(":") { throw AddressError(text, .badIPv6(host)) }  // an IPv6 literal needs brackets
        let port = try parsePort(portText, text: text)
        if host == "*" { return SocketAddress(transport, .inet(.anyIPv6, port: port)) }
        if let ip = IPAddress(numeric: host) { return SocketAddress(transport, .inet(ip, port: port)) }
        return SocketAddress(transport, .inet(try resolve(host, transport: transport, text: text), port: port))
    }

    private static func parsePort(_ text: String, text whole: String) throws(AddressError) -> UInt16 {
        guard !text.isEmpty else { throw AddressError(whole, .missingPort) }
        guard text.utf8.count <= 5, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let value = Int(text),
              value <= 65535
        else { throw AddressError(whole, .badPort(text)) }
        return UInt16(value)
    }

    private static func parseUnix(_ rest: String, text: String) throws(AddressError) -> Endpoint {
        if rest.hasPrefix("@") {
            let name = Array(rest.utf8.dropFirst())
            guard !name.isEmpty else { throw AddressError(text, .emptyPath) }
            guard name.count <= maxUnixPathBytes else { throw AddressError(text, .tooLong(bytes: name.count)) }
            return .unixAbstract(name)
        }
        guard !rest.isEmpty else { throw AddressError(text, .emptyPath) }
        guard !rest.utf8.contains(0) else { throw AddressError(text, .nulInPath) }
        guard rest.utf8.count <= maxUnixPathBytes else { throw AddressError(text, .tooLong(bytes: rest.utf8.count)) }
        return .unixPath(rest)
    }

    /// Resolves a host name with getaddrinfo and returns the first address, as bind would use it.
    private static func resolve(_ host: String, transport: Transport, text: String) throws(AddressError) -> IPAddress {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = transport.socketType
        var result: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, nil, &hints, &result)
        guard status == 0, let first = result else {
            throw AddressError(text, .unresolvable(host: host, message: String(cString: gai_strerror(status))))
        }
        defer { freeaddrinfo(result) }
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { raw in
            raw.copyMemory(from: UnsafeRawBufferPointer(start: first.pointee.ai_addr, count: Int(first.pointee.ai_addrlen)))
        }
        guard let address = SocketAddress(storage: storage, length: first.pointee.ai_addrlen, transport: transport),
              let ip = address.ip
        else { throw AddressError(text, .unresolvable(host: host, message: "no IPv4 or IPv6 address")) }
        return ip
    }
}

extension String {
    /// The rest of the string after `prefix`, or `nil` if it does not start with it.
    func dropPrefix(_ prefix: String) -> String? {
        hasPrefix(prefix) ? String(dropFirst(prefix.count)) : nil
    }
}
