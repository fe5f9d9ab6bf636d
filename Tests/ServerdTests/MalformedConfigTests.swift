import FamilyServer
import Foundation
import Glibc
import XCTest

/// Every malformed configuration of the fuzz corpus (each file named `bad-*` anywhere under
/// `Fuzz/Corpus/`) makes serverd exit 78 with one `serverd: FILE:LINE: …` line, whether checked
/// (`--check-config`) or served, and is survived at SIGHUP: the reload fails, is logged, and the
/// running listener keeps serving (SPEC section 3, "Configuration file", "Signals: SIGHUP",
/// "Exit codes").
///
/// The binary is the one of the build the tests run in (``ServerdProcess/binaryPath``). `make test`
/// builds it without `-Xcxx -DNDEBUG` once TOMLKit is gone (toml++ built without NDEBUG aborted on
/// some inputs, `[)x]` among them, instead of reporting them), so that `make test` exercises a
/// plain `swift build` binary.
///
/// The corpus files of `Fuzz/Corpus/fuzz-config/` begin with a newline: that fuzzer reads byte 0
/// as its parser selector (10 % 10 == 0 selects the whole-file parser); serverd sees a blank line.
final class MalformedConfigTests: XCTestCase {
    /// The repository root, from this file's path (`Tests/ServerdTests/…`).
    private static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path

    /// Every `bad-*` file under `Fuzz/Corpus/`, sorted by path.
    private func corpus() throws -> [String] {
        let root = Self.repository + "/Fuzz/Corpus"
        guard let walker = FileManager.default.enumerator(atPath: root) else { throw TestFailure("cannot read \(root)") }
        var files: [String] = []
        while let relative = walker.nextObject() as? String {
            let path = root + "/" + relative
            var isDirectory: ObjCBool = false
            guard URL(fileURLWithPath: relative).lastPathComponent.hasPrefix("bad-"),
                FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue
            else { continue }
            files.append(path)
        }
        return files.sorted()
    }

    /// The problems with a failed run's outcome: exit status 78, and stderr exactly one line,
    /// `serverd: ` then the file's path, `:` and a digit (the line of the syntax error).
    private func problems(status: Int32, stderrPath: String, file: String) -> [String] {
        var found: [String] = []
        if status != 78 { found.append("exit status \(status), not 78") }
        let bytes = [UInt8](FileManager.default.contents(atPath: stderrPath) ?? Data())
        let text = String(decoding: bytes, as: UTF8.self)
        let newlines = bytes.filter { $0 == 0x0A }.count
        if newlines != 1 || bytes.last != 0x0A {
            found.append("stderr is not exactly one line (\(newlines) line feeds): \(text.debugDescription.prefix(600))")
        }
        let prefix = "serverd: \(file):"
        if !text.hasPrefix(prefix) || !(text.dropFirst(prefix.count).first?.isASCII ?? false)
            || !(text.dropFirst(prefix.count).first?.isNumber ?? false)
        {
            found.append("stderr does not start with `\(prefix)LINE`: \(text.debugDescription.prefix(600))")
        }
        return found
    }

    /// Runs serverd until it exits (at most `timeout` seconds; SIGKILL then) and returns its status,
    /// or nil if it was still running.
    private func runToExit(_ arguments: [String], directory: TemporaryDirectory, timeout: Double = 15) throws -> (status: Int32?, stderrPath: String) {
        let serverd = try ServerdProcess(arguments, directory: directory)
        let deadline = MonotonicClock.seconds() + timeout
        // A file serverd wrongly accepted: it serves (a `listening on` line) and would not exit.
        while serverd.process.isRunning && MonotonicClock.seconds() < deadline && !readLossy(serverd.stderrPath).contains("listening on ") {
            usleep(10_000)
        }
        guard !serverd.process.isRunning else { return (nil, serverd.stderrPath) }
        serverd.process.waitUntilExit()
        let status = serverd.process.terminationReason == .exit ? serverd.process.terminationStatus : 128 + serverd.process.terminationStatus
        return (status, serverd.stderrPath)
    }

    func testCorpusHoldsEnoughMalformedConfigurations() throws {
        let files = try corpus()
        XCTAssertGreaterThanOrEqual(files.count, 20, "bad-* files under Fuzz/Corpus: \(files)")
    }

