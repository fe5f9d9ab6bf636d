import FamilyServer
import Foundation
import Glibc
import XCTest

// Helpers for the integration tests: log files other than stderr, /proc, bounded polling,
// clients bound to a chosen source address.

/// Polls `probe` every 20 ms until it returns a value or `timeout` passes; then fails the test
/// with `context()` in the message.
func poll<T>(
    timeout: Double = 20, _ what: @autoclosure () -> String = "", context: () -> String = { "" },
    file: StaticString = #filePath, line: UInt = #line, _ probe: () throws -> T?
) throws -> T {
    let deadline = MonotonicClock.seconds() + timeout
    while true {
        if let value = try probe() { return value }
        if MonotonicClock.seconds() > deadline {
            XCTFail("timed out waiting for \(what())\n\(context())", file: file, line: line)
            throw TestFailure("timed out waiting for \(what())")
        }
        usleep(20_000)
    }
}

/// The contents of a text file, or "" if it cannot be read.
func readText(_ path: String) -> String {
    (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
}

/// The `SERVICE@ADDRESS` texts of every `listening on` line of `log`.
func listeningLines(in log: String) -> [String] {
    log.split(separator: "\n").compactMap { line in
        guard let range = line.range(of: "listening on ") else { return nil }
        return String(line[range.upperBound...].split(separator: " ").first ?? "")
    }
}

/// The ADDRESS part of a `SERVICE@ADDRESS` text.
func addressPart(_ text: String) -> String {
    guard let at = text.firstIndex(of: "@") else { return text }
    return String(text[text.index(after: at)...])
}

/// Waits for `count` `listening on` lines in the log file at `path`; returns their texts.
@discardableResult
func waitForListening(inFile path: String, _ count: Int, timeout: Double = 20, file: StaticString = #filePath, line: UInt = #line) throws -> [String] {
    try poll(timeout: timeout, "\(count) listening lines in \(path)", context: { readText(path) }, file: file, line: line) {
        let lines = listeningLines(in: readText(path))
        return lines.count >= count ? lines : nil
    }
}

/// How many times `needle` occurs in `text`.
func occurrences(of needle: String, in text: String) -> Int {
    text.components(separatedBy: needle).count - 1
}

extension ServerdProcess {
    /// The ADDRESS of the `listening on` line number `index` (e.g. `tcp://127.0.0.1:4711`).
    func address(_ index: Int) -> String { addressPart(listeningLines[index]) }

    /// Waits until stderr contains `needle` at least `count` times; returns stderr.
    @discardableResult
    func waitForLog(_ needle: String, count: Int = 1, timeout: Double = 20, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        try waitFor(timeout: timeout, file: file, line: line) {
            let text = self.stderr
            return occurrences(of: needle, in: text) >= count ? text : nil
        }
    }

    /// Sends SIGTERM and expects a clean exit.
    func stop(file: StaticString = #filePath, line: UInt = #line) throws {
        send(SIGTERM)
        XCTAssertEqual(try waitForExit(file: file, line: line), 0, stderr, file: file, line: line)
    }
}

// MARK: - Clients

extension TestClient {
    /// Connects a stream client to `address` from the local address `source` (e.g. `tcp://127.0.0.2:0`).
    static func connect(_ address: String, from source: String, timeout: Double = 10) throws -> TestClient {
        let target = try SocketAddress(parsing: address)
        let socket = try Socket(family: target.family, transport: target.transport)
        try socket.setTimeouts(receive: timeout, send: timeout)
        try socket.bind(to: SocketAddress(parsing: source))
        try socket.connect(to: target)
        return TestClient(socket: socket)
    }

    /// Whether the server closed the connection without sending a byte (EOF or reset first).
    func isClosedWithoutData(timeout: Double = 10) -> Bool {
        try? socket.setTimeouts(receive: timeout, send: timeout)
        var buffer = [UInt8](repeating: 0, count: 4096)
        do {
            let n = try buffer.withUnsafeMutableBytes { try socket.receive(into: $0) }
            return n == 0
        } catch {
            return (error as? SocketError)?.errno == ECONNRESET
        }
    }

    /// Whether nothing arrives (and the connection stays open) for `seconds`: a short negative check.
    func staysSilent(for seconds: Double) -> Bool {
        try? socket.setTimeouts(receive: seconds, send: 10)
        defer { try? socket.setTimeouts(receive: 10, send: 10) }
        var buffer = [UInt8](repeating: 0, count: 1)
        do {
            _ = try buffer.withUnsafeMutableBytes { try socket.receive(into: $0) }
            return false
        } catch {
            let code = (error as? SocketError)?.errno
            return code == EAGAIN || code == EWOULDBLOCK
        }
    }

    /// Sends a line to an echo or stamp service and returns the reply line.
    func roundTrip(_ line: String) throws -> String {
        try send(line + "\n")
        return try receiveLine()
    }

    /// Sends `text` to an echo service and checks that it comes back.
    func echoes(_ text: String) throws -> Bool {
        try send(text)
        return try receive(count: text.utf8.count) == Array(text.utf8)
    }

    func close() { socket.close() }
}

/// Whether a stream connection to `address` is refused (nothing listens there any more).
func connectionIsRefused(_ address: String) -> Bool {
    do {
        let client = try TestClient.connect(address, timeout: 5)
        client.close()
        return false
    } catch {
        let code = (error as? SocketError)?.errno
        return code == ECONNREFUSED || code == ENOENT
    }
}

// MARK: - /proc

/// The fields of /proc/PID/stat after the command name: index 0 is the state (field 3).
func procStat(_ pid: pid_t) -> [String]? {
    let text = readText("/proc/\(pid)/stat")
    guard let close = text.lastIndex(of: ")") else { return nil }
    return text[text.index(after: close)...].split(separator: " ").map(String.init)
}

/// The session id (field 6) and tty_nr (field 7) of a process.
func sessionAndTTY(_ pid: pid_t) -> (session: Int, tty: Int)? {
    guard let fields = procStat(pid), fields.count > 4, let session = Int(fields[3]), let tty = Int(fields[4]) else { return nil }
    return (session, tty)
}

/// One line of /proc/PID/status (e.g. `Uid`), its values split.
func procStatus(_ pid: pid_t, _ key: String) -> [String] {
    for line in readText("/proc/\(pid)/status").split(separator: "\n") where line.hasPrefix(key + ":") {
        return line.dropFirst(key.count + 1).split(whereSeparator: { $0 == "\t" || $0 == " " }).map(String.init)
    }
    return []
}

/// Whether a process no longer runs (gone, or a zombie nobody reaped yet).
func processIsGone(_ pid: pid_t) -> Bool {
    if kill(pid, 0) != 0 && errno == ESRCH { return true }
    return procStat(pid)?.first == "Z" || procStat(pid) == nil
}

/// The pids of every child of `pid` (over all its threads).
func childProcesses(of pid: pid_t) -> [pid_t] {
    let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
    return tasks.flatMap { task in
        readText("/proc/\(pid)/task/\(task)/children").split(separator: " ").compactMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }
}

/// Where a descriptor of a process points.
func descriptorTarget(_ pid: pid_t, _ fd: Int32) -> String? {
    try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)")
}

/// The pid written in a pidfile, if any.
func pidFromFile(_ path: String) -> pid_t? {
    pid_t(readText(path).trimmingCharacters(in: .whitespacesAndNewlines))
}

/// Registers a teardown that SIGKILLs the process named in `pidfile` if a test leaves it running,
/// and only if that process is a serverd (guards against a recycled pid).
func killDaemonAtTeardown(_ test: XCTestCase, pidfile: String) {
    test.addTeardownBlock {
        guard let pid = pidFromFile(pidfile), pid > 1, !processIsGone(pid) else { return }
        let command = readText("/proc/\(pid)/cmdline")
        if command.contains("serverd") { kill(pid, SIGKILL) }
    }
}

/// Writes a configuration file in `directory` and returns its path.
@discardableResult
func writeConfig(_ directory: TemporaryDirectory, _ text: String, name: String = "serverd.toml") throws -> String {
    try directory.write(name, text)
}
