/// Why one option value was refused, without saying where the value came from.
///
/// The caller turns it into a ``DaemonError`` that names the place: `--max-connections: …` for the command line,
/// `FILE:LINE: max-connections: …` for the configuration file.
struct OptionValueError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What is wrong with the value, e.g. `'abc' is not a valid integer`.
    var reason: String

    /// Creates an error with the given reason.
    init(_ reason: String) {
        self.reason = reason
    }

    /// The reason.
    var description: String { reason }
}
