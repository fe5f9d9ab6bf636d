import CShims
import Glibc

/// SIGTERM, SIGINT, SIGHUP, SIGUSR1 (status) and SIGUSR2 (binary upgrade) delivered through a signalfd, so no work
/// happens in a signal
/// handler: the signals are blocked in every thread (the mask is set before any thread starts and
/// threads inherit it) and read from a descriptor in the control loop. SIGPIPE is ignored, so a
/// client that vanishes only fails its own write.
struct SignalReceiver {
    /// The signals the daemon acts on.
    static let handled: [Int32] = [SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2]

    /// The signalfd, readable while a signal is pending.
    let fileDescriptor: Int32

    /// Blocks the handled signals in the calling thread and opens the signalfd. Call before any
    /// thread is started.
    init() throws(DaemonError) {
        signal(SIGPIPE, SIG_IGN)
        guard cshims_sigmask(SIG_BLOCK, Self.handled, Int32(Self.handled.count)) == 0 else {
            throw DaemonError(.osError, "pthread_sigmask: \(String(cString: strerror(errno)))", errno: errno)
        }
        let fd = cshims_signalfd(Self.handled, Int32(Self.handled.count))
        guard fd >= 0 else {
            throw DaemonError(.osError, "signalfd: \(String(cString: strerror(errno)))", errno: errno)
        }
        fileDescriptor = fd
    }

    /// The signals pending now, in arrival order.
    func pending() -> [Int32] {
        var signals: [Int32] = []
        while true {
            let signal = cshims_signalfd_read(fileDescriptor)
            if signal <= 0 { return signals }
            signals.append(signal)
        }
    }
}
