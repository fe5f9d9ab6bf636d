import FamilyServer
import Foundation
import Glibc
import XCTest

/// `--daemon` (SysV detaching, daemon(7)) and `--pidfile`. A detached serverd is not our child: it is
/// found through its pidfile and stopped by that pid; a teardown SIGKILLs it if a test left it.
final class DaemonModeTests: XCTestCase {
    /// Pids of every process whose command line mentions `needle` (a path unique to the test).
    private func processes(mentioning needle: String) -> [pid_t] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(pid_t.init).filter { pid in
            guard pid != getpid(), procStat(pid)?.first != "Z" else { return false }
            let command = readText("/proc/\(pid)/cmdline").replacingOccurrences(of: "\0", with: " ")
            return command.contains(needle) && command.contains("serverd")
        }
    }

    /// Stops a detached serverd by the pid in its pidfile and waits until it is gone and the pidfile removed.
    private func stopDaemon(pid: pid_t, pidfile: String, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(kill(pid, SIGTERM), 0, file: file, line: line)
        _ = try poll("pid \(pid) to exit", context: { readText("/proc/\(pid)/status") }, file: file, line: line) {
            processIsGone(pid) ? true : nil
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: pidfile), "pidfile removed on exit", file: file, line: line)
    }

    func testDaemonDetachesAndServes() throws {
        let dir = try TemporaryDirectory()
        let pidfile = dir.path("serverd.pid")
        let log = dir.path("serverd.log")
        let socketPath = dir.path("s.sock")
        killDaemonAtTeardown(self, pidfile: pidfile)
        let parent = try ServerdProcess([
            "--daemon", "--pidfile", pidfile, "--log-file", log,
            "--listen", "echo@tcp://127.0.0.1:0", "--listen", "stamp@unix:\(socketPath)", "--listen", "echo@udp://[::1]:0",
        ], directory: dir)
        XCTAssertEqual(try parent.waitForExit(), 0, parent.stderr)
        XCTAssertFalse(parent.stderr.contains("serverd: "), parent.stderr)

        // The parent returned only once the daemon serves: pidfile, log lines and sockets are all there now.
        let pid = try XCTUnwrap(pidFromFile(pidfile), "pidfile written before the parent exits")
        XCTAssertNotEqual(pid, parent.pid)
        XCTAssertFalse(processIsGone(pid))
        let lines = listeningLines(in: readText(log))
        XCTAssertEqual(lines.count, 3, readText(log))
        XCTAssertTrue(try TestClient.connect(addressPart(lines[0])).echoes("daemon"))
        XCTAssertTrue(try TestClient.connect("unix:\(socketPath)").roundTrip("d").hasSuffix("] d\n"))
        XCTAssertEqual(try datagramRoundTrip(addressPart(lines[2]), Array("u".utf8)), Array("u".utf8))

        // A session of its own that it does not lead; no controlling terminal.
        let (session, tty) = try XCTUnwrap(sessionAndTTY(pid))
        XCTAssertNotEqual(session, Int(pid), "not the session leader (second fork)")
        XCTAssertNotEqual(session, Int(getsid(0)), "a session of its own")
        XCTAssertEqual(tty, 0, "no controlling terminal")
        let fields = try XCTUnwrap(procStat(pid))
        XCTAssertNotEqual(fields[1], "\(parent.pid)", "reparented: its launcher is gone")
        // Working directory and standard descriptors.
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd"), "/")
        for fd: Int32 in 0...2 {
            XCTAssertEqual(descriptorTarget(pid, fd), "/dev/null", "fd \(fd)")
        }

        try stopDaemon(pid: pid, pidfile: pidfile)
        XCTAssertFalse(FileManager.default.fileExists(atPath: socketPath), "socket file removed")
        XCTAssertTrue(readText(log).contains("stopp"), readText(log))
    }

    /// Started from a terminal (script(1) gives the launcher a pseudo-terminal as its controlling
    /// terminal), the daemon still has none and is in neither the launcher's session nor its own lead.
    func testDaemonLaunchedFromATerminalHasNone() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/script") else { throw XCTSkip("needs script(1)") }
        let dir = try TemporaryDirectory()
        let pidfile = dir.path("serverd.pid")
        killDaemonAtTeardown(self, pidfile: pidfile)
        let parent = try ServerdProcess(
            ["--daemon", "--pidfile", pidfile, "--log-file", dir.path("d.log"), "--listen", "echo@unix:\(dir.path("s.sock"))"],
            directory: dir,
            launcher: ["/bin/sh", "-c", "exec /usr/bin/script -qec \"$* && tty && ps -o sid= -p \\$\\$\" /dev/null", "sh"])
        XCTAssertEqual(try parent.waitForExit(), 0, parent.stdout + parent.stderr)
        let output = parent.stdout.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        XCTAssertTrue(output.contains { $0.hasPrefix("/dev/pts/") }, "the launcher had a terminal: \(output)")
        let launcherSession = output.last.flatMap { Int($0) }
        let pid = try XCTUnwrap(pidFromFile(pidfile))
        let (session, tty) = try XCTUnwrap(sessionAndTTY(pid))
        XCTAssertEqual(tty, 0, "no controlling terminal")
        XCTAssertNotEqual(session, Int(pid))
        XCTAssertNotNil(launcherSession)
        XCTAssertNotEqual(session, launcherSession, "not in the terminal's session")
        XCTAssertTrue(try TestClient.connect("unix:\(dir.path("s.sock"))").echoes("tty"))
        try stopDaemon(pid: pid, pidfile: pidfile)
    }

    /// daemon(7) step 1: descriptors the launcher left open (here fd 9 on a file, not close-on-exec)
    /// are closed in the daemon, so it holds nothing its launcher or a supervisor waits on.
    func testDaemonClosesDescriptorsItInherited() throws {
        let dir = try TemporaryDirectory()
        let pidfile = dir.path("serverd.pid")
        let held = dir.path("held")
        killDaemonAtTeardown(self, pidfile: pidfile)
        let parent = try ServerdProcess(
            ["--daemon", "--pidfile", pidfile, "--log-file", dir.path("d.log"), "--listen", "echo@unix:\(dir.path("s.sock"))"],
            directory: dir, launcher: ["/bin/sh", "-c", "exec \"$@\" 9>>\(held)", "sh"])
        XCTAssertEqual(try parent.waitForExit(), 0, parent.stderr)
        let pid = try XCTUnwrap(pidFromFile(pidfile))
        let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
        let targets = descriptors.compactMap { Int32($0) }.map { ($0, descriptorTarget(pid, $0) ?? "?") }
        XCTAssertFalse(targets.contains { $0.1 == held }, "the launcher's fd 9 is closed: \(targets)")
        XCTAssertTrue(try TestClient.connect("unix:\(dir.path("s.sock"))").echoes("fd"))
        try stopDaemon(pid: pid, pidfile: pidfile)
    }

    /// Relative --config, --pidfile and --log-file still work after the daemon's chdir("/"), reload included.
    func testRelativePathsSurviveChdirAndReloadWorks() throws {
        let dir = try TemporaryDirectory()
        let pidfile = dir.path("serverd.pid")
        killDaemonAtTeardown(self, pidfile: pidfile)
        try writeConfig(dir, #"listen = ["echo@tcp://127.0.0.1:0"]"#, name: "d.toml")
        let parent = try ServerdProcess(["--daemon", "--config", "d.toml", "--pidfile", "serverd.pid", "--log-file", "d.log"], directory: dir)
        XCTAssertEqual(try parent.waitForExit(), 0, parent.stderr)
        let pid = try XCTUnwrap(pidFromFile(pidfile))
        let lines = try waitForListening(inFile: dir.path("d.log"), 1)
        let open = try TestClient.connect(addressPart(lines[0]))
        XCTAssertTrue(try open.echoes("1"))
        try writeConfig(dir, #"listen = ["echo@tcp://127.0.0.1:0", "stamp@tcp://[::1]:0"]"#, name: "d.toml")
        kill(pid, SIGHUP)
        let reloaded = try waitForListening(inFile: dir.path("d.log"), 2)
        XCTAssertTrue(try TestClient.connect(addressPart(reloaded[1])).roundTrip("r").hasSuffix("] r\n"))
        XCTAssertTrue(try open.echoes("2"))
        open.close()
        try stopDaemon(pid: pid, pidfile: pidfile)
    }

    /// Without --log-file the daemon logs to syslog; it still starts and serves.
    func testDaemonWithoutLogFile() throws {
        let dir = try TemporaryDirectory()
        let pidfile = dir.path("serverd.pid")
        killDaemonAtTeardown(self, pidfile: pidfile)
        let parent = try ServerdProcess(["--daemon", "--pidfile", pidfile, "--listen", "echo@unix:\(dir.path("s.sock"))"], directory: dir)
        XCTAssertEqual(try parent.waitForExit(), 0, parent.stderr)
        let pid = try XCTUnwrap(pidFromFile(pidfile))
        XCTAssertTrue(try TestClient.connect("unix:\(dir.path("s.sock"))").echoes("quiet"))
        XCTAssertEqual(parent.stderr, "", "nothing on the launcher's stderr when all went well")
        try stopDaemon(pid: pid, pidfile: pidfile)
    }

    func testSecondInstanceIsRefusedNamingThePid() throws {
        let dir = try TemporaryDirectory()
        let pidfile = dir.path("serverd.pid")
        killDaemonAtTeardown(self, pidfile: pidfile)
        let first = try ServerdProcess(["--daemon", "--pidfile", pidfile, "--log-file", dir.path("1.log"), "--listen", "echo@tcp://127.0.0.1:0"], directory: dir)
        XCTAssertEqual(try first.waitForExit(), 0, first.stderr)
        let pid = try XCTUnwrap(pidFromFile(pidfile))

        for daemon in [false, true] {
            let second = try ServerdProcess.run(
                (daemon ? ["--daemon", "--log-file", dir.path("2.log")] : []) + ["--pidfile", pidfile, "--listen", "echo@tcp://127.0.0.1:0"])
            XCTAssertEqual(second.status, 69, "daemon \(daemon): \(second.stderr)")
            let lines = second.stderr.split(separator: "\n")
            XCTAssertEqual(lines.filter { $0.hasPrefix("serverd: ") }.count, 1, second.stderr)
            XCTAssertTrue(lines.last?.hasPrefix("serverd: ") == true, second.stderr)
            XCTAssertTrue(lines.last?.contains("\(pid)") == true, "names pid \(pid): \(second.stderr)")
            XCTAssertEqual(pidFromFile(pidfile), pid, "the running daemon's pidfile is left alone")
        }
        XCTAssertFalse(processIsGone(pid))
        try stopDaemon(pid: pid, pidfile: pidfile)
    }

    func testFailedDaemonStartIsReportedByTheParent() throws {
        let holder = try Socket(family: AF_INET, transport: .stream)
        try holder.bind(to: SocketAddress(parsing: "tcp://127.0.0.1:0"))
        try holder.listen(backlog: 1)
        let address = "\(try holder.localAddress())"
        let dir = try TemporaryDirectory()
        let pidfile = dir.path("serverd.pid")
        killDaemonAtTeardown(self, pidfile: pidfile)
        let parent = try ServerdProcess([
            "--daemon", "--pidfile", pidfile, "--log-file", dir.path("d.log"),
            "--listen", "echo@tcp://127.0.0.1:0", "--listen", "echo@\(address)",
        ], directory: dir)
        XCTAssertEqual(try parent.waitForExit(), 69, parent.stderr)
        let lines = parent.stderr.split(separator: "\n")
        XCTAssertEqual(lines.filter { $0.hasPrefix("serverd: ") }.count, 1, parent.stderr)
        XCTAssertTrue(lines.last?.hasPrefix("serverd: ") == true, parent.stderr)
        XCTAssertTrue(lines.last?.contains(address) == true, "names \(address): \(parent.stderr)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: pidfile), "no pidfile for a daemon that never served")
        _ = try poll("the failed daemon to be gone") { processes(mentioning: pidfile).isEmpty ? true : nil }
    }

    func testConfigurationErrorWithDaemonIsReportedInTheForeground() throws {
        let dir = try TemporaryDirectory()
        let pidfile = dir.path("serverd.pid")
        killDaemonAtTeardown(self, pidfile: pidfile)
        let result = try ServerdProcess.run(["--daemon", "--pidfile", pidfile, "--listen", "exec@tcp://127.0.0.1:0"], directory: dir)
        XCTAssertEqual(result.status, 78, result.stderr)
        XCTAssertTrue(result.stderr.split(separator: "\n").last?.hasPrefix("serverd: ") == true, result.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: pidfile))
    }

    // MARK: - --pidfile in the foreground

    func testPidfileLifecycleInTheForeground() throws {
        let dir = try TemporaryDirectory()
        let pidfile = dir.path("serverd.pid")
        let serverd = try ServerdProcess(["--pidfile", pidfile, "--listen", "echo@tcp://127.0.0.1:0"], directory: dir)
        try serverd.waitForListening(1)
        let written = try serverd.waitFor { pidFromFile(pidfile) }
        XCTAssertEqual(written, serverd.pid)
        XCTAssertEqual(readText(pidfile), "\(serverd.pid)\n")
        try serverd.stop()
        XCTAssertFalse(FileManager.default.fileExists(atPath: pidfile))
    }

    func testStalePidfileIsReplaced() throws {
        let dir = try TemporaryDirectory()
        let pidfile = dir.path("serverd.pid")
        // The pid of a process that has ended.
        let ended = Process()
        ended.executableURL = URL(fileURLWithPath: "/bin/true")
        try ended.run()
        ended.waitUntilExit()
        try "\(ended.processIdentifier)\n".write(toFile: pidfile, atomically: true, encoding: .utf8)
        let serverd = try ServerdProcess(["--pidfile", pidfile, "--listen", "echo@tcp://127.0.0.1:0"], directory: dir)
        try serverd.waitForListening(1)
        _ = try serverd.waitFor { pidFromFile(pidfile) == serverd.pid ? true : nil }
        try serverd.stop()
        XCTAssertFalse(FileManager.default.fileExists(atPath: pidfile))
    }

    func testPidfileOfALiveProcessIsRefused() throws {
        let dir = try TemporaryDirectory()
        let pidfile = dir.path("serverd.pid")
        try "\(getpid())\n".write(toFile: pidfile, atomically: true, encoding: .utf8)
        let result = try ServerdProcess.run(["--pidfile", pidfile, "--listen", "echo@tcp://127.0.0.1:0"], directory: dir)
        XCTAssertEqual(result.status, 69, result.stderr)
        XCTAssertTrue(result.stderr.split(separator: "\n").last?.contains("\(getpid())") == true, result.stderr)
        XCTAssertFalse(result.stderr.contains("listening on"), "refused before serving:\n\(result.stderr)")
        XCTAssertEqual(pidFromFile(pidfile), getpid(), "left alone")
    }
}
