import FamilyServer
import Foundation
import Glibc
import XCTest

// serverd as systemd runs it, without systemd as PID 1 (reference note, section 4):
// - under `systemd-socket-activate` (which rejects port 0 and execs only after a first connection
//   or datagram, so each test picks free ports or uses Unix sockets, and triggers it);
// - under Support/launch.py, the suite's own launcher, which binds port-0 sockets, places them on
//   3…, sets LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES and execs serverd at once;
// - with a notify socket the test binds itself (Support/NotifySink.swift), at a path or an
//   abstract name unique to the test.
// The library's own adoption, notifier and watchdog tests are in FamilyServerTests/Systemd*.
// Bad inherited sockets and environments: SystemdErrorTests.

/// Launchers and helpers shared by the systemd tests.
enum Activation {
    static let socketActivate = "/usr/bin/systemd-socket-activate"
    static let python = "/usr/bin/python3"
    static let launchScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Support/launch.py").path

    /// The `launcher:` argv for launch.py with these options and `NAME=SPEC` words.
    static func launcher(_ words: [String]) -> [String] { [python, launchScript] + words + ["--"] }

    /// Skips the test when a tool it needs is missing.
    static func require(_ path: String) throws {
        guard FileManager.default.isExecutableFile(atPath: path) else { throw XCTSkip("\(path) is not installed") }
    }

    /// A port that was free a moment ago on `host` (bound with port 0, read, closed): for
    /// systemd-socket-activate, which rejects port 0. The race is tiny and accepted.
    static func freePort(_ host: String, _ transport: SocketAddress.Transport = .stream) throws -> UInt16 {
        let scheme = transport == .stream ? "tcp" : "udp"
        let bracketed = host.contains(":") ? "[\(host)]" : host
        let address = try SocketAddress(parsing: "\(scheme)://\(bracketed):0")
        let socket = try Socket(family: address.family, transport: transport)
        defer { socket.close() }
        try socket.bind(to: address)
        return try socket.localAddress().port!
    }

    /// A unique abstract socket name (without the `@`).
    static func abstractName(_ tag: String) -> String { "serverd-test-\(getpid())-\(tag)-\(MonotonicClock.microseconds())" }

    /// Connects to `address` as soon as something is bound there (systemd-socket-activate binds
    /// shortly after it starts); with the tool, this first connection is what makes it exec.
    static func connectWhenBound(_ address: String, timeout: Double = 20, context: @escaping () -> String = { "" }) throws -> TestClient {
        try poll(timeout: timeout, "a socket bound at \(address)", context: context) { try? TestClient.connect(address) }
    }

    /// Sends one datagram to `address` as soon as something is bound there, from a fresh socket
    /// (autobound for Unix) whose receive timeout is `timeout`; returns the socket for the reply.
    static func sendDatagramWhenBound(_ address: String, _ payload: String, timeout: Double = 20, context: @escaping () -> String = { "" }) throws -> Socket {
        let target = try SocketAddress(parsing: address)
        let socket = try Socket(family: target.family, transport: .datagram)
        if target.isUnix { try socket.bind(to: SocketAddress(.datagram, .unnamed)) }
        try socket.setTimeouts(receive: timeout, send: timeout)
        _ = try poll(timeout: timeout, "a datagram socket bound at \(address)", context: context) {
            (try? socket.sendDatagram(Array(payload.utf8), to: target)) != nil ? true : nil
        }
        return socket
    }

    /// The lines launch.py wrote with `--report=PATH`: descriptor, fd name and canonical address.
    static func report(_ path: String, timeout: Double = 20) throws -> [(fd: Int32, name: String, address: String)] {
        _ = try poll(timeout: timeout, "the launcher's report \(path)") {
            FileManager.default.fileExists(atPath: path) ? true : nil
        }
        return readText(path).split(separator: "\n").map { line in
            let parts = line.split(separator: " ", maxSplits: 2).map(String.init)
            return (Int32(parts[0])!, parts[1], parts[2])
        }
    }
}

extension ServerdProcess {
    /// Waits for `count` listening lines and checks that they are exactly `expected` (any order).
    func expectListening(_ expected: Set<String>, file: StaticString = #filePath, line: UInt = #line) throws {
        let lines = try waitForListening(expected.count, file: file, line: line)
        XCTAssertEqual(lines.count, expected.count, stderr, file: file, line: line)
        XCTAssertEqual(Set(lines), expected, stderr, file: file, line: line)
    }
}

extension TestClient {
    /// A stamp reply to `text`: `[ctime date] text`.
    func isStamped(_ text: String) throws -> Bool {
        let reply = try roundTrip(text)
        return reply.hasPrefix("[") && reply.hasSuffix("] \(text)\n")
    }
}

/// One datagram round trip from a fresh socket; the reply as text, or nil.
func datagramReply(_ address: String, _ payload: String) throws -> String? {
    try datagramRoundTrip(address, Array(payload.utf8)).map { String(decoding: $0, as: UTF8.self) }
}

