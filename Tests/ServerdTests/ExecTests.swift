import FamilyServer
import Foundation
import Glibc
import XCTest

@testable import serverd

/// The exec service: the connection on the child's stdin and stdout, its stderr in serverd's log,
/// the UCSPI environment (TCP, IPv6, Unix), nothing of systemd's and no other descriptor.
final class ExecTests: XCTestCase {
    /// Prints the environment, a separator, then the child's descriptors.
    private let probe = ["/bin/sh", "-c", "env; echo ---; ls -l /proc/self/fd"]

    /// Variables that serverd itself may be handed and that its children must not see.
    private let systemdEnvironment = [
        "LISTEN_PID": "1", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "bogus",
        "NOTIFY_SOCKET": "/nonexistent/serverd-test-notify", "WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "1",
        "SERVERD_TEST_MARKER": "inherited",
    ]

    private struct ProbeOutput {
        var environment: [String: String] = [:]
        /// Descriptor number to link target.
        var descriptors: [Int: String] = [:]
    }

    private func runProbe(_ address: String) throws -> (ProbeOutput, TestClient) {
        let client = try TestClient.connect(address)
        let text = String(decoding: try client.receiveAll(), as: UTF8.self)
        var output = ProbeOutput()
        let parts = text.components(separatedBy: "---\n")
        XCTAssertEqual(parts.count, 2, text)
        for line in parts[0].split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            output.environment[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        for line in (parts.count > 1 ? parts[1] : "").split(separator: "\n") {
            let sides = line.components(separatedBy: " -> ")
            guard sides.count == 2, let fd = Int(sides[0].split(separator: " ").last ?? "") else { continue }
            output.descriptors[fd] = sides[1]
        }
        return (output, client)
    }

    /// Only 0, 1 and 2 are open (besides the directory ls itself opens to list /proc/self/fd).
    private func assertOnlyStandardDescriptors(_ output: ProbeOutput, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertTrue(output.descriptors[0]?.hasPrefix("socket:") == true, "stdin is the connection: \(output.descriptors)", file: file, line: line)
        XCTAssertTrue(output.descriptors[1]?.hasPrefix("socket:") == true, "stdout is the connection: \(output.descriptors)", file: file, line: line)
        XCTAssertEqual(output.descriptors[0], output.descriptors[1], file: file, line: line)
        XCTAssertNotNil(output.descriptors[2], file: file, line: line)
        let extra = output.descriptors.filter { fd, target in
            fd > 2 && !(target.hasPrefix("/proc/") && target.hasSuffix("/fd"))
        }
        XCTAssertEqual(extra, [:], "no other descriptor is inherited", file: file, line: line)
    }

    private func assertNoSystemdVariables(_ output: ProbeOutput, file: StaticString = #filePath, line: UInt = #line) {
        for name in output.environment.keys {
            XCTAssertFalse(name.hasPrefix("LISTEN_") || name == "NOTIFY_SOCKET" || name.hasPrefix("WATCHDOG_"), "\(name) leaked", file: file, line: line)
        }
        XCTAssertEqual(output.environment["SERVERD_TEST_MARKER"], "inherited", "serverd's environment is inherited", file: file, line: line)
    }

    func testTCPEnvironmentAndDescriptors() throws {
        let serverd = try ServerdProcess(["--listen", "exec@tcp://127.0.0.1:0", "--"] + probe, environment: systemdEnvironment)
        try serverd.waitForListening(1)
        let port = try serverd.port(0)
        let (output, client) = try runProbe(serverd.address(0))
        let local = try client.socket.localAddress()
        XCTAssertEqual(output.environment["PROTO"], "TCP")
        XCTAssertEqual(output.environment["TCPLOCALIP"], "127.0.0.1")
        XCTAssertEqual(output.environment["TCPLOCALPORT"], "\(port)")
        XCTAssertEqual(output.environment["TCPREMOTEIP"], "127.0.0.1")
        XCTAssertEqual(output.environment["TCPREMOTEPORT"], "\(local.port!)")
        XCTAssertNil(output.environment["UNIXLOCALPATH"])
        assertNoSystemdVariables(output)
        assertOnlyStandardDescriptors(output)
        try serverd.stop()
    }

    func testIPv6EnvironmentIsUnbracketed() throws {
        let serverd = try ServerdProcess(["--listen", "exec@tcp://[::1]:0", "--"] + probe, environment: systemdEnvironment)
        try serverd.waitForListening(1)
        let port = try serverd.port(0)
        let (output, client) = try runProbe(serverd.address(0))
        XCTAssertEqual(output.environment["PROTO"], "TCP")
        XCTAssertEqual(output.environment["TCPLOCALIP"], "::1")
        XCTAssertEqual(output.environment["TCPLOCALPORT"], "\(port)")
        XCTAssertEqual(output.environment["TCPREMOTEIP"], "::1")
        XCTAssertEqual(output.environment["TCPREMOTEPORT"], "\(try client.socket.localAddress().port!)")
        assertNoSystemdVariables(output)
        assertOnlyStandardDescriptors(output)
        try serverd.stop()
    }

    /// An IPv4 client of a dual-stack wildcard listener is reported as plain IPv4.
    func testIPv4ClientOfDualStackListener() throws {
        let serverd = try ServerdProcess(["--allow", "127.0.0.0/8,::1", "--listen", "exec@tcp://[::]:0", "--"] + probe)
        try serverd.waitForListening(1)
        let (output, _) = try runProbe("tcp://127.0.0.1:\(try serverd.port(0))")
        XCTAssertEqual(output.environment["TCPREMOTEIP"], "127.0.0.1")
        XCTAssertEqual(output.environment["TCPLOCALIP"], "127.0.0.1")
        try serverd.stop()
    }

    func testUnixEnvironmentAndDescriptors() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path("exec.sock")
        let serverd = try ServerdProcess(["--listen", "exec@unix:\(path)", "--"] + probe, directory: dir, environment: systemdEnvironment)
        try serverd.waitForListening(1)
        let (output, _) = try runProbe("unix:\(path)")
        XCTAssertEqual(output.environment["PROTO"], "UNIX")
        XCTAssertEqual(output.environment["UNIXLOCALPATH"], path)
        XCTAssertEqual(output.environment["UNIXREMOTEEUID"], "\(geteuid())")
        XCTAssertEqual(output.environment["UNIXREMOTEEGID"], "\(getegid())")
        XCTAssertEqual(output.environment["UNIXREMOTEPID"], "\(getpid())")
        XCTAssertNil(output.environment["TCPREMOTEIP"])
        assertNoSystemdVariables(output)
        assertOnlyStandardDescriptors(output)
        try serverd.stop()
    }

