import FamilyServer
import Foundation
import Glibc
import XCTest

/// A serverd process started by a test, with its stderr in a file of the test's own temporary
/// directory. Tests wait for what serverd reports (the `listening on` lines, an exit), never
/// for a fixed time. Only this process is ever signalled, by its PID.
final class ServerdProcess {
    /// The serverd binary next to the test bundle in the build directory.
    static let binaryPath: String = {
        let runner = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var directory = URL(fileURLWithPath: runner).deletingLastPathComponent()
        // The XCTest runner may sit inside the .xctest bundle directory.
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("serverd").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        return "serverd"
    }()

    let process = Process()
    /// The test's temporary directory (socket paths, config files, logs).
    let directory: TemporaryDirectory
    /// Where serverd's stderr goes.
    let stderrPath: String
    let stdoutPath: String

    /// The model a test that leaves it to the default runs under when `SERVERD_TEST_MODEL` names one
    /// (`SERVERD_TEST_MODEL=event swift test`): added as `--model` unless the arguments give `--model` or a
    /// `--config` file (whose `model` key a command-line `--model` would override). Tests that check the default
    /// model itself fail under it, as they should.
    static let modelFromEnvironment = ProcessInfo.processInfo.environment["SERVERD_TEST_MODEL"]

    /// The arguments with `--model` from ``modelFromEnvironment`` where they leave the model to the default.
    static func withTestModel(_ arguments: [String]) -> [String] {
        guard let model = modelFromEnvironment, !model.isEmpty,
            !arguments.contains(where: { ["--model", "--config", "--help", "--version"].contains($0) || $0.hasPrefix("--model=") })
        else { return arguments }
        return ["--model", model] + arguments
    }

    /// Starts `serverd ARGUMENTS` (or `launcher… serverd ARGUMENTS` when `launcher` is given); `binary` is another
    /// copy of serverd to run.
    init(
        _ arguments: [String], directory: TemporaryDirectory? = nil, environment: [String: String] = [:],
        removingEnvironment: [String] = [], launcher: [String] = [], binary: String = ServerdProcess.binaryPath
    ) throws {
        self.directory = try directory ?? TemporaryDirectory()
        stderrPath = self.directory.path("stderr.log")
        stdoutPath = self.directory.path("stdout.log")
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        let arguments = Self.withTestModel(arguments)
        if launcher.isEmpty {
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = arguments
        } else {
            process.executableURL = URL(fileURLWithPath: launcher[0])
            process.arguments = Array(launcher.dropFirst()) + [binary] + arguments
        }
        var env = ProcessInfo.processInfo.environment
        for name in ["NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM"] + removingEnvironment {
            env.removeValue(forKey: name)
        }
        env["XDG_RUNTIME_DIR"] = self.directory.path
        env.removeValue(forKey: "RUNTIME_DIRECTORY")
        for (key, value) in environment { env[key] = value }
        process.environment = env
        process.currentDirectoryURL = URL(fileURLWithPath: self.directory.path)
        process.standardInput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        process.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
        try process.run()
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    var pid: pid_t { process.processIdentifier }

    /// Everything serverd wrote to stderr so far.
    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }
    /// Everything serverd wrote to stdout so far.
    var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }

    /// Waits until stderr contains `count` `listening on SERVICE@ADDRESS` lines; returns the
    /// addresses in order, as `SERVICE@ADDRESS` texts.
    @discardableResult
    func waitForListening(_ count: Int, timeout: Double = 20, file: StaticString = #filePath, line: UInt = #line) throws -> [String] {
        let found = try waitFor(timeout: timeout, file: file, line: line) {
            let lines = self.listeningLines
            return lines.count >= count ? lines : nil
        }
        return found
    }

    /// The `SERVICE@ADDRESS` texts of every `listening on` line so far.
    var listeningLines: [String] {
        stderr.split(separator: "\n").compactMap { line in
            guard let range = line.range(of: "listening on ") else { return nil }
            return String(line[range.upperBound...].split(separator: " ").first ?? "")
        }
    }

    /// The port of the `listening on SERVICE@tcp|udp://HOST:PORT` line number `index`.
    func port(_ index: Int = 0) throws -> UInt16 {
        let text = listeningLines[index]
        let address = try SocketAddress(parsing: String(text[text.index(after: text.firstIndex(of: "@")!)...]))
        return address.port!
    }

    /// Polls `probe` every 20 ms until it returns a value or `timeout` passes (then fails the test).
    func waitFor<T>(timeout: Double = 20, file: StaticString = #filePath, line: UInt = #line, _ probe: () throws -> T?) throws -> T {
        let deadline = MonotonicClock.seconds() + timeout
        while true {
            if let value = try probe() { return value }
            if MonotonicClock.seconds() > deadline {
                XCTFail("timed out; serverd stderr:\n\(stderr)", file: file, line: line)
                throw TestFailure("timed out")
            }
            usleep(20_000)
        }
    }

    /// Sends `signal` to this serverd.
    func send(_ signal: Int32) {
        kill(pid, signal)
    }

    /// Waits for serverd to exit; returns its exit status (or 128+signal).
    @discardableResult
    func waitForExit(timeout: Double = 30, file: StaticString = #filePath, line: UInt = #line) throws -> Int32 {
        _ = try waitFor(timeout: timeout, file: file, line: line) { process.isRunning ? nil : true }
        process.waitUntilExit()
        return process.terminationReason == .exit ? process.terminationStatus : 128 + process.terminationStatus
    }

    /// Runs serverd to completion (for `--check-config`, usage errors, …).
    static func run(
        _ arguments: [String], directory: TemporaryDirectory? = nil, environment: [String: String] = [:], timeout: Double = 30
    ) throws -> (status: Int32, stdout: String, stderr: String) {
        let serverd = try ServerdProcess(arguments, directory: directory, environment: environment)
        let status = try serverd.waitForExit(timeout: timeout)
        return (status, serverd.stdout, serverd.stderr)
    }
}

/// An error that ends a test after XCTFail said why.
struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A fresh directory under /tmp for one test, removed when the test is done.
final class TemporaryDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/serverd-test.XXXXXX".utf8CString)
        guard let result = mkdtemp(&template) else { throw TestFailure("mkdtemp failed") }
        path = String(cString: result)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// A path inside the directory.
    func path(_ name: String) -> String { "\(path)/\(name)" }

    /// Writes a file inside the directory and returns its path.
    @discardableResult
    func write(_ name: String, _ contents: String) throws -> String {
        let file = path(name)
        try contents.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }
}
