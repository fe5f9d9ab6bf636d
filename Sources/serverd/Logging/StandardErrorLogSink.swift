import Glibc
import Logging

/// Logs to stderr: `notice: listening on echo@tcp://127.0.0.1:5000`, or, when stderr is connected to the systemd
/// journal, `<5>listening on …` with the sd-daemon(3) priority prefix that journald turns into the entry's priority.
///
/// Under the journal, events with fields (connection lines) go as structured entries over the native protocol
/// (``JournalSocket``) when its socket is there, so that their fields can be searched; a send that fails writes the
/// line to stderr as usual. stderr stays text under `--log-format json`, which is the log file's: scripts read the
/// `listening on` lines from stderr, and journald parses the `<N>` prefixes.
struct StandardErrorLogSink: LogSink {
    /// Whether stderr is the journal's stream, so lines carry `<N>` prefixes instead of level names.
    let isJournal: Bool
    /// The journal's native socket, when stderr is the journal's stream and journald listens.
    let journal: JournalSocket?

    /// Creates the sink, checking `JOURNAL_STREAM` against `finalStandardError`: stderr, or during a binary upgrade
    /// the old process's stderr, which becomes this one's once the hand-over is done.
    init(finalStandardError: Int32 = STDERR_FILENO) {
        let stream = getenv("JOURNAL_STREAM").map { String(cString: $0) }
        isJournal = StandardErrorLogSink.isJournalStream(stream, descriptor: finalStandardError)
        journal = isJournal ? JournalSocket() : nil
    }

    /// Whether a descriptor is the stream systemd connected to the journal: `JOURNAL_STREAM` holds `DEV:INODE` of
    /// that stream (systemd.exec(5)), and the descriptor's fstat(2) device and inode must match, since a child whose
    /// stderr was redirected inherits the variable too.
    /// - Parameters:
    ///   - value: The value of `JOURNAL_STREAM`, `nil` when unset.
    ///   - descriptor: The descriptor to check.
    static func isJournalStream(_ value: String?, descriptor: Int32) -> Bool {
        guard let value, let colon = value.firstIndex(of: ":"),
            let device = UInt64(value[..<colon]), let inode = UInt64(value[value.index(after: colon)...])
        else { return false }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { return false }
        return UInt64(status.st_dev) == device && UInt64(status.st_ino) == inode
    }

    /// Writes the event: a structured journal entry, or its lines to stderr in one write(2).
    func write(_ record: LogRecord) {
        if let journal, !record.metadata.isEmpty, journal.send(JournalSocket.entry(for: record)) { return }
        let prefix = isJournal ? "<\(LogPriority.of(record.level))>" : "\(record.level.rawValue): "
        FileDescriptorWriter.write(record.text(prefix: prefix), to: STDERR_FILENO)
    }
}
