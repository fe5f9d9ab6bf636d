import Glibc

/// How many processors the whole machine left idle lately, from the `cpu` line of `/proc/stat` (idle and iowait
/// time over all time), sampled at most every ``interval`` seconds: what a reactor pool asks before it moves work
/// to another thread (``EventReactors``), since a thread whose processor is taken by another process only waits
/// there.
final class IdleProcessors: Sendable {
    /// The shortest time between two samples, in seconds.
    static let interval = 0.1

    private struct Sample: Sendable {
        /// `nil` when `/proc/stat` could not be read.
        var ticks: (idle: UInt64, total: UInt64)?
        var time: Double
        var idleProcessors: Double
    }

    private let last = ConditionLock<Sample?>(nil)
    private let processors: Double
    private let statPath: String

    /// Samples `statPath` (`/proc/stat`) on a machine of `processors` processors online.
    init(processors: Int = EventReactors.onlineProcessorCount, statPath: String = "/proc/stat") {
        self.processors = Double(processors)
        self.statPath = statPath
    }

    /// The processors left idle between the last two samples (0 up to the processors online), taking a new sample
    /// when the last is older than ``interval``. Before two samples exist: 0. When `/proc/stat` cannot be read:
    /// every processor (nothing is known to be busy), and the file is tried again after ``interval``.
    func current(now: Double) -> Double {
        last.withLock { last in
            if let sample = last, now - sample.time < Self.interval { return sample.idleProcessors }
            let ticks = Self.readTicks(statPath)
            var idleProcessors = ticks == nil ? processors : 0
            if let ticks, let previous = last?.ticks, ticks.total > previous.total, ticks.idle >= previous.idle {
                idleProcessors = processors * Double(ticks.idle - previous.idle) / Double(ticks.total - previous.total)
            }
            last = Sample(ticks: ticks, time: now, idleProcessors: idleProcessors)
            return idleProcessors
        }
    }

    /// The idle (idle + iowait) and total ticks of the first line of a `/proc/stat` text
    /// (`cpu  user nice system idle iowait irq softirq steal …`); `nil` when it is not such a line. Guest time is
    /// already counted in user time and is not added again.
    static func ticks(ofStatLine line: Substring) -> (idle: UInt64, total: UInt64)? {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.first == "cpu", fields.count >= 5 else { return nil }
        var values: [UInt64] = []
        for field in fields.dropFirst().prefix(8) {
            guard let value = UInt64(field) else { return nil }
            values.append(value)
        }
        let idle = values[3] + (values.count > 4 ? values[4] : 0)
        return (idle, values.reduce(0, &+))
    }

    private static func readTicks(_ path: String) -> (idle: UInt64, total: UInt64)? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 512)
        var count: Int
        repeat {
            count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        } while count < 0 && errno == EINTR
        guard count > 0 else { return nil }
        let text = String(decoding: buffer[..<count], as: UTF8.self)
        guard let line = text.split(separator: "\n", maxSplits: 1).first else { return nil }
        return ticks(ofStatLine: line)
    }
}
