import CShims
import FamilyServer
import Glibc
import Logging

/// SIGUSR2 in the serverd that upgrades itself: the new binary (``ProgramImage``) started through the one spawn path
/// of the daemon (``ExecChild``) with every listening socket as descriptors 3… (`LISTEN_FDS`, `LISTEN_FDNAMES`,
/// `LISTEN_PID` its own pid) and the variables of ``HandOverEnvironment``; then watched from the control loop, which
/// goes on serving, until the new process reports ready on the channel, exits, or misses the deadline.
///
/// The new process's stderr is a pipe read here until the hand-over: each line is logged, the last one explains a
/// failure. Once it is ready, ``complete()`` tells it that it is the main process now (after the caller rewrote the
/// pidfile and told systemd `MAINPID=`) and lets it go: its process group is no longer one this process ends at its
/// stop. A failure ends it (SIGKILL to its process group) and reaps it: ``abandon()``.
final class BinaryUpgrade {
    /// How long the new process has to report ready.
    static let readinessDeadline = 30.0

    /// A descriptor passed to the new process, under its fd name, with the locked `PATH.lock` of a Unix socket file.
    struct PassedSocket {
        var fd: Int32
        var name: String
        var lockDescriptor: Int32?
    }

    /// What the new process has done so far.
    enum Progress: Equatable {
        case starting
        case ready
        case failed(String)
    }

    /// The new process.
    var pid: pid_t { child.pid }
    private let child: ExecChild
    private let image: ProgramImage
    private var channel: Int32
    private var standardError: Int32
    private let deadline: Double
    private let logger: Logger
    private var reaped = false
    private var received: [UInt8] = []
    private var pendingLine: [UInt8] = []
    private var lastLine = ""

    private init(child: ExecChild, image: ProgramImage, channel: Int32, logger: Logger) {
        self.child = child
        self.image = image
        self.channel = channel
        standardError = child.standardError
        deadline = MonotonicClock.seconds() + Self.readinessDeadline
        self.logger = logger
    }

