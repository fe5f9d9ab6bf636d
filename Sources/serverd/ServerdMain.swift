import FamilyServer
import Glibc
import Logging

/// serverd from its command line to its exit status: parse, configure, adopt what systemd hands
/// over, detach if asked, serve until stopped. Every failure ends with exactly one line on stderr
/// starting `serverd: `, and `ERRNO=` to systemd before the exit.
enum ServerdMain {
    static func run(_ arguments: [String]) -> Int32 {
        var report: ReadinessReport?
        do {
            return try serve(arguments, report: &report)
        } catch {
            SystemdSession.reportFailure(errno: error.errno)
            if let report {
                report.failed(error)
            } else {
                writeStandardError("\(error)\n")
            }
            return error.status.rawValue
        }
    }

    private static func serve(_ arguments: [String], report: inout ReadinessReport?) throws(DaemonError) -> Int32 {
        let invocation: Invocation
        let directory = currentDirectory()
        let image = ProgramImage.record(arguments: arguments, directory: directory)
        switch try CommandLineParser.parse(arguments, workingDirectory: directory) {
        case .print(let text):
            print(text)
            return 0
        case .run(let parsed):
            invocation = parsed
        }
        let handOver = try HandOverEnvironment.take()
        var inherited = try InheritedSocketPool.adopt(lockDescriptors: handOver.lockDescriptors)
        if let connection = inherited.takeConnection() {
            return try AcceptedConnection.serve(connection, invocation: invocation)
        }
        let implicitListeners = ImplicitListeners(inherited: inherited, preparing: !invocation.checkOnly)
        let desired = try DesiredState.build(invocation, implicitListeners: implicitListeners.specs)
        try ListenerPrecheck.check(desired, inherited: inherited, createdDirectory: implicitListeners.plannedDirectory)
        if invocation.checkOnly {
            for line in CheckReport.lines(desired) { print(line) }
            return 0
        }
        let settings = desired.settings
        let log = try Log.bootstrap(
            level: settings.logLevel, destination: settings.logDestination, format: settings.logFormat,
            finalStandardError: handOver.standardError ?? STDERR_FILENO)
        let logger = Logger(label: "serverd")
        let start = { [inherited] (signals: SignalReceiver, report: inout ReadinessReport?) throws(DaemonError) -> Int32 in
            let daemon = try Daemon(
                invocation: invocation, desired: desired, inherited: inherited, implicitListeners: implicitListeners,
                signals: signals, systemd: SystemdSession(detached: settings.daemonize), logger: logger, log: log,
                image: image, predecessor: PredecessorLink(handOver))
            do throws(DaemonError) {
                try daemon.start()
            } catch {
                // The one `serverd:` line goes to stderr (or the --daemon parent's); a log elsewhere
                // records the failure too, but stderr must not get it twice.
                if settings.logDestination != .standardError { logger.error("\(error.message)") }
                throw error
            }
            report?.ready()
            report = nil
            return daemon.run()
        }
        // Started by a binary upgrade, serverd is detached already (when --daemon asked for it): it runs on.
        guard settings.daemonize && !handOver.isUpgrade else {
            return try start(try SignalReceiver(), &report)
        }
        report = try Daemonizer.detach()
        // The signals are blocked here, in the forked main thread, before the daemon's own thread
        // (FreshThread) inherits the mask: no thread may take SIGTERM's default action.
        let signals = try SignalReceiver()
        let detached = Detached(report: report)
        report = nil
        do throws(DaemonError) {
            return try FreshThread.run { () throws(DaemonError) -> Int32 in
                try start(signals, &detached.report)
            }
        } catch {
            report = detached.report
            throw error
        }
    }

    /// The `--daemon` parent's readiness report, handed to the daemon's thread and back.
    private final class Detached: @unchecked Sendable {
        var report: ReadinessReport?
        init(report: ReadinessReport?) { self.report = report }
    }

    /// The working directory, which relative Unix socket paths are taken from even after `--daemon`.
    private static func currentDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return "." }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
