import Logging

/// serverd's swift-log handler: filters on the shared ``LogLevelControl``, merges the event's metadata and hands the
/// event to a ``LogSink``, which renders it (as `message key=value …` in text).
struct ServerdLogHandler: LogHandler {
    /// Where the lines go.
    let sink: any LogSink
    /// The level shared by all handlers.
    let levelControl: LogLevelControl
    /// A level set on this handler alone (`logger.logLevel = …`), which wins over ``levelControl``.
    private var ownLevel: Logger.Level?

    /// Metadata added to every event of this handler (`logger[metadataKey: "listener"] = …`).
    var metadata: Logger.Metadata = [:]
    /// Metadata added to every event from the task or thread context, when a logger sets a provider.
    var metadataProvider: Logger.MetadataProvider?

    /// Creates a handler.
    /// - Parameters:
    ///   - sink: Where the lines go.
    ///   - levelControl: The shared level.
    init(sink: any LogSink, levelControl: LogLevelControl) {
        self.sink = sink
        self.levelControl = levelControl
    }

    /// The lowest level logged: this handler's own if set, else the shared one.
    var logLevel: Logger.Level {
        get { ownLevel ?? levelControl.level }
        set { ownLevel = newValue }
    }

    /// One metadata value of this handler.
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Renders an event and writes it. swift-log calls this only for events at or above ``logLevel``.
    func log(event: LogEvent) {
        var merged: Logger.Metadata
        if metadata.isEmpty, metadataProvider == nil {
            merged = event.metadata ?? [:]  // a connection line's fields: nothing to merge them with
        } else {
            merged = metadata
            if let provided = metadataProvider?.get() {
                merged.merge(provided) { _, provided in provided }
            }
            if let explicit = event.metadata {
                merged.merge(explicit) { _, explicit in explicit }
            }
        }
        if let error = event.error {
            merged["error"] = "\(error)"
        }
        sink.write(LogRecord(level: event.level, message: "\(event.message)", metadata: merged))
    }

    /// The lines of an event: the message split at its line feeds (a final line feed adds no empty line), with the
    /// metadata, sorted by key, appended to the last line as ` key=value`.
    static func lines(message: String, metadata: Logger.Metadata) -> [String] {
        // Most messages are one line (every connection line is): no split for them.
        var lines = message.utf8.contains(UInt8(ascii: "\n"))
            ? message.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) : [message]
        if lines.count > 1 && lines.last == "" {
            lines.removeLast()
        }
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            lines[lines.count - 1] += " \(key)=\(value)"
        }
        return lines
    }
}
