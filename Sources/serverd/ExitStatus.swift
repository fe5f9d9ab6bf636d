/// serverd's exit statuses: the sysexits codes that systemd.exec(5) lists.
enum ExitStatus: Int32, Sendable {
    /// A clean stop.
    case success = 0
    /// EX_USAGE: unknown option, malformed `SERVICE@ADDRESS`, unknown service.
    case usage = 64
    /// EX_UNAVAILABLE: cannot serve, the address is in use.
    case unavailable = 69
    /// EX_OSERR: cannot serve, a system call failed.
    case osError = 71
    /// EX_NOPERM: cannot serve, permission denied.
    case noPermission = 77
    /// EX_CONFIG: bad config file, inherited socket mismatch, exec without a program.
    case configuration = 78
}

/// A failure that ends serverd: the status to exit with and the one `serverd: …` line that says why.
struct DaemonError: Error, Sendable, CustomStringConvertible {
    /// The exit status.
    var status: ExitStatus
    /// What failed, naming the option, file:line, address or descriptor at fault (without the `serverd: ` prefix).
    var message: String
    /// The errno reported to systemd as `ERRNO=`; EINVAL for usage and configuration errors.
    var errno: Int32

    init(_ status: ExitStatus, _ message: String, errno: Int32? = nil) {
        self.status = status
        self.message = message
        self.errno = errno ?? 22  // EINVAL
    }

    static func usage(_ message: String) -> DaemonError { DaemonError(.usage, message) }
    static func configuration(_ message: String) -> DaemonError { DaemonError(.configuration, message) }

    var description: String { "serverd: \(message)" }
}
