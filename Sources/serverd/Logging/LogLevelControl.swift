import Logging
import Synchronization

/// The level every serverd log handler filters on, shared so that a reload can change it for all loggers at once.
///
/// Lock-free (an atomic), so logging never blocks on it and a forked child never inherits it locked.
final class LogLevelControl: Sendable {
    /// The index of the current level in `Logger.Level.allCases`.
    private let index: Atomic<Int>

    /// Creates a control set to `level`.
    init(_ level: Logger.Level) {
        index = Atomic(LogLevelControl.index(of: level))
    }

    /// The lowest level logged.
    var level: Logger.Level {
        Logger.Level.allCases[index.load(ordering: .relaxed)]
    }

    /// Changes the lowest level logged, e.g. after a reload read a new `log-level`.
    func set(_ level: Logger.Level) {
        index.store(LogLevelControl.index(of: level), ordering: .relaxed)
    }

    /// The position of a level in `Logger.Level.allCases`.
    private static func index(of level: Logger.Level) -> Int {
        // Every level is one of allCases.
        Logger.Level.allCases.firstIndex(of: level)!
    }
}
