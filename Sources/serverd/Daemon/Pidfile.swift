import Glibc

/// `--pidfile`: written once serverd is ready, locked while it runs, removed at exit. A pidfile
/// that a live process holds makes serverd refuse to start, naming that process.
final class Pidfile {
    let path: String
    private var descriptor: Int32 = -1

    init(path: String) {
        self.path = path
    }

    /// Refuses (exit 69) if a live process holds the pidfile: one that holds its lock, or whose
    /// pid it names and that still runs.
    func checkNotHeld() throws(DaemonError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        let text = String(decoding: buffer.prefix(max(0, count)), as: UTF8.self)
        guard let pid = pid_t(text.trimmingWhitespace()), pid > 0, pid != getpid() else { return }
        var lock = flock()
        lock.l_type = Int16(F_WRLCK)
        lock.l_whence = Int16(SEEK_SET)
        let locked = fcntl(fd, F_GETLK, &lock) == 0 && lock.l_type != Int16(F_UNLCK)
        if locked || kill(pid, 0) == 0 || errno == EPERM {
            throw DaemonError(.unavailable, "--pidfile \(path): held by running process \(pid)", errno: EEXIST)
        }
    }

    /// Writes our pid and keeps the file locked until ``remove()``.
    func write() throws(DaemonError) {
        try checkNotHeld()
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw DaemonError(.cannotCreate(errno), "--pidfile \(path): open: \(String(cString: strerror(errno)))", errno: errno)
        }
        var lock = flock()
        lock.l_type = Int16(F_WRLCK)
        lock.l_whence = Int16(SEEK_SET)
        if fcntl(fd, F_SETLK, &lock) != 0 {
            close(fd)
            throw DaemonError(.unavailable, "--pidfile \(path): locked by another process", errno: EAGAIN)
        }
        ftruncate(fd, 0)
        let text = Array("\(getpid())\n".utf8)
        _ = text.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        descriptor = fd
    }

    /// Removes the pidfile if this process wrote it.
    func remove() {
        guard descriptor >= 0 else { return }
        unlink(path)
        close(descriptor)
        descriptor = -1
    }
}

extension ExitStatus {
    /// The status for failing to create a file: permission denied is 77, anything else 71.
    static func cannotCreate(_ code: Int32) -> ExitStatus {
        code == EACCES || code == EPERM ? .noPermission : .osError
    }
}

extension String {
    /// The string without leading and trailing spaces, tabs and newlines.
    func trimmingWhitespace() -> String {
        let bytes = Array(utf8)
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }
        guard let first = bytes.firstIndex(where: { !isSpace($0) }), let last = bytes.lastIndex(where: { !isSpace($0) })
        else { return "" }
        return String(decoding: bytes[first...last], as: UTF8.self)
    }
}
