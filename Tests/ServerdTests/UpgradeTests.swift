import FamilyServer
import Foundation
import Glibc
import XCTest

/// SIGUSR2, the binary upgrade of SPEC section 3, from outside and without systemd: serverd runs from a copy of the
/// built binary in the test's directory, so that the test can replace the file. Under continuous echo traffic on TCP
/// over IPv4 and IPv6, UDP, Unix stream and Unix datagram listeners that serverd binds itself, three upgrades in a row
/// each hand every socket to a new process (the pidfile names it, the old one exits 0), and two broken binaries (a
/// script that exits 1, a file that is not executable) are logged and leave the running process serving. Clients see
/// no refusal and no reset; a datagram whose reply does not come is sent again, and the retries are reported.
///
/// The new serverd of an upgrade is a grandchild of the old one, whose parent becomes the nearest subreaper (under
/// systemd, the manager): the test process becomes a child subreaper for the test's duration, so that it can reap each
/// old one and read its exit status, and reaps what is left (a broken new binary) at the end.
final class UpgradeTests: XCTestCase {
    override func setUp() {
        super.setUp()
        XCTAssertTrue(setChildSubreaper(true), "prctl(PR_SET_CHILD_SUBREAPER)")
    }

    override func tearDown() {
        _ = setChildSubreaper(false)
        for pid in childProcesses(of: getpid()) where processEntry(pid)?.isAlive == false {
            var status: Int32 = 0
            _ = waitpid(pid, &status, WNOHANG)
        }
        super.tearDown()
    }

