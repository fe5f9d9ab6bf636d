import FamilyServer
import Foundation
import Glibc
import XCTest

/// inetd's wait mode (`--wait`, `wait = true`): serverd hands the socket itself to one run of the program, on every
/// socket kind and processing model, with the socket activation variables, and treats the program like any exec
/// child at stop and reload. The programs are real: in.tftpd (tftpd-hpa) with the tftp-hpa client, and
/// Support/wait_program.py, which reports what it was given.
final class WaitModeTests: XCTestCase {
    private static let program = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Support/wait_program.py").path

    /// What wait_program.py reports.
    private struct Report: Decodable {
        var pid: Int
        var listen_pid: String?
        var listen_fds: String?
        var listen_fdnames: String?
        var proto: String?
        var fds: [Int]
        var stdio_is_socket: Bool
        var blocking: Bool
        var payload: String
    }

    private func decode(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) throws -> Report {
        do {
            return try JSONDecoder().decode(Report.self, from: Data(bytes))
        } catch {
            XCTFail("not a report: \(String(decoding: bytes, as: UTF8.self))", file: file, line: line)
            throw error
        }
    }

    /// The report holds what SPEC section 5 gives a wait-mode program.
    private func assertGivenTheSocket(
        _ report: Report, name: String? = nil, file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertEqual(report.listen_pid, "\(report.pid)", "LISTEN_PID is the program's own pid", file: file, line: line)
        XCTAssertEqual(report.listen_fds, "1", file: file, line: line)
        XCTAssertEqual(report.listen_fdnames, name, file: file, line: line)
        XCTAssertNil(report.proto, "no UCSPI variables", file: file, line: line)
        XCTAssertEqual(report.fds, [0, 1, 2, 3], "only 0-3 are open", file: file, line: line)
        XCTAssertTrue(report.stdio_is_socket, "stdin and stdout are the socket", file: file, line: line)
        XCTAssertTrue(report.blocking, "the socket is passed blocking, as systemd passes it", file: file, line: line)
    }

    private func datagramReport(_ address: String, _ payload: String, bindPath: String? = nil) throws -> Report {
        let reply = try XCTUnwrap(try datagramRoundTrip(address, Array(payload.utf8), bindPath: bindPath, timeout: 10),
                                  "no reply from the program at \(address)")
        return try decode(reply)
    }

    private func streamReport(_ address: String, _ payload: String) throws -> Report {
        let client = try TestClient.connect(address)
        defer { client.close() }
        try client.send(payload + "\n")
        return try decode(Array(try client.receiveLine().utf8))
    }

    /// `started … as pid N (wait mode)` lines so far.
    private func starts(_ serverd: ServerdProcess) -> Int {
        occurrences(of: "(wait mode)", in: serverd.stderr)
    }

    // MARK: - Every socket kind, every model

    func testDatagramSocketsUnderEveryModel() throws {
        for model in ["serial", "threading", "forking"] {
            let directory = try TemporaryDirectory()
            let abstract = "@serverd-wait-\(getpid())-\(model)"
            let serverd = try ServerdProcess(
                ["--model", model, "--wait",
                 "--listen", "exec@udp://127.0.0.1:0", "--listen", "exec@udp://[::1]:0",
                 "--listen", "exec@unixgram:\(directory.path("dgram.sock"))", "--listen", "exec@unixgram:\(abstract)",
                 "--", "/usr/bin/python3", Self.program, "dgram", "--idle", "0.3"],
                directory: directory)
            let addresses = try serverd.waitForListening(4).map(addressPart)
            var clients = 0
            /// A filesystem Unix datagram client needs a path of its own to be answered at.
            func bindPath(_ address: String) -> String? {
                clients += 1
                return address.hasPrefix("unixgram:/") ? directory.path("client-\(clients).sock") : nil
            }
            for address in addresses {
                let first = try datagramReport(address, "one", bindPath: bindPath(address))
                assertGivenTheSocket(first)
                XCTAssertEqual(first.payload, "one")
                // The same run answers the next datagram; after it exited (idle), a new run does.
                XCTAssertEqual(try datagramReport(address, "two", bindPath: bindPath(address)).pid, first.pid, "\(model) \(address)")
                try serverd.waitForLog("(pid \(first.pid)) exited with status 0")
                let second = try datagramReport(address, "three", bindPath: bindPath(address))
                XCTAssertNotEqual(second.pid, first.pid, "a second run after the first exited")
                assertGivenTheSocket(second)
                try serverd.waitForLog("(pid \(second.pid)) exited with status 0")
            }
            try serverd.stop()
        }
    }

