import Glibc

/// What `waitpid` says of one child process of the forking model: reaped now with its wait status, already gone
/// (reaped elsewhere: ECHILD), or still running.
enum ChildExit {
    case exited(status: Int32)
    case gone
    case running

    /// Waits for `pid` (without `blocking`, only looks), retrying when a signal interrupts the call.
    static func of(_ pid: pid_t, blocking: Bool) -> ChildExit {
        var status: Int32 = 0
        var result: pid_t
        repeat {
            result = waitpid(pid, &status, blocking ? 0 : WNOHANG)
        } while result < 0 && errno == EINTR
        if result == pid { return .exited(status: status) }
        return result < 0 && errno == ECHILD ? .gone : .running
    }
}
