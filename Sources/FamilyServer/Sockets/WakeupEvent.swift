import CShims
import Glibc

/// An eventfd that wakes a `poll` loop from another thread, or from a forked child, at once.
public final class WakeupEvent: Sendable {
    /// The descriptor to put in a poll set (readable once signalled).
    public let fileDescriptor: Int32

    /// Creates the eventfd (close-on-exec, non-blocking).
    public init() throws(SocketError) {
        fileDescriptor = try syscall("eventfd") { cshims_eventfd_cloexec_nonblock(0) }
    }

    deinit { Glibc.close(fileDescriptor) }

    /// Makes the descriptor readable; safe from any thread and async-signal-safe.
    public func signal() {
        var one: UInt64 = 1
        _ = Glibc.write(fileDescriptor, &one, MemoryLayout<UInt64>.size)
    }

    /// Consumes every pending signal so the descriptor is no longer readable.
    public func drain() {
        var value: UInt64 = 0
        _ = Glibc.read(fileDescriptor, &value, MemoryLayout<UInt64>.size)
    }
}
