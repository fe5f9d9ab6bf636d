import FamilyServer
import Foundation
import Glibc
import XCTest

/// `--config`, `--check-config`, `--socket-mode`, `--log-file`, `--log-level`, `--user`/`--group`,
/// `--version`/`--help` and the remaining exit codes, through the real serverd binary.
final class ConfigFileTests: XCTestCase {
    // MARK: - --check-config

    func testCheckConfigPrintsOneLinePerListenerAndExits0() throws {
        let dir = try TemporaryDirectory()
        let config = try writeConfig(dir, """
            model = "forking"
            listen = ["stamp@tcp://127.0.0.1:0", "echo@unix:\(dir.path("e.sock"))"]

            [[listener]]
            listen = "exec@tcp://[::1]:0"
            exec = ["/bin/cat"]
            """)
        let result = try ServerdProcess.run(["--config", config, "--check-config", "--listen", "daytime@udp://127.0.0.1:0"], directory: dir)
        XCTAssertEqual(result.status, 0, result.stderr)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 4, result.stdout)
        for (index, text) in ["stamp@tcp://127.0.0.1:0", "echo@unix:\(dir.path("e.sock"))", "exec@tcp://[::1]:0", "daytime@udp://127.0.0.1:0"].enumerated()
        where index < lines.count {
            XCTAssertTrue(lines[index].contains(text), "\(lines[index]) names \(text)")
        }
        XCTAssertFalse(result.stderr.contains("listening on"), "nothing is served:\n\(result.stderr)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("e.sock")), "--check-config binds nothing")
    }

    func testCheckConfigOnCommandLineOnly() throws {
        let result = try ServerdProcess.run(["--check-config", "--listen", "echo@tcp://127.0.0.1:0", "--model", "serial"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdout.split(separator: "\n").count, 1, result.stdout)
        XCTAssertTrue(result.stdout.contains("echo@tcp://127.0.0.1:0"), result.stdout)
    }

    /// What would make the daemon exit 78 at start makes `--check-config` exit 78 too, printing no listener.
    func testCheckConfigRefusesWhatTheDaemonWouldRefuse() throws {
        let cases: [([String], String)] = [
            (["--listen", "echo@tcp://127.0.0.1:0", "--listen", "exec@udp://127.0.0.1:0", "--", "/bin/cat"], "exec@udp://127.0.0.1:0"),
            (["--listen", "exec@unixgram:@serverd-check-\(getpid())", "--", "/bin/cat"], "exec@unixgram:"),
            (["--listen", "echo@tcp://127.0.0.1:0", "--user", "no-such-user-\(getpid())"], "no-such-user-\(getpid())"),
            (["--listen", "echo@tcp://127.0.0.1:0", "--group", "no-such-group-\(getpid())"], "no-such-group-\(getpid())"),
        ]
        for (arguments, needle) in cases {
            let started = try ServerdProcess.run(arguments)
            XCTAssertEqual(started.status, 78, "the daemon refuses \(arguments): \(started.stderr)")
            let checked = try ServerdProcess.run(["--check-config"] + arguments)
            XCTAssertEqual(checked.status, 78, "--check-config \(arguments): \(checked.stdout)\(checked.stderr)")
            XCTAssertEqual(checked.stdout, "", "no listener printed for a configuration that cannot start")
            let last = checked.stderr.split(separator: "\n").last ?? ""
            XCTAssertTrue(last.hasPrefix("serverd: ") && last.contains(needle), "'\(last)' names \(needle)")
        }
    }

    private func assertConfigFailure(
        _ text: String, naming needles: [String], checkOnly: Bool = true, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let dir = try TemporaryDirectory()
        let config = try writeConfig(dir, text)
        let result = try ServerdProcess.run(["--config", config] + (checkOnly ? ["--check-config"] : []), directory: dir)
        XCTAssertEqual(result.status, 78, result.stderr, file: file, line: line)
        let lines = result.stderr.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.filter { $0.hasPrefix("serverd: ") }.count, 1, result.stderr, file: file, line: line)
        let last = lines.last ?? ""
        XCTAssertTrue(last.hasPrefix("serverd: "), result.stderr, file: file, line: line)
        for needle in [config] + needles {
            XCTAssertTrue(last.contains(needle), "'\(last)' names \(needle)", file: file, line: line)
        }
    }

