import Glibc

/// `--daemon`, the SysV way of daemon(7): fork, setsid, fork again (so the daemon leads no session
/// and can never regain a controlling terminal), `/` as working directory, umask 0, `/dev/null` on
/// descriptors 0–2. The original process waits on a pipe and exits only once the daemon reports
/// that it serves (0) or why it failed (its status, with the daemon's `serverd:` line on stderr).
enum Daemonizer {
    /// Detaches. Returns only in the daemon, with the pipe to report readiness on.
    static func detach() throws(DaemonError) -> ReadinessReport {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { throw failure("pipe2") }
        let first = fork()
        guard first >= 0 else { throw failure("fork") }
        if first > 0 {
            close(ends[1])
            var status: Int32 = 0
            while waitpid(first, &status, 0) < 0 && errno == EINTR {}
            waitForReport(ends[0])
        }
        close(ends[0])
        _ = fcntl(ends[1], F_SETFD, FD_CLOEXEC)
        guard setsid() >= 0 else { throw failure("setsid") }
        let second = fork()
        guard second >= 0 else { throw failure("fork") }
        if second > 0 { _exit(0) }
        umask(0)
        _ = chdir("/")
        let null = open("/dev/null", O_RDWR)
        if null >= 0 {
            for fd: Int32 in 0...2 { dup2(null, fd) }
            if null > 2 { close(null) }
        }
        closeInheritedDescriptors()
        return ReadinessReport(fileDescriptor: ends[1])
    }

    /// daemon(7), step 1: closes what the launcher left open beyond 0–2, so that the daemon holds
    /// nothing its launcher or a supervisor waits on (a pipe or socket whose EOF means "done").
    /// Kept: serverd's own descriptors, all close-on-exec (the log file, the readiness pipe,
    /// adopted systemd sockets), and the sockets an `fd:N` listener may name (listening stream
    /// sockets, datagram sockets), which are adopted only after detaching.
    private static func closeInheritedDescriptors() {
        let candidates = OpenDescriptors.aboveStandardStreams()
            ?? Array(3..<Int32(max(3, min(sysconf(Int32(_SC_OPEN_MAX)), 65536))))
        for fd in candidates {
            let flags = fcntl(fd, F_GETFD)
            guard flags >= 0, flags & FD_CLOEXEC == 0, !mayBeNamedByFdListener(fd) else { continue }
            close(fd)
        }
    }

    /// A socket that `fd:N` could serve: a listening stream socket or a datagram socket.
    private static func mayBeNamedByFdListener(_ fd: Int32) -> Bool {
        OpenDescriptors.socketType(fd) == Int32(SOCK_DGRAM.rawValue) || OpenDescriptors.isListening(fd)
    }

    /// The original process: relays the daemon's report and exits with its status.
    private static func waitForReport(_ fd: Int32) -> Never {
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            received += chunk[0..<count]
        }
        let text = String(decoding: received, as: UTF8.self)
        if text.hasPrefix("OK") { exit(0) }
        if let space = text.firstIndex(of: " "), let code = Int32(text[..<space]) {
            let message = String(text[text.index(after: space)...]).trimmingWhitespace()
            writeStandardError("serverd: \(message)\n")
            exit(code)
        }
        writeStandardError("serverd: --daemon: the daemon exited before it was ready\n")
        exit(ExitStatus.osError.rawValue)
    }

    private static func failure(_ call: String) -> DaemonError {
        let code = errno
        return DaemonError(.osError, "--daemon: \(call): \(String(cString: strerror(code)))", errno: code)
    }
}

/// The daemon's end of the readiness pipe: `OK` once it serves, or `STATUS message` if it fails.
final class ReadinessReport {
    private var fileDescriptor: Int32

    init(fileDescriptor: Int32) {
        self.fileDescriptor = fileDescriptor
    }

    /// Tells the waiting parent that the daemon serves.
    func ready() { send("OK\n") }

    /// Tells the waiting parent why the daemon failed.
    func failed(_ error: DaemonError) { send("\(error.status.rawValue) \(error.message)\n") }

    private func send(_ text: String) {
        guard fileDescriptor >= 0 else { return }
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { write(fileDescriptor, $0.baseAddress, $0.count) }
        close(fileDescriptor)
        fileDescriptor = -1
    }
}

/// Writes `text` to descriptor 2 in one call.
func writeStandardError(_ text: String) {
    let bytes = Array(text.utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}