/// A daytime line in C `ctime` form, `Thu Nov 26 13:55:52 2026\r\n`.
func isDaytimeLine(_ text: String) -> Bool {
    text.hasSuffix("\r\n") && text.split(separator: " ", omittingEmptySubsequences: true).count == 5
}

final class SystemdTests: XCTestCase {
    // MARK: - systemd-socket-activate

    /// Four `-l` of mixed families with `--fdname`: each `systemd:NAME` listener gets its socket,
    /// the listening lines give the real addresses, the connection that triggered the exec is
    /// served, and the inherited socket file survives the stop.
    func testSocketActivateMixedFamiliesWithFdNames() throws {
        try Activation.require(Activation.socketActivate)
        let directory = try TemporaryDirectory()
        let v4 = try Activation.freePort("127.0.0.1")
        let v6 = try Activation.freePort("::1")
        let path = directory.path("s.sock")
        let abstract = Activation.abstractName("sa-mixed")
        let serverd = try ServerdProcess(
            [
                "--listen", "stamp@systemd:v4", "--listen", "echo@systemd:v6", "--listen", "echo@systemd:unixpath",
                "--listen", "daytime@systemd:abstract",
            ],
            directory: directory,
            launcher: [
                Activation.socketActivate, "-l", "127.0.0.1:\(v4)", "-l", "[::1]:\(v6)", "-l", path, "-l", "@" + abstract,
                "--fdname=v4:v6:unixpath:abstract",
            ])
        let trigger = try Activation.connectWhenBound("unix:" + path) { serverd.stderr }
        defer { trigger.close() }
        try trigger.send("queued before the exec\n")
        try serverd.expectListening([
            "stamp@tcp://127.0.0.1:\(v4)", "echo@tcp://[::1]:\(v6)", "echo@unix:\(path)", "daytime@unix:@\(abstract)",
        ])
        XCTAssertEqual(try trigger.receiveLine(), "queued before the exec\n", "the triggering connection is served")

        let stamp = try TestClient.connect("tcp://127.0.0.1:\(v4)")
        defer { stamp.close() }
        XCTAssertTrue(try stamp.isStamped("over IPv4"))
        let echo = try TestClient.connect("tcp://[::1]:\(v6)")
        defer { echo.close() }
        XCTAssertTrue(try echo.echoes("over IPv6"))
        let daytime = try TestClient.connect("unix:@" + abstract)
        XCTAssertTrue(isDaytimeLine(String(decoding: try daytime.receiveAll(), as: UTF8.self)))
        daytime.close()
        trigger.close()
        stamp.close()
        echo.close()

        try serverd.stop()
        XCTAssertTrue(FileManager.default.fileExists(atPath: path), "the inherited socket file is never removed")
    }

    /// No `--listen`: each inherited socket is served by the service its fd name names.
    func testSocketActivateWithoutListenersServesWhatTheFdNamesName() throws {
        try Activation.require(Activation.socketActivate)
        let directory = try TemporaryDirectory()
        let port = try Activation.freePort("127.0.0.1")
        let echoPath = directory.path("echo.sock")
        let stampPath = directory.path("stamp.sock")
        let serverd = try ServerdProcess(
            [], directory: directory,
            launcher: [
                Activation.socketActivate, "-l", echoPath, "-l", stampPath, "-l", "127.0.0.1:\(port)", "--fdname=echo:stamp:daytime",
            ])
        let echo = try Activation.connectWhenBound("unix:" + echoPath) { serverd.stderr }
        defer { echo.close() }
        try serverd.expectListening(["echo@unix:\(echoPath)", "stamp@unix:\(stampPath)", "daytime@tcp://127.0.0.1:\(port)"])
        XCTAssertTrue(try echo.echoes("echoed"))
        let stamp = try TestClient.connect("unix:" + stampPath)
        defer { stamp.close() }
        XCTAssertTrue(try stamp.isStamped("stamped"))
        let daytime = try TestClient.connect("tcp://127.0.0.1:\(port)")
        XCTAssertTrue(isDaytimeLine(String(decoding: try daytime.receiveAll(), as: UTF8.self)))
        daytime.close()
        echo.close()
        stamp.close()
        try serverd.stop()
    }

