import Glibc
import SystemPackage

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

    /// The one map from a failed system call's errno to an exit status: "cannot serve" because the address is in
    /// use (69), permission is denied (77), or the system failed otherwise (71).
    static func cannotServe(errno code: Int32) -> ExitStatus {
        switch code {
        case EADDRINUSE: return .unavailable
        case EACCES, EPERM, EROFS: return .noPermission
        default: return .osError
        }
    }
}

/// A failure that ends serverd: the status to exit with and the one `serverd: …` line that says why.
struct DaemonError: Error, Sendable, CustomStringConvertible {
    /// The exit status.
    var status: ExitStatus
    /// What failed, naming the option, file:line, address or descriptor at fault (without the `serverd: ` prefix);
    /// always one line: control characters that came with quoted input are escaped.
    var message: String
    /// The errno reported to systemd as `ERRNO=`; EINVAL for usage and configuration errors.
    var errno: Int32

    /// The error of a failed system call: "cannot serve" status (``ExitStatus/cannotServe(errno:)``), the message
    /// followed by the call's reason, and its errno for systemd.
    init(_ errno: Errno, _ message: String) {
        self.init(.cannotServe(errno: errno.rawValue), "\(message): \(errno)", errno: errno.rawValue)
    }

    init(_ status: ExitStatus, _ message: String, errno: Int32? = nil) {
        self.status = status
        self.message = DaemonError.oneLine(message)
        self.errno = errno ?? 22  // EINVAL
    }

    /// `text` with every control character escaped (`\n`, `\r`, `\t`, `\x1B`): an argument, a
    /// file name or a key that holds a newline must not split the one `serverd:` line.
    static func oneLine(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else { return text }
        var line = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": line += "\\n"
            case "\r": line += "\\r"
            case "\t": line += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                line += "\\x" + String(scalar.value, radix: 16, uppercase: true).leftPadded(to: 2)
            default: line.unicodeScalars.append(scalar)
            }
        }
        return line
    }

    static func usage(_ message: String) -> DaemonError { DaemonError(.usage, message) }
    static func configuration(_ message: String) -> DaemonError { DaemonError(.configuration, message) }

    var description: String { "serverd: \(message)" }
}

extension String {
    /// The string with leading zeros up to `width` characters.
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