    func testAbstractUnixLocalPath() throws {
        let name = "serverd-exec-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let serverd = try ServerdProcess(["--listen", "exec@unix:@\(name)", "--"] + probe)
        try serverd.waitForListening(1)
        let (output, _) = try runProbe("unix:@\(name)")
        XCTAssertEqual(output.environment["PROTO"], "UNIX")
        XCTAssertEqual(output.environment["UNIXLOCALPATH"], "@\(name)")
        try serverd.stop()
    }

    func testConnectionIsStdinAndStdout() throws {
        let serverd = try ServerdProcess([
            "--listen", "exec@tcp://127.0.0.1:0", "--", "/bin/sh", "-c", "read line; echo \"got $line\"; cat",
        ])
        try serverd.waitForListening(1)
        let client = try TestClient.connect(serverd.address(0))
        XCTAssertEqual(try client.roundTrip("hello"), "got hello\n")
        XCTAssertTrue(try client.echoes("and cat\n"))
        try client.finishSending()
        XCTAssertEqual(try client.receiveAll(), [], "the child ends at EOF and serverd closes the connection")
        try serverd.stop()
    }

    func testChildStandardErrorGoesToTheLog() throws {
        let marker = "stderr-marker-\(UInt32.random(in: 0...UInt32.max))"
        let serverd = try ServerdProcess([
            "--listen", "exec@tcp://127.0.0.1:0", "--", "/bin/sh", "-c", "echo \(marker) >&2; echo out",
        ])
        try serverd.waitForListening(1)
        XCTAssertEqual(String(decoding: try TestClient.connect(serverd.address(0)).receiveAll(), as: UTF8.self), "out\n",
            "stderr does not go to the client")
        try serverd.waitForLog(marker)
        try serverd.stop()
    }