    /// `--listen` given too: the inherited sockets that no `systemd` listener claims are still served by the service
    /// their fd names name, beside the configured listener; one whose name is no service is left unserved with a
    /// warning that says how to name it. (Before: every inherited socket was left unserved and its clients hung.)
    func testInheritedSocketsAreServedBesideListenOptions() throws {
        try Activation.require(Activation.socketActivate)
        let directory = try TemporaryDirectory()
        let echoPath = directory.path("echo.sock")
        let unnamedPath = directory.path("unnamed.sock")
        let ownPath = directory.path("own.sock")
        let serverd = try ServerdProcess(
            ["--listen", "stamp@unix:\(ownPath)"], directory: directory,
            launcher: [Activation.socketActivate, "-l", echoPath, "-l", unnamedPath, "--fdname=echo:unknown"])
        let echo = try Activation.connectWhenBound("unix:" + echoPath) { serverd.stderr }
        defer { echo.close() }
        try serverd.expectListening(["stamp@unix:\(ownPath)", "echo@unix:\(echoPath)"])
        XCTAssertTrue(try echo.echoes("served beside --listen"))
        let stamp = try TestClient.connect("unix:" + ownPath)
        defer { stamp.close() }
        XCTAssertTrue(try stamp.isStamped("own listener"))
        let warning = try serverd.waitForLog("('unknown') is not served")
        XCTAssertTrue(warning.contains("FileDescriptorName=echo"), warning)
        echo.close()
        stamp.close()
        try serverd.stop()
    }

    /// The packaged `/etc/serverd/serverd.toml` (`listen = []`) serves each inherited socket by its fd name, as its
    /// comment says.
    func testPackagedConfigurationServesInheritedSocketsByName() throws {
        try Activation.require(Activation.socketActivate)
        let directory = try TemporaryDirectory()
        let packaged = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("packaging/serverd.toml").path
        XCTAssertTrue(readText(packaged).contains("\nlisten = []\n"), "the packaged file declares listen = []")
        let echoPath = directory.path("echo.sock")
        let stampPath = directory.path("stamp.sock")
        let serverd = try ServerdProcess(
            ["--config", packaged], directory: directory,
            launcher: [Activation.socketActivate, "-l", echoPath, "-l", stampPath, "--fdname=echo:stamp"])
        let echo = try Activation.connectWhenBound("unix:" + echoPath) { serverd.stderr }
        defer { echo.close() }
        try serverd.expectListening(["echo@unix:\(echoPath)", "stamp@unix:\(stampPath)"])
        XCTAssertTrue(try echo.echoes("packaged"))
        let stamp = try TestClient.connect("unix:" + stampPath)
        defer { stamp.close() }
        XCTAssertTrue(try stamp.isStamped("packaged"))
        echo.close()
        stamp.close()
        try serverd.stop()
    }

    /// No `--listen` and an unnamed socket: the configuration error says how to name it.
    func testUnnamedInheritedSocketErrorSaysHowToNameIt() throws {
        try Activation.require(Activation.socketActivate)
        let directory = try TemporaryDirectory()
        let path = directory.path("unnamed.sock")
        let serverd = try ServerdProcess([], directory: directory, launcher: [Activation.socketActivate, "-l", path])
        let client = try Activation.connectWhenBound("unix:" + path) { serverd.stderr }
        client.close()
        XCTAssertEqual(try serverd.waitForExit(), 78, serverd.stderr)
        let last = serverd.stderr.split(separator: "\n").last.map(String.init) ?? ""
        XCTAssertTrue(last.hasPrefix("serverd: fd 3: its fd name 'unknown' is not a service"), last)
        XCTAssertTrue(last.contains("--fdname=echo with systemd-socket-activate"), last)
    }

    /// `--datagram`: UDP over IPv4 and IPv6, a Unix datagram socket at a path and one in the
    /// abstract namespace; the datagram that triggered the exec gets its reply.
    func testSocketActivateDatagramSockets() throws {
        try Activation.require(Activation.socketActivate)
        let directory = try TemporaryDirectory()
        let u4 = try Activation.freePort("127.0.0.1", .datagram)
        let u6 = try Activation.freePort("::1", .datagram)
        let path = directory.path("d.sock")
        let abstract = Activation.abstractName("sa-dgram")
        let serverd = try ServerdProcess(
            ["--listen", "stamp@systemd:u4", "--listen", "echo@systemd"],
            directory: directory,
            launcher: [
                Activation.socketActivate, "--datagram", "-l", "127.0.0.1:\(u4)", "-l", "[::1]:\(u6)", "-l", path,
                "-l", "@" + abstract, "--fdname=u4:u6:ud:uabs",
            ])
        let trigger = try Activation.sendDatagramWhenBound("unixgram:" + path, "trigger") { serverd.stderr }
        defer { trigger.close() }
        try serverd.expectListening([
            "stamp@udp://127.0.0.1:\(u4)", "echo@udp://[::1]:\(u6)", "echo@unixgram:\(path)", "echo@unixgram:@\(abstract)",
        ])
        let reply = try trigger.receiveDatagram(maxSize: 65536)
        XCTAssertEqual(reply.map { String(decoding: $0.bytes, as: UTF8.self) }, "trigger", "the triggering datagram is answered")

        let stamped = try datagramReply("udp://127.0.0.1:\(u4)", "v4") ?? ""
        XCTAssertTrue(stamped.hasPrefix("[") && stamped.hasSuffix("] v4"), stamped)
        XCTAssertEqual(try datagramReply("udp://[::1]:\(u6)", "v6"), "v6")
        XCTAssertEqual(try datagramReply("unixgram:@" + abstract, "abstract"), "abstract")
        try serverd.stop()
        XCTAssertTrue(FileManager.default.fileExists(atPath: path), "the inherited socket file is never removed")
    }