    func testSyntaxErrorExits78WithFileAndLine() throws {
        try assertConfigFailure("model = \"serial\"\nlisten = [\"echo@tcp://127.0.0.1:0\"\nidle-timeout = = 3\n", naming: [".toml:"])
        // FILE:LINE exactly: the second line opens the broken array, the error is on line 2 or 3.
        let dir = try TemporaryDirectory()
        let config = try writeConfig(dir, "# comment\n\nmodel = serial\n")
        let result = try ServerdProcess.run(["--config", config], directory: dir)
        XCTAssertEqual(result.status, 78, result.stderr)
        XCTAssertTrue(result.stderr.split(separator: "\n").last?.hasPrefix("serverd: \(config):3:") == true, result.stderr)
    }

    func testUnknownKeyAndBadValueExit78NamingFileAndKey() throws {
        try assertConfigFailure("listen = [\"echo@tcp://127.0.0.1:0\"]\nfrobnicate = 1\n", naming: ["frobnicate"])
        try assertConfigFailure("listen = [\"echo@tcp://127.0.0.1:0\"]\nmax-connections = 0\n", naming: ["max-connections"])
        try assertConfigFailure("listen = [\"echo@tcp://127.0.0.1:0\"]\nmodel = \"sideways\"\n", naming: ["model"])
        try assertConfigFailure("[[listener]]\nlisten = \"echo@tcp://127.0.0.1:0\"\nallow = [\"not-a-cidr\"]\n", naming: ["allow"])
        // Without --check-config too: the daemon does not start.
        try assertConfigFailure("listen = [\"echo@tcp://127.0.0.1:0\"]\nidle-timeout = \"soon\"\n", naming: ["idle-timeout"], checkOnly: false)
    }

    func testMissingConfigFileExits78() throws {
        let dir = try TemporaryDirectory()
        let result = try ServerdProcess.run(["--config", dir.path("absent.toml")], directory: dir)
        XCTAssertEqual(result.status, 78, result.stderr)
        XCTAssertTrue(result.stderr.split(separator: "\n").last?.contains(dir.path("absent.toml")) == true, result.stderr)
    }

    // MARK: - Listeners from the file

    func testFileListenersAndListenerTablesAreServed() throws {
        let dir = try TemporaryDirectory()
        let config = try writeConfig(dir, """
            listen = ["echo@tcp://127.0.0.1:0", "stamp@unix:\(dir.path("stamp.sock"))"]

            [[listener]]
            listen = "echo@udp://[::1]:0"

            [[listener]]
            listen = "exec@tcp://127.0.0.1:0"
            exec = ["/bin/echo", "from-exec"]
            """)
        let serverd = try ServerdProcess(["--config", config, "--listen", "daytime@tcp://[::1]:0"], directory: dir)
        let lines = try serverd.waitForListening(5)
        XCTAssertEqual(Set(lines.map { $0.split(separator: "@")[0] }), ["echo", "stamp", "exec", "daytime"], "\(lines)")
        func address(_ prefix: String) throws -> String {
            try XCTUnwrap(lines.first { $0.hasPrefix(prefix) }.map(addressPart), "\(prefix) in \(lines)")
        }
        XCTAssertTrue(try TestClient.connect(try address("echo@tcp://127.0.0.1")).echoes("hi"))
        XCTAssertTrue(try TestClient.connect(try address("stamp@unix:")).roundTrip("x").hasSuffix("] x\n"))
        XCTAssertEqual(try datagramRoundTrip(try address("echo@udp://"), Array("dg".utf8)), Array("dg".utf8))
        XCTAssertEqual(String(decoding: try TestClient.connect(try address("exec@")).receiveAll(), as: UTF8.self), "from-exec\n")
        XCTAssertTrue(String(decoding: try TestClient.connect(try address("daytime@")).receiveAll(), as: UTF8.self).hasSuffix("\r\n"))
        try serverd.stop()
    }

