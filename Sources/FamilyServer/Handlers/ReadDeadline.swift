/// A floor under a connection's average inbound rate, for ``BufferedReader/minimumRate``: once the connection is
/// older than ``grace``, it must have received at least ``bytesPerSecond`` for every second of its age.
public struct MinimumRate: Equatable, Sendable {
    /// The least average, in bytes per second; more than 0.
    public var bytesPerSecond: Double
    /// When the connection started, in ``MonotonicClock/seconds()``.
    public var start: Double
    /// Seconds from ``start`` before the rate is checked.
    public var grace: Double

    /// Creates a minimum rate.
    public init(bytesPerSecond: Double, start: Double, grace: Double) {
        self.bytesPerSecond = bytesPerSecond
        self.start = start
        self.grace = grace
    }

    /// The time (``MonotonicClock/seconds()``) at which a connection that has received `bytes` falls below the rate if
    /// nothing more arrives: never before the grace period ends.
    public func deadline(afterReceiving bytes: Int) -> Double {
        start + max(grace, Double(bytes) / bytesPerSecond)
    }
}

/// A read that gave up because the peer's data did not arrive in time: the reader's ``BufferedReader/deadline``
/// passed, or the connection fell below its ``BufferedReader/minimumRate``. (A receive timeout of the socket itself,
/// the idle timeout, still fails as a ``SocketError`` with EAGAIN.)
public struct ReadDeadlineError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Which limit was reached.
    public enum Reason: Equatable, Sendable {
        /// ``BufferedReader/deadline``.
        case deadline
        /// ``BufferedReader/minimumRate``.
        case minimumRate
    }

    /// Which limit was reached.
    public let reason: Reason

    /// Creates the error.
    public init(_ reason: Reason) {
        self.reason = reason
    }

    /// The message: the read deadline passed, or the inbound rate fell below the minimum.
    public var description: String {
        reason == .deadline ? "read deadline passed" : "inbound rate below the minimum"
    }
}
