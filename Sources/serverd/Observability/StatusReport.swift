import FamilyServer

/// What serverd says about itself: the one-line `STATUS=` summary that `systemctl status` shows, and the status block
/// SIGUSR1 logs, from the listeners' counters (``ListenerCounters``) and what is in flight now.
///
/// The summary, updated at most once a second as connections come and go:
///
///     Serving 2 listeners, 1 active connection, 17 total, 2 denied, 0 limited
///
/// The block, one line per listener after a summary line (datagram listeners count datagrams instead):
///
///     status: 2 listeners, 1 active connection, 17 total, 2 denied, 0 limited
///     echo@tcp://127.0.0.1:7000: model threading, active 1, total 17, denied 2, limited 0, bytes in 120 out 120
///     echo@udp://127.0.0.1:7000: model serial, datagrams 4, replies 4, dropped 0, denied 0, limited 0, bytes in 20
///     out 20
///
/// (each listener on one line). Listeners a reload removed that still drain are listed last, marked
/// `(draining after a reload)`, and counted at the end of the first line.
struct StatusReport {
    /// One listener's line.
    struct Entry {
        /// `SERVICE@ADDRESS` with the socket's real address.
        var name: String
        /// The processing model serving it (`serial` for datagram listeners, which serve one datagram at a time).
        var model: String
        /// Whether it serves datagrams.
        var datagrams: Bool
        /// Connections in flight now.
        var active: Int
        /// Its counts.
        var counts: ListenerCounters.Snapshot
        /// Whether a reload removed it and it is only draining.
        var retired: Bool
    }

    /// The serving listeners' entries, then the retired ones'.
    let entries: [Entry]

    /// The report of these listeners.
    /// - Parameters:
    ///   - serving: The serving listeners.
    ///   - retired: Listeners a reload removed that still drain.
    ///   - model: The daemon's `--model`, which every stream listener uses.
    init(serving: [Listener], retired: [Listener], model: ModelName) {
        func entry(_ listener: Listener, retired: Bool) -> Entry {
            let datagrams = listener.server.socketType == .datagram
            return Entry(
                name: listener.listeningText, model: datagrams ? ModelName.serial.rawValue : model.rawValue,
                datagrams: datagrams, active: listener.activeRequests, counts: listener.context.counters.snapshot,
                retired: retired)
        }
        entries = serving.map { entry($0, retired: false) } + retired.map { entry($0, retired: true) }
    }

    /// The `STATUS=` line.
    var summary: String {
        let serving = entries.count { !$0.retired }
        let active = entries.reduce(0) { $0 + $1.active }
        let total = entries.reduce(0) { $0 + $1.counts.connections }
        let denied = entries.reduce(0) { $0 + $1.counts.denials }
        let limited = entries.reduce(0) { $0 + $1.counts.limitHits }
        let listeners = "\(serving) listener\(serving == 1 ? "" : "s")"
        let connections = "\(active) active connection\(active == 1 ? "" : "s")"
        return "Serving \(listeners), \(connections), \(total) total, \(denied) denied, \(limited) limited"
    }

    /// The status block: the summary, then a line per listener.
    var block: String {
        let draining = entries.count(where: \.retired)
        var lines = ["status: " + summary.dropFirst("Serving ".count)
            + (draining > 0 ? " (\(draining) draining after a reload)" : "")]
        for entry in entries {
            let counts = entry.counts
            var line = "\(entry.name): model \(entry.model)"
            if entry.datagrams {
                line += ", datagrams \(counts.datagrams), replies \(counts.replies), dropped \(counts.drops)"
                line += ", denied \(counts.denials), limited \(counts.limitHits)"
            } else {
                line += ", active \(entry.active), total \(counts.connections), denied \(counts.denials)"
                line += ", limited \(counts.limitHits)"
            }
            line += ", bytes in \(counts.bytesIn) out \(counts.bytesOut)"
            if entry.retired { line += " (draining after a reload)" }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }
}
