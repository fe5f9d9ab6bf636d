import FamilyServer
import Glibc
import XCTest

/// Exit codes and the single `serverd: ` line of SPEC section 3.
final class ExitStatusTests: XCTestCase {
    private func assertFails(
        _ arguments: [String], status: Int32, mentioning needle: String, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let result = try ServerdProcess.run(arguments)
        XCTAssertEqual(result.status, status, result.stderr, file: file, line: line)
        let lines = result.stderr.split(separator: "\n")
        let prefixed = lines.filter { $0.hasPrefix("serverd: ") }
        XCTAssertEqual(prefixed.count, 1, "exactly one serverd: line in\n\(result.stderr)", file: file, line: line)
        XCTAssertTrue(lines.last?.hasPrefix("serverd: ") == true, "the serverd: line is the last", file: file, line: line)
        XCTAssertTrue(lines.last?.contains(needle) == true, "\(lines.last ?? "") names \(needle)", file: file, line: line)
    }

    func testUsageErrorsExit64() throws {
        try assertFails(["--frobnicate"], status: 64, mentioning: "frobnicate")
        try assertFails(["--listen", "nosuch@tcp://127.0.0.1:0"], status: 64, mentioning: "nosuch")
        try assertFails(["--listen", "echo"], status: 64, mentioning: "echo")
        try assertFails(["--listen", "echo@tcp://127.0.0.1"], status: 64, mentioning: "tcp://127.0.0.1")
        try assertFails(["--listen", "echo@unix:/" + String(repeating: "x", count: 120)], status: 64, mentioning: "too long")
    }

    /// fuzz-options found it: an argument holding CR LF split the one `serverd:` line in two.
    func testControlCharactersInTheInputDoNotSplitTheErrorLine() throws {
        try assertFails(["\r\nle"], status: 64, mentioning: "'\\r\\nle'")
        try assertFails(["--listen", "no\u{1B}[31msuch@tcp://127.0.0.1:0"], status: 64, mentioning: "no\\x1B[31msuch")
        let result = try ServerdProcess.run(["--listen", "echo@tcp://127.0.0.1:1\n2"])
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
    }

    func testAddressInUseExits69() throws {
        let holder = try Socket(family: AF_INET, transport: .stream)
        try holder.bind(to: SocketAddress(parsing: "tcp://127.0.0.1:0"))
        try holder.listen(backlog: 1)
        let address = try holder.localAddress()
        try assertFails(["--listen", "echo@\(address)"], status: 69, mentioning: "\(address)")
    }

    func testLiveUnixSocketIsInUseAndNonSocketIsLeftAlone() throws {
        let dir = try TemporaryDirectory()
        let first = try ServerdProcess(["--listen", "echo@unix:\(dir.path("s.sock"))"], directory: dir)
        try first.waitForListening(1)
        try assertFails(["--listen", "echo@unix:\(dir.path("s.sock"))"], status: 69, mentioning: dir.path("s.sock"))
        let plain = try dir.write("plain", "keep me")
        try assertFails(["--listen", "echo@unix:\(plain)"], status: 69, mentioning: plain)
        XCTAssertEqual(try String(contentsOfFile: plain, encoding: .utf8), "keep me")
    }

    func testExecWithoutProgramIsAConfigurationError() throws {
        try assertFails(["--listen", "exec@tcp://127.0.0.1:0"], status: 78, mentioning: "exec")
    }

    func testFailedStartRemovesTheSocketFilesItCreated() throws {
        let dir = try TemporaryDirectory()
        let holder = try Socket(family: AF_INET, transport: .stream)
        try holder.bind(to: SocketAddress(parsing: "tcp://127.0.0.1:0"))
        try holder.listen(backlog: 1)
        let busy = try holder.localAddress()
        let path = dir.path("first.sock")
        try assertFails(["--listen", "echo@unix:\(path)", "--listen", "echo@\(busy)"], status: 69, mentioning: "\(busy)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path), "a failed start leaves no socket file behind")
    }

    /// toml++ (inside TOMLKit) aborted on these instead of reporting a syntax error, killing serverd
    /// at start and on reload; every build now defines NDEBUG (Makefile, debian/rules).
    func testMalformedTOMLIsASyntaxErrorNotACrash() throws {
        let dir = try TemporaryDirectory()
        for (index, text) in ["[)x]\n", "[\n", "m=[}\n"].enumerated() {
            let file = try dir.write("bad\(index).toml", text)
            try assertFails(["--check-config", "--config", file], status: 78, mentioning: "\(file):1")
        }
    }

    func testReloadWithMalformedTOMLKeepsServing() throws {
        let dir = try TemporaryDirectory()
        let config = try dir.write("serverd.toml", "listen = [\"echo@tcp://127.0.0.1:0\"]\n")
        let serverd = try ServerdProcess(["--config", config], directory: dir)
        try serverd.waitForListening(1)
        try dir.write("serverd.toml", "[)x]\n")
        serverd.send(SIGHUP)
        _ = try serverd.waitFor { serverd.stderr.contains("reload failed") ? true : nil }
        let client = try TestClient.connect("tcp://127.0.0.1:\(try serverd.port(0))")
        try client.send("still here")
        XCTAssertEqual(try client.receive(count: 10), Array("still here".utf8))
        client.socket.close()
        serverd.send(SIGTERM)
        XCTAssertEqual(try serverd.waitForExit(), 0)
    }
}
