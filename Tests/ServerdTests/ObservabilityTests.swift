import FamilyServer
import Foundation
import Glibc
import Logging
import XCTest

@testable import serverd

/// What serverd tells about its connections: connection lines (`--log-connections`), JSON log lines
/// (`--log-format json`), structured journal entries, the SIGUSR1 status block and `STATUS=`. Real processes over
/// real sockets; each check waits for the line it expects.
final class ObservabilityTests: XCTestCase {
    /// The connection lines in a log.
    private func connectionLines(_ log: String) -> [String] {
        log.split(separator: "\n").map(String.init).filter { $0.contains(": connection from ") && $0.contains(" ended: ") }
    }

    /// Sends SIGUSR1 until the newest status block's first line is `status: SUMMARY…` (a connection counts as active
    /// until just after its connection line is written); returns that block.
    /// Asks for status blocks (SIGUSR1) until one starts with `summary` and holds every line of `lines`: a counter
    /// is updated a moment after the client got its reply (a datagram's once its batch was sent).
    private func statusBlock(_ serverd: ServerdProcess, startingWith summary: String, containing lines: [String] = [])
        throws -> String
    {
        var sent = occurrences(of: "status: ", in: serverd.stderr)
        return try serverd.waitFor { () -> String? in
            sent += 1
            serverd.send(SIGUSR1)
            let block = try serverd.waitForLog("status: ", count: sent).components(separatedBy: "status: ").last ?? ""
            return block.hasPrefix(summary) && lines.allSatisfy(block.contains) ? block : nil
        }
    }

    /// Sends `text`, ends the sending side, and reads the echo to its end.
    private func echo(_ address: String, _ text: String) throws -> (reply: String, localPort: UInt16?) {
        let client = try TestClient.connect(address)
        defer { client.close() }
        let port = try client.socket.localAddress().port
        try client.send(text)
        try client.finishSending()
        return (String(decoding: try client.receiveAll(), as: UTF8.self), port)
    }

    // MARK: - Connection lines