    /// Starts the new process.
    /// - Throws: the reason, as the `SIGUSR2: upgrade failed:` line says it, when it cannot be started at all (an
    ///   untrusted path, too many descriptors, socketpair or clone failing).
    static func start(_ image: ProgramImage, passing sockets: [PassedSocket], logger: Logger) throws(UpgradeFailure)
        -> BinaryUpgrade
    {
        if let reason = image.untrustedReason() { throw UpgradeFailure("refusing to start \(image.path): \(reason)") }
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw UpgradeFailure(call: "socketpair", errno: errno)
        }
        defer { close(pair[1]) }
        let locks = sockets.enumerated().compactMap { index, socket in socket.lockDescriptor.map { (index, $0) } }
        var descriptors: [Int32] = [0, 1, -1] + sockets.map(\.fd) + locks.map(\.1)
        var handOver = HandOverEnvironment()
        for (position, (index, _)) in locks.enumerated() {
            handOver.lockDescriptors[Int32(3 + index)] = Int32(3 + sockets.count + position)
        }
        handOver.channel = Int32(descriptors.count)
        descriptors.append(pair[1])
        handOver.standardError = Int32(descriptors.count)
        descriptors.append(2)
        guard descriptors.count <= Int(CSHIMS_SPAWN_MAX_DESCRIPTORS) else {
            close(pair[0])
            throw UpgradeFailure("\(sockets.count) sockets to pass, more than the \(CSHIMS_SPAWN_MAX_DESCRIPTORS - 6) a spawn takes")
        }
        var environment = SystemdEnvironment.currentEnvironment().filter { entry in
            !entry.hasPrefix("LISTEN_") && !entry.hasPrefix("WATCHDOG_PID=") && !entry.hasPrefix("SERVERD_UPGRADE_")
        }
        environment.append("LISTEN_FDS=\(sockets.count)")
        environment.append("LISTEN_FDNAMES=" + sockets.map(\.name).joined(separator: ":"))
        environment += handOver.variables()
        environment.append("LISTEN_PID=")
        var identity = ExecIdentity()
        identity.directory = image.directory
        let child: ExecChild
        do {
            child = try ExecChild.start(
                image.argv, environment: ChildEnvironment(shared: .none, own: environment), descriptors: descriptors,
                identity: identity, groups: .shared, listenPIDSlot: environment.count - 1, connectionsInFlight: { 0 },
                waiting: { _ in }, pause: { _ in })
        } catch {
            close(pair[0])
            throw UpgradeFailure(call: error.syscall, errno: error.errno)
        }
        _ = fcntl(pair[0], F_SETFL, fcntl(pair[0], F_GETFL) | O_NONBLOCK)
        return BinaryUpgrade(child: child, image: image, channel: pair[0], logger: logger)
    }

    /// The descriptors that become readable when something happens: the channel, the stderr pipe, the pidfd.
    var descriptors: [Int32] { [channel, standardError, child.exitNotice].filter { $0 >= 0 } }

    /// Looks at the channel, the stderr pipe and the process without blocking.
    func progress() -> Progress {
        relayStandardError()
        if readChannel() { return .ready }
        if let failure = reapIfExited() { return .failed(failure) }
        if MonotonicClock.seconds() >= deadline {
            let last = lastLine.isEmpty ? "" : "; its last stderr line: \(lastLine)"
            return .failed("pid \(pid) was not ready within \(ValueSyntax.display(Self.readinessDeadline)) s\(last)")
        }
        return .starting
    }

    /// Whether `READY` arrived; the channel's EOF leaves the verdict to the process's exit.
    private func readChannel() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 256)
        while channel >= 0 {
            let count = chunk.withUnsafeMutableBytes { read(channel, $0.baseAddress, $0.count) }
            if count > 0 {
                received += chunk[0..<count]
                continue
            }
            if count == 0 {
                close(channel)
                channel = -1
            }
            break
        }
        return String(decoding: received, as: UTF8.self).hasPrefix("READY")
    }

    /// Logs the new process's stderr line by line (until the hand-over it is this process's to show).
    private func relayStandardError() {
        var chunk = [UInt8](repeating: 0, count: 4096)
        while standardError >= 0 {
            let count = chunk.withUnsafeMutableBytes { read(standardError, $0.baseAddress, $0.count) }
            if count <= 0 {
                if count == 0 || errno != EAGAIN && errno != EINTR {
                    close(standardError)
                    standardError = -1
                }
                break
            }
            pendingLine += chunk[0..<count]
            while let newline = pendingLine.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Self.withoutJournalPriority(String(decoding: pendingLine[..<newline], as: UTF8.self))
                pendingLine.removeSubrange(...newline)
                guard !line.isEmpty else { continue }
                lastLine = line
                logger.notice("SIGUSR2: new serverd (pid \(pid)): \(line)")
            }
        }
    }

    /// A line without the `<N>` priority prefix a new process writes when its final stderr is the journal's.
    static func withoutJournalPriority(_ line: String) -> String {
        let bytes = Array(line.utf8)
        guard bytes.count >= 3, bytes[0] == UInt8(ascii: "<"), (UInt8(ascii: "0")...UInt8(ascii: "7")).contains(bytes[1]),
            bytes[2] == UInt8(ascii: ">")
        else { return line }
        return String(decoding: bytes[3...], as: UTF8.self)
    }

    /// The reason of a process that exited (reaped now), or `nil` while it runs.
    private func reapIfExited() -> String? {
        guard !reaped else { return "pid \(pid) is gone" }
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        guard result == pid else { return nil }
        reaped = true
        relayStandardError()
        if !pendingLine.isEmpty {
            lastLine = String(decoding: pendingLine, as: UTF8.self)
            pendingLine = []
        }
        return Self.describe(status: status, failure: child.failure, pid: pid, path: image.path, lastLine: lastLine)
    }

    /// Why the new process ended: the exec that failed, or its exit status or signal and its last stderr line.
    static func describe(status: Int32, failure: Int32, pid: pid_t, path: String, lastLine: String) -> String {
        if failure != 0 {
            return "cannot run \(path): \(String(cString: strerror(failure))) (errno \(failure))"
        }
        let last = lastLine.isEmpty ? "" : "; its last stderr line: \(lastLine)"
        let code = (status >> 8) & 0xff
        let signal = status & 0x7f
        if signal == 0 { return "pid \(pid) (\(path)) exited with status \(code) before it was ready\(last)" }
        return "pid \(pid) (\(path)) was killed by signal \(signal) before it was ready\(last)"
    }

    /// The new process serves: tells it that it is the main process now and lets it go (its process group is no
    /// longer ended at this process's stop; it is not reaped here).
    func complete() {
        relayStandardError()
        let message = Array("MAIN\n".utf8)
        if channel >= 0 {
            _ = fcntl(channel, F_SETFL, fcntl(channel, F_GETFL) & ~O_NONBLOCK)
            _ = message.withUnsafeBytes { write(channel, $0.baseAddress, $0.count) }
        }
        ExecProcessGroups.shared.forget(child)
        release()
        child.freeRecord()
    }

    /// The upgrade failed or is called off: ends the new process's process group (SIGKILL), reaps it, and closes
    /// everything it used.
    func abandon() {
        if !reaped {
            kill(-pid, SIGKILL)
            kill(pid, SIGKILL)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            reaped = true
        }
        relayStandardError()
        ExecProcessGroups.shared.release(child)
        release()
        child.freeRecord()
    }

    private func release() {
        for fd in [channel, standardError, child.exitNotice] where fd >= 0 { close(fd) }
        channel = -1
        standardError = -1
    }
}

/// Why a binary upgrade failed, as the `SIGUSR2: upgrade failed:` line says it.
struct UpgradeFailure: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }

    init(call: String, errno code: Int32) {
        description = "\(call): \(String(cString: strerror(code))) (errno \(code))"
    }
}
