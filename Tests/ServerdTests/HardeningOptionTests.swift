import FamilyServer
import Foundation
import Glibc
import XCTest

/// Issue 11, items 5 and 9 over the real binary: numeric options have ranges (64 on the command line, 78 in the
/// file, never a trap), `--idle-timeout 0` means none, and hostile configuration files (endless, NUL in a string)
/// are refused with the one `serverd:` line.
final class HardeningOptionTests: XCTestCase {
    /// Runs serverd to its exit and checks the status and the single final `serverd:` line.
    private func assertFails(
        _ arguments: [String], status: Int32, mentioning needles: [String], directory: TemporaryDirectory? = nil,
        file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let result = try ServerdProcess.run(arguments, directory: directory)
        XCTAssertEqual(result.status, status, "\(arguments): \(result.stderr)", file: file, line: line)
        let lines = result.stderr.split(separator: "\n")
        XCTAssertEqual(lines.filter { $0.hasPrefix("serverd: ") }.count, 1, result.stderr, file: file, line: line)
        let last = String(lines.last ?? "")
        XCTAssertTrue(last.hasPrefix("serverd: "), result.stderr, file: file, line: line)
        for needle in needles {
            XCTAssertTrue(last.contains(needle), "'\(last)' names \(needle)", file: file, line: line)
        }
    }

    // MARK: - Numeric ranges

    /// Before: an arithmetic overflow trap in `maxLine + 1` killed serverd with SIGILL (exit 132).
    func testHugeMaxLineIsAUsageErrorNamingTheRange() throws {
        try assertFails(
            ["--max-line", "9223372036854775807", "--listen", "stamp@tcp://127.0.0.1:0"], status: 64,
            mentioning: ["--max-line", "1 to 1073741824"])
    }

    func testEveryNumericOptionOutsideItsRangeIsAUsageError() throws {
        let cases: [(String, String, String)] = [
            ("--max-connections", "1000001", "1 to 1000000"),
            ("--max-per-source", "0", "1 to 1000000"),
            ("--max-line", "0", "1 to 1073741824"),
            ("--idle-timeout", "86401", "0 to 86400"),
            ("--drain-timeout=-1", "", "0 to 86400"),
            ("--request-timeout", "1e9", "0 to 86400"),
            ("--min-rate", "1073741825", "0 to 1073741824"),
            ("--source-prefix-v4", "33", "1 to 32"),
            ("--source-prefix-v6", "0", "1 to 128"),
            ("--reply-rate-per-source", "1000001", "0 to 1000000"),
            ("--max-connections", "99999999999999999999", "1 to 1000000"),
        ]
        for (option, value, range) in cases {
            let words = value.isEmpty ? [option] : [option, value]  // `--drain-timeout=-1`: a value may start with -
            let name = String(option.prefix { $0 != "=" })
            try assertFails(words + ["--check-config"], status: 64, mentioning: [name, range])
        }
    }

    func testNumericKeyOutsideItsRangeIsAConfigurationError() throws {
        let dir = try TemporaryDirectory()
        let config = try writeConfig(dir, """
            listen = ["stamp@tcp://127.0.0.1:0"]

            [[listener]]
            listen = "echo@tcp://127.0.0.1:0"
            max-line = 9223372036854775807
            """)
        try assertFails(["--config", config], status: 78, mentioning: ["\(config):5", "max-line", "1 to 1073741824"])
        let other = try writeConfig(dir, "source-prefix-v6 = 129\n", name: "other.toml")
        try assertFails(["--config", other, "--check-config"], status: 78, mentioning: ["\(other):1", "source-prefix-v6", "1 to 128"])
    }

    /// SPEC section 5: `--idle-timeout 0` is no idle timeout. Before: refused with exit 64.
    func testIdleTimeoutZeroMeansNone() throws {
        let serverd = try ServerdProcess(["--idle-timeout", "0", "--listen", "stamp@tcp://127.0.0.1:0"])
        try serverd.waitForListening(1)
        let client = try TestClient.connect(serverd.address(0))
        XCTAssertTrue(try client.roundTrip("no idle limit").hasSuffix("] no idle limit\n"))
        client.close()
        try serverd.stop()
    }

    func testCheckConfigPrintsTheNewOptions() throws {
        let result = try ServerdProcess.run([
            "--check-config", "--listen", "echo@udp://127.0.0.1:0", "--reply-rate-per-source", "7",
            "--request-timeout", "5", "--min-rate", "9", "--source-prefix-v4", "24", "--source-prefix-v6", "48",
        ])
        XCTAssertEqual(result.status, 0, result.stderr)
        for text in ["reply-rate-per-source 7", "request-timeout 5,", "min-rate 9", "source-prefix-v4 24", "source-prefix-v6 48"] {
            XCTAssertTrue(result.stdout.contains(text), "\(text) in \(result.stdout)")
        }
    }

    // MARK: - Unbounded input

    /// Before: serverd read /dev/zero until it ran out of memory.
    func testEndlessConfigFileIsRefused() throws {
        try assertFails(["--config", "/dev/zero", "--check-config"], status: 78, mentioning: ["/dev/zero", "1048576"])
    }

    /// Before: TOMLKit's C strings cut `/tmp/a\u0000b` to `/tmp/a`, and the check passed with the shorter path.
    func testNULInAConfigStringIsRefused() throws {
        let dir = try TemporaryDirectory()
        let config = try writeConfig(dir, "log-level = \"info\"\npidfile = \"\(dir.path)/a\\u0000b\"\n")
        try assertFails(["--config", config, "--check-config"], status: 78, mentioning: ["\(config):2", "pidfile", "NUL"])
        let listen = try writeConfig(dir, "listen = [\n  \"echo@unix:\(dir.path)/s\\U00000000.sock\",\n]\n", name: "l.toml")
        try assertFails(["--config", listen, "--check-config"], status: 78, mentioning: ["\(listen):2", "listen", "NUL"])
    }

    /// A literal string and an escaped backslash are no NUL: `'\u0000'` is six characters.
    func testTextThatOnlyLooksLikeANULEscapeIsAccepted() throws {
        let dir = try TemporaryDirectory()
        let config = try writeConfig(dir, """
            user = 'x\\u0000'
            group = "y\\\\u0000"
            listen = ["echo@tcp://127.0.0.1:0"]  # "\\u0000" in a comment
            """)
        let result = try ServerdProcess.run(["--config", config, "--check-config"])
        XCTAssertFalse(result.stderr.contains("NUL"), result.stderr)
        XCTAssertTrue(result.stderr.contains("--user x\\u0000: no such user"), result.stderr)
    }
}