    /// A stderr line longer than the relay's cap is logged in pieces, each cut one saying so.
    func testOverlongStandardErrorLineIsLoggedInMarkedPieces() throws {
        let serverd = try ServerdProcess([
            "--listen", "exec@tcp://127.0.0.1:0", "--", "/bin/sh", "-c",
            "head -c 10000 /dev/zero | tr '\\0' x >&2; echo ' end of the long line' >&2; echo out",
        ])
        try serverd.waitForListening(1)
        XCTAssertEqual(String(decoding: try TestClient.connect(serverd.address(0)).receiveAll(), as: UTF8.self), "out\n")
        let log = try serverd.waitForLog("end of the long line")
        XCTAssertEqual(occurrences(of: "[cut at 4096 bytes, continued]", in: log), 2, log)
        let longest = log.split(separator: "\n").map(\.utf8.count).max() ?? 0
        XCTAssertLessThan(longest, 4096 + 200, "no log line much longer than the cap")
        let pieces = log.split(separator: "\n").filter { $0.contains("xxxx") }
        XCTAssertEqual(pieces.count, 3, log)
        // Each piece's prefix (`exec@…`) has one x of its own.
        XCTAssertEqual(pieces.reduce(0) { $0 + $1.filter { $0 == "x" }.count - 1 }, 10000, "no byte lost")
        try serverd.stop()
    }

    /// The check and the start refuse an exec listener whose program is missing (before: the start passed and every
    /// connection failed).
    func testMissingProgramIsRefusedByCheckAndStart() throws {
        let missing = "/nonexistent/serverd-test-program"
        for extra in [["--check-config"], []] {
            try assertServerdFails(
                ["--listen", "exec@tcp://127.0.0.1:0"] + extra + ["--", missing], status: 78,
                mentioning: ["exec@tcp://127.0.0.1:0", missing])
        }
        try assertServerdFails(
            ["--listen", "exec@tcp://127.0.0.1:0", "--", "serverd-test-no-such-program"], status: 78,
            mentioning: ["serverd-test-no-such-program", "PATH"])
    }

    /// A program that disappears while serverd serves: each connection's failure is logged, serving goes on.
    func testMissingProgramIsLoggedPerConnectionAndServingGoesOn() throws {
        let dir = try TemporaryDirectory()
        let missing = dir.path("program")
        XCTAssertTrue(FileManager.default.createFile(atPath: missing, contents: Data("#!/bin/sh\n".utf8), attributes: [.posixPermissions: 0o755]))
        let serverd = try ServerdProcess([
            "--listen", "exec@tcp://127.0.0.1:0", "--listen", "echo@tcp://127.0.0.1:0", "--", missing, "arg",
        ], directory: dir)
        try serverd.waitForListening(2)
        try FileManager.default.removeItem(atPath: missing)
        for attempt in 1...3 {
            let client = try TestClient.connect(serverd.address(0))
            XCTAssertTrue(client.isClosedWithoutData(), "connection \(attempt) is closed")
            try serverd.waitForLog(missing, count: attempt)
        }
        XCTAssertTrue(serverd.process.isRunning)
        XCTAssertTrue(try TestClient.connect(serverd.address(1)).echoes("alive"))
        try serverd.stop()
    }

    func testPerListenerProgramsFromConfig() throws {
        let dir = try TemporaryDirectory()
        let config = try writeConfig(dir, """
            exec = ["/bin/echo", "top-level"]

            [[listener]]
            listen = "exec@tcp://127.0.0.1:0"
            exec = ["/bin/echo", "first"]

            [[listener]]
            listen = "exec@unix:\(dir.path("second.sock"))"
            exec = ["/bin/sh", "-c", "echo second $PROTO"]

            [[listener]]
            listen = "exec@tcp://[::1]:0"
            """)
        let serverd = try ServerdProcess(["--config", config], directory: dir)
        try serverd.waitForListening(3)
        func output(_ address: String) throws -> String {
            String(decoding: try TestClient.connect(address).receiveAll(), as: UTF8.self)
        }
        XCTAssertEqual(try output(serverd.address(0)), "first\n")
        XCTAssertEqual(try output("unix:\(dir.path("second.sock"))"), "second UNIX\n")
        XCTAssertEqual(try output(serverd.address(2)), "top-level\n", "the file's top-level exec fills in")
        try serverd.stop()
    }