    func testStreamSocketsUnderEveryModel() throws {
        for model in ["serial", "threading", "forking"] {
            let directory = try TemporaryDirectory()
            let serverd = try ServerdProcess(
                ["--model", model, "--wait",
                 "--listen", "exec@tcp://127.0.0.1:0", "--listen", "exec@tcp://[::1]:0",
                 "--listen", "exec@unix:\(directory.path("stream.sock"))",
                 "--", "/usr/bin/python3", Self.program, "stream", "--idle", "0.3"],
                directory: directory)
            let addresses = try serverd.waitForListening(3).map(addressPart)
            for address in addresses {
                let first = try streamReport(address, "one")
                assertGivenTheSocket(first)
                XCTAssertEqual(first.payload, "one")
                XCTAssertEqual(try streamReport(address, "two").pid, first.pid, "the program accepts, not serverd")
                try serverd.waitForLog("(pid \(first.pid)) exited with status 0")
                let second = try streamReport(address, "three")
                XCTAssertNotEqual(second.pid, first.pid)
            }
            try serverd.stop()
            XCTAssertFalse(serverd.stderr.contains("error"), serverd.stderr)
        }
    }

    /// Data queued while the program ran (and left unread) starts the next run at once.
    func testQueuedDatagramsStartTheNextRun() throws {
        let serverd = try ServerdProcess(
            ["--wait", "--listen", "exec@udp://127.0.0.1:0", "--",
             "/usr/bin/python3", "-c", "import time; time.sleep(0.5)"])
        let address = try SocketAddress(parsing: try serverd.waitForListening(1).map(addressPart)[0])
        let client = try Socket(family: AF_INET, transport: .datagram)
        try client.sendDatagram(Array("wake".utf8), to: address)
        // The first run never reads: the datagram is still queued when it exits, and starts a second run.
        try serverd.waitForLog("(wait mode)", count: 2, timeout: 20)
        try serverd.stop()
    }

    // MARK: - Inherited sockets

    func testInheritedSocketsPassTheirName() throws {
        let directory = try TemporaryDirectory()
        let report = directory.path("fds")
        let serverd = try ServerdProcess(
            ["--wait", "--listen", "exec@systemd:tftp", "--listen", "exec@systemd",
             "--", "/usr/bin/python3", Self.program, "dgram", "--idle", "0.3"],
            directory: directory,
            launcher: Activation.launcher(["--report=\(report)", "tftp=udp:127.0.0.1", "other=unixgram:@\(Activation.abstractName("wait"))"]))
        try serverd.waitForListening(2)
        let lines = readText(report).split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        let udp = try XCTUnwrap(lines.first { $0[1] == "tftp" })[2]
        let unix = try XCTUnwrap(lines.first { $0[1] == "other" })[2]
        let named = try datagramReport(udp, "named")
        assertGivenTheSocket(named, name: "tftp")
        assertGivenTheSocket(try datagramReport(unix, "bare systemd"), name: "other")
        try serverd.stop()
    }

    // MARK: - A real inetd program: in.tftpd

