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
        var command: ServerdCommand
        switch try ServerdCommand.parseCommandLine(arguments) {
        case .print(let text):
            print(text)
            return 0
        case .run(let parsed):
            command = parsed
        }
        var configuration = try DaemonConfiguration.load(from: command)
        var inherited = try InheritedSocketPool.adopt()
        if let connection = inherited.takeConnection() {
            return try AcceptedConnection.serve(connection, configuration: configuration)
        }
        var runtimeDirectory: PrivateRuntimeDirectory?
        if configuration.listeners.isEmpty {
            let implicit = try ImplicitListeners(inherited: inherited, preparing: !configuration.checkConfig)
            for text in implicit.specs {
                command.listen.append(try implicitSpec(text))
            }
            runtimeDirectory = implicit.privateDirectory
            configuration = try DaemonConfiguration.load(from: command)
        }
        if configuration.checkConfig {
            try CheckConfig.validate(configuration)
            return 0
        }
        let logLevel = try Log.bootstrap(level: configuration.logLevel, destination: LogDestination(for: configuration))
        let logger = Logger(label: "serverd")
        let workingDirectory = currentDirectory()
        guard configuration.daemonize else {
            let signals = try SignalReceiver()
            return try startAndRun(
                command: command, configuration: configuration, inherited: inherited, signals: signals, logger: logger,
                logLevel: logLevel, workingDirectory: workingDirectory, runtimeDirectory: runtimeDirectory, report: &report)
        }
        report = try Daemonizer.detach()
        // The signals are blocked here, in the forked main thread, before the daemon's own thread
        // (FreshThread) inherits the mask: no thread may take SIGTERM's default action.
        let signals = try SignalReceiver()
        let detached = Detached(report: report)
        report = nil
        do {
            return try FreshThread.run { [inherited] () throws(DaemonError) -> Int32 in
                try startAndRun(
                    command: command, configuration: configuration, inherited: inherited, signals: signals,
                    logger: logger, logLevel: logLevel, workingDirectory: workingDirectory,
                    runtimeDirectory: runtimeDirectory, report: &detached.report)
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

    /// Binds or adopts every listener, reports readiness, and serves until stopped.
    private static func startAndRun(
        command: ServerdCommand, configuration: DaemonConfiguration, inherited: InheritedSocketPool,
        signals: SignalReceiver, logger: Logger, logLevel: LogLevelControl, workingDirectory: String,
        runtimeDirectory: PrivateRuntimeDirectory?, report: inout ReadinessReport?
    ) throws(DaemonError) -> Int32 {
        let systemd = SystemdSession(detached: configuration.daemonize)
        let daemon = Daemon(
            command: command, configuration: configuration, inherited: inherited, signals: signals,
            systemd: systemd, logger: logger, logLevel: logLevel, workingDirectory: workingDirectory,
            runtimeDirectory: runtimeDirectory)
        do {
            try daemon.start()
        } catch {
            // The one `serverd:` line goes to stderr (or the --daemon parent's); a log elsewhere
            // records the failure too, but stderr must not get it twice.
            if LogDestination(for: configuration) != .standardError { logger.error("\(error.message)") }
            throw error
        }
        report?.ready()
        report = nil
        return daemon.run()
    }

    private static func implicitSpec(_ text: String) throws(DaemonError) -> ListenSpec {
        do {
            return try ListenSpec(parsing: text)
        } catch {
            throw DaemonError(.configuration, "'\(text)': \(error)")
        }
    }

    /// The working directory, which relative Unix socket paths are taken from even after `--daemon`.
    private static func currentDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return "." }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