    /// Two chained instances: the outer passes two stream sockets, the inner adds two datagram
    /// sockets (positions 5 and 6) and names all four.
    func testChainedSocketActivateHandsOverStreamAndDatagramSockets() throws {
        try Activation.require(Activation.socketActivate)
        let directory = try TemporaryDirectory()
        let tcp = try Activation.freePort("127.0.0.1")
        let udp = try Activation.freePort("127.0.0.1", .datagram)
        let streamPath = directory.path("s.sock")
        let datagramPath = directory.path("d.sock")
        let serverd = try ServerdProcess(
            [
                "--listen", "stamp@systemd:tcp4", "--listen", "echo@systemd:unixs", "--listen", "echo@systemd:udp4",
                "--listen", "daytime@systemd:unixd",
            ],
            directory: directory,
            launcher: [
                Activation.socketActivate, "-l", "127.0.0.1:\(tcp)", "-l", streamPath,
                Activation.socketActivate, "--datagram", "-l", "127.0.0.1:\(udp)", "-l", datagramPath,
                "--fdname=tcp4:unixs:udp4:unixd",
            ])
        let trigger = try Activation.connectWhenBound("unix:" + streamPath) { serverd.stderr }
        defer { trigger.close() }
        try serverd.expectListening([
            "stamp@tcp://127.0.0.1:\(tcp)", "echo@unix:\(streamPath)", "echo@udp://127.0.0.1:\(udp)",
            "daytime@unixgram:\(datagramPath)",
        ])
        XCTAssertTrue(serverd.stderr.contains("Received 2 descriptors via the environment"), serverd.stderr)
        XCTAssertTrue(try trigger.echoes("through two launchers"))
        let stamp = try TestClient.connect("tcp://127.0.0.1:\(tcp)")
        defer { stamp.close() }
        XCTAssertTrue(try stamp.isStamped("tcp4"))
        XCTAssertEqual(try datagramReply("udp://127.0.0.1:\(udp)", "udp4"), "udp4")
        XCTAssertTrue(isDaytimeLine(try datagramReply("unixgram:" + datagramPath, "what time") ?? ""))
        trigger.close()
        stamp.close()
        try serverd.stop()
        XCTAssertTrue(FileManager.default.fileExists(atPath: streamPath))
        XCTAssertTrue(FileManager.default.fileExists(atPath: datagramPath))
    }