    func testEveryMalformedConfigurationExits78WithOneLine() throws {
        let files = try corpus()
        XCTAssertGreaterThanOrEqual(files.count, 20)
        var failures: [String] = []
        for file in files {
            // --check-config, then a real start. The start also names a listener on the command line,
            // so that a file serverd wrongly accepted would not fall back to the embedded default set
            // and its fixed port 21568.
            for arguments in [["--config", file, "--check-config"], ["--config", file, "--listen", "echo@tcp://127.0.0.1:0"]] {
                let dir = try TemporaryDirectory()
                let (status, stderrPath) = try runToExit(arguments, directory: dir)
                let mode = arguments.contains("--check-config") ? "--check-config" : "start"
                guard let status else {
                    failures.append("\(file) (\(mode)): accepted: still running; stderr: \(readLossy(stderrPath).suffix(300))")
                    continue
                }
                for problem in problems(status: status, stderrPath: stderrPath, file: file) {
                    failures.append("\(file) (\(mode)): \(problem)")
                }
            }
        }
        XCTAssertEqual(failures, [], "\(failures.count) problems:\n" + failures.joined(separator: "\n"))
    }

    /// A running serverd and what the test needs of it.
    private final class Running {
        let serverd: ServerdProcess
        let sink: NotifySink
        let address: String

        init(directory: TemporaryDirectory, config: String, tag: String) throws {
            sink = try NotifySink(abstractTag: tag)
            serverd = try ServerdProcess(["--config", config], directory: directory, environment: sink.environment)
            try sink.next("READY", "1")
            address = addressPart(try serverd.waitForListening(1)[0])
        }
    }

    func testEveryMalformedConfigurationIsSurvivedAtReload() throws {
        let files = try corpus()
        XCTAssertGreaterThanOrEqual(files.count, 20)
        let good = #"listen = ["echo@tcp://127.0.0.1:0"]"# + "\n"
        var failures: [String] = []
        var generation = 0
        var dir = try TemporaryDirectory()
        var config = dir.path("serverd.toml")
        try replaceFile(config, with: Array(good.utf8))
        var running = try Running(directory: dir, config: config, tag: "malformed-\(generation)")
        XCTAssertTrue(try TestClient.connect(running.address).echoes("start\n"))
        var reloads = 0
        for file in files {
            let failuresBefore = occurrences(of: "reload failed", in: readLossy(running.serverd.stderrPath).lowercased())
            try replaceFile(config, with: [UInt8](try XCTUnwrap(FileManager.default.contents(atPath: file))))
            running.serverd.send(SIGHUP)
            reloads += 1
            var problems: [String] = []
            do {
                try running.sink.next("RELOADING", "1", timeout: 10)
                try running.sink.next("READY", "1", timeout: 10)
            } catch {
                problems.append("no RELOADING=1 then READY=1")
            }
            if !running.serverd.process.isRunning {
                problems.append("serverd exited: \(readLossy(running.serverd.stderrPath).suffix(500))")
            } else {
                func logged() -> Bool {
                    occurrences(of: "reload failed", in: readLossy(running.serverd.stderrPath).lowercased()) > failuresBefore
                }
                let deadline = MonotonicClock.seconds() + 5
                while !logged() && MonotonicClock.seconds() < deadline { usleep(20_000) }
                if !logged() { problems.append("no `reload failed` line in the log") }
                let echoes = (try? TestClient.connect(running.address, timeout: 5).echoes("after \(file)\n")) ?? false
                if !echoes { problems.append("the listener at \(running.address) no longer echoes") }
            }
            if !problems.isEmpty {
                failures += problems.map { "\(file): \($0)" }
                // Start over with a fresh serverd, so that the next file is judged on its own.
                if running.serverd.process.isRunning { kill(running.serverd.pid, SIGKILL) }
                generation += 1
                dir = try TemporaryDirectory()
                config = dir.path("serverd.toml")
                try replaceFile(config, with: Array(good.utf8))
                running = try Running(directory: dir, config: config, tag: "malformed-\(generation)")
            }
        }
        XCTAssertEqual(reloads, files.count)
        XCTAssertEqual(failures, [], "\(failures.count) problems:\n" + failures.joined(separator: "\n"))
        XCTAssertTrue(try TestClient.connect(running.address).echoes("end\n"))
        try running.serverd.stop()
    }
}