    /// TCP over IPv4 and IPv6 and a Unix socket: one info line each, with the peer's address and port (or its uid,
    /// gid and pid), the bytes both ways, the duration and the end.
    func testConnectionLinesForTCPIPv6AndUnix() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("echo.sock")
        let serverd = try ServerdProcess(
            ["--listen", "echo@tcp://127.0.0.1:0", "--listen", "echo@tcp://[::1]:0", "--listen", "echo@unix:\(path)"],
            directory: directory)
        try serverd.waitForListening(3)
        let v4 = try echo(serverd.address(0), "hello\n")
        XCTAssertEqual(v4.reply, "hello\n")
        let v6 = try echo(serverd.address(1), "hello, six\n")
        XCTAssertEqual(v6.reply, "hello, six\n")
        XCTAssertEqual(try echo(serverd.address(2), "unix\n").reply, "unix\n")
        let log = try serverd.waitFor { () -> String? in
            let text = serverd.stderr
            return connectionLines(text).count >= 3 ? text : nil
        }
        let lines = connectionLines(log)
        XCTAssertEqual(lines.count, 3, log)
        let tcp = try XCTUnwrap(lines.first { $0.contains("remote_addr=127.0.0.1 ") }, log)
        XCTAssertTrue(tcp.hasPrefix("info: echo@\(serverd.address(0)): connection from 127.0.0.1:\(v4.localPort!) ended: client-close"), tcp)
        for field in ["bytes_in=6", "bytes_out=6", "end=client-close", "service=echo", "remote_port=\(v4.localPort!)",
                      "listener=echo@\(serverd.address(0))"] {
            XCTAssertTrue(tcp.contains(" \(field)"), "\(field) in \(tcp)")
        }
        XCTAssertNotNil(tcp.range(of: #" duration=\d+\.\d{6}( |$)"#, options: .regularExpression), tcp)
        let ipv6 = try XCTUnwrap(lines.first { $0.contains("remote_addr=::1 ") }, log)
        XCTAssertTrue(ipv6.contains("connection from [::1]:\(v6.localPort!) ended: client-close"), ipv6)
        XCTAssertTrue(ipv6.contains(" bytes_in=11 bytes_out=11 "), ipv6)
        let unix = try XCTUnwrap(lines.first { $0.contains("peer_uid=") }, log)
        XCTAssertTrue(unix.contains("connection from uid \(getuid()) gid \(getgid()) pid \(getpid()) ended: client-close"), unix)
        for field in ["peer_uid=\(getuid())", "peer_gid=\(getgid())", "peer_pid=\(getpid())", "bytes_in=5", "bytes_out=5"] {
            XCTAssertTrue(unix.contains(" \(field)"), "\(field) in \(unix)")
        }
        XCTAssertFalse(unix.contains("remote_addr="), unix)
        try serverd.stop()
    }

    /// An exec connection's line carries the program's exit status and the duration, no byte counts (the bytes
    /// pass between the client and the program); one killed by a signal says which.
    func testExecConnectionLineHasTheExitStatus() throws {
        let serverd = try ServerdProcess(
            ["--listen", "exec@tcp://127.0.0.1:0", "--", "/bin/sh", "-c", "read line; echo \"$line\"; exit 3"])
        try serverd.waitForListening(1)
        XCTAssertEqual(try echo(serverd.address(0), "ping\n").reply, "ping\n")
        let log = try serverd.waitForLog("ended: exit")
        let line = try XCTUnwrap(connectionLines(log).first, log)
        XCTAssertTrue(line.contains(" end=exit exit_status=3 "), line)
        XCTAssertTrue(line.contains(" service=exec"), line)
        XCTAssertFalse(line.contains("bytes_in"), line)
        try serverd.stop()
    }

    /// Under the forking model each worker writes its connection's line (bytes included); the parent counts the
    /// connections and their ends, not the bytes, which passed in the workers.
    func testForkedWorkersWriteTheLinesAndTheParentCounts() throws {
        let serverd = try ServerdProcess(["--model", "forking", "--listen", "echo@tcp://127.0.0.1:0"])
        try serverd.waitForListening(1)
        XCTAssertEqual(try echo(serverd.address(0), "one\n").reply, "one\n")
        XCTAssertEqual(try echo(serverd.address(0), "two\n").reply, "two\n")
        let log = try serverd.waitForLog("ended: client-close", count: 2)
        XCTAssertEqual(connectionLines(log).filter { $0.contains(" bytes_in=4 bytes_out=4 ") }.count, 2, log)
        // The parent counts an end when it reaps the worker.
        let block = try statusBlock(serverd, startingWith: "1 listener, 0 active connections, 2 total")
        XCTAssertTrue(block.contains("model forking, active 0, total 2, denied 0, limited 0, bytes in 0 out 0"), block)
        try serverd.stop()
    }

    /// A connection still open when the drain runs out of time ends `drain`.
    func testConnectionCutByTheDrainEndsDrain() throws {
        let serverd = try ServerdProcess(["--drain-timeout", "0.2", "--listen", "echo@tcp://127.0.0.1:0"])
        try serverd.waitForListening(1)
        let client = try TestClient.connect(serverd.address(0))
        XCTAssertTrue(try client.echoes("held\n"))
        serverd.send(SIGTERM)
        XCTAssertEqual(try serverd.waitForExit(), 0)
        client.close()
        let line = try XCTUnwrap(connectionLines(serverd.stderr).first, serverd.stderr)
        XCTAssertTrue(line.contains(" ended: drain ") && line.contains(" bytes_in=5 bytes_out=5 "), line)
    }

    /// Text a client controls (here an exec program's stderr) cannot bring control characters into a text line.
    func testControlCharactersFromAnExecProgramAreEscaped() throws {
        let serverd = try ServerdProcess(
            ["--listen", "exec@tcp://127.0.0.1:0", "--", "/bin/sh", "-c", #"printf 'a\033[2Jb\rc\n' >&2"#])
        try serverd.waitForListening(1)
        _ = try echo(serverd.address(0), "")
        let log = try serverd.waitForLog("ended: exit")
        XCTAssertTrue(log.contains(#": a\x1b[2Jb\x0dc"#), log)
        XCTAssertFalse(log.contains("\u{1b}") || log.contains("\r"), log)
        try serverd.stop()
    }

    /// A refused connection gets its line too, ended `denied`.
    func testDeniedConnectionGetsALine() throws {
        let serverd = try ServerdProcess(["--deny", "127.0.0.0/8", "--listen", "echo@tcp://127.0.0.1:0"])
        try serverd.waitForListening(1)
        let client = try TestClient.connect(serverd.address(0))
        XCTAssertTrue(client.isClosedWithoutData())
        client.close()
        let log = try serverd.waitForLog("ended: denied")
        let line = try XCTUnwrap(connectionLines(log).first, log)
        XCTAssertTrue(line.contains(" end=denied ") && line.contains(" bytes_in=0 bytes_out=0 "), line)
        try serverd.stop()
    }

    /// A connection past its source's rate, refused after its turn could not come in time, gets its line ended
    /// `rate` and counts as a limit hit.
    func testRateRefusalGetsALineAndCountsAsLimited() throws {
        let serverd = try ServerdProcess(["--max-rate-per-source", "1", "--listen", "echo@tcp://127.0.0.1:0"])
        try serverd.waitForListening(1)
        // One token now, the next in 1 s (held for it), the third 2 s away: past the longest hold, refused.
        let clients = try (0..<3).map { _ in try TestClient.connect(serverd.address(0)) }
        let log = try serverd.waitForLog("ended: rate")
        let line = try XCTUnwrap(connectionLines(log).first { $0.contains(" end=rate ") }, log)
        XCTAssertTrue(line.contains(" bytes_in=0 bytes_out=0 "), line)
        let block = try statusBlock(serverd, startingWith: "1 listener, ")
        XCTAssertTrue(block.contains(", 0 denied, 1 limited"), block)
        clients.forEach { $0.close() }
        try serverd.stop()
    }

    /// `--log-connections off` silences the lines, and `log-connections = false` in one `[[listener]]` silences
    /// that listener's only; the status block (logged after the connections) is the point by which they would
    /// have been written.
    func testLogConnectionsOffSilencesThem() throws {
        let off = try ServerdProcess(["--log-connections", "off", "--listen", "echo@tcp://127.0.0.1:0"])
        try off.waitForListening(1)
        XCTAssertEqual(try echo(off.address(0), "quiet\n").reply, "quiet\n")
        _ = try statusBlock(off, startingWith: "1 listener, 0 active connections, 1 total")
        XCTAssertEqual(connectionLines(off.stderr), [], off.stderr)
        try off.stop()

        let directory = try TemporaryDirectory()
        let config = try writeConfig(directory, """
            [[listener]]
            listen = "echo@tcp://127.0.0.1:0"
            log-connections = false

            [[listener]]
            listen = "discard@tcp://127.0.0.1:0"
            """)
        let mixed = try ServerdProcess(["--config", config], directory: directory)
        try mixed.waitForListening(2)
        XCTAssertEqual(try echo(mixed.address(0), "quiet\n").reply, "quiet\n")
        XCTAssertEqual(try echo(mixed.address(1), "logged\n").reply, "")
        let logged = try mixed.waitForLog("ended: client-close")
        mixed.send(SIGUSR1)
        let final = try mixed.waitForLog("status: ")
        XCTAssertEqual(connectionLines(final).count, 1, logged)
        XCTAssertTrue(connectionLines(final)[0].contains("discard@"), final)
        try mixed.stop()
    }

    /// A command-line value other than on or off is a usage error naming the option.
    func testLogConnectionsTakesOnOrOff() throws {
        let result = try ServerdProcess.run(["--log-connections", "maybe", "--listen", "echo@tcp://127.0.0.1:0"])
        XCTAssertEqual(result.status, 64)
        XCTAssertTrue(result.stderr.contains("--log-connections: must be on or off, not maybe"), result.stderr)
    }

    // MARK: - JSON

    /// Under `--log-format json` every line of the log file is one JSON object, exec stderr with quotes, a
    /// backslash and control characters included; the connection line's fields are keys of their own, the counts
    /// numbers.
    func testJSONLogLinesAllParse() throws {
        let directory = try TemporaryDirectory()
        let logFile = directory.path("serverd.log")
        let serverd = try ServerdProcess(
            ["--log-format", "json", "--log-file", logFile, "--listen", "echo@tcp://127.0.0.1:0",
             "--listen", "exec@tcp://127.0.0.1:0", "--", "/bin/sh", "-c",
             #"printf 'evil "quote" \\ back\033[2J\r\tend\n' >&2; exit 0"#],
            directory: directory)
        let listening = try waitForListening(inFile: logFile, 2).map { line in
            // `… "message":"listening on SERVICE@ADDRESS"}`
            addressPart(String(line.prefix { $0 != "\"" }))
        }
        XCTAssertEqual(listening.count, 2)
        let echoAddress = listening[0]
        XCTAssertEqual(try echo(echoAddress, "json\n").reply, "json\n")
        _ = try echo(listening[1], "")
        _ = try serverd.waitFor { occurrences(of: "ended: ", in: readText(logFile)) >= 2 ? true : nil }
        try serverd.stop()
        let lines = readText(logFile).split(separator: "\n")
        XCTAssertGreaterThan(lines.count, 5)
        var objects: [[String: Any]] = []
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            XCTAssertNotNil(object, String(line))
            if let object { objects.append(object) }
        }
        for object in objects {
            XCTAssertNotNil(object["time"] as? String)
            XCTAssertEqual(object["pid"] as? Int, Int(serverd.pid))
            XCTAssertNotNil(object["level"] as? String)
            XCTAssertNotNil(object["message"] as? String)
        }
        let stderrLine = try XCTUnwrap(objects.first { ($0["message"] as? String)?.contains("evil") == true })
        // JSON keeps the text as it was, its control characters escaped inside the one line.
        XCTAssertTrue((stderrLine["message"] as! String).hasSuffix("evil \"quote\" \\ back\u{1b}[2J\r\tend"), "\(stderrLine)")
        XCTAssertTrue(lines.contains { $0.contains(#"back\u001b[2J\r\tend"#) }, "\(lines)")
        let connection = try XCTUnwrap(objects.first { $0["end"] as? String == "client-close" }, "\(objects)")
        XCTAssertEqual(connection["level"] as? String, "info")
        XCTAssertEqual(connection["bytes_in"] as? Int, 5)
        XCTAssertEqual(connection["bytes_out"] as? Int, 5)
        XCTAssertEqual(connection["service"] as? String, "echo")
        XCTAssertEqual(connection["remote_addr"] as? String, "127.0.0.1")
        XCTAssertEqual(connection["listener"] as? String, "echo@\(echoAddress)")
        XCTAssertNotNil(connection["duration"] as? Double)
        XCTAssertNotNil(connection["remote_port"] as? Int)
        let exec = try XCTUnwrap(objects.first { $0["end"] as? String == "exit" }, "\(objects)")
        XCTAssertEqual(exec["exit_status"] as? Int, 0)
    }

    // MARK: - The journal

    /// Under journald (`JOURNAL_STREAM` matching stderr), connection events go to the journal's native socket as
    /// structured entries. serverd runs in a mount namespace of its own where the test's directory is mounted over
    /// `/run/systemd/journal`, so it finds the test's socket at the real path.
    func testJournalEntriesCarryTheConnectionFields() throws {
        guard getuid() == 0 else { throw XCTSkip("needs root (a mount namespace)") }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare") else { throw XCTSkip("no unshare") }
        let directory = try TemporaryDirectory()
        let journalDirectory = directory.path("journal")
        XCTAssertEqual(mkdir(journalDirectory, 0o755), 0)
        let journal = try NotifySink(path: "\(journalDirectory)/socket")
        let unixPath = directory.path("echo.sock")
        // JOURNAL_STREAM names serverd's stderr (the device and inode systemd would give), as under journald.
        let script = """
            mount -t tmpfs serverd-test /run/systemd && mkdir /run/systemd/journal \
            && mount --bind "$0" /run/systemd/journal \
            && JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) && export JOURNAL_STREAM && exec "$@"
            """
        let serverd = try ServerdProcess(
            ["--listen", "echo@tcp://127.0.0.1:0", "--listen", "echo@unix:\(unixPath)",
             "--listen", "exec@tcp://127.0.0.1:0", "--", "/bin/sh", "-c", "exit 7"],
            directory: directory, launcher: ["/usr/bin/unshare", "--mount", "/bin/sh", "-c", script, journalDirectory])
        try serverd.waitForListening(3)
        XCTAssertTrue(serverd.stderr.contains("<5>listening on "), serverd.stderr)
        let tcp = try echo(serverd.address(0), "journal\n")
        let entry = try journal.next("SERVERD_END", "client-close")
        XCTAssertEqual(entry["SERVERD_LISTENER"], "echo@\(serverd.address(0))")
        XCTAssertEqual(entry["SERVERD_SERVICE"], "echo")
        XCTAssertEqual(entry["REMOTE_ADDR"], "127.0.0.1")
        XCTAssertEqual(entry["REMOTE_PORT"], tcp.localPort.map { String($0) })
        XCTAssertEqual(entry["BYTES_IN"], "8")
        XCTAssertEqual(entry["BYTES_OUT"], "8")
        XCTAssertEqual(entry["PRIORITY"], "6")
        XCTAssertEqual(entry["SYSLOG_IDENTIFIER"], "serverd")
        XCTAssertNotNil(entry["DURATION_USEC"].flatMap { UInt64($0) }, entry.description)
        XCTAssertTrue(entry["MESSAGE"]?.contains(": connection from 127.0.0.1:") == true, entry.description)
        XCTAssertEqual(entry.pid, serverd.pid)

        _ = try echo(serverd.address(1), "u\n")
        let unix = try journal.next("PEER_UID")
        XCTAssertEqual(unix["PEER_UID"], String(getuid()))
        XCTAssertEqual(unix["PEER_GID"], String(getgid()))
        XCTAssertEqual(unix["PEER_PID"], String(getpid()))
        XCTAssertNil(unix["REMOTE_ADDR"])

        _ = try echo(serverd.address(2), "")
        let exec = try journal.next("SERVERD_END", "exit")
        XCTAssertEqual(exec["EXIT_STATUS"], "7")
        XCTAssertNil(exec["BYTES_IN"])
        // Lines without fields stay on stderr, with their priority prefix.
        XCTAssertFalse(serverd.stderr.contains("connection from"), serverd.stderr)
        try serverd.stop()
    }

    // MARK: - Status

    /// SIGUSR1, twice: each time a status block with the counts of what the test did, and serving goes on.
    func testStatusBlockOnSIGUSR1Twice() throws {
        let directory = try TemporaryDirectory()
        let config = try writeConfig(directory, """
            [[listener]]
            listen = "echo@tcp://127.0.0.1:0"

            [[listener]]
            listen = "echo@tcp://127.0.0.1:0"
            deny = ["127.0.0.0/8"]

            [[listener]]
            listen = "echo@udp://127.0.0.1:0"
            """)
        let serverd = try ServerdProcess(["--config", config], directory: directory)
        try serverd.waitForListening(3)
        let open = try TestClient.connect(serverd.address(0))
        XCTAssertTrue(try open.echoes("held\n"))
        XCTAssertEqual(try echo(serverd.address(0), "abc\n").reply, "abc\n")
        let denied = try TestClient.connect(serverd.address(1))
        XCTAssertTrue(denied.isClosedWithoutData())
        denied.close()
        XCTAssertEqual(try datagramRoundTrip(serverd.address(2), Array("dgram".utf8)), Array("dgram".utf8))
        _ = try serverd.waitForLog("ended: denied")
        let datagramLine = "echo@\(serverd.address(2)): model serial, datagrams 1, replies 1, dropped 0, denied 0, limited 0, bytes in 5 out 5"
        var log = try statusBlock(
            serverd, startingWith: "3 listeners, 1 active connection, 2 total, 1 denied, 0 limited", containing: [datagramLine])
        XCTAssertTrue(
            log.contains("echo@\(serverd.address(0)): model threading, active 1, total 2, denied 0, limited 0, bytes in 4 out 4"), log)
        XCTAssertTrue(log.contains("echo@\(serverd.address(1)): model threading, active 0, total 0, denied 1, limited 0"), log)
        XCTAssertTrue(log.contains(datagramLine), log)

        try open.finishSending()
        _ = try open.receiveAll()
        open.close()
        log = try statusBlock(serverd, startingWith: "3 listeners, 0 active connections, 2 total, 1 denied, 0 limited")
        XCTAssertGreaterThanOrEqual(occurrences(of: "status: ", in: serverd.stderr), 2)
        XCTAssertTrue(
            log.contains("echo@\(serverd.address(0)): model threading, active 0, total 2, denied 0, limited 0, bytes in 9 out 9"), log)
        XCTAssertEqual(try echo(serverd.address(0), "still\n").reply, "still\n")
        try serverd.stop()
    }

    /// A listener a reload removed, still draining a connection, stays in the block, marked and listed last.
    func testStatusBlockListsAListenerDrainingAfterAReload() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("removed.sock")
        let config = try writeConfig(directory, """
            [[listener]]
            listen = "echo@tcp://127.0.0.1:0"

            [[listener]]
            listen = "echo@unix:\(path)"
            """)
        let serverd = try ServerdProcess(["--config", config], directory: directory)
        try serverd.waitForListening(2)
        let client = try TestClient.connect("unix:" + path)
        XCTAssertTrue(try client.echoes("stay\n"))
        _ = try writeConfig(directory, """
            [[listener]]
            listen = "echo@tcp://127.0.0.1:0"
            """)
        serverd.send(SIGHUP)
        try serverd.waitForLog("reloaded: ")
        let block = try statusBlock(serverd, startingWith: "1 listener, 1 active connection, 1 total")
        XCTAssertTrue(block.contains("(1 draining after a reload)"), block)
        XCTAssertTrue(block.contains("echo@unix:\(path): model threading, active 1, total 1"), block)
        XCTAssertTrue(block.contains("bytes in 0 out 0 (draining after a reload)"), block)
        try client.finishSending()
        client.close()
        try serverd.stop()
    }

    /// SIGUSR1 during a drain logs the block and does not cut the drain short.
    func testSIGUSR1DoesNotCutADrainShort() throws {
        let serverd = try ServerdProcess(["--drain-timeout", "30", "--listen", "echo@tcp://127.0.0.1:0"])
        try serverd.waitForListening(1)
        let client = try TestClient.connect(serverd.address(0))
        XCTAssertTrue(try client.echoes("draining\n"))
        serverd.send(SIGTERM)
        try serverd.waitForLog("stopping, draining")
        serverd.send(SIGUSR1)
        try serverd.waitForLog("status: ")
        XCTAssertTrue(try client.echoes("still served\n"), serverd.stderr)
        XCTAssertFalse(serverd.stderr.contains("second stop signal"), serverd.stderr)
        try client.finishSending()
        client.close()
        XCTAssertEqual(try serverd.waitForExit(), 0)
    }

    /// `STATUS=` follows the connections: the summary counts the one the test made.
    func testStatusNotificationSummarisesConnections() throws {
        let directory = try TemporaryDirectory()
        let sink = try NotifySink(path: directory.path("notify.sock"))
        let serverd = try ServerdProcess(["--listen", "echo@tcp://127.0.0.1:0"], directory: directory, environment: sink.environment)
        let ready = try sink.next("READY", "1")
        XCTAssertEqual(ready["STATUS"], "Serving 1 listener, 0 active connections, 0 total, 0 denied, 0 limited")
        try serverd.waitForListening(1)
        let client = try TestClient.connect(serverd.address(0))
        XCTAssertTrue(try client.echoes("status\n"))
        try sink.next("STATUS", "Serving 1 listener, 1 active connection, 1 total, 0 denied, 0 limited")
        client.close()
        try sink.next("STATUS", "Serving 1 listener, 0 active connections, 1 total, 0 denied, 0 limited")
        try serverd.stop()
    }
}

/// The pieces of the log's rendering, on their own.
final class LogRenderingTests: XCTestCase {
    func testControlCharactersAreEscapedInText() {
        XCTAssertEqual(LogText.escapingControls("plain\ttab"), "plain\ttab")
        XCTAssertEqual(LogText.escapingControls("a\rb\u{1b}[2J\u{7f}\u{0}"), #"a\x0db\x1b[2J\x7f\x00"#)
        let record = LogRecord(level: .info, message: "peer said\nserverd: fake", metadata: ["path": "x\ny"])
        XCTAssertEqual(record.textLines, ["peer said", #"serverd: fake path=x\x0ay"#])
    }

    /// The text rendering scans bytes and skips the split of one-line messages; on random text it must give what the
    /// straightforward rendering over Unicode scalars gives (the one it replaced, kept here as the reference).
    func testTextRenderingMatchesTheScalarReferenceOnRandomText() {
        func referenceEscaping(_ line: String) -> String {
            var escaped = ""
            for scalar in line.unicodeScalars {
                if (scalar.value < 0x20 && scalar != "\t") || scalar.value == 0x7F {
                    let hex = String(scalar.value, radix: 16)
                    escaped += "\\x" + (hex.count < 2 ? "0" : "") + hex
                } else {
                    escaped.unicodeScalars.append(scalar)
                }
            }
            return escaped
        }
        func referenceLines(_ message: String, _ metadata: Logger.Metadata) -> [String] {
            var lines = message.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            if lines.count > 1 && lines.last == "" { lines.removeLast() }
            let sorted = metadata.sorted { $0.key < $1.key }
            let rendered: [String] = sorted.map { entry in " \(entry.key)=\(entry.value)" }
            lines[lines.count - 1] += rendered.joined()
            return lines
        }
        // Controls, tab, line feed, DEL, printable ASCII, and scalars of two to four UTF-8 bytes, among them C1
        // controls and separators that are not escaped.
        let pool: [Unicode.Scalar] = ["\u{0}", "\u{1b}", "\r", "\t", "\n", "\u{7f}", "a", "=", " ", "\\", "\u{85}",
                                      "\u{e9}", "\u{2028}", "\u{20ac}", "\u{1f600}", "\u{10ffff}"]
        var generator = SystemRandomNumberGenerator()
        func randomText() -> String {
            var text = ""
            for _ in 0..<Int.random(in: 0...12, using: &generator) {
                text.unicodeScalars.append(pool.randomElement(using: &generator)!)
            }
            return text
        }
        for round in 0..<5_000 {
            let message = randomText()
            var metadata: Logger.Metadata = [:]
            for _ in 0..<Int.random(in: 0...3, using: &generator) { metadata[randomText()] = .string(randomText()) }
            XCTAssertEqual(LogText.escapingControls(message), referenceEscaping(message), "round \(round): \(message.debugDescription)")
            XCTAssertEqual(
                ServerdLogHandler.lines(message: message, metadata: metadata), referenceLines(message, metadata),
                "round \(round): \(message.debugDescription) \(metadata)")
            let record = LogRecord(level: .info, message: message, metadata: metadata)
            XCTAssertEqual(record.text(prefix: "info: "), record.textLines.map { "info: " + $0 + "\n" }.joined())
        }
    }

    func testJSONLineIsOneObjectWithNumbersAndEscapes() throws {
        let record = LogRecord(
            level: .info, message: "quote \" back \\ nl \n ctl \u{1}",
            metadata: ["bytes_in": .stringConvertible(6), "duration": .stringConvertible(LogNumber(microseconds: 812)),
                       "level": "clash", "peer": "ok"])
        let line = record.jsonLine(time: "2026-12-06T10:00:00.000+0000", pid: 42)
        XCTAssertFalse(line.contains("\n"))
        XCTAssertEqual(
            line,
            #"{"time":"2026-12-06T10:00:00.000+0000","pid":42,"level":"info","message":"quote \" back \\ nl \n ctl \u0001","bytes_in":6,"duration":0.000812,"meta_level":"clash","peer":"ok"}"#)
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        XCTAssertEqual(object?["duration"] as? Double, 0.000812)
    }

    /// The native protocol's two forms: `NAME=value\n`, and for a value with a line feed the name, a line feed, the
    /// length as 64-bit little endian, the value and a line feed. Names become upper case letters, digits and
    /// underscores.
    func testJournalEntryEncoding() {
        var entry = JournalEntry()
        entry.append("MESSAGE", "hi")
        entry.append("serverd-end", "a\nb")
        entry.append("_hidden", "x")
        XCTAssertEqual(
            entry.datagram,
            Array("MESSAGE=hi\nSERVERD_END\n".utf8) + [3, 0, 0, 0, 0, 0, 0, 0] + Array("a\nb\nHIDDEN=x\n".utf8))
        let record = LogRecord(
            level: .warning, message: "m",
            metadata: ["duration": .stringConvertible(LogNumber(microseconds: 1_500_001)), "listener": "echo@x",
                       "other": "y"])
        let fields = JournalSocket.entry(for: record).fields.map { "\($0.name)=\($0.value)" }
        XCTAssertEqual(
            fields,
            ["MESSAGE=m", "PRIORITY=4", "SYSLOG_IDENTIFIER=serverd", "DURATION_USEC=1500001", "SERVERD_LISTENER=echo@x",
             "SERVERD_OTHER=y"])
    }

    /// The `STATUS=` and SIGUSR1 texts' units agree in number.
    func testLogNumberHasSixDecimals() {
        XCTAssertEqual(LogNumber(microseconds: 0).description, "0.000000")
        XCTAssertEqual(LogNumber(microseconds: 12_345_678).description, "12.345678")
    }
}