    /// `--accept` (Accept=yes): every connection gets a serverd of its own that serves it —
    /// `stamp` by default, the service of `--listen SERVICE@systemd` otherwise — and exits 0.
    /// Accept=yes serves `stamp` by default even when the configuration declares other (non-systemd) listeners, which
    /// such an instance does not open. (Before: exit 78, "no --listen SERVICE@systemd listener".)
    func testSocketActivateAcceptDefaultsToStampBesideOtherListeners() throws {
        try Activation.require(Activation.socketActivate)
        let directory = try TemporaryDirectory()
        let path = directory.path("a.sock")
        let tool = try ServerdProcess(
            ["--listen", "echo@unix:\(directory.path("other.sock"))"], directory: directory,
            launcher: [Activation.socketActivate, "--accept", "-l", path])
        let client = try Activation.connectWhenBound("unix:" + path) { tool.stderr }
        XCTAssertTrue(try client.isStamped("default"), tool.stderr)
        client.close()
        try tool.waitForLog("died with code 0")
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory.path("other.sock")), "the other listener is not opened")
        tool.send(SIGTERM)
        _ = try tool.waitForExit()
    }

    func testSocketActivateAcceptServesOneConnectionPerInstanceThenExitsZero() throws {
        try Activation.require(Activation.socketActivate)
        let directory = try TemporaryDirectory()
        let path = directory.path("a.sock")
        // Default service: stamp.
        let stampTool = try ServerdProcess([], directory: directory, launcher: [Activation.socketActivate, "--accept", "-l", path])
        let first = try Activation.connectWhenBound("unix:" + path) { stampTool.stderr }
        XCTAssertTrue(try first.isStamped("first"))
        XCTAssertTrue(try first.isStamped("and again"), "the connection stays open for more lines")
        first.close()
        try stampTool.waitForLog("died with code 0")
        XCTAssertTrue(stampTool.stderr.contains("serving stamp on fd 3"), stampTool.stderr)

        // `--listen echo@systemd` over TCP; two connections, two instances, both exit 0.
        let port = try Activation.freePort("127.0.0.1")
        let echoDirectory = try TemporaryDirectory()
        let echoTool = try ServerdProcess(
            ["--listen", "echo@systemd"], directory: echoDirectory,
            launcher: [Activation.socketActivate, "--accept", "-l", "127.0.0.1:\(port)"])
        let one = try Activation.connectWhenBound("tcp://127.0.0.1:\(port)") { echoTool.stderr }
        let two = try TestClient.connect("tcp://127.0.0.1:\(port)")
        XCTAssertTrue(try two.echoes("second, served at the same time"))
        XCTAssertTrue(try one.echoes("first"))
        try one.finishSending()
        XCTAssertTrue(one.isClosedByServer(), "echo ends when the client does")
        one.close()
        two.close()
        try echoTool.waitForLog("died with code 0", count: 2)
        XCTAssertEqual(occurrences(of: "serving echo on fd 3", in: echoTool.stderr), 2, echoTool.stderr)
        XCTAssertFalse(echoTool.stderr.contains("serverd: "), echoTool.stderr)

        for tool in [stampTool, echoTool] {
            tool.send(SIGTERM)  // the tool itself (our child), not a serverd
            _ = try tool.waitForExit()
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: path))
    }

    // MARK: - The suite's launcher (port 0, immediate exec)

    /// Every family and kind on port 0: `systemd:NAME` claims one, bare `systemd` the rest; each
    /// listening line gives the address the launcher bound.
    func testLauncherPortZeroSocketsOfEveryFamilyAndKind() throws {
        let directory = try TemporaryDirectory()
        let report = directory.path("report")
        let path = directory.path("s.sock")
        let abstract = Activation.abstractName("launch-dgram")
        let serverd = try ServerdProcess(
            ["--listen", "stamp@systemd:v4", "--listen", "echo@systemd"], directory: directory,
            launcher: Activation.launcher([
                "--report=\(report)", "v4=tcp:127.0.0.1", "v6=tcp:::1", "u4=udp:127.0.0.1", "u6=udp:::1",
                "up=unix:\(path)", "ua=unixgram:@\(abstract)",
            ]))
        let bound = try Activation.report(report)
        XCTAssertEqual(bound.map(\.fd), [3, 4, 5, 6, 7, 8])
        var expected = Set(bound.map { "echo@\($0.address)" })
        expected.remove("echo@\(bound[0].address)")
        expected.insert("stamp@\(bound[0].address)")
        try serverd.expectListening(expected)

        let stamp = try TestClient.connect(bound[0].address)
        defer { stamp.close() }
        XCTAssertTrue(try stamp.isStamped("v4"))
        let echo6 = try TestClient.connect(bound[1].address)
        defer { echo6.close() }
        XCTAssertTrue(try echo6.echoes("v6"))
        XCTAssertEqual(try datagramReply(bound[2].address, "u4"), "u4")
        XCTAssertEqual(try datagramReply(bound[3].address, "u6"), "u6")
        let unix = try TestClient.connect(bound[4].address)
        defer { unix.close() }
        XCTAssertTrue(try unix.echoes("unix"))
        XCTAssertEqual(try datagramReply(bound[5].address, "abstract"), "abstract")
        stamp.close()
        echo6.close()
        unix.close()
        try serverd.stop()
    }

    /// Inherited Unix socket files (stream and datagram) are left in place by a stop; a socket
    /// file serverd created itself is removed.
    func testInheritedUnixSocketFilesSurviveTheStop() throws {
        let directory = try TemporaryDirectory()
        let stream = directory.path("in-stream.sock")
        let datagram = directory.path("in-dgram.sock")
        let own = directory.path("own.sock")
        let serverd = try ServerdProcess(
            ["--listen", "echo@systemd", "--listen", "echo@unix:\(own)"], directory: directory,
            launcher: Activation.launcher(["a=unix:\(stream)", "b=unixgram:\(datagram)"]))
        try serverd.expectListening(["echo@unix:\(stream)", "echo@unixgram:\(datagram)", "echo@unix:\(own)"])
        XCTAssertEqual(try datagramReply("unixgram:" + datagram, "ping"), "ping")
        try serverd.stop()
        XCTAssertTrue(FileManager.default.fileExists(atPath: stream), "inherited stream socket file kept")
        XCTAssertTrue(FileManager.default.fileExists(atPath: datagram), "inherited datagram socket file kept")
        XCTAssertFalse(FileManager.default.fileExists(atPath: own), "serverd's own socket file removed")
    }

    /// `LISTEN_PID` of another process: nothing was inherited, which is no error; a `systemd:NAME`
    /// listener then finds nothing to claim.
    func testListenPIDOfAnotherProcessMeansNothingInherited() throws {
        let directory = try TemporaryDirectory()
        let serverd = try ServerdProcess(
            ["--listen", "stamp@tcp://127.0.0.1:0"], directory: directory,
            launcher: Activation.launcher(["--listen-pid=1", "a=tcp:127.0.0.1", "b=unixgram:@\(Activation.abstractName("other"))"]))
        let lines = try serverd.waitForListening(1)
        XCTAssertEqual(lines.count, 1)
        XCTAssertTrue(lines[0].hasPrefix("stamp@tcp://127.0.0.1:"), "\(lines)")
        let client = try TestClient.connect(serverd.address(0))
        XCTAssertTrue(try client.isStamped("served"))
        client.close()
        XCTAssertFalse(serverd.stderr.contains("inherited"), serverd.stderr)
        try serverd.stop()

        let claiming = try ServerdProcess(
            ["--listen", "echo@systemd:a"],
            launcher: Activation.launcher(["--listen-pid=1", "a=tcp:127.0.0.1"]))
        XCTAssertEqual(try claiming.waitForExit(), 78)
        XCTAssertTrue(claiming.stderr.contains("no inherited socket named 'a'"), claiming.stderr)
    }

    /// An exec child of an activated serverd sees no LISTEN_*, NOTIFY_SOCKET or WATCHDOG_*
    /// variable (serverd's other variables it does) and no inherited socket.
    func testExecChildSeesNoActivationOrNotifyVariables() throws {
        let directory = try TemporaryDirectory()
        let sink = try NotifySink(path: directory.path("notify"))
        let path = directory.path("x.sock")
        let serverd = try ServerdProcess(
            ["--listen", "exec@systemd:x", "--", "/bin/sh", "-c", "/usr/bin/env; echo ---; ls -l /proc/self/fd"],
            directory: directory,
            environment: sink.environment.merging(["WATCHDOG_USEC": "60000000", "SERVERD_TEST_MARKER": "kept"]) { $1 },
            launcher: Activation.launcher(["x=unix:\(path)"]))
        try serverd.expectListening(["exec@unix:\(path)"])
        try sink.next("READY", "1")  // serverd itself had NOTIFY_SOCKET
        let client = try TestClient.connect("unix:" + path)
        let output = String(decoding: try client.receiveAll(), as: UTF8.self)
        client.close()
        let parts = output.components(separatedBy: "---\n")
        XCTAssertEqual(parts.count, 2, output)
        let names = parts[0].split(separator: "\n").compactMap { $0.split(separator: "=", maxSplits: 1).first.map(String.init) }
        XCTAssertTrue(names.contains("SERVERD_TEST_MARKER"), output)
        XCTAssertTrue(names.contains("PROTO"), output)
        for name in names {
            XCTAssertFalse(SystemdEnvironment.isDaemonOnly(name), "\(name) leaked into the exec child")
        }
        let sockets = (parts.count > 1 ? parts[1] : "").split(separator: "\n").filter { $0.contains("socket:") }
        XCTAssertEqual(sockets.count, 2, "only stdin and stdout (the connection) are sockets:\n\(output)")
        try serverd.stop()
    }

    // MARK: - Notifications

    /// `READY=1` (with `STATUS=`) comes from serverd once every listener accepts, inherited or
    /// bound; `STOPPING=1` on SIGTERM. Path notify socket.
    func testReadyAfterListenersAcceptAndStoppingOnSIGTERM() throws {
        let directory = try TemporaryDirectory()
        let sink = try NotifySink(path: directory.path("notify"))
        let path = directory.path("in.sock")
        let serverd = try ServerdProcess(
            ["--listen", "stamp@tcp://127.0.0.1:0", "--listen", "echo@systemd:in"], directory: directory,
            environment: sink.environment, launcher: Activation.launcher(["in=unix:\(path)"]))
        let ready = try sink.next("READY", "1")
        // At READY, both listeners already accept: no waiting for the listening lines.
        let lines = serverd.listeningLines
        XCTAssertEqual(lines.count, 2, serverd.stderr)
        let tcp = try XCTUnwrap(lines.first { $0.hasPrefix("stamp@tcp://") })
        let stamp = try TestClient.connect(addressPart(tcp))
        defer { stamp.close() }
        XCTAssertTrue(try stamp.isStamped("at ready"))
        let echo = try TestClient.connect("unix:" + path)
        defer { echo.close() }
        XCTAssertTrue(try echo.echoes("at ready"))
        XCTAssertEqual(ready.pid, serverd.pid, "sent by serverd itself")
        XCTAssertFalse((ready["STATUS"] ?? "").isEmpty, "READY carries a STATUS: \(ready)")
        XCTAssertEqual(sink.messages.filter { $0["READY"] != nil }.count, 1)
        stamp.close()
        echo.close()

        serverd.send(SIGTERM)
        let stopping = try sink.next("STOPPING", "1")
        XCTAssertEqual(stopping.pid, serverd.pid)
        XCTAssertEqual(try serverd.waitForExit(), 0, serverd.stderr)
    }

    /// SIGHUP: `RELOADING=1` with `MONOTONIC_USEC=` (CLOCK_MONOTONIC at the reload), then
    /// `READY=1` again. Abstract notify socket.
    func testReloadSendsReloadingWithMonotonicUsecThenReady() throws {
        let directory = try TemporaryDirectory()
        let sink = try NotifySink(abstractTag: "reload")
        let serverd = try ServerdProcess(["--listen", "stamp@tcp://127.0.0.1:0"], directory: directory, environment: sink.environment)
        try sink.next("READY", "1")
        let before = MonotonicClock.microseconds()
        serverd.send(SIGHUP)
        let reloading = try sink.next("RELOADING", "1")
        let after = MonotonicClock.microseconds()
        let stamp = try XCTUnwrap(reloading["MONOTONIC_USEC"].flatMap(UInt64.init), "\(reloading)")
        XCTAssertTrue(before <= stamp && stamp <= after, "MONOTONIC_USEC \(stamp) not in [\(before), \(after)]")
        let ready = try sink.next("READY", "1")
        XCTAssertNotNil(ready["STATUS"], "\(ready)")
        XCTAssertEqual(ready.pid, serverd.pid)
        let client = try TestClient.connect(serverd.address(0))
        XCTAssertTrue(try client.isStamped("still serving"))
        client.close()
        serverd.send(SIGTERM)
        try sink.next("STOPPING", "1")
        XCTAssertEqual(try serverd.waitForExit(), 0, serverd.stderr)
    }

    /// A reload keeps the inherited sockets (listeners named by fd name, none on the command
    /// line): they cannot be bound again, so they must still serve afterwards.
    func testReloadKeepsServingInheritedSockets() throws {
        let directory = try TemporaryDirectory()
        let sink = try NotifySink(abstractTag: "reload-inherited")
        let path = directory.path("echo.sock")
        let serverd = try ServerdProcess(
            [], directory: directory, environment: sink.environment,
            launcher: Activation.launcher(["echo=unix:\(path)", "stamp=tcp:127.0.0.1"]))
        try sink.next("READY", "1")
        let tcp = try XCTUnwrap(serverd.listeningLines.first { $0.hasPrefix("stamp@tcp://127.0.0.1:") }, serverd.stderr)
        serverd.send(SIGHUP)
        try sink.next("RELOADING", "1")
        try sink.next("READY", "1")
        let echo = try TestClient.connect("unix:" + path)
        XCTAssertTrue(try echo.echoes("after the reload"))
        echo.close()
        let stamp = try TestClient.connect(addressPart(tcp))
        XCTAssertTrue(try stamp.isStamped("after the reload"))
        stamp.close()
        XCTAssertEqual(serverd.listeningLines.count, 2, serverd.stderr)
        XCTAssertFalse(serverd.stderr.contains("error"), serverd.stderr)
        try serverd.stop()
    }

    /// `STATUS=` follows the connections: it changes while a client is connected and says no connection is active
    /// once it left.
    func testStatusFollowsConnections() throws {
        let directory = try TemporaryDirectory()
        let sink = try NotifySink(abstractTag: "status")
        let serverd = try ServerdProcess(["--listen", "stamp@tcp://127.0.0.1:0"], directory: directory, environment: sink.environment)
        let idle = try XCTUnwrap(try sink.next("READY", "1")["STATUS"])
        let client = try TestClient.connect(serverd.address(0))
        XCTAssertTrue(try client.isStamped("busy"))
        let busy = try sink.next("a STATUS other than '\(idle)'", timeout: 10) { ($0["STATUS"] ?? idle) != idle }
        client.close()
        XCTAssertTrue(idle.contains(", 0 active connections,"), idle)
        try sink.next("a STATUS with no active connection again", timeout: 10) {
            $0["STATUS"]?.contains(", 0 active connections,") == true
        }
        XCTAssertEqual(busy.pid, serverd.pid)
        try serverd.stop()
    }

    /// `WATCHDOG_USEC=2000000` alone, or with `WATCHDOG_PID` naming serverd: `WATCHDOG=1` about
    /// every second (two within 5 s of READY, not flooding).
    func testWatchdogPingsAtAboutHalfOfWatchdogUsec() throws {
        let directory = try TemporaryDirectory()
        let alone = try NotifySink(abstractTag: "watchdog-alone")
        let own = try NotifySink(abstractTag: "watchdog-own-pid")
        let first = try ServerdProcess(
            ["--listen", "stamp@tcp://127.0.0.1:0"], directory: directory,
            environment: alone.environment.merging(["WATCHDOG_USEC": "2000000"]) { $1 })
        let secondDirectory = try TemporaryDirectory()
        let second = try ServerdProcess(
            ["--listen", "stamp@tcp://127.0.0.1:0"], directory: secondDirectory,
            environment: own.environment.merging(["WATCHDOG_USEC": "2000000"]) { $1 },
            launcher: Activation.launcher(["--watchdog-pid-self"]))
        try alone.next("READY", "1")
        try own.next("READY", "1")
        // Read both sinks in turn, briefly, so that each message's arrival time is its sending time
        // give or take 20 ms.
        let pairs = [(alone, first), (own, second)]
        let deadline = MonotonicClock.seconds() + 5
        func pings(_ sink: NotifySink) -> [NotifySink.Message] { sink.messages.filter { $0["WATCHDOG"] == "1" } }
        while pairs.contains(where: { pings($0.0).count < 2 }) && MonotonicClock.seconds() < deadline {
            for (sink, _) in pairs { try sink.receive(timeout: 0.02) }
        }
        for (sink, serverd) in pairs {
            let received = pings(sink)
            XCTAssertGreaterThanOrEqual(received.count, 2, "two WATCHDOG=1 within 5 s of READY: \(sink.messages)")
            guard received.count >= 2 else { continue }
            XCTAssertEqual(received[0].pid, serverd.pid)
            XCTAssertGreaterThan(received[1].time - received[0].time, 0.4, "pings come about every second, not in a flood")
        }
        try first.stop()
        try second.stop()
    }

    /// `WATCHDOG_PID` naming another process: no `WATCHDOG=1` at all.
    func testNoWatchdogWhenWatchdogPIDIsAnotherProcess() throws {
        let directory = try TemporaryDirectory()
        let sink = try NotifySink(abstractTag: "watchdog-other")
        let serverd = try ServerdProcess(
            ["--listen", "stamp@tcp://127.0.0.1:0"], directory: directory,
            environment: sink.environment.merging(["WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"]) { $1 })
        try sink.next("READY", "1")
        let later = try sink.collect(for: 3)
        XCTAssertTrue(sink.messages.allSatisfy { $0["WATCHDOG"] == nil }, "no watchdog pings: \(later)")
        try serverd.stop()
    }

    /// A failed start sends `ERRNO=` before exiting: the failing call's errno (EADDRINUSE) for an
    /// address in use, EINVAL for a usage error; never READY.
    func testErrnoBeforeAFailedStart() throws {
        let occupied = try Socket(family: AF_INET, transport: .stream)
        defer { occupied.close() }
        try occupied.bind(to: SocketAddress(parsing: "tcp://127.0.0.1:0"))
        try occupied.listen(backlog: 1)
        let address = try occupied.localAddress().description

        let sink = try NotifySink(abstractTag: "errno-in-use")
        let inUse = try ServerdProcess(["--listen", "stamp@\(address)"], environment: sink.environment)
        XCTAssertEqual(try inUse.waitForExit(), 69, inUse.stderr)
        XCTAssertEqual(try sink.next("ERRNO", timeout: 5)["ERRNO"], "\(EADDRINUSE)")
        XCTAssertTrue(sink.messages.allSatisfy { $0["READY"] == nil })
        XCTAssertTrue(inUse.stderr.split(separator: "\n").last?.hasPrefix("serverd: ") == true, inUse.stderr)

        let usageSink = try NotifySink(abstractTag: "errno-usage")
        let usage = try ServerdProcess(["--no-such-option"], environment: usageSink.environment)
        XCTAssertEqual(try usage.waitForExit(), 64, usage.stderr)
        XCTAssertEqual(try usageSink.next("ERRNO", timeout: 5)["ERRNO"], "\(EINVAL)")
    }

    /// `--daemon` under a notify socket with an inherited socket: `MAINPID=` names the detached
    /// daemon, which sends READY=1 and serves the inherited socket.
    func testDaemonModeSendsMainPIDAndServesTheInheritedSocket() throws {
        let directory = try TemporaryDirectory()
        let sink = try NotifySink(path: directory.path("notify"))
        let path = directory.path("a.sock")
        let pidfile = directory.path("serverd.pid")
        killDaemonAtTeardown(self, pidfile: pidfile)
        let parent = try ServerdProcess(
            ["--daemon", "--pidfile", pidfile, "--log-file", directory.path("serverd.log"), "--listen", "echo@systemd:a"],
            directory: directory, environment: sink.environment, launcher: Activation.launcher(["a=unix:\(path)"]))
        XCTAssertEqual(try parent.waitForExit(), 0, parent.stderr)
        let mainPID = try sink.next("MAINPID")
        let daemonPID = try XCTUnwrap(pidFromFile(pidfile))
        XCTAssertEqual(mainPID["MAINPID"], "\(daemonPID)")
        XCTAssertNotEqual(daemonPID, parent.pid)
        let ready = try sink.next("READY", "1")
        XCTAssertEqual(ready.pid, daemonPID)
        let client = try TestClient.connect("unix:" + path)
        XCTAssertTrue(try client.echoes("detached"))
        client.close()
        kill(daemonPID, SIGTERM)  // the daemon this test started, by its PID
        try sink.next("STOPPING", "1")
        _ = try poll("the daemon to exit") { processIsGone(daemonPID) ? true : nil }
        XCTAssertTrue(FileManager.default.fileExists(atPath: path))
    }
}
