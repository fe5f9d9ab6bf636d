import Logging

/// One log event as the sinks get it: its level, its message and its metadata, merged from the handler, the
/// metadata provider and the call.
///
/// Text that a peer controls (a Unix peer's socket path, an exec child's stderr) reaches the log through messages
/// and metadata values; every rendering escapes control characters, so that such text can never start a line of
/// its own, move the cursor of a terminal or break a JSON object.
struct LogRecord: Sendable {
    /// The event's level.
    let level: Logger.Level
    /// The message; line feeds split it into several text lines (a daemon's multi-line message), nothing else does.
    let message: String
    /// The event's metadata, e.g. a connection line's fields (``ConnectionRecord``).
    let metadata: Logger.Metadata

    /// The text form: ``ServerdLogHandler/lines(message:metadata:)``, each line with control characters other than
    /// the tab shown as `\xNN`.
    var textLines: [String] {
        ServerdLogHandler.lines(message: message, metadata: metadata).map(LogText.escapingControls)
    }

    /// ``textLines``, each after `prefix` and ended by a line feed, for one write(2).
    func text(prefix: String) -> String {
        textLines.reduce(into: "") { $0 += prefix + $1 + "\n" }
    }

    /// The JSON form, one object on one line without its line feed:
    /// `{"time":"…","pid":42,"level":"info","message":"…", …}` with each metadata key as a key of its own
    /// (numbers as JSON numbers, the rest as strings). A metadata key that clashes with one of the four fixed keys
    /// is written as `meta_KEY`.
    func jsonLine(time: String, pid: Int32) -> String {
        var object = "{\"time\":\(LogText.jsonString(time)),\"pid\":\(pid)"
        object += ",\"level\":\(LogText.jsonString(level.rawValue)),\"message\":\(LogText.jsonString(message))"
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            let name = ["time", "pid", "level", "message"].contains(key) ? "meta_" + key : key
            object += ",\(LogText.jsonString(name)):\(LogText.jsonValue(value))"
        }
        return object + "}"
    }
}
