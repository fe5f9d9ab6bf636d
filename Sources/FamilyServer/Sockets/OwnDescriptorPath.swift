import Glibc

/// The path through /proc that names one of this process's descriptors: `/proc/PID/fd/N` where /proc
/// shows this process under the pid `getpid()` returns, else `/proc/self/fd/N`.
///
/// Both lead to the very file the descriptor holds. The numeric form spares the kernel the `self` link
/// on every lookup, which a reply to a filesystem datagram sender makes per datagram: about 1 µs of
/// the 5.4 µs that such a `sendto` and its `recv` took on the machine of `Benchmarks/` (3.5 µs through
/// the sender's own path). The pid is taken only when `/proc/self` links to it, so a /proc of another
/// pid namespace, where that number is another process, is never used; and it is looked up again in a
/// forked child, whose descriptors are its own.
enum OwnDescriptorPath {
    private static let directory = ConditionLock<(pid: pid_t, path: String)>((0, "/proc/self/fd/"))

    /// The path of `descriptor`.
    static func of(_ descriptor: Int32) -> String {
        directory.withLock { known in
            let pid = getpid()
            if known.pid != pid { known = (pid, pidLinkIsOwn(pid) ? "/proc/\(pid)/fd/" : "/proc/self/fd/") }
            return known.path + String(descriptor)
        }
    }

    /// Whether `/proc/self` links to `pid`, the name of this process in that /proc.
    private static func pidLinkIsOwn(_ pid: pid_t) -> Bool {
        var buffer = [CChar](repeating: 0, count: 32)
        let length = readlink("/proc/self", &buffer, buffer.count - 1)
        guard length > 0 else { return false }
        return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) == String(pid)
    }
}
