import FamilyServer
import Glibc

/// The environment of an exec child: serverd's own, without what belongs to serverd alone
/// (LISTEN_*, NOTIFY_SOCKET, WATCHDOG_*) or to another connection (the UCSPI variables), plus the
/// UCSPI variables of this connection (none in wait mode).
enum ExecEnvironment {
    /// Variables of another connection, never passed on.
    private static let ucspiPrefixes = ["PROTO=", "TCPLOCAL", "TCPREMOTE", "TCPCONNNUM=", "UNIXLOCAL", "UNIXREMOTE"]

    /// The environment of a child: serverd's own variables (as C strings made once; with `identity`'s `env` changes
    /// applied, made anew), then `own`.
    static func child(own: [String], identity: ExecIdentity) -> ChildEnvironment {
        if identity.environment.isEmpty {
            return ChildEnvironment(shared: inheritedCStrings, own: own)
        }
        let changed = identity.applyingEnvironment(to: inherited())
        return ChildEnvironment(shared: .none, own: changed + own, ownStart: changed.count)
    }

    /// The variables of ``inherited()`` as C strings, made once and kept for serverd's life.
    private static let inheritedCStrings = ChildEnvironment.SharedCStrings(inheritedOnce)

    /// serverd's environment without what belongs to serverd alone or to another connection: what a wait-mode
    /// program gets besides the socket activation variables. Read once, at the first child (serverd changes its
    /// environment only while it starts, when it adopts inherited sockets).
    static func inherited() -> [String] { inheritedOnce }

    private static let inheritedOnce = SystemdEnvironment.environmentForChildren().filter { entry in
        !ucspiPrefixes.contains(where: { entry.hasPrefix($0) })
    }

    /// The UCSPI variables of a connection: `NAME=value` strings. On TCP, `connectionNumber` is `TCPCONNNUM` (the
    /// listener's connections from the client's address, this one included) and `remoteHost` `TCPREMOTEHOST` (set
    /// only when the `resolve` lookup confirmed a name).
    static func ucspi(
        for connection: Socket, client: SocketAddress, listener: SocketAddress, connectionNumber: Int = 1,
        remoteHost: String? = nil
    ) -> [String] {
        if connection.family == AF_UNIX {
            var variables = ["PROTO=UNIX", "UNIXLOCALPATH=\(unixPath(listener))"]
            if let credentials = try? connection.peerCredentials() {
                variables += [
                    "UNIXREMOTEEUID=\(credentials.uid)", "UNIXREMOTEEGID=\(credentials.gid)",
                    "UNIXREMOTEPID=\(credentials.pid)",
                ]
            }
            return variables
        }
        let local = (try? connection.localAddress()) ?? listener
        var variables = [
            "PROTO=TCP",
            "TCPLOCALIP=\(ipText(local))", "TCPLOCALPORT=\(local.port ?? 0)", "TCPLOCALHOST=\(localHostName)",
            "TCPREMOTEIP=\(ipText(client))", "TCPREMOTEPORT=\(client.port ?? 0)",
            "TCPCONNNUM=\(connectionNumber)",
        ]
        if let remoteHost { variables.append("TCPREMOTEHOST=\(remoteHost)") }
        return variables
    }

    /// `TCPLOCALHOST`: this host's name (gethostname), read once; `localhost` if it has none.
    private static let localHostName: String = {
        var name = [CChar](repeating: 0, count: 256)
        guard gethostname(&name, name.count - 1) == 0 else { return "localhost" }
        let text = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return RemoteHostName.isPlainHostName(text) ? text : "localhost"
    }()

    /// An IP address as UCSPI wants it: unbracketed, an IPv4-mapped IPv6 address as plain IPv4.
    private static func ipText(_ address: SocketAddress) -> String {
        guard let ip = address.ip else { return "" }
        return (ip.mappedIPv4 ?? ip).description
    }

    private static func unixPath(_ address: SocketAddress) -> String {
        switch address.endpoint {
        case .unixPath(let path): return path
        case .unixAbstract(let name): return "@" + String(decoding: name, as: UTF8.self)
        default: return ""
        }
    }
}
