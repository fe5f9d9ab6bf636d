import FamilyServer
import Glibc

/// Everything that would make opening the desired listeners fail, found without opening anything: the dry run that
/// `--check-config` is, and the first step of every start and reload (so that a reload fails before it changes
/// anything). An address that another program holds is the one failure only binding finds.
enum ListenerPrecheck {
    /// Checks the desired state.
    /// - Parameters:
    ///   - state: The desired state.
    ///   - inherited: The sockets systemd passed, which `systemd:NAME` listeners need.
    ///   - createdDirectory: A socket directory the start creates itself (the private runtime directory of the default
    ///     Unix socket, which `--check-config` does not create).
    /// - Throws: ``DaemonError`` naming the listener, with the status the start would fail with.
    static func check(_ state: DesiredState, inherited: InheritedSocketPool, createdDirectory: String? = nil)
        throws(DaemonError)
    {
        try checkAccounts(state.settings)
        var ports: [(declaration: ListenerDeclaration, address: SocketAddress)] = []
        for listener in state.listeners {
            switch listener.identity.address {
            case .bind(let address):
                try checkBound(listener, address, createdDirectory: createdDirectory, ports: &ports)
            case .descriptor(let fd):
                if let name = listener.identity.handOverName, inherited.handedOver.passed(name) { break }
                var status = stat()
                guard fstat(fd, &status) == 0, status.st_mode & S_IFMT == S_IFSOCK else {
                    throw DaemonError(.configuration, "\(listener.subject): fd \(fd) is not an open socket")
                }
            case .systemd(let name):
                if let name, !inherited.holds(name: name) {
                    throw DaemonError(
                        .configuration, "\(listener.subject): no inherited socket named '\(name)' (\(inherited.summary))")
                }
            }
            if listener.policy.service == .exec { try checkProgram(listener) }
        }
    }

    /// A listener serverd binds: its service fits, its socket directory exists, and it takes no port another one takes.
    /// (A function of its own: the 6.3.1 optimizer crashes on this code inlined in ``check(_:inherited:)``.)
    @inline(never)
    private static func checkBound(
        _ listener: ListenerDeclaration, _ address: SocketAddress, createdDirectory: String?,
        ports: inout [(declaration: ListenerDeclaration, address: SocketAddress)]
    ) throws(DaemonError) {
        try checkService(listener, transport: address.transport)
        if let path = address.path, DirectoryHandle.split(path).directory != createdDirectory {
            try checkDirectory(of: path, listener)
        }
        for earlier in ports where overlap(earlier.address, address) {
            throw DaemonError(
                .unavailable,
                "\(listener.subject): \(address) and '\(earlier.declaration.text)' (\(earlier.declaration.place)) "
                    + "would bind the same port",
                errno: EADDRINUSE)
        }
        if let port = address.port, port != 0 { ports.append((listener, address)) }
    }

    /// `--user` and `--group` name accounts that exist.
    private static func checkAccounts(_ settings: DaemonSettings) throws(DaemonError) {
        if let user = settings.user, AccountID.user(named: user) == nil {
            throw DaemonError(.configuration, "--user \(user): no such user")
        }
        if let group = settings.group, AccountID.group(named: group) == nil {
            throw DaemonError(.configuration, "--group \(group): no such group")
        }
    }

    /// The service fits the socket type: exec on a datagram socket needs wait mode.
    static func checkService(_ listener: ListenerDeclaration, transport: SocketAddress.Transport, fd: Int32? = nil)
        throws(DaemonError)
    {
        guard listener.policy.service == .exec, !listener.policy.waitMode, transport == .datagram else { return }
        let on = fd.map { ": fd \($0) is a datagram socket" } ?? ""
        throw DaemonError(.configuration, "\(listener.subject)\(on): exec on a datagram socket needs wait mode (wait = true, or --wait)")
    }

    /// The directory of a Unix socket file exists: bind would fail with ENOENT or ENOTDIR.
    private static func checkDirectory(of path: String, _ listener: ListenerDeclaration) throws(DaemonError) {
        let directory = DirectoryHandle.split(path).directory
        var status = stat()
        let code: Int32
        if stat(directory, &status) != 0 {
            code = errno
        } else if status.st_mode & S_IFMT != S_IFDIR {
            code = ENOTDIR
        } else {
            return
        }
        throw DaemonError(
            .osError, "\(listener.subject): socket directory \(directory): \(String(cString: strerror(code)))",
            errno: code)
    }

    /// The program of an exec listener exists and is executable: a path, or a name found on `PATH`; inside the
    /// listener's `chroot` when it has one.
    private static func checkProgram(_ listener: ListenerDeclaration) throws(DaemonError) {
        guard let program = listener.policy.exec.first else { return }
        let root = listener.policy.execIdentity.root.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 } ?? ""
        var candidates: [String]
        if program.contains("/") {
            candidates = [program]
        } else {
            let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/local/bin:/usr/bin:/bin"
            candidates = path.split(separator: ":", omittingEmptySubsequences: false).map {
                ($0.isEmpty ? "." : String($0)) + "/" + program
            }
        }
        if !root.isEmpty {
            candidates = candidates.filter { $0.hasPrefix("/") }.map { root + $0 }
        }
        for candidate in candidates {
            var status = stat()
            if stat(candidate, &status) == 0, status.st_mode & S_IFMT == S_IFREG, access(candidate, X_OK) == 0 {
                return
            }
        }
        let searched = (program.contains("/") ? "" : " on PATH") + (root.isEmpty ? "" : " inside chroot \(root)")
        throw DaemonError(
            .configuration, "\(listener.subject): exec: no executable program '\(program)'\(searched)")
    }

    /// Whether two bound inet addresses would take the same port: same transport and port, and the same address or a
    /// wildcard covering the other (`[::]` is dual-stack and covers every address, `0.0.0.0` every IPv4 one).
    static func overlap(_ a: SocketAddress, _ b: SocketAddress) -> Bool {
        guard a.transport == b.transport, let portA = a.port, portA != 0, portA == b.port,
            let ipA = a.ip, let ipB = b.ip
        else { return false }
        if ipA == ipB { return true }
        func covers(_ wildcard: IPAddress, _ other: IPAddress) -> Bool {
            wildcard.isWildcard && (!wildcard.isIPv4 || other.isIPv4)
        }
        return covers(ipA, ipB) || covers(ipB, ipA)
    }
}
