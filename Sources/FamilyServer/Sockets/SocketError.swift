import Glibc

/// A failed system call: which call, on what, and the errno it returned.
///
/// Every error FamilyServer throws from the operating system is one of these, so a log line always
/// says what failed (`bind`), on which address or descriptor, and why (`Address already in use`).
public struct SocketError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The system call that failed, e.g. `"bind"`.
    public var syscall: String
    /// The errno value it set.
    public var errno: Int32
    /// What the call was made on: an address in its textual form, a path or `fd 3`; empty when unknown.
    public var subject: String

    /// Creates an error for `syscall` with an explicit errno.
    public init(_ syscall: String, errno: Int32, subject: String = "") {
        self.syscall = syscall
        self.errno = errno
        self.subject = subject
    }

    /// The same error, naming `subject` if it named nothing yet.
    public func on(_ subject: String) -> SocketError {
        var copy = self
        if copy.subject.isEmpty { copy.subject = subject }
        return copy
    }

    /// The C library's text for `errno`.
    public var reason: String { String(cString: strerror(errno)) }

    /// The message: the call, what it was made on, and the errno with its text.
    public var description: String {
        let target = subject.isEmpty ? "" : " \(subject)"
        return "\(syscall)\(target): \(reason) (errno \(errno))"
    }
}
