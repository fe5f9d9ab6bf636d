import FamilyServer
import Foundation
import Glibc
import XCTest

/// Issue 11, item 8: access rules never fail open. An empty `allow` is refused, a rule that cannot apply to its
/// listener is an error (64 from the command line, 78 from the file; for an inherited socket once it is adopted),
/// and IPv6 blocks cover the IPv4-mapped form of IPv4 peers.
final class AccessRuleTests: XCTestCase {
    /// Runs serverd to its exit and checks the status and the single final `serverd:` line.
    private func assertFails(
        _ arguments: [String], status: Int32, mentioning needles: [String], launcher: [String] = [],
        file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let serverd = try ServerdProcess(arguments, launcher: launcher)
        let exit = try serverd.waitForExit()
        let stderr = serverd.stderr
        XCTAssertEqual(exit, status, "\(arguments): \(stderr)", file: file, line: line)
        let lines = stderr.split(separator: "\n")
        XCTAssertEqual(lines.filter { $0.hasPrefix("serverd: ") }.count, 1, stderr, file: file, line: line)
        let last = String(lines.last ?? "")
        for needle in needles {
            XCTAssertTrue(last.contains(needle), "'\(last)' names \(needle)", file: file, line: line)
        }
    }

    /// Before: `allow = []` served every source.
    func testEmptyAllowIsRefused() throws {
        let dir = try TemporaryDirectory()
        let config = try writeConfig(dir, """
            [[listener]]
            listen = "echo@tcp://127.0.0.1:0"
            allow = []
            """)
        try assertFails(["--config", config], status: 78, mentioning: ["\(config):3", "allow", "empty"])
    }

    /// An empty `allow-uid` beside a non-empty `allow-gid` is meaningful (that group only) and accepted.
    func testEmptyAllowUIDAloneIsRefusedButNotBesideAllowGID() throws {
        let dir = try TemporaryDirectory()
        let alone = try writeConfig(dir, "allow-uid = []\nlisten = [\"echo@unix:\(dir.path("s.sock"))\"]\n")
        try assertFails(["--config", alone], status: 78, mentioning: ["\(alone):1", "allow-uid", "empty"])
        let beside = try writeConfig(
            dir, "allow-uid = []\nallow-gid = [0]\nlisten = [\"echo@unix:\(dir.path("s.sock"))\"]\n", name: "b.toml")
        XCTAssertEqual(try ServerdProcess.run(["--config", beside, "--check-config"]).status, 0)
    }

    /// Before: the rule was silently ignored and every source served.
    func testCommandLineIPRuleOnlyForUnixListenersIsAUsageError() throws {
        let dir = try TemporaryDirectory()
        try assertFails(
            ["--allow", "127.0.0.1", "--listen", "echo@unix:\(dir.path("s.sock"))"], status: 64,
            mentioning: ["--allow", "inet listeners", "echo@unix:"])
        try assertFails(
            ["--allow-uid", "0", "--listen", "echo@tcp://127.0.0.1:0"], status: 64,
            mentioning: ["--allow-uid", "Unix listeners", "echo@tcp://127.0.0.1:0"])
    }

    /// A top-level rule applies where it fits: with an inet and a Unix listener, `allow` guards the inet one.
    func testTopLevelRuleAppliesToTheListenersItFits() throws {
        let dir = try TemporaryDirectory()
        let config = try writeConfig(dir, """
            allow = ["127.0.0.2/32"]
            listen = ["echo@tcp://127.0.0.1:0", "echo@unix:\(dir.path("s.sock"))"]
            """)
        let serverd = try ServerdProcess(["--config", config], directory: dir)
        try serverd.waitForListening(2)
        XCTAssertTrue(try TestClient.connect(serverd.address(0)).isClosedWithoutData(), "127.0.0.1 is not allowed")
        XCTAssertTrue(try TestClient.connect(serverd.address(0), from: "tcp://127.0.0.2:0").echoes("allowed"))
        XCTAssertTrue(try TestClient.connect("unix:\(dir.path("s.sock"))").echoes("unix"))
        try serverd.stop()
    }

    /// Before: the listener's own `allow-gid` on a TCP listener was silently ignored.
    func testListenerTableRuleThatCannotApplyIsAConfigurationError() throws {
        let dir = try TemporaryDirectory()
        let config = try writeConfig(dir, """
            [[listener]]
            listen = "echo@tcp://127.0.0.1:0"

            allow-gid = [0]
            """)
        try assertFails(["--config", config], status: 78, mentioning: ["\(config):4", "allow-gid", "echo@tcp://127.0.0.1:0"])
    }

    /// An inherited socket shows its family only when adopted: the rule is checked then.
    func testRuleOnAnAdoptedSocketOfTheWrongFamilyIsRefused() throws {
        let dir = try TemporaryDirectory()
        try assertFails(
            ["--allow", "127.0.0.1", "--listen", "echo@systemd:u"], status: 64,
            mentioning: ["--allow", "echo@systemd:u", "a Unix socket"],
            launcher: Activation.launcher(["u=unix:\(dir.path("u.sock"))"]))
    }

    /// Before: `deny = ["::/0"]` let IPv4 clients of a dual-stack listener through.
    func testIPv6BlocksCoverIPv4MappedPeers() throws {
        let serverd = try ServerdProcess(["--deny", "::/0", "--listen", "echo@tcp://[::]:0"])
        try serverd.waitForListening(1)
        let port = try serverd.port(0)
        XCTAssertTrue(try TestClient.connect("tcp://127.0.0.1:\(port)").isClosedWithoutData(), "::/0 covers IPv4")
        XCTAssertTrue(try TestClient.connect("tcp://[::1]:\(port)").isClosedWithoutData())
        try serverd.stop()

        let ipv4Only = try ServerdProcess(["--deny", "::ffff:0:0/96", "--listen", "echo@tcp://[::]:0"])
        try ipv4Only.waitForListening(1)
        let other = try ipv4Only.port(0)
        XCTAssertTrue(try TestClient.connect("tcp://127.0.0.1:\(other)").isClosedWithoutData(), "all of IPv4")
        XCTAssertTrue(try TestClient.connect("tcp://[::1]:\(other)").echoes("IPv6 is served"))
        try ipv4Only.stop()
    }
}
