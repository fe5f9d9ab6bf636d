import Glibc
import Synchronization

/// The path through /proc that names one of this process's descriptors: `/proc/PID/fd/N` where /proc
/// shows this process under the pid `getpid()` returns, else `/proc/self/fd/N`.
///
/// Both lead to the very file the descriptor holds. The numeric form spares the kernel the `self` link
/// on every lookup, which a reply to a filesystem datagram sender makes per datagram: about 1 µs of
/// the 5.4 µs that such a `sendto` and its `recv` took on the machine of `Benchmarks/` (3.5 µs through
/// the sender's own path). The pid is taken only when `/proc/self` links to it, so a /proc of another
/// pid namespace, where that number is another process, is never used; and it is checked again in a
/// forked child, whose descriptors are its own.
enum OwnDescriptorPath {
    /// The pid last checked: positive when `/proc/self` links to it, negated when it does not, 0 before
    /// the first check. No lock, so that a child forked while another thread asks cannot find one held.
    private static let checkedPid = Atomic<Int32>(0)

    /// The path of `descriptor`.
    static func of(_ descriptor: Int32) -> String {
        let pid = getpid()
        var checked = checkedPid.load(ordering: .relaxed)
        if checked != pid && checked != -pid {
            checked = pidLinkIsOwn(pid) ? pid : -pid
            checkedPid.store(checked, ordering: .relaxed)
        }
        return checked == pid ? "/proc/\(pid)/fd/\(descriptor)" : "/proc/self/fd/\(descriptor)"
    }

    /// Whether `/proc/self` links to `pid`, the name of this process in that /proc.
    private static func pidLinkIsOwn(_ pid: pid_t) -> Bool {
        var buffer = [CChar](repeating: 0, count: 32)
        let length = readlink("/proc/self", &buffer, buffer.count - 1)
        guard length > 0 else { return false }
        return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) == String(pid)
    }
}
