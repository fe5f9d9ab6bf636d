import FamilyServer
import Glibc

/// The listeners serverd serves besides the configured ones. When none is configured (SPEC section 3): each inherited
/// socket by the service its fd name names, or, with nothing inherited, the embedded default set that shows every
/// family at once. When some are: each inherited socket that no `systemd` listener claims, by the service its fd name
/// names, so that a socket systemd passed is served, not left to hang its clients, when `--listen` is also given.
/// Worked out when first asked for (``specs(besides:)``): a configuration that declares listeners never creates the
/// default socket's directory.
final class ImplicitListeners {
    private let inherited: InheritedSocketPool
    private let preparing: Bool
    private var found: [String]?
    /// The private directory holding the default Unix socket, when the runtime directory is shared
    /// (see ``PrivateRuntimeDirectory``) and the directory was prepared.
    private(set) var privateDirectory: PrivateRuntimeDirectory?
    /// Without `preparing`: the private directory a start would create for the default Unix socket.
    private(set) var plannedDirectory: String?

    /// With `preparing` false (`--check-config`) nothing is created: the default socket's path is
    /// the one serverd would try first.
    init(inherited: InheritedSocketPool, preparing: Bool) {
        self.inherited = inherited
        self.preparing = preparing
    }

    /// `SERVICE@ADDRESS` texts to serve besides the listeners at `declared`.
    func specs(besides declared: [ListenAddress]) throws(DaemonError) -> [String] {
        guard declared.isEmpty else { return unclaimedInherited(besides: declared) }
        if let found { return found }
        let specs = try find()
        found = specs
        return specs
    }

    /// `NAME@systemd:NAME` for each fd name of an inherited socket that no `systemd` listener at `declared` claims and
    /// that names a service (the others are left unserved, with a warning at start:
    /// ``InheritedSocketPool/warnAboutUnclaimed(_:logger:)``).
    private func unclaimedInherited(besides declared: [ListenAddress]) -> [String] {
        let addresses = Set(declared)
        if addresses.contains(.systemd(name: nil)) { return [] }
        var specs: [String] = []
        for (_, name) in inherited.named where !addresses.contains(.systemd(name: name)) {
            guard ServiceName(rawValue: name) != nil else { continue }
            let spec = "\(name)@systemd:\(name)"
            if !specs.contains(spec) { specs.append(spec) }
        }
        return specs
    }

    private func find() throws(DaemonError) -> [String] {
        guard inherited.isEmpty else {
            var specs: [String] = []
            for (fd, name) in inherited.named {
                guard ServiceName(rawValue: name) != nil else {
                    throw DaemonError(
                        .configuration,
                        "fd \(fd): its fd name '\(name)' is not a service (\(ServiceName.knownNames)); "
                            + InheritedSocketPool.namingHint)
                }
                let spec = "\(name)@systemd:\(name)"
                if !specs.contains(spec) { specs.append(spec) }
            }
            return specs
        }
        var directory = Self.runtimeDirectory()
        if PrivateRuntimeDirectory.isShared(directory) {
            if preparing {
                let prepared = try PrivateRuntimeDirectory.prepare(in: directory)
                privateDirectory = prepared
                directory = prepared.path
            } else {
                directory = (directory == "/" ? "" : directory) + "/" + PrivateRuntimeDirectory.usualName()
                plannedDirectory = directory
            }
        }
        return Self.embeddedDefault(unixSocketDirectory: directory)
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
