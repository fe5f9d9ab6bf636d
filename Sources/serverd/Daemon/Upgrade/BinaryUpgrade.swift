import CShims
import FamilyServer
import Glibc
import Logging

/// SIGUSR2 in the serverd that upgrades itself: the new binary (``ProgramImage``) started through the one spawn path
/// of the daemon (``ExecChild``) with every listening socket as descriptors 3… (`LISTEN_FDS`, `LISTEN_FDNAMES`,
/// `LISTEN_PID` its own pid) and the variables of ``HandOverEnvironment``; then watched from the control loop, which
/// goes on serving, until the new process reports ready on the channel, exits (its end of the channel closes), or
/// misses the deadline.
///
/// The spawn is detached: the new process is a grandchild whose parent, once the spawn's child exited (as soon as the
/// program runs), is the service manager or the nearest subreaper. systemd then supervises it as its own child once
/// `MAINPID=` names it — a main process that is not its child it would neither see exit nor let drain at a stop (it
/// sends SIGKILL at once). The price: a new process that exits has no exit status here; its last stderr line says
/// why (a new serverd writes its `serverd:` error line last).
///
/// The new process's stderr is a pipe read here until the hand-over: each line is logged, the last one explains a
/// failure. Once it is ready, ``complete()`` tells it that it is the main process now (after the caller rewrote the
/// pidfile and told systemd `MAINPID=`) and lets it go. A failure ends it (SIGKILL to its process group):
/// ``abandon()``.
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

    /// The new process, once known (from the spawn, or its `READY PID`).
    private(set) var newPID: pid_t?
    /// The new process, or the spawn's child while it is not known.
    var pid: pid_t { newPID ?? child.pid }
    /// The spawn's child, which forks the new process and exits.
    private let child: ExecChild
    private let image: ProgramImage
    private var channel: Int32
    private var standardError: Int32
    private let deadline: Double
    private let logger: Logger
    /// Whether the spawn's child was reaped.
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
                identity: identity, groups: .shared, listenPIDSlot: environment.count - 1, detached: true,
                connectionsInFlight: { 0 }, waiting: { _ in }, pause: { _ in })
        } catch {
            close(pair[0])
            throw UpgradeFailure(call: error.syscall, errno: error.errno)
        }
        _ = fcntl(pair[0], F_SETFL, fcntl(pair[0], F_GETFL) | O_NONBLOCK)
        return BinaryUpgrade(child: child, image: image, channel: pair[0], logger: logger)
    }

    /// The descriptors that become readable when something happens: the channel, the stderr pipe, and until it was
    /// reaped the spawn child's pidfd (readable for ever once it exited).
    var descriptors: [Int32] { [channel, standardError, reaped ? -1 : child.exitNotice].filter { $0 >= 0 } }

    /// Looks at the spawn's child, the channel and the stderr pipe without blocking.
    func progress() -> Progress {
        relayStandardError()
        if let failure = reapSpawnIfExited() { return .failed(failure) }
        if readChannel() { return .ready }
        if channel < 0 && reaped {
            relayStandardError()
            if !pendingLine.isEmpty {
                lastLine = String(decoding: pendingLine, as: UTF8.self)
                pendingLine = []
            }
            let last = lastLine.isEmpty ? "" : "; its last stderr line: \(lastLine)"
            return .failed("pid \(pid) (\(image.path)) exited before it was ready\(last)")
        }
        if MonotonicClock.seconds() >= deadline {
            let last = lastLine.isEmpty ? "" : "; its last stderr line: \(lastLine)"
            return .failed("pid \(pid) was not ready within \(ValueSyntax.display(Self.readinessDeadline)) s\(last)")
        }
        return .starting
    }

    /// Whether `READY PID` arrived (which names the new process); at EOF the channel is closed.
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
        let text = String(decoding: received, as: UTF8.self)
        guard text.hasPrefix("READY "), let end = text.firstIndex(of: "\n"),
            let reported = pid_t(text[text.index(text.startIndex, offsetBy: 6)..<end])
        else { return false }
        newPID = reported
        return true
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

    /// Reaps the spawn's child once it exited (as soon as the new process runs the program): the reason when the
    /// program could not be run, else `nil` (the new process is known from then on).
    private func reapSpawnIfExited() -> String? {
        guard !reaped else { return nil }
        var status: Int32 = 0
        guard waitpid(child.pid, &status, WNOHANG) == child.pid else { return nil }
        markReaped()
        if newPID == nil { newPID = child.detachedPID }
        let failure = child.failure
        if failure != 0 {
            return "cannot run \(image.path): \(String(cString: strerror(failure))) (errno \(failure))"
        }
        if status != 0 { return "the spawn of \(image.path) ended with status \(status)" }
        return nil
    }

    /// The new process serves: tells it that it is the main process now and lets it go (its process group is no
    /// longer ended at this process's stop; it is not reaped here).
    func complete() {
        relayStandardError()
        if !reaped {
            // It exits as soon as the new process runs the program, long before READY.
            var status: Int32 = 0
            while waitpid(child.pid, &status, 0) < 0 && errno == EINTR {}
            markReaped()
        }
        let message = Array("MAIN\n".utf8)
        if channel >= 0 {
            _ = fcntl(channel, F_SETFL, fcntl(channel, F_GETFL) & ~O_NONBLOCK)
            _ = message.withUnsafeBytes { write(channel, $0.baseAddress, $0.count) }
        }
        release()
        child.freeRecord()
    }

    /// The upgrade failed or is called off: ends the new process and its process group (SIGKILL), reaps the spawn's
    /// child, and closes everything it used.
    func abandon() {
        if !reaped {
            kill(child.pid, SIGKILL)
            var status: Int32 = 0
            while waitpid(child.pid, &status, 0) < 0 && errno == EINTR {}
            markReaped()
        }
        if let newPID = newPID ?? child.detachedPID {
            kill(-newPID, SIGKILL)
            kill(newPID, SIGKILL)
        }
        relayStandardError()
        release()
        child.freeRecord()
    }

    /// The spawn's child is reaped: its pidfd goes.
    private func markReaped() {
        reaped = true
        if child.exitNotice >= 0 { close(child.exitNotice) }
    }

    private func release() {
        for fd in [channel, standardError] where fd >= 0 { close(fd) }
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
