/// The running log's controls: its level, and the file a reload reopens.
struct LogControl: Sendable {
    /// The level every handler filters on.
    let level: LogLevelControl
    /// Where the log goes since the start.
    let destination: LogDestination
    /// The log file, when the log goes to one.
    let file: FileLogSink?

    /// Applies a reload: the new level, and the log file reopened (at its new path if the configuration changed it).
    /// - Returns: What could not be applied, for the log: a changed destination kind takes effect at the next start.
    func reload(level newLevel: LogLevelName, destination newDestination: LogDestination) -> [String] {
        level.set(newLevel.loggerLevel)
        guard let file else {
            return newDestination == destination
                ? [] : ["log-file: the log goes to \(destination) until the next start"]
        }
        guard case .file(let path) = newDestination else {
            return ["log-file: the log goes to \(destination) until the next start"]
        }
        do {
            try file.reopen(path: path)
            return []
        } catch {
            return ["cannot reopen the log file, still writing to the old one: \(error.message)"]
        }
    }
}
