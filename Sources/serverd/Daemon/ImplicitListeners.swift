import Glibc

/// The listeners serverd serves when none is configured (SPEC section 3): each inherited socket
/// by the service its fd name names, or, with nothing inherited, the embedded default set that
/// shows every family at once.
struct ImplicitListeners {
    /// `SERVICE@ADDRESS` texts for a configuration that declares no listener.
    let specs: [String]
    /// The private directory holding the default Unix socket, when the runtime directory is shared
    /// (see ``PrivateRuntimeDirectory``) and the directory was prepared.
    let privateDirectory: PrivateRuntimeDirectory?

    /// The implicit listeners. With `preparing` false (`--check-config`) nothing is created: the
    /// default socket's path is the one serverd would try first.
    init(inherited: InheritedSocketPool, preparing: Bool) throws(DaemonError) {
        guard inherited.isEmpty else {
            var specs: [String] = []
            for (fd, name) in inherited.named {
                guard ServiceName(rawValue: name) != nil else {
                    throw DaemonError(.configuration, "fd \(fd): its fd name '\(name)' is not a service (\(ServiceName.knownNames))")
                }
                let spec = "\(name)@systemd:\(name)"
                if !specs.contains(spec) { specs.append(spec) }
            }
            self.specs = specs
            privateDirectory = nil
            return
        }
        var directory = Self.runtimeDirectory()
        var privateDirectory: PrivateRuntimeDirectory?
        if PrivateRuntimeDirectory.isShared(directory) {
            if preparing {
                privateDirectory = try PrivateRuntimeDirectory.prepare(in: directory)
                directory = privateDirectory!.path
            } else {
                directory = (directory == "/" ? "" : directory) + "/" + PrivateRuntimeDirectory.usualName()
            }
        }
        specs = Self.embeddedDefault(unixSocketDirectory: directory)
        self.privateDirectory = privateDirectory
    }

    /// `stamp` on TCP over IPv4 and IPv6, `echo` on UDP and on a Unix socket in `unixSocketDirectory`.
    static func embeddedDefault(unixSocketDirectory: String) -> [String] {
        [
            "stamp@tcp://127.0.0.1:21568",
            "stamp@tcp://[::1]:21568",
            "echo@udp://127.0.0.1:21568",
            "echo@unix:\(unixSocketDirectory)/serverd.sock",
        ]
    }

    /// `$RUNTIME_DIRECTORY` (its first entry), else `$XDG_RUNTIME_DIR`, else the temporary directory.
    static func runtimeDirectory() -> String {
        for variable in ["RUNTIME_DIRECTORY", "XDG_RUNTIME_DIR", "TMPDIR"] {
            if let value = getenv(variable).map({ String(cString: $0) }), !value.isEmpty {
                let first = value.split(separator: ":").first.map(String.init) ?? value
                return first.hasSuffix("/") && first.count > 1 ? String(first.dropLast()) : first
            }
        }
        return "/tmp"
    }
}