    /// A `[[listener]]` value wins over the command line, which wins over the file's top level.
    func testListenerTableWinsOverCommandLineWhichWinsOverTopLevel() throws {
        let dir = try TemporaryDirectory()
        let config = try writeConfig(dir, """
            max-line = 4
            listen = ["stamp@tcp://127.0.0.1:0"]

            [[listener]]
            listen = "stamp@tcp://[::1]:0"
            max-line = 16
            """)
        let serverd = try ServerdProcess(["--config", config, "--max-line", "8"], directory: dir)
        try serverd.waitForListening(2)
        let top = try TestClient.connect(serverd.address(0))
        XCTAssertTrue(try top.roundTrip("12345678").hasSuffix("] 12345678\n"), "the command line's 8 beats the file's 4")
        try top.send("123456789\n")
        XCTAssertTrue(top.isClosedWithoutData(), "9 bytes exceed --max-line 8")
        let table = try TestClient.connect(serverd.address(1))
        XCTAssertTrue(try table.roundTrip("1234567890123456").hasSuffix("] 1234567890123456\n"), "the table's 16 beats the command line's 8")
        try table.send("12345678901234567\n")
        XCTAssertTrue(table.isClosedWithoutData())
        top.close()
        table.close()
        try serverd.stop()
    }

    func testTopLevelOptionsApplyToFileListeners() throws {
        let dir = try TemporaryDirectory()
        let config = try writeConfig(dir, """
            idle-timeout = 1
            deny = ["127.0.0.0/8"]
            listen = ["echo@tcp://127.0.0.1:0", "echo@tcp://[::1]:0"]
            """)
        let serverd = try ServerdProcess(["--config", config], directory: dir)
        try serverd.waitForListening(2)
        XCTAssertTrue(try TestClient.connect(serverd.address(0)).isClosedWithoutData(), "deny from the file's top level")
        let v6 = try TestClient.connect(serverd.address(1))
        XCTAssertTrue(try v6.echoes("a"))
        XCTAssertTrue(v6.isClosedByServer(timeout: 15), "idle-timeout from the file's top level")
        try serverd.stop()
    }

    // MARK: - --socket-mode

