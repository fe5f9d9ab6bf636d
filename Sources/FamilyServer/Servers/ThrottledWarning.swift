import Logging

/// Counts events that a remote peer can cause at will (dropped datagrams, refused replies) and
/// logs them without letting the peer flood the log: the first event at once, then at most one
/// line per ``interval`` saying how many went unlogged in between.
public final class ThrottledWarning: Sendable {
    /// The least time, in seconds, between two logged lines.
    public let interval: Double
    private let state = ConditionLock<State>(State())

    private struct State: Sendable {
        var total = 0
        var unlogged = 0
        var lastLogged = -Double.infinity
    }

    /// Creates a counter that logs at most once per `interval` seconds.
    public init(interval: Double = 10) {
        self.interval = interval
    }

    /// How many events were recorded in all.
    public var count: Int { state.withLock { $0.total } }

    /// Records one event, and logs `message` at warning level if a line is due.
    public func record(_ logger: Logger, _ message: @autoclosure () -> String) {
        let now = MonotonicClock.seconds()
        let unlogged = state.withLock { state -> Int? in
            state.total += 1
            guard now - state.lastLogged >= interval else {
                state.unlogged += 1
                return nil
            }
            defer {
                state.lastLogged = now
                state.unlogged = 0
            }
            return state.unlogged
        }
        guard let unlogged else { return }
        let since = unlogged > 0 ? " (and \(unlogged) more like it since the last message)" : ""
        logger.warning("\(message())\(since)")
    }
}
