import Glibc

/// The variables a serverd that upgrades itself (SIGUSR2) sets for the serverd it starts, besides systemd's
/// `LISTEN_FDS`, `LISTEN_FDNAMES` and `LISTEN_PID` (which carry the listening sockets):
///
/// - `SERVERD_UPGRADE_FD=N`: descriptor N is a Unix stream socket to the old process. The new one writes
///   `READY PID` there once every listener serves; the old one answers `MAIN` once the pidfile and systemd name the
///   new process (``PredecessorLink``).
/// - `SERVERD_UPGRADE_LOCK_FDS=S/L,…`: the passed Unix socket on descriptor S has its locked `PATH.lock` on L.
/// - `SERVERD_UPGRADE_STDERR=N`: the old process's stderr, which becomes the new one's once the hand-over is done
///   (until then its stderr is a pipe the old process reads, to log why a new binary failed).
///
/// The new process reads and removes them first thing (``take()``), so that no program it starts sees them.
struct HandOverEnvironment: Sendable {
    /// The channel to the old process.
    static let channelVariable = "SERVERD_UPGRADE_FD"
    /// The lock files of the passed Unix sockets.
    static let lockVariable = "SERVERD_UPGRADE_LOCK_FDS"
    /// The old process's stderr.
    static let standardErrorVariable = "SERVERD_UPGRADE_STDERR"

    /// The channel to the old process, when this process was started by an upgrade.
    var channel: Int32?
    /// The lock file descriptor of each passed Unix socket, by the socket's descriptor.
    var lockDescriptors: [Int32: Int32] = [:]
    /// The old process's stderr.
    var standardError: Int32?

    /// Whether this process was started by an upgrade.
    var isUpgrade: Bool { channel != nil }

    /// Reads and removes the variables; the descriptors they name become close-on-exec.
    /// - Throws: exit 78 naming the malformed variable.
    static func take() throws(DaemonError) -> HandOverEnvironment {
        var values = HandOverEnvironment()
        defer {
            for name in [channelVariable, lockVariable, standardErrorVariable] { unsetenv(name) }
        }
        values.channel = try descriptor(channelVariable)
        values.standardError = try descriptor(standardErrorVariable)
        if let text = getenv(lockVariable).map({ String(cString: $0) }), !text.isEmpty {
            for pair in text.split(separator: ",") {
                let parts = pair.split(separator: "/")
                guard parts.count == 2, let socket = Int32(parts[0]), let lock = Int32(parts[1]), socket >= 3, lock >= 3
                else { throw malformed(lockVariable, text) }
                values.lockDescriptors[socket] = lock
                _ = fcntl(lock, F_SETFD, FD_CLOEXEC)
            }
        }
        return values
    }

    private static func descriptor(_ name: String) throws(DaemonError) -> Int32? {
        guard let text = getenv(name).map({ String(cString: $0) }) else { return nil }
        guard let fd = Int32(text), fd >= 3, fcntl(fd, F_GETFD) >= 0 else { throw malformed(name, text) }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        return fd
    }

    private static func malformed(_ name: String, _ text: String) -> DaemonError {
        DaemonError(.configuration, "\(name)=\(text): not an open descriptor as a binary upgrade passes it")
    }

    /// The variables for the new process, whose descriptors are numbered as it will see them.
    func variables() -> [String] {
        var entries: [String] = []
        if let channel { entries.append("\(Self.channelVariable)=\(channel)") }
        if !lockDescriptors.isEmpty {
            let pairs = lockDescriptors.sorted { $0.key < $1.key }.map { "\($0.key)/\($0.value)" }
            entries.append("\(Self.lockVariable)=" + pairs.joined(separator: ","))
        }
        if let standardError { entries.append("\(Self.standardErrorVariable)=\(standardError)") }
        return entries
    }
}
