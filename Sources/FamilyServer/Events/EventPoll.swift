import CShims
import Glibc

/// The readiness a descriptor is watched for, or was reported with: the EPOLL* bits, typed.
public struct EventMask: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32

    /// Creates a mask from EPOLL* bits.
    public init(rawValue: UInt32) {
        self.rawValue = rawValue
    }

    /// Data to read, or end of stream (EPOLLIN).
    public static let readable = EventMask(rawValue: cshims_epollin)
    /// Room to write (EPOLLOUT).
    public static let writable = EventMask(rawValue: cshims_epollout)
    /// The peer closed its side, or both sides are closed (EPOLLRDHUP, EPOLLHUP); reported, never asked for.
    public static let hangup = EventMask(rawValue: cshims_epollhup | cshims_epollrdhup)
    /// An error is pending on the descriptor (EPOLLERR); reported, never asked for.
    public static let error = EventMask(rawValue: cshims_epollerr)
}

/// An epoll set: descriptors watched for readiness, each reported with a token of the caller's choice.
///
/// Level-triggered: a descriptor is reported on every wait while it stays ready. Every failure is a ``SocketError``
/// that names the call (`epoll_ctl(EPOLL_CTL_ADD)`), the descriptor and the errno. The set is closed with the object.
/// One thread waits on a set; any thread may add, change or remove descriptors.
public final class EventPoll: Sendable {
    /// The epoll descriptor (close-on-exec).
    public let fileDescriptor: Int32

    /// The most events one ``wait(into:timeout:)`` returns.
    public static let batchSize = 256

    /// Creates an empty set.
    /// - Throws: ``SocketError`` for `epoll_create1`.
    public init() throws(SocketError) {
        fileDescriptor = try syscall("epoll_create1") { cshims_epoll_create() }
    }

    deinit { Glibc.close(fileDescriptor) }

    /// Starts watching `fd` for `interest`; it is reported as `token`.
    public func add(_ fd: Int32, interest: EventMask, token: UInt64) throws(SocketError) {
        try control(cshims_epoll_ctl_add, "EPOLL_CTL_ADD", fd, interest, token)
    }

    /// Changes what `fd` is watched for, and its token.
    public func modify(_ fd: Int32, interest: EventMask, token: UInt64) throws(SocketError) {
        try control(cshims_epoll_ctl_mod, "EPOLL_CTL_MOD", fd, interest, token)
    }

    /// Stops watching `fd` (closing a descriptor also removes it).
    public func remove(_ fd: Int32) throws(SocketError) {
        try control(cshims_epoll_ctl_del, "EPOLL_CTL_DEL", fd, [], 0)
    }

    private func control(_ op: Int32, _ name: String, _ fd: Int32, _ interest: EventMask, _ token: UInt64)
        throws(SocketError)
    {
        let epfd = fileDescriptor
        _ = try syscall("epoll_ctl(\(name))", subject: "fd \(fd)") {
            cshims_epoll_control(epfd, op, fd, interest.rawValue, token)
        }
    }

    /// The events of one wait: reused from wait to wait, so that waiting allocates nothing.
    public struct Events: Sendable {
        fileprivate var tokens = [UInt64](repeating: 0, count: EventPoll.batchSize)
        fileprivate var masks = [UInt32](repeating: 0, count: EventPoll.batchSize)
        /// How many events the last wait reported.
        public fileprivate(set) var count = 0

        /// Creates an empty batch.
        public init() {}

        /// The token and readiness of the `index`th event, `index` below ``count``.
        public subscript(index: Int) -> (token: UInt64, events: EventMask) {
            precondition(index < count, "event \(index) of \(count)")
            return (tokens[index], EventMask(rawValue: masks[index]))
        }
    }

    /// Waits until a descriptor is ready or `timeout` seconds passed (`nil`: no limit; 0: do not wait), and puts up
    /// to ``batchSize`` events into `events`. A signal that interrupts the wait reports no event.
    /// - Throws: ``SocketError`` for `epoll_wait`.
    public func wait(into events: inout Events, timeout: Double?) throws(SocketError) {
        let milliseconds: Int32 = timeout.map { Int32(min(86_400_000, max(0, ($0 * 1000).rounded(.up)))) } ?? -1
        let epfd = fileDescriptor
        let count = events.tokens.withUnsafeMutableBufferPointer { tokens in
            events.masks.withUnsafeMutableBufferPointer { masks in
                cshims_epoll_wait_events(epfd, tokens.baseAddress, masks.baseAddress, Int32(EventPoll.batchSize), milliseconds)
            }
        }
        if count < 0 {
            let code = cshims_errno()
            events.count = 0
            if code == EINTR { return }
            throw SocketError("epoll_wait", errno: code, subject: "fd \(epfd)")
        }
        events.count = Int(count)
    }
}
