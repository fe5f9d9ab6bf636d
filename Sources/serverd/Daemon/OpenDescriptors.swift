import Glibc

/// The descriptors this process has open, and what kind of socket each is: for closing what a
/// launcher left behind (`--daemon`) and what a forked worker inherited from the daemon.
enum OpenDescriptors {
    /// Every descriptor above 2, read from /proc/self/fd; `nil` if that cannot be read.
    static func aboveStandardStreams() -> [Int32]? {
        ProcFiles.numericEntries(of: "/proc/self/fd", skippingOwnDescriptor: true)?.filter { $0 > 2 }
    }

    /// The socket type (SO_TYPE) of `fd`, or `nil` if it is no socket.
    static func socketType(_ fd: Int32) -> Int32? {
        intOption(fd, SO_TYPE)
    }

    /// Whether `fd` is a listening stream socket (SO_ACCEPTCONN).
    static func isListening(_ fd: Int32) -> Bool {
        (intOption(fd, SO_ACCEPTCONN) ?? 0) != 0
    }

    private static func intOption(_ fd: Int32, _ name: Int32) -> Int32? {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(fd, SOL_SOCKET, name, &value, &length) == 0 ? value : nil
    }
}