    /// A copy of the built serverd in `directory`/bin, which the test may replace.
    private func copyBinary(into directory: TemporaryDirectory) throws -> String {
        let bin = directory.path("bin")
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: false)
        let copy = bin + "/serverd"
        try FileManager.default.copyItem(atPath: ServerdProcess.binaryPath, toPath: copy)
        chmod(copy, 0o755)
        return copy
    }

    /// The pid in the pidfile, if it holds one.
    private func pidInFile(_ path: String) -> pid_t? {
        (try? String(contentsOfFile: path, encoding: .utf8)).flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// Sends SIGUSR2 to `pid` and waits until the pidfile names another, live process; returns it.
    private func upgrade(_ pid: pid_t, pidfile: String, _ serverd: ServerdProcess) throws -> pid_t {
        kill(pid, SIGUSR2)
        return try serverd.waitFor(timeout: 40) {
            guard let now = pidInFile(pidfile), now != pid, kill(now, 0) == 0 else { return nil }
            return now
        }
    }

    /// Waits for `pid`, which is not a `Process` of the test's (see the type's description), to exit; its status.
    private func reap(_ pid: pid_t, _ serverd: ServerdProcess) throws -> Int32 {
        var status: Int32 = 0
        return try serverd.waitFor(timeout: 30) {
            let result = waitpid(pid, &status, WNOHANG)
            guard result == pid else { return nil }
            return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        }
    }

    /// A client thread doing round trips until `stop` (at most `limit` of them, at most 180 s), recording every
    /// outcome and the longest round trip it saw.
    private final class LoadClient: @unchecked Sendable {
        let counter = OutcomeCounter()
        private let lock = NSLock()
        private var longest = 0.0
        private var thread: ClientThread?
        private let roundTrip: (OutcomeCounter) -> (RoundTripOutcome, String)

        init(_ name: String, stop: StopFlag, limit: Int = 200_000, _ roundTrip: @escaping (OutcomeCounter) -> (RoundTripOutcome, String)) {
            self.roundTrip = roundTrip
            thread = ClientThread(name) { [self] in
                let end = MonotonicClock.seconds() + 180
                for _ in 0..<limit where !stop.isRaised && MonotonicClock.seconds() < end {
                    let started = MonotonicClock.seconds()
                    let (outcome, detail) = self.roundTrip(counter)
                    let took = MonotonicClock.seconds() - started
                    counter.record(outcome, detail)
                    lock.lock()
                    longest = max(longest, took)
                    lock.unlock()
                    usleep(200)
                }
            }
        }

        var longestRoundTrip: Double {
            lock.lock()
            defer { lock.unlock() }
            return longest
        }

        func join() -> Bool { thread?.join(timeout: 60) ?? true }
    }

    func testThreeUpgradesAndTwoBrokenBinariesUnderLoad() throws {
        let directory = try TemporaryDirectory()
        let binary = try copyBinary(into: directory)
        let pidfile = directory.path("serverd.pid")
        let serverd = try ServerdProcess(
            [
                "--listen", "echo@tcp://127.0.0.1:0", "--listen", "echo@tcp://[::1]:0", "--listen", "echo@udp://127.0.0.1:0",
                "--listen", "echo@unix:s.sock", "--listen", "echo@unixgram:g.sock", "--pidfile", pidfile,
            ], directory: directory, binary: binary)
        let lines = try serverd.waitForListening(5)
        _ = try serverd.waitFor { pidInFile(pidfile) == serverd.pid ? true : nil }
        let addresses = try lines.map { try SocketAddress(parsing: String($0.split(separator: "@", maxSplits: 1)[1])) }

        let stop = StopFlag()
        var clients: [(label: String, client: LoadClient)] = []
        for (index, address) in addresses.enumerated() {
            let label = lines[index]
            if address.transport == .stream {
                let payload = Array("stream \(index) \(String(repeating: "s", count: 64))\n".utf8)
                clients.append((label, LoadClient(label, stop: stop) { _ in streamEchoRoundTrip(address, payload) }))
            } else {
                let client = try DatagramEchoClient(address, label: "dgram\(index)")
                clients.append((label, LoadClient(label, stop: stop) { counter in client.roundTrip(counter) }))
            }
        }
        let total = { clients.reduce(0) { $0 + $1.client.counter.total } }
        // Some traffic before the first signal.
        _ = try serverd.waitFor { total() >= 2000 ? true : nil }

        var pid = serverd.pid
        for round in 1...3 {
            let before = total()
            let next = try upgrade(pid, pidfile: pidfile, serverd)
            let status = round == 1 ? try serverd.waitForExit() : try reap(pid, serverd)
            XCTAssertEqual(status, 0, "round \(round): the old serverd \(pid) exit status; stderr:\n\(serverd.stderr)")
            pid = next
            for name in ["s.sock", "s.sock.lock", "g.sock", "g.sock.lock"] {
                XCTAssertTrue(
                    FileManager.default.fileExists(atPath: directory.path(name)), "round \(round): \(name) is gone")
            }
            // Traffic goes on with the new process before the next signal.
            _ = try serverd.waitFor { total() >= before + 2000 ? true : nil }
        }

        // A new binary that fails: a script that exits 1, then a file that cannot be executed.
        try replaceFile(binary, with: Array("#!/bin/sh\necho 'broken build: cannot start' >&2\nexit 1\n".utf8))
        chmod(binary, 0o755)
        kill(pid, SIGUSR2)
        _ = try serverd.waitFor(timeout: 40) {
            serverd.stderr.contains("exited before it was ready; its last stderr line: broken build: cannot start") ? true : nil
        }
        chmod(binary, 0o644)
        kill(pid, SIGUSR2)
        _ = try serverd.waitFor(timeout: 40) {
            serverd.stderr.contains("SIGUSR2: upgrade failed: cannot run \(binary): Permission denied (errno 13)") ? true : nil
        }
        XCTAssertEqual(pidInFile(pidfile), pid, "a failed upgrade leaves the pidfile alone")
        XCTAssertEqual(kill(pid, 0), 0, "the serving process lives on")
        let afterFailures = total()
        _ = try serverd.waitFor { total() >= afterFailures + 2000 ? true : nil }

        stop.raise()
        for (label, client) in clients { XCTAssertTrue(client.join(), "\(label): the client thread ended") }
        kill(pid, SIGTERM)
        XCTAssertEqual(try reap(pid, serverd), 0, "the last serverd's exit status")
        for name in ["s.sock", "s.sock.lock", "g.sock", "g.sock.lock", "serverd.pid"] {
            XCTAssertFalse(FileManager.default.fileExists(atPath: directory.path(name)), "\(name) is left behind")
        }

        var longest = 0.0
        for (label, client) in clients {
            let counter = client.counter
            print("UpgradeTests: \(label): \(counter.total) round trips, longest \(Int(client.longestRoundTrip * 1000)) ms: \(counter.summary)")
            longest = max(longest, client.longestRoundTrip)
            XCTAssertEqual(counter[.refused], 0, "\(label): refused; \(counter.summary)")
            XCTAssertEqual(counter[.reset], 0, "\(label): reset; \(counter.summary)")
            XCTAssertEqual(counter.failures, 0, "\(label): \(counter.summary)")
            XCTAssertGreaterThan(counter[.ok], 100, "\(label): \(counter.summary)")
        }
        print("UpgradeTests: \(total()) round trips in all; the longest pause a client saw: \(Int(longest * 1000)) ms")
    }

    /// A connection open across the upgrade is served to its end by the old process, which exits once it closes.
    func testAnOpenConnectionIsServedToItsEndByTheOldProcess() throws {
        try assertOpenConnectionIsServedToItsEnd(options: [])
    }

    /// The same with pre-forked workers: the old process's worker serves the open connection, and its workers leave
    /// with it, holding neither the listening socket nor anything the new process needs.
    func testAnOpenConnectionIsServedToItsEndByTheOldProcessWithPreforkedWorkers() throws {
        try assertOpenConnectionIsServedToItsEnd(options: ["--model", "forking", "--prefork", "2"])
    }

    private func assertOpenConnectionIsServedToItsEnd(options: [String]) throws {
        let directory = try TemporaryDirectory()
        let binary = try copyBinary(into: directory)
        let pidfile = directory.path("serverd.pid")
        let serverd = try ServerdProcess(
            options + ["--listen", "echo@tcp://127.0.0.1:0", "--pidfile", pidfile, "--drain-timeout", "60"],
            directory: directory, binary: binary)
        try serverd.waitForListening(1)
        let address = try SocketAddress(parsing: "tcp://127.0.0.1:\(try serverd.port())")
        _ = try serverd.waitFor { pidInFile(pidfile) == serverd.pid ? true : nil }
        let connection = try Socket(family: AF_INET, transport: .stream)
        defer { connection.close() }
        try connection.setTimeouts(receive: 10, send: 10)
        try connection.connect(to: address)
        XCTAssertEqual(try exchange(connection, "before\n"), "before\n")

        let next = try upgrade(serverd.pid, pidfile: pidfile, serverd)
        XCTAssertEqual(try exchange(connection, "during\n"), "during\n", "the old process serves its connection on")
        XCTAssertEqual(streamEchoRoundTrip(address, Array("new\n".utf8)).0, .ok, "a new connection is served")
        XCTAssertTrue(serverd.process.isRunning, "the old process drains while its connection is open")
        let oldWorkers = childProcesses(of: serverd.pid)
        connection.close()
        XCTAssertEqual(try serverd.waitForExit(), 0)
        for worker in oldWorkers { _ = try serverd.waitFor { processIsGone(worker) ? true : nil } }
        XCTAssertEqual(streamEchoRoundTrip(address, Array("after\n".utf8)).0, .ok)
        kill(next, SIGTERM)
        XCTAssertEqual(try reap(next, serverd), 0)
    }

    /// A second SIGUSR2 while an upgrade is in progress is ignored with a warning; the upgrade completes. The new binary
    /// is a script that waits, then runs serverd: the sockets and variables pass through it.
    func testASecondSIGUSR2DuringAnUpgradeIsIgnored() throws {
        let directory = try TemporaryDirectory()
        let binary = try copyBinary(into: directory)
        let copy = directory.path("bin/serverd.copy")
        try FileManager.default.copyItem(atPath: binary, toPath: copy)
        let pidfile = directory.path("serverd.pid")
        let serverd = try ServerdProcess(
            ["--listen", "echo@unix:s.sock", "--pidfile", pidfile], directory: directory, binary: binary)
        try serverd.waitForListening(1)
        _ = try serverd.waitFor { pidInFile(pidfile) == serverd.pid ? true : nil }
        try replaceFile(binary, with: Array("#!/bin/sh\necho 'slow start' >&2\nsleep 2\nexec \(copy) \"$@\"\n".utf8))
        chmod(binary, 0o755)

        kill(serverd.pid, SIGUSR2)
        _ = try serverd.waitFor { serverd.stderr.contains("slow start") ? true : nil }
        kill(serverd.pid, SIGUSR2)
        _ = try serverd.waitFor { serverd.stderr.contains("still in progress; ignored") ? true : nil }
        let next = try serverd.waitFor(timeout: 40) { () -> pid_t? in
            guard let now = pidInFile(pidfile), now != serverd.pid else { return nil }
            return now
        }
        XCTAssertEqual(try serverd.waitForExit(), 0)
        XCTAssertEqual(streamEchoRoundTrip(SocketAddress(.stream, .unixPath(directory.path("s.sock"))), Array("x\n".utf8)).0, .ok)
        kill(next, SIGTERM)
        XCTAssertEqual(try reap(next, serverd), 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory.path("s.sock")))
    }

    /// A new serverd that cannot start (the configuration file became invalid since) is explained by its `serverd:`
    /// line; the running one serves on, and upgrades once the file is fixed.
    func testANewServerdThatCannotStartIsExplainedAndTheOldServesOn() throws {
        let directory = try TemporaryDirectory()
        let binary = try copyBinary(into: directory)
        let pidfile = directory.path("serverd.pid")
        let config = try directory.write("serverd.toml", "listen = [\"echo@unix:s.sock\"]\n")
        let serverd = try ServerdProcess(["--config", config, "--pidfile", pidfile], directory: directory, binary: binary)
        try serverd.waitForListening(1)
        _ = try serverd.waitFor { pidInFile(pidfile) == serverd.pid ? true : nil }
        try directory.write("serverd.toml", "listen = [\"echo@unix:s.sock\"]\nno-such-key = 1\n")
        serverd.send(SIGUSR2)
        _ = try serverd.waitFor(timeout: 40) {
            serverd.stderr.contains("exited before it was ready; its last stderr line: serverd: ") ? true : nil
        }
        XCTAssertTrue(serverd.stderr.contains("no-such-key"), serverd.stderr)
        let socket = SocketAddress(.stream, .unixPath(directory.path("s.sock")))
        XCTAssertEqual(streamEchoRoundTrip(socket, Array("still\n".utf8)).0, .ok)
        XCTAssertEqual(pidInFile(pidfile), serverd.pid)

        try directory.write("serverd.toml", "listen = [\"echo@unix:s.sock\"]\n")
        let next = try upgrade(serverd.pid, pidfile: pidfile, serverd)
        XCTAssertEqual(try serverd.waitForExit(), 0)
        XCTAssertEqual(streamEchoRoundTrip(socket, Array("again\n".utf8)).0, .ok)
        kill(next, SIGTERM)
        XCTAssertEqual(try reap(next, serverd), 0)
    }

    /// With `--daemon` the new process runs on detached as the old one was, in the same session, without detaching
    /// again (a process that forked and exited would fail the upgrade); the pidfile follows it.
    func testDaemonModeUpgradeRunsOnWithoutDetachingAgain() throws {
        let directory = try TemporaryDirectory()
        let binary = try copyBinary(into: directory)
        let pidfile = directory.path("serverd.pid")
        let serverd = try ServerdProcess(
            ["--daemon", "--listen", "echo@unix:s.sock", "--pidfile", pidfile, "--log-file", directory.path("log")],
            directory: directory, binary: binary)
        XCTAssertEqual(try serverd.waitForExit(), 0, "the --daemon parent; stderr:\n\(serverd.stderr)")
        let first = try XCTUnwrap(pidInFile(pidfile))
        let session = try XCTUnwrap(sessionID(first))
        let next = try upgrade(first, pidfile: pidfile, serverd)
        XCTAssertEqual(sessionID(next), session, "the daemon's session, not a new one")
        XCTAssertEqual(try reap(first, serverd), 0, readLossy(directory.path("log")))
        XCTAssertEqual(
            streamEchoRoundTrip(SocketAddress(.stream, .unixPath(directory.path("s.sock"))), Array("d\n".utf8)).0, .ok)
        kill(next, SIGTERM)
        XCTAssertEqual(try reap(next, serverd), 0, readLossy(directory.path("log")))
        XCTAssertFalse(FileManager.default.fileExists(atPath: pidfile))
    }

    /// The session id of `pid` (field 6 of /proc/PID/stat).
    private func sessionID(_ pid: pid_t) -> pid_t? {
        let text = readLossy("/proc/\(pid)/stat")
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        return fields.count > 3 ? pid_t(fields[3]) : nil
    }

    /// Sends `text` on `connection` and reads the same number of bytes back.
    private func exchange(_ connection: Socket, _ text: String) throws -> String {
        let bytes = Array(text.utf8)
        try connection.sendAll(bytes)
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 256)
        while received.count < bytes.count {
            let count = try buffer.withUnsafeMutableBytes { try connection.receive(into: $0) }
            if count == 0 { break }
            received += buffer[0..<count]
        }
        return String(decoding: received, as: UTF8.self)
    }
}