    /// The README's example: `serverd --listen exec@udp://…:PORT --wait -- in.tftpd -s DIR`, and the same from a
    /// `[[listener]]` with `wait = true`; a file of 3 MB fetched several times, also after a run exited.
    func testTftpdServesTransfersFromTheCommandLineAndTheConfig() throws {
        let tftpd = "/usr/sbin/in.tftpd", tftp = "/usr/bin/tftp"
        guard FileManager.default.isExecutableFile(atPath: tftpd), FileManager.default.isExecutableFile(atPath: tftp) else {
            throw XCTSkip("tftpd-hpa and tftp-hpa are not installed (make test installs them)")
        }
        let directory = try TemporaryDirectory()
        let root = directory.path("srv")
        XCTAssertEqual(mkdir(root, 0o755), 0)
        chmod(directory.path, 0o755)  // in.tftpd drops to nobody inside its chroot
        var content = [UInt8](repeating: 0, count: 3 << 20)
        for index in content.indices { content[index] = UInt8(truncatingIfNeeded: index &* 2654435761 >> 7) }
        _ = FileManager.default.createFile(atPath: "\(root)/big.bin", contents: Data(content), attributes: [.posixPermissions: 0o644])
        let config = try writeConfig(directory, """
            [[listener]]
            listen = "exec@udp://127.0.0.1:0"
            wait = true
            exec = ["\(tftpd)", "-s", "\(root)", "-t", "1"]
            """)
        let fromCommandLine = try ServerdProcess(
            ["--listen", "exec@udp://127.0.0.1:0", "--wait", "--", tftpd, "-s", root, "-t", "1"], directory: directory)
        let fromConfig = try ServerdProcess(["--config", config], directory: try TemporaryDirectory())
        for serverd in [fromCommandLine, fromConfig] {
            try serverd.waitForListening(1)
            let port = try serverd.port(0)
            for round in 0..<3 {
                if round == 2 {
                    // After the run exited (in.tftpd waits -t 1 s for more requests), a new one serves.
                    try serverd.waitForLog("exited with status 0", timeout: 30)
                }
                let local = directory.path("got-\(serverd.pid)-\(round).bin")
                let client = Process()
                client.executableURL = URL(fileURLWithPath: tftp)
                client.arguments = ["-m", "binary", "127.0.0.1", "\(port)", "-c", "get", "big.bin", local]
                client.standardInput = FileHandle.nullDevice
                try client.run()
                let deadline = MonotonicClock.seconds() + 60
                while client.isRunning && MonotonicClock.seconds() < deadline { usleep(20_000) }
                if client.isRunning { kill(client.processIdentifier, SIGKILL) }
                client.waitUntilExit()
                let got = FileManager.default.contents(atPath: local)
                XCTAssertEqual(got?.count, content.count, "round \(round): \(serverd.stderr)")
                XCTAssertTrue(got == Data(content), "round \(round): the file arrives intact")
            }
            XCTAssertGreaterThanOrEqual(starts(serverd), 2, serverd.stderr)
            try serverd.stop()
        }
    }

    // MARK: - Start limit

    /// A program that exits at once without reading: the queued datagram starts it again and again, until the
    /// start limit pauses the listener (one warning) while another listener keeps serving; it resumes by itself.
    func testStartLimitPausesTheListenerAndItResumes() throws {
        let serverd = try ServerdProcess(
            ["--listen", "echo@udp://127.0.0.1:0", "--listen", "exec@udp://127.0.0.1:0", "--wait", "--wait-start-limit", "3",
             "--", "/bin/true"])
        let addresses = try serverd.waitForListening(2).map(addressPart)
        let target = try SocketAddress(parsing: addresses[1])
        let sender = try Socket(family: AF_INET, transport: .datagram)
        try sender.sendDatagram(Array("never read".utf8), to: target)
        let log = try serverd.waitForLog("pausing the listener for 60 s")
        XCTAssertEqual(starts(serverd), 3, log)
        XCTAssertTrue(log.contains("exec@udp://127.0.0.1:0: /bin/true started 3 times within 10 s"), log)
        XCTAssertEqual(try datagramRoundTrip(addresses[0], Array("still served".utf8)), Array("still served".utf8))
        // Paused: no start however long the datagram waits (checked over a second), then the pause ends by itself.
        usleep(1_000_000)
        XCTAssertEqual(starts(serverd), 3, serverd.stderr)
        try serverd.waitForLog("(wait mode)", count: 4, timeout: 75)
        try serverd.waitForLog("pausing the listener for 60 s", count: 2, timeout: 15)
        try serverd.stop()
    }

    // MARK: - Stop and reload

    func testStopEndsAProgramThatNeverExits() throws {
        for ignoresTerm in [false, true] {
            let serverd = try ServerdProcess(
                ["--drain-timeout", "1", "--wait", "--listen", "exec@udp://127.0.0.1:0",
                 "--", "/usr/bin/python3", Self.program, "forever"] + (ignoresTerm ? ["--ignore-term"] : []))
            let address = try SocketAddress(parsing: try serverd.waitForListening(1).map(addressPart)[0])
            try Socket(family: AF_INET, transport: .datagram).sendDatagram(Array("start".utf8), to: address)
            try serverd.waitForLog("holding the socket")
            let pid = try XCTUnwrap(runningProgram(serverd))
            XCTAssertEqual(childProcesses(of: serverd.pid), [pid])
            serverd.send(SIGTERM)
            XCTAssertEqual(try serverd.waitForExit(), 0, serverd.stderr)
            XCTAssertTrue(processIsGone(pid), "the program is ended with serverd")
            let signal = ignoresTerm ? SIGKILL : SIGTERM
            XCTAssertTrue(serverd.stderr.contains("(pid \(pid)) killed by signal \(signal)"), serverd.stderr)
        }
    }

