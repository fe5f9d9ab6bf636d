import CSystemd
import Glibc

/// Tells the service manager how the daemon is doing: the sd_notify(3) protocol.
///
/// Messages go to the datagram socket named by `NOTIFY_SOCKET` (a path, or `@name` in the
/// abstract namespace) through libsystemd's `sd_notify` and `sd_pid_notify_with_fds`. Without
/// `NOTIFY_SOCKET` every method does nothing and returns `false`, so a daemon calls them
/// unconditionally. `NOTIFY_SOCKET` is read at every call and never removed (children should be
/// started with ``SystemdEnvironment/environmentForChildren()`` instead).
///
/// Values are sent on one line each: a line break (or NUL) inside a value becomes a space, so a
/// status text can never inject another assignment. The struct holds no state; use it from any
/// thread.
///
/// A daemon's life under `Type=notify`:
///
///     let notifier = SystemdNotifier()
///     try notifier.ready(status: "Serving 3 listeners")       // READY=1
///     try notifier.status("12 connections")                   // at most about once a second
///     try notifier.reloading(); …; try notifier.ready()       // on SIGHUP
///     try notifier.stopping()                                 // on SIGTERM
///     try notifier.errno(EADDRINUSE, status: "…"); exit(69)    // failed start
public struct SystemdNotifier: Sendable {
    /// Creates a notifier for the `NOTIFY_SOCKET` of the environment.
    public init() {}

    /// `NOTIFY_SOCKET`'s value, or `nil` when unset or empty.
    public var socketAddress: String? {
        guard let value = getenv("NOTIFY_SOCKET"), value.pointee != 0 else { return nil }
        return String(cString: value)
    }

    /// Whether `NOTIFY_SOCKET` is set, i.e. whether messages go anywhere.
    public var isEnabled: Bool { socketAddress != nil }

    // MARK: - Sending

    /// Sends `KEY=value` assignments in one message, in the order given.
    /// - Returns: `true` when sent, `false` when `NOTIFY_SOCKET` is not set.
    /// - Throws: ``SocketError`` for `sd_notify` carrying its errno (e.g. ECONNREFUSED when
    ///   nothing listens on the socket).
    @discardableResult
    public func notify(_ assignments: KeyValuePairs<String, String>) throws(SocketError) -> Bool {
        try send(Self.message(assignments), fds: [])
    }

    /// `READY=1` (and `STATUS=`): start-up or a reload is complete; every listener serves.
    @discardableResult
    public func ready(status: String? = nil) throws(SocketError) -> Bool {
        try send(Self.message(["READY": "1"], status: status), fds: [])
    }

    /// `STATUS=text`: a one-line description of the daemon's state, shown by `systemctl status`.
    @discardableResult
    public func status(_ text: String) throws(SocketError) -> Bool {
        try send(Self.message(["STATUS": text]), fds: [])
    }

    /// `STOPPING=1` (and `STATUS=`): a stop has begun.
    @discardableResult
    public func stopping(status: String? = nil) throws(SocketError) -> Bool {
        try send(Self.message(["STOPPING": "1"], status: status), fds: [])
    }

    /// `RELOADING=1` with `MONOTONIC_USEC=` (the current CLOCK_MONOTONIC time in µs, which
    /// systemd 253 and later require and older versions ignore), and `STATUS=`: a reload has
    /// begun. Send ``ready(status:)`` once it is over, whether or not it succeeded.
    @discardableResult
    public func reloading(status: String? = nil) throws(SocketError) -> Bool {
        let now = String(MonotonicClock.microseconds())
        return try send(Self.message(["RELOADING": "1", "MONOTONIC_USEC": now], status: status), fds: [])
    }

    /// `WATCHDOG=1`: the daemon is alive. ``Watchdog/pingIfDue(now:)`` sends it on schedule.
    @discardableResult
    public func watchdog() throws(SocketError) -> Bool {
        try send("WATCHDOG=1", fds: [])
    }

    /// `MAINPID=pid`: the daemon's main process is now `pid` (after `--daemon` detached).
    @discardableResult
    public func mainPID(_ pid: pid_t) throws(SocketError) -> Bool {
        try send(Self.message(["MAINPID": String(pid)]), fds: [])
    }

    /// `EXTEND_TIMEOUT_USEC=usec`: a slow start, reload or stop needs `usec` more microseconds
    /// from now (systemd 236 and later).
    @discardableResult
    public func extendTimeout(usec: UInt64) throws(SocketError) -> Bool {
        try send(Self.message(["EXTEND_TIMEOUT_USEC": String(usec)]), fds: [])
    }

    /// `ERRNO=code` (and `STATUS=`): why the daemon is failing; send it before exiting.
    @discardableResult
    public func errno(_ code: Int32, status: String? = nil) throws(SocketError) -> Bool {
        try send(Self.message(["ERRNO": String(code)], status: status), fds: [])
    }

