import Glibc

extension SocketAddress {
    /// Decodes a `sockaddr_storage` filled by `accept`, `getsockname`, `getpeername` or `recvfrom`.
    /// - Returns: `nil` for a family other than AF_INET, AF_INET6 and AF_UNIX.
    public init?(storage: sockaddr_storage, length: socklen_t, transport: Transport) {
        switch Int32(storage.ss_family) {
        case AF_INET:
            let sin = withUnsafeBytes(of: storage) { $0.load(as: sockaddr_in.self) }
            let ip = withUnsafeBytes(of: sin.sin_addr) { IPAddress($0) }
            self.init(transport, .inet(ip, port: UInt16(bigEndian: sin.sin_port)))
        case AF_INET6:
            let sin6 = withUnsafeBytes(of: storage) { $0.load(as: sockaddr_in6.self) }
            let ip = withUnsafeBytes(of: sin6.sin6_addr) { IPAddress($0, scopeID: sin6.sin6_scope_id) }
            self.init(transport, .inet(ip, port: UInt16(bigEndian: sin6.sin6_port)))
        case AF_UNIX:
            let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!
            let count = Int(length) - pathOffset
            guard count > 0 else {
                self.init(transport, .unnamed)
                return
            }
            let bytes = withUnsafeBytes(of: storage) { Array($0[pathOffset..<(pathOffset + count)]) }
            if bytes[0] == 0 {
                self.init(transport, .unixAbstract(Array(bytes.dropFirst())))
            } else {
                let path = bytes.prefix { $0 != 0 }
                self.init(transport, .unixPath(String(decoding: path, as: UTF8.self)))
            }
        default:
            return nil
        }
    }

    /// Calls `body` with this address as a `sockaddr` pointer and its exact length.
    ///
    /// An abstract name's length counts only its bytes (plus the leading NUL), never the whole
    /// `sockaddr_un`, so that `@name` and `@name\0\0…` stay different names.
    public func withSockAddr<R, E: Error>(
        _ body: (UnsafePointer<sockaddr>, socklen_t) throws(E) -> R
    ) throws(E) -> R {
        var storage = sockaddr_storage()
        let length: socklen_t
        switch endpoint {
        case .inet(let ip, let port) where ip.isIPv4:
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = port.bigEndian
            withUnsafeMutableBytes(of: &sin.sin_addr) { address in ip.withUnsafeBytes { address.copyMemory(from: $0) } }
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: sin, as: sockaddr_in.self) }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
        case .inet(let ip, let port):
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = port.bigEndian
            sin6.sin6_scope_id = ip.scopeID
            withUnsafeMutableBytes(of: &sin6.sin6_addr) { address in ip.withUnsafeBytes { address.copyMemory(from: $0) } }
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: sin6, as: sockaddr_in6.self) }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        case .unixPath(let path):
            length = Self.fillUnix(&storage, name: Array(path.utf8), abstract: false)
        case .unixAbstract(let name):
            length = Self.fillUnix(&storage, name: name, abstract: true)
        case .unnamed:
            storage.ss_family = sa_family_t(AF_UNIX)
            length = socklen_t(MemoryLayout<sa_family_t>.size)
        }
        return try withUnsafePointer(to: &storage) { (pointer) throws(E) -> R in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { (sa) throws(E) -> R in
                try body(sa, length)
            }
        }
    }

    private static func fillUnix(_ storage: inout sockaddr_storage, name: [UInt8], abstract: Bool) -> socklen_t {
        var sun = sockaddr_un()
        sun.sun_family = sa_family_t(AF_UNIX)
        let start = abstract ? 1 : 0
        withUnsafeMutableBytes(of: &sun.sun_path) { raw in
            // A path needs room for its NUL; an abstract name fills sun_path after the leading NUL
            // (107 bytes fit exactly, as the parser allows).
            precondition(start + name.count + (abstract ? 0 : 1) <= raw.count, "Unix socket name checked to fit at parse time")
            for (i, byte) in name.enumerated() { raw[start + i] = byte }
        }
        withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: sun, as: sockaddr_un.self) }
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!
        // A path is NUL-terminated; an abstract name is exactly its bytes after the leading NUL.
        return socklen_t(pathOffset + start + name.count + (abstract ? 0 : 1))
    }
}