    private func mode(of path: String) -> mode_t? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        XCTAssertEqual(info.st_mode & S_IFMT, S_IFSOCK, "\(path) is a socket")
        return info.st_mode & 0o7777
    }

    func testSocketModeIsObservedOnTheSocketFile() throws {
        let dir = try TemporaryDirectory()
        let config = try writeConfig(dir, """
            [[listener]]
            listen = "echo@unix:\(dir.path("table.sock"))"
            socket-mode = "0640"
            """)
        let serverd = try ServerdProcess([
            "--config", config, "--socket-mode", "0666",
            "--listen", "echo@unix:\(dir.path("wide.sock"))", "--listen", "echo@unixgram:\(dir.path("gram.sock"))",
        ], directory: dir)
        try serverd.waitForListening(3)
        XCTAssertEqual(mode(of: dir.path("wide.sock")), 0o666, "umask 022 does not narrow --socket-mode")
        XCTAssertEqual(mode(of: dir.path("gram.sock")), 0o666)
        XCTAssertEqual(mode(of: dir.path("table.sock")), 0o640)
        XCTAssertTrue(try TestClient.connect("unix:\(dir.path("wide.sock"))").echoes("m"))
        try serverd.stop()
        for name in ["wide.sock", "gram.sock", "table.sock"] {
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path(name)), "\(name) removed on stop")
        }
    }

    func testNarrowSocketMode() throws {
        let dir = try TemporaryDirectory()
        let serverd = try ServerdProcess(["--socket-mode", "600", "--listen", "stamp@unix:\(dir.path("s.sock"))"], directory: dir)
        try serverd.waitForListening(1)
        XCTAssertEqual(mode(of: dir.path("s.sock")), 0o600)
        try serverd.stop()
    }

    // MARK: - Logging

    func testLogFileReceivesTheLog() throws {
        let dir = try TemporaryDirectory()
        let log = dir.path("serverd.log")
        let serverd = try ServerdProcess(["--log-file", log, "--listen", "echo@tcp://127.0.0.1:0"], directory: dir)
        let lines = try waitForListening(inFile: log, 1)
        XCTAssertTrue(try TestClient.connect(addressPart(lines[0])).echoes("x"))
        XCTAssertFalse(serverd.stderr.contains("listening on"), "the log goes to the file, not stderr:\n\(serverd.stderr)")
        try serverd.stop()
        XCTAssertTrue(readText(log).contains("stopp"), readText(log))
    }

    func testLogLevels() throws {
        let dir = try TemporaryDirectory()
        // debug: connection-level lines appear.
        let debug = try ServerdProcess(["--log-level", "debug", "--listen", "echo@tcp://127.0.0.1:0"], directory: dir)
        try debug.waitForListening(1)
        let before = debug.stderr.split(separator: "\n").count
        let client = try TestClient.connect(debug.address(0))
        XCTAssertTrue(try client.echoes("d"))
        client.close()
        _ = try debug.waitFor { debug.stderr.split(separator: "\n").count > before ? true : nil }
        try debug.stop()

        // warning: the notice-level `listening on` lines are not logged, yet serverd serves.
        let quiet = try ServerdProcess(["--log-level", "warning", "--listen", "echo@unix:\(dir.path("q.sock"))"])
        _ = try poll("the socket file", context: { quiet.stderr }) {
            FileManager.default.fileExists(atPath: dir.path("q.sock")) ? true : nil
        }
        _ = try poll("echo over the quiet listener", context: { quiet.stderr }) {
            (try? TestClient.connect("unix:\(dir.path("q.sock"))").echoes("q")) == true ? true : nil
        }
        XCTAssertFalse(quiet.stderr.contains("listening on"), quiet.stderr)
        try quiet.stop()
    }

    // MARK: - --version, --help

    func testVersionAndHelp() throws {
        let version = try ServerdProcess.run(["--version"])
        XCTAssertEqual(version.status, 0)
        XCTAssertFalse(version.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
        let help = try ServerdProcess.run(["--help"])
        XCTAssertEqual(help.status, 0)
        for option in ["--listen", "--config", "--check-config", "--model", "--max-connections", "--daemon", "--pidfile", "--user"] {
            XCTAssertTrue(help.stdout.contains(option), "--help mentions \(option)")
        }
    }

    // MARK: - --user, --group

    /// A free privileged TCP port on 127.0.0.1 (root binds it for a moment to check).
    private func freePrivilegedPort() throws -> UInt16 {
        for _ in 0..<50 {
            let port = UInt16.random(in: 600...1000)
            let probe = try Socket(family: AF_INET, transport: .stream)
            if (try? probe.bind(to: SocketAddress(parsing: "tcp://127.0.0.1:\(port)"))) != nil {
                probe.close()
                return port
            }
            probe.close()
        }
        throw TestFailure("no free privileged port")
    }

    func testUserDropsPrivilegesAfterBindingAPrivilegedPort() throws {
        guard getuid() == 0 else { throw XCTSkip("needs root") }
        guard let nobody = getpwnam("nobody") else { throw XCTSkip("no user nobody") }
        let uid = nobody.pointee.pw_uid
        let gid = nobody.pointee.pw_gid
        var serverd: ServerdProcess!
        for attempt in 0..<5 {
            let port = try freePrivilegedPort()
            serverd = try ServerdProcess(["--user", "nobody", "--listen", "stamp@tcp://127.0.0.1:\(port)"])
            let ready = try serverd.waitFor { () -> Bool? in
                if !serverd.listeningLines.isEmpty { return true }
                if !serverd.process.isRunning { return false }
                return nil
            }
            if ready { break }
            // Someone took the port between our probe and serverd's bind: try another.
            XCTAssertEqual(try serverd.waitForExit(), 69, serverd.stderr)
            if attempt == 4 { throw TestFailure("no privileged port could be bound") }
        }
        XCTAssertLessThan(try serverd.port(0), 1024)
        XCTAssertEqual(procStatus(serverd.pid, "Uid"), Array(repeating: "\(uid)", count: 4), "real, effective, saved, fs uid")
        XCTAssertEqual(procStatus(serverd.pid, "Gid"), Array(repeating: "\(gid)", count: 4))
        XCTAssertEqual(procStatus(serverd.pid, "Groups"), ["\(gid)"], "supplementary groups reset")
        XCTAssertTrue(try TestClient.connect(serverd.address(0)).roundTrip("priv").hasSuffix("] priv\n"))
        try serverd.stop()
    }

    func testGroupAlone() throws {
        guard getuid() == 0 else { throw XCTSkip("needs root") }
        guard let group = getgrnam("nogroup") else { throw XCTSkip("no group nogroup") }
        let gid = group.pointee.gr_gid
        let serverd = try ServerdProcess(["--group", "nogroup", "--listen", "echo@tcp://127.0.0.1:0"])
        try serverd.waitForListening(1)
        XCTAssertEqual(procStatus(serverd.pid, "Gid"), Array(repeating: "\(gid)", count: 4))
        XCTAssertEqual(procStatus(serverd.pid, "Uid").first, "0", "--group alone keeps the user")
        XCTAssertTrue(try TestClient.connect(serverd.address(0)).echoes("g"))
        try serverd.stop()
    }

    func testUnknownUserIsRefused() throws {
        let result = try ServerdProcess.run(["--user", "no-such-user-\(getpid())", "--listen", "echo@tcp://127.0.0.1:0"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue([64, 67, 78].contains(result.status), "status \(result.status)")
        XCTAssertTrue(result.stderr.split(separator: "\n").last?.contains("no-such-user-\(getpid())") == true, result.stderr)
        XCTAssertFalse(result.stderr.contains("listening on"), result.stderr)
    }

    // MARK: - Exit codes 71 and 77

    func testAddressNotAvailableExits71() throws {
        // 192.0.2.1 (TEST-NET-1) is on no interface here: bind fails with EADDRNOTAVAIL; nothing is sent.
        let result = try ServerdProcess.run(["--listen", "echo@tcp://192.0.2.1:0"])
        XCTAssertEqual(result.status, 71, result.stderr)
        XCTAssertTrue(result.stderr.split(separator: "\n").last?.hasPrefix("serverd: ") == true, result.stderr)
        XCTAssertTrue(result.stderr.contains("192.0.2.1"), result.stderr)
    }

    func testPermissionDeniedExits77() throws {
        // serverd run by an ordinary user cannot create its pidfile in a root-only directory.
        // (With --user, the pidfile is opened before privileges are dropped, so that is no case.)
        let (uid, gid) = try UnprivilegedUser.ensure()
        let dir = try TemporaryDirectory()
        chmod(dir.path, 0o755)
        let locked = dir.path("locked")
        mkdir(locked, 0o700)
        let serverd = try ServerdProcess(
            ["--pidfile", "\(locked)/serverd.pid", "--listen", "echo@tcp://127.0.0.1:0"], directory: dir,
            launcher: ["/usr/bin/setpriv", "--reuid=\(uid)", "--regid=\(gid)", "--clear-groups", "--"])
        XCTAssertEqual(try serverd.waitForExit(), 77, serverd.stderr)
        XCTAssertTrue(serverd.stderr.split(separator: "\n").last?.contains("\(locked)/serverd.pid") == true, serverd.stderr)
    }
}