    /// `FDSTORE=1` with `FDNAME=name`: hands duplicates of `descriptors` to the service manager's
    /// file-descriptor store (SCM_RIGHTS), which passes them back on the next start as inherited
    /// sockets named `name`. The descriptors stay open here.
    ///
    /// systemd keeps them only when the unit sets `FileDescriptorStoreMax=` above 0 and drops
    /// them silently otherwise; with `poll: false` (`FDPOLL=0`, systemd 246) it keeps a socket
    /// even when it reports POLLHUP or POLLERR.
    /// - Parameters:
    ///   - descriptors: the descriptors to store; at least one.
    ///   - name: 1 to 255 printable ASCII characters without `:`.
    ///   - poll: `false` sends `FDPOLL=0`.
    /// - Throws: ``SocketError`` with EINVAL when there are no descriptors or `name` is invalid;
    ///   otherwise for `sd_pid_notify_with_fds` with its errno (EBADF for a closed descriptor).
    @discardableResult
    public func storeDescriptors(_ descriptors: [Int32], name: String, poll: Bool = true) throws(SocketError) -> Bool {
        guard !descriptors.isEmpty else {
            throw SocketError("sd_pid_notify_with_fds(FDSTORE=1)", errno: EINVAL, subject: "no descriptors to store")
        }
        try Self.validate(fdName: name)
        let message = poll
            ? Self.message(["FDSTORE": "1", "FDNAME": name])
            : Self.message(["FDSTORE": "1", "FDNAME": name, "FDPOLL": "0"])
        return try send(message, fds: descriptors)
    }

    /// `FDSTOREREMOVE=1` with `FDNAME=name`: removes the stored descriptors of that name.
    @discardableResult
    public func removeStoredDescriptors(name: String) throws(SocketError) -> Bool {
        try Self.validate(fdName: name)
        return try send(Self.message(["FDSTOREREMOVE": "1", "FDNAME": name]), fds: [])
    }

    /// Waits until the service manager has processed every message sent so far (`BARRIER=1`,
    /// systemd 246): use it before exiting right after ``errno(_:status:)`` or ``stopping(status:)``,
    /// so that systemd still knows whose message it was.
    /// - Parameter timeout: microseconds to wait.
    /// - Returns: `true` once confirmed, `false` when `NOTIFY_SOCKET` is not set.
    /// - Throws: ``SocketError`` for `sd_notify_barrier` (ETIMEDOUT when nobody confirmed).
    @discardableResult
    public func barrier(timeout: UInt64 = 5_000_000) throws(SocketError) -> Bool {
        guard let address = socketAddress else { return false }
        let result = csystemd_notify_barrier(0, timeout)
        if result < 0 {
            throw SocketError("sd_notify_barrier", errno: -result, subject: "NOTIFY_SOCKET=\(address)")
        }
        return result > 0
    }

    // MARK: - Internals

    /// Sends one message, with SCM_RIGHTS descriptors when `fds` is not empty.
    /// The message is built only when `NOTIFY_SOCKET` is set: a daemon outside systemd pays nothing for its calls.
    private func send(_ makeMessage: @autoclosure () -> String, fds: [Int32]) throws(SocketError) -> Bool {
        guard let address = socketAddress else { return false }
        let message = makeMessage()
        let result: Int32
        if fds.isEmpty {
            result = message.withCString { csystemd_notify(0, $0) }
        } else {
            result = message.withCString { state in
                fds.withUnsafeBufferPointer { csystemd_pid_notify_with_fds(0, 0, state, $0.baseAddress, UInt32($0.count)) }
            }
        }
        guard result >= 0 else {
            let first = message.split(separator: "\n", maxSplits: 1).first.map(String.init) ?? ""
            let call = fds.isEmpty ? "sd_notify" : "sd_pid_notify_with_fds"
            throw SocketError("\(call)(\(first))", errno: -result, subject: "NOTIFY_SOCKET=\(address)")
        }
        return result > 0
    }

    /// `KEY=value` lines, then `STATUS=status` if given; line breaks and NULs in values become spaces.
    static func message(_ assignments: KeyValuePairs<String, String>, status: String? = nil) -> String {
        var lines = assignments.map { "\($0.key)=\(oneLine($0.value))" }
        if let status { lines.append("STATUS=\(oneLine(status))") }
        return lines.joined(separator: "\n")
    }

    private static func oneLine(_ value: String) -> String {
        String(String.UnicodeScalarView(value.unicodeScalars.map { scalar in
            scalar == "\n" || scalar == "\r" || scalar == "\0" ? " " : scalar
        }))
    }

    /// Checks a fd-store name as systemd does: 1–255 printable ASCII characters, no `:`.
    static func validate(fdName name: String) throws(SocketError) {
        let bytes = Array(name.utf8)
        let valid = !bytes.isEmpty && bytes.count <= 255 && bytes.allSatisfy { $0 >= 0x20 && $0 < 0x7f && $0 != UInt8(ascii: ":") }
        guard valid else {
            throw SocketError("FDNAME", errno: EINVAL, subject: "'\(name)' (1 to 255 printable ASCII characters, no ':')")
        }
    }
}
