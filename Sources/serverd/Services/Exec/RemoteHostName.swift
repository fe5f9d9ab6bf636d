import FamilyServer
import Glibc
import Synchronization

/// The name of a TCP client for `TCPREMOTEHOST` (the `resolve` option): its address looked up in reverse, kept only
/// when the name looks up forward to that same address (a peer that controls the reverse zone of its address could
/// otherwise claim any name) and when it is a plain host name (letters, digits, `-`, `_` and dots, at most 253 bytes).
///
/// A lookup may take as long as the resolver's timeouts, so it runs on a thread of its own, never on a serving
/// thread or the control loop; at most ``maximumLookups`` run at once, and a client beyond them gets no name rather
/// than a wait.
enum RemoteHostName {
    /// The most lookups running at once.
    static let maximumLookups = 32

    private static let running = Atomic<Int>(0)

    /// Looks the name of `client` up on a thread of its own and calls `then` there with it, or `nil` (no name, one
    /// that does not confirm, a failed lookup). Calls `then` at once with `nil` when ``maximumLookups`` run already or
    /// no thread can be started.
    static func lookUp(_ client: SocketAddress, then: @escaping @Sendable (String?) -> Void) {
        guard running.add(1, ordering: .relaxed).newValue <= maximumLookups else {
            running.subtract(1, ordering: .relaxed)
            return then(nil)
        }
        do {
            try DetachedThread.start {
                let name = confirmedName(of: client)
                running.subtract(1, ordering: .relaxed)
                then(name)
            }
        } catch {
            running.subtract(1, ordering: .relaxed)
            then(nil)
        }
    }

    /// The confirmed name of `client`'s address, looked up now (blocking).
    static func confirmedName(of client: SocketAddress) -> String? {
        guard let ip = client.ip.map({ $0.mappedIPv4 ?? $0 }) else { return nil }
        let bare = SocketAddress(.stream, .inet(ip, port: 0))
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        let status = bare.withSockAddr { address, length in
            getnameinfo(address, length, &host, socklen_t(host.count), nil, 0, NI_NAMEREQD)
        }
        guard status == 0 else { return nil }
        let name = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard isPlainHostName(name), addresses(of: name).contains(ip) else { return nil }
        return name
    }

    /// Whether `name` is a host name as DNS labels allow it (underscores tolerated): nothing a program could take
    /// for more than a name.
    static func isPlainHostName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= 253, bytes.first != UInt8(ascii: "-"), bytes.first != UInt8(ascii: ".")
        else { return false }
        return bytes.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."):
                return true
            default:
                return false
            }
        }
    }

    /// The IP addresses `name` looks up to (IPv4-mapped ones as IPv4).
    private static func addresses(of name: String) -> [IPAddress] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(name, nil, &hints, &list) == 0 else { return [] }
        defer { freeaddrinfo(list) }
        var found: [IPAddress] = []
        var entry = list
        while let current = entry?.pointee {
            entry = current.ai_next
            guard let address = current.ai_addr else { continue }
            switch Int32(address.pointee.sa_family) {
            case AF_INET:
                let sin = UnsafeRawPointer(address).loadUnaligned(as: sockaddr_in.self)
                found.append(IPAddress(bytes: withUnsafeBytes(of: sin.sin_addr) { Array($0) }))
            case AF_INET6:
                let sin6 = UnsafeRawPointer(address).loadUnaligned(as: sockaddr_in6.self)
                let ip = IPAddress(bytes: withUnsafeBytes(of: sin6.sin6_addr) { Array($0) })
                found.append(ip.mappedIPv4 ?? ip)
            default:
                continue
            }
        }
        return found
    }
}