    func testReloadKeepsTheRunningProgramAndRemovalEndsIt() throws {
        let directory = try TemporaryDirectory()
        let listener = """
            [[listener]]
            listen = "exec@udp://127.0.0.1:0"
            wait = true
            exec = ["/usr/bin/python3", "\(Self.program)", "forever"]
            """
        let config = try writeConfig(directory, """
            [[listener]]
            listen = "echo@tcp://127.0.0.1:0"
            \(listener)
            """)
        let serverd = try ServerdProcess(["--config", config], directory: directory)
        let address = try SocketAddress(parsing: try serverd.waitForListening(2).map(addressPart)[1])
        try Socket(family: AF_INET, transport: .datagram).sendDatagram(Array("start".utf8), to: address)
        try serverd.waitForLog("holding the socket")
        let pid = try XCTUnwrap(runningProgram(serverd))
        // A reload that keeps the listener (an option of it changes) keeps the program.
        try writeConfig(directory, """
            [[listener]]
            listen = "echo@tcp://127.0.0.1:0"
            \(listener)
            wait-start-limit = 5
            """)
        serverd.send(SIGHUP)
        try serverd.waitForLog("reloaded: 2 kept, 0 added, 0 removed")
        XCTAssertFalse(processIsGone(pid), serverd.stderr)
        // A reload that removes it ends the program.
        try writeConfig(directory, """
            [[listener]]
            listen = "echo@tcp://127.0.0.1:0"
            """)
        serverd.send(SIGHUP)
        try serverd.waitForLog("reloaded: 1 kept, 0 added, 1 removed")
        try serverd.waitForLog("(pid \(pid)) killed by signal \(SIGTERM)")
        eventually { processIsGone(pid) }
        XCTAssertTrue(processIsGone(pid))
        try serverd.stop()
    }

    // MARK: - Configuration

    func testExecOnADatagramSocketWithoutWaitIsOneConfigurationError() throws {
        let serverd = try ServerdProcess(["--listen", "exec@udp://127.0.0.1:0", "--", "/bin/cat"])
        XCTAssertEqual(try serverd.waitForExit(), 78)
        XCTAssertEqual(occurrences(of: "needs wait mode", in: serverd.stderr), 1, serverd.stderr)
        XCTAssertTrue(serverd.stderr.contains("exec@udp://127.0.0.1:0"), serverd.stderr)
    }

    /// serverd neither accepts nor reads in wait mode, so it cannot apply access rules or per-source limits: a
    /// wait-mode listener with one is refused rather than left open to everyone unsaid.
    func testAccessRulesAreRefusedInWaitMode() throws {
        let commandLine = try ServerdProcess.run(
            ["--listen", "exec@udp://127.0.0.1:0", "--wait", "--allow", "127.0.0.0/8", "--", "/bin/cat"])
        XCTAssertEqual(commandLine.status, 64, commandLine.stderr)
        XCTAssertTrue(commandLine.stderr.contains("in wait mode the program serves the socket itself, so serverd cannot apply allow"), commandLine.stderr)
        let directory = try TemporaryDirectory()
        let config = try writeConfig(directory, """
            [[listener]]
            listen = "exec@unixgram:\(directory.path("d.sock"))"
            wait = true
            exec = ["/bin/cat"]
            allow-uid = [0]
            """)
        let file = try ServerdProcess.run(["--config", config, "--check-config"], directory: directory)
        XCTAssertEqual(file.status, 78, file.stderr)
        XCTAssertTrue(file.stderr.contains("cannot apply allow-uid"), file.stderr)
        // Without wait the same rule is fine on a per-connection exec listener.
        let perConnection = try ServerdProcess.run(
            ["--listen", "exec@tcp://127.0.0.1:0", "--allow", "127.0.0.0/8", "--check-config", "--", "/bin/cat"])
        XCTAssertEqual(perConnection.status, 0, perConnection.stderr)
    }

    /// The pid of the program a `started … as pid N (wait mode)` line names last.
    private func runningProgram(_ serverd: ServerdProcess) -> pid_t? {
        let lines = serverd.stderr.split(separator: "\n").filter { $0.contains("(wait mode)") }
        guard let line = lines.last, let range = line.range(of: "as pid ") else { return nil }
        return pid_t(line[range.upperBound...].prefix { $0.isNumber })
    }
}
