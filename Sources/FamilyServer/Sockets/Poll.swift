import Glibc

/// poll(2) for the few descriptors a serve loop or a control loop watches.
public enum Poll {
    /// Waits until one of `descriptors` is readable (or in error), or `timeout` seconds pass.
    ///
    /// - Parameters:
    ///   - descriptors: the descriptors to watch for input.
    ///   - timeout: seconds to wait; `nil` waits forever.
    /// - Returns: for each descriptor, whether it is ready, in the same order.
    /// - Throws: ``SocketError`` for `poll` (EINTR is retried with the time that is left).
    public static func readable(_ descriptors: [Int32], timeout: Double?) throws(SocketError) -> [Bool] {
        var fds = descriptors.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        let deadline = timeout.map { MonotonicClock.seconds() + $0 }
        while true {
            let milliseconds: Int32
            if let deadline {
                let left = max(0, deadline - MonotonicClock.seconds())
                milliseconds = Int32(min(left * 1000, Double(Int32.max)).rounded(.up))
            } else {
                milliseconds = -1
            }
            let ready = Glibc.poll(&fds, nfds_t(fds.count), milliseconds)
            if ready >= 0 { return fds.map { $0.revents != 0 } }
            let code = errno
            if code != EINTR { throw SocketError("poll", errno: code) }
        }
    }
}
