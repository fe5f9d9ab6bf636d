import Glibc
import Logging
import SystemPackage

/// Appends to a `--log-file`: `2026-11-26T13:55:52.123+0100 [4242] notice: listening on …`, with the local time and
/// the writing process (forked children log too); under `--log-format json` one JSON object per line
/// (``LogRecord/jsonLine(time:pid:)``) with the same time, pid and level.
///
/// The file is opened once with O_APPEND, so each event's single write(2) lands whole at the end even when threads
/// and processes write at once, and with O_CLOEXEC, so `exec` children do not inherit it. SIGHUP reopens it
/// (``reopen(path:)``), so that logrotate's default `create` rotation works: the new file takes the descriptor's
/// place at once (`dup3`), and no writer ever sees it closed.
struct FileLogSink: LogSink {
    /// The descriptor, the same number for the life of the process.
    let descriptor: Int32
    /// Text or JSON lines.
    let format: LogFormatName

    /// Opens (creating with mode 0640 if needed) the log file.
    /// - Parameters:
    ///   - path: The file's path.
    ///   - format: Text or JSON lines.
    /// - Throws: ``DaemonError`` naming `--log-file` and the path: status `.noPermission` for EACCES, EPERM, EROFS or
    ///   a symlink at the path, otherwise `.osError`, with the call's errno.
    init(path: String, format: LogFormatName = .text) throws(DaemonError) {
        self.format = format
        do {
            // Never through a symlink: serverd may run as root, and a log directory others can write to (or a
            // rotated name replaced before SIGHUP) must not make it append to another file.
            descriptor = try FileDescriptor.open(
                FilePath(path), .writeOnly, options: [.append, .create, .closeOnExec, .noFollow],
                permissions: [.ownerReadWrite, .groupRead]
            ).rawValue
        } catch Errno.tooManySymbolicLinkLevels {
            throw DaemonError(
                .noPermission, "--log-file \(path): cannot open: a symbolic link; not followed", errno: ELOOP)
        } catch {
            throw DaemonError(error as? Errno ?? .ioError, "--log-file \(path): cannot open")
        }
    }

    /// Opens `path` anew (the same one after a rotation, or the one a reload names) in place of the current file.
    /// - Throws: ``DaemonError`` as ``init(path:)``; the current file then stays.
    func reopen(path: String) throws(DaemonError) {
        let fresh = FileDescriptor(rawValue: try FileLogSink(path: path).descriptor)
        defer { try? fresh.close() }
        do {
            try fresh.duplicate(as: FileDescriptor(rawValue: descriptor), options: .closeOnExec)
        } catch {
            throw DaemonError(error, "--log-file \(path): dup3")
        }
    }

    /// Appends the event's lines in one write(2).
    func write(_ record: LogRecord) {
        let time = FileLogSink.timestamp()
        switch format {
        case .text:
            let prefix = "\(time) [\(getpid())] \(record.level): "
            FileDescriptorWriter.write(record.text(prefix: prefix), to: descriptor)
        case .json:
            FileDescriptorWriter.write(record.jsonLine(time: time, pid: getpid()) + "\n", to: descriptor)
        }
    }

    /// The current local time as `YYYY-MM-DDTHH:MM:SS.mmm+ZZZZ`.
    private static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var local = tm()
        localtime_r(&seconds, &local)
        var date = [CChar](repeating: 0, count: 32)
        var zone = [CChar](repeating: 0, count: 8)
        let dateLength = strftime(&date, date.count, "%Y-%m-%dT%H:%M:%S", &local)
        let zoneLength = strftime(&zone, zone.count, "%z", &local)
        let millis = Int(now.tv_nsec) / 1_000_000
        let millisText = String(millis)
        return text(date, dateLength) + "." + String(repeating: "0", count: 3 - millisText.count) + millisText
            + text(zone, zoneLength)
    }

    /// The first `count` bytes of a C character buffer as a string.
    private static func text(_ buffer: [CChar], _ count: Int) -> String {
        String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
