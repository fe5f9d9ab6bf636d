import CShims
import Glibc
import Logging

/// The socket to systemd-journald's native protocol, `/run/systemd/journal/socket`, over which serverd sends the
/// events that carry fields (connection lines) as structured entries, so that `journalctl SERVERD_LISTENER=echo`
/// finds them. Used only when stderr is the journal's stream (``StandardErrorLogSink``); other lines keep going to
/// stderr with `<N>` prefixes.
///
/// The socket is connected once, at start: a connected datagram socket, which a forked worker keeps (it closes only
/// unconnected ones, the listeners) and an exec child never sees (close-on-exec).
struct JournalSocket: Sendable {
    /// The journal's socket path (systemd-journald.service(8)).
    static let path = "/run/systemd/journal/socket"

    /// The connected socket.
    let descriptor: Int32

    /// Connects to the journal, or returns `nil` when it does not listen there.
    init?() {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in Self.path.utf8.enumerated() { raw[index] = byte }
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard connected == 0 else {
            close(fd)
            return nil
        }
        descriptor = fd
    }

    /// Sends one entry; returns whether it went out whole (a full socket buffer or an entry too large for one
    /// datagram fails, and the caller writes the line to stderr instead).
    func send(_ entry: JournalEntry) -> Bool {
        let bytes = entry.datagram
        while true {
            let sent = bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if sent == bytes.count { return true }
            if sent < 0 && errno == EINTR { continue }
            return false
        }
    }

    /// The entry of a log event: `MESSAGE=` (the message's text lines, control characters escaped),
    /// `PRIORITY=`, `SYSLOG_IDENTIFIER=serverd`, and each metadata value under its journal field name
    /// (``ConnectionRecord/journalFieldNames``, else `SERVERD_` and the key upper-cased).
    static func entry(for record: LogRecord) -> JournalEntry {
        var entry = JournalEntry()
        entry.append("MESSAGE", ServerdLogHandler.lines(message: record.message, metadata: [:])
            .map(LogText.escapingControls).joined(separator: "\n"))
        entry.append("PRIORITY", String(LogPriority.of(record.level)))
        entry.append("SYSLOG_IDENTIFIER", "serverd")
        for (key, value) in record.metadata.sorted(by: { $0.key < $1.key }) {
            if key == ConnectionRecord.Key.duration, let seconds = Double(value.description) {
                entry.append("DURATION_USEC", String(Int((seconds * 1e6).rounded())))
                continue
            }
            let name = ConnectionRecord.journalFieldNames[key] ?? "SERVERD_" + key
            entry.append(name, LogText.escapingControls(value.description))
        }
        return entry
    }
}