    func testExecOnDatagramListenerIsAConfigurationError() throws {
        let result = try ServerdProcess.run(["--listen", "exec@udp://127.0.0.1:0", "--", "/bin/cat"])
        XCTAssertEqual(result.status, 78, result.stderr)
        XCTAssertTrue(result.stderr.split(separator: "\n").last?.hasPrefix("serverd: ") == true, result.stderr)
    }

    func testConcurrentExecChildren() throws {
        let serverd = try ServerdProcess(["--listen", "exec@tcp://127.0.0.1:0", "--", "/bin/cat"])
        try serverd.waitForListening(1)
        let clients = try (0..<4).map { _ in try TestClient.connect(serverd.address(0)) }
        for (index, client) in clients.enumerated() {
            XCTAssertTrue(try client.echoes("child \(index)\n"))
        }
        for client in clients { try client.finishSending() }
        for client in clients { XCTAssertEqual(try client.receiveAll(), []) }
        _ = try serverd.waitFor { childProcesses(of: serverd.pid).isEmpty ? true : nil }
        try serverd.stop()
    }

    // MARK: - TCPLOCALHOST, TCPCONNNUM, TCPREMOTEHOST

    /// `TCPLOCALHOST` is the host name; `TCPCONNNUM` counts the listener's connections from the client's address,
    /// this one included; no `TCPREMOTEHOST` without `--resolve`.
    func testLocalHostAndConnectionNumber() throws {
        let program = ["/bin/sh", "-c", "echo \"$TCPLOCALHOST $TCPCONNNUM ${TCPREMOTEHOST-unset}\"; cat >/dev/null"]
        let serverd = try ServerdProcess(["--listen", "exec@tcp://127.0.0.1:0", "--"] + program)
        try serverd.waitForListening(1)
        var name = [CChar](repeating: 0, count: 256)
        XCTAssertEqual(gethostname(&name, 255), 0)
        let host = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let first = try TestClient.connect(serverd.address(0))
        defer { first.close() }
        XCTAssertEqual(try first.receiveLine(), "\(host) 1 unset\n")
        let second = try TestClient.connect(serverd.address(0))
        defer { second.close() }
        XCTAssertEqual(try second.receiveLine(), "\(host) 2 unset\n", "the first connection is still open")
        first.close()
        second.close()
        try serverd.stop()
    }

    /// `--resolve`: `TCPREMOTEHOST` is the client's confirmed name (127.0.0.1 is `localhost` in /etc/hosts).
    func testResolveSetsTheConfirmedRemoteHostName() throws {
        guard RemoteHostName.confirmedName(of: SocketAddress(.stream, .inet(IPAddress(bytes: [127, 0, 0, 1]), port: 0))) == "localhost"
        else { throw XCTSkip("127.0.0.1 does not look up to localhost on this host") }
        let program = ["/bin/sh", "-c", "echo \"${TCPREMOTEHOST-unset}\""]
        let serverd = try ServerdProcess(["--resolve", "--listen", "exec@tcp://127.0.0.1:0", "--"] + program)
        try serverd.waitForListening(1)
        let client = try TestClient.connect(serverd.address(0))
        defer { client.close() }
        XCTAssertEqual(String(decoding: try client.receiveAll(), as: UTF8.self), "localhost\n")
        try serverd.stop()
    }

    /// A name is kept only if it is a plain host name: nothing a program could take for more than a name.
    func testOnlyPlainHostNamesAreKept() {
        for name in ["localhost", "a-b.example.org", "_srv.example", "x1"] {
            XCTAssertTrue(RemoteHostName.isPlainHostName(name), name)
        }
        let overlong = String(repeating: "a", count: 254)
        for name in ["", "-leading", ".leading", "a b", "a;b", "a\nb", "ä.example", overlong, "$(id)"] {
            XCTAssertFalse(RemoteHostName.isPlainHostName(name), name)
        }
    }

    /// A lookup runs on a thread of its own, which the forking model does not allow.
    func testResolveIsRefusedUnderTheForkingModel() throws {
        let dir = try TemporaryDirectory()
        let result = try ServerdProcess.run(
            ["--model", "forking", "--resolve", "--listen", "exec@tcp://127.0.0.1:0", "--", "/bin/true"], directory: dir)
        XCTAssertEqual(result.status, 64, result.stderr)
        XCTAssertTrue(result.stderr.contains("resolve looks names up on a thread of its own"), result.stderr)
    }
}
