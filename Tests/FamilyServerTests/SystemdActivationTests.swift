@testable import FamilyServer
import CShims
import Glibc
import XCTest

// Socket activation, end to end, in real child processes.
//
// sd_listen_fds only looks at descriptors 3 and up of a process whose PID is LISTEN_PID, and this
// test process already uses those numbers. So every test here starts a fresh process of this very
// test binary, running only `SystemdActivationProbe/testProbe`, with the sockets on 3, 4, … and
// the LISTEN_* variables set — either by posix_spawn through `/bin/sh -c 'LISTEN_PID=$$ exec …'`
// (the immediate launcher of reference/systemd.md, written in Swift) or by the real
// `systemd-socket-activate` (listening, --accept and --datagram). The probe adopts with
// `InheritedSockets.adopt()`, optionally serves one request through `makeServer`, and writes
// what it saw to a result file that the test reads.

/// Where the probe writes its report; set only in probe processes.
private let probeResultVariable = "FAMILYSERVER_SYSTEMD_PROBE"
/// When set to 1, the probe serves one request on its first inherited socket.
private let probeServeVariable = "FAMILYSERVER_SYSTEMD_PROBE_SERVE"
/// The XCTest selector of the probe.
private let probeSelector = "FamilyServerTests.SystemdActivationProbe/testProbe"

/// Echoes one line back.
final class SystemdLineEchoHandler: StreamRequestHandler {
    override func handle() throws {
        try wfile.write(try rfile.readline())
    }
}

/// Echoes a datagram back to its sender.
final class SystemdDatagramEchoHandler: DatagramRequestHandler {
    override func handle() throws {
        try wfile.write(try rfile.readToEnd())
    }
}

/// Speaks first and never reads (like daytime).
final class SystemdGreetingHandler: StreamRequestHandler {
    override func handle() throws {
        try wfile.write(Array("hello from the server\n".utf8))
    }
}

/// The body of every activated child. In an ordinary test run it returns at once.
final class SystemdActivationProbe: XCTestCase {
    func testProbe() throws {
        guard let resultPath = getenv(probeResultVariable).map({ String(cString: $0) }) else { return }
        let open = (3..<12).filter { fcntl($0, F_GETFD) >= 0 }.map(String.init).joined(separator: ",")
        var lines = ["pid \(getpid())", "open-before \(open)"]
        var adopted: InheritedSockets?
        do throws(SocketActivationError) {
            let sockets = try InheritedSockets.adopt()
            adopted = sockets
            lines.append("count \(sockets.count)")
            for socket in sockets { lines.append(Self.describe(socket)) }
            lines.append("names \(sockets.names.joined(separator: ","))")
            lines.append("connections \(sockets.connections.map { String($0.fileDescriptor) }.joined(separator: ","))")
        } catch {
            lines.append("error \(error)")
            lines.append("errno \(error.errno)")
            lines.append("error-fd \(error.fileDescriptor.map(String.init) ?? "none")")
        }
        lines.append(Self.environmentLine())
        do throws(SocketActivationError) {
            let again = try InheritedSockets.adopt()
            let same = adopted.map { first in
                first.count == again.count && zip(first, again).allSatisfy { $0.socket === $1.socket && $0.name == $1.name }
            } ?? false
            lines.append("second \(same ? "same" : "different") \(again.count)")
        } catch {
            lines.append("second error \(error)")
        }
        if getenv(probeServeVariable) != nil, let first = adopted?.first {
            do {
                let handler: BaseRequestHandler.Type = first.kind == .datagram ? SystemdDatagramEchoHandler.self : SystemdLineEchoHandler.self
                let made = try first.makeServer(handler: handler)
                switch made {
                case .stream: lines.append("server stream")
                case .datagram: lines.append("server datagram")
                case .connection(let server): lines.append("server connection from \(server.clientAddress)")
                }
                made.server.timeout = 30
                made.server.handleRequest()
                made.server.serverClose()
                lines.append("served")
            } catch {
                lines.append("serve-error \(error)")
            }
        }
        let text = lines.joined(separator: "\n") + "\n"
        let temporary = resultPath + ".tmp"
        let fd = Glibc.open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0)
        _ = Array(text.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        rename(temporary, resultPath)
    }

    private static func describe(_ socket: InheritedSocket) -> String {
        let cloexec = fcntl(socket.fileDescriptor, F_GETFD) & FD_CLOEXEC != 0 ? 1 : 0
        let family: String
        switch socket.family {
        case AF_INET: family = "inet"
        case AF_INET6: family = "inet6"
        case AF_UNIX: family = "unix"
        default: family = String(socket.family)
        }
        return "socket fd=\(socket.fileDescriptor) name=\(socket.name) kind=\(socket.kind) family=\(family) "
            + "transport=\(socket.transport) cloexec=\(cloexec) address=\(socket.localAddress)"
    }

    private static func environmentLine() -> String {
        let values = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"].map { name in
            "\(name)=\(getenv(name).map { String(cString: $0) } ?? "<unset>")"
        }
        return "env " + values.joined(separator: " ")
    }
}

/// What one probe reported.
struct SystemdProbeReport: CustomStringConvertible {
    let lines: [String]

    /// The lines starting with `prefix + " "`, without the prefix.
    func values(_ prefix: String) -> [String] {
        lines.filter { $0.hasPrefix(prefix + " ") }.map { String($0.dropFirst(prefix.count + 1)) }
    }

    /// The first line starting with `prefix + " "`, without the prefix.
    func value(_ prefix: String) -> String? { values(prefix).first }

    var description: String { lines.joined(separator: "\n") }
}

final class SystemdActivationTests: SystemdEnvironmentTestCase {
    // MARK: - Launching

    /// This test binary.
    private func testBinary() throws -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { throw SocketError("readlink", errno: errno, subject: "/proc/self/exe") }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Starts `argv` with exactly `environment`, `descriptors[i]` on descriptor 3+i (`nil`: closed
    /// there), stdout and stderr appended to `log`.
    private func spawn(_ argv: [String], environment: [String], descriptors: [Int32?] = [], log: String) throws -> pid_t {
        // Move the sources out of the way first: dup2 onto a number that is itself a source would
        // clobber it (and dup2(fd, fd) would leave close-on-exec set).
        let high: [Int32?] = descriptors.map { $0.map { fcntl($0, F_DUPFD_CLOEXEC, 200) } }
        defer { for fd in high { if let fd, fd >= 0 { close(fd) } } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        for (index, fd) in high.enumerated() {
            let target = Int32(3 + index)
            if let fd {
                XCTAssertGreaterThanOrEqual(fd, 200)
                posix_spawn_file_actions_adddup2(&actions, fd, target)
            } else {
                posix_spawn_file_actions_addclose(&actions, target)
            }
        }
        // Nothing else of this process leaks into the child (glibc's addclosefrom_np is not
        // visible from Swift): close every other descriptor above the passed ones.
        let passedEnd = Int32(3 + high.count)
        for fd in openDescriptors() where fd >= passedEnd && !high.contains(fd) {
            posix_spawn_file_actions_addclose(&actions, fd)
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = environment.map { strdup($0) } + [nil]
        defer { for p in cArgs + cEnv { free(p) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, argv[0], &actions, &attributes, cArgs, cEnv)
        guard status == 0 else { throw SocketError("posix_spawn", errno: status, subject: argv[0]) }
        return pid
    }

    /// The descriptors open in this process.
    private func openDescriptors() -> [Int32] {
        guard let dir = opendir("/proc/self/fd") else { return [] }
        let own = dirfd(dir)
        defer { closedir(dir) }
        var fds: [Int32] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if let fd = Int32(name), fd != own { fds.append(fd) }
        }
        return fds
    }

    /// Waits for `pid` to exit; returns its exit code, or `nil` after killing it on timeout.
    private func waitForExit(_ pid: pid_t, timeout: Double = 60) -> Int32? {
        let deadline = MonotonicClock.seconds() + timeout
        var status: Int32 = 0
        while MonotonicClock.seconds() < deadline {
            if waitpid(pid, &status, WNOHANG) == pid {
                return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            }
            usleep(10_000)
        }
        kill(pid, SIGKILL)
        waitpid(pid, &status, 0)
        return nil
    }

    /// The environment every child gets besides LISTEN_*.
    private func probeEnvironment(result: String, serve: Bool) -> [String] {
        var environment = ["PATH=/usr/bin:/bin", "\(probeResultVariable)=\(result)"]
        if serve { environment.append("\(probeServeVariable)=1") }
        // Under `make test-asan`/`test-tsan` the probe is instrumented too: it needs the same
        // sanitizer settings (report folder, suppressions) as the test process.
        for name in ["ASAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS", "SWIFT_BACKTRACE"] {
            if let value = getenv(name) { environment.append("\(name)=\(String(cString: value))") }
        }
        return environment
    }

    /// Runs the probe with `descriptors` on 3… and `environment` (LISTEN_PID is set to the
    /// probe's own PID unless `environment` sets it), and returns its report.
    private func launch(
        _ descriptors: [Int32?], environment: [String], file: StaticString = #filePath, line: UInt = #line
    ) throws -> SystemdProbeReport {
        let result = "\(directory)/result", log = "\(directory)/log"
        let setsPID = environment.contains { $0.hasPrefix("LISTEN_PID=") }
        let script = setsPID ? "exec \"$0\" \"$@\"" : "LISTEN_PID=$$; export LISTEN_PID; exec \"$0\" \"$@\""
        let pid = try spawn(
            ["/bin/sh", "-c", script, try testBinary(), probeSelector],
            environment: probeEnvironment(result: result, serve: false) + environment, descriptors: descriptors, log: log)
        let status = waitForExit(pid)
        XCTAssertEqual(status, 0, "probe exit status; its output:\n\(contents(log))", file: file, line: line)
        return try report(result, log: log)
    }

    private func report(_ path: String, log: String) throws -> SystemdProbeReport {
        let text = contents(path)
        guard !text.isEmpty else { throw SocketError("probe", errno: ENOENT, subject: "no report; output:\n\(contents(log))") }
        return SystemdProbeReport(lines: text.split(separator: "\n").map(String.init))
    }

    private func contents(_ path: String) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = read(fd, &buffer, buffer.count)
            if count <= 0 { break }
            bytes += buffer[0..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private func waitForFile(_ path: String, timeout: Double = 30) -> Bool {
        let deadline = MonotonicClock.seconds() + timeout
        while MonotonicClock.seconds() < deadline {
            if access(path, F_OK) == 0 { return true }
            usleep(10_000)
        }
        return false
    }

    /// Connects to the Unix stream socket the tool binds at `path` once it listens: the file appears at bind(2), a
    /// moment before listen(2), and a connect in between is refused (seen under the address sanitizer in CI).
    private func connectOnceListening(_ path: String, timeout: Double = 30) throws -> Socket {
        let deadline = MonotonicClock.seconds() + timeout
        while true {
            let client = try Socket(family: AF_UNIX, transport: .stream)
            do {
                try client.connect(to: SocketAddress(.stream, .unixPath(path)))
                return client
            } catch where error.errno == ECONNREFUSED && MonotonicClock.seconds() < deadline {
                client.close()
                usleep(10_000)
            } catch {
                client.close()
                throw error
            }
        }
    }

    // MARK: - Sockets to pass

    private func listener(_ address: SocketAddress) throws -> Socket {
        let socket = try Socket(family: address.family, transport: .stream)
        try socket.bind(to: address)
        try socket.listen(backlog: 8)
        return socket
    }

    private func bound(_ address: SocketAddress) throws -> Socket {
        let socket = try Socket(family: address.family, transport: .datagram)
        try socket.bind(to: address)
        return socket
    }

    private func loopback(_ transport: SocketAddress.Transport) -> SocketAddress {
        SocketAddress(transport, .inet(IPAddress(numeric: "127.0.0.1")!, port: 0))
    }

    private func socketPair() throws -> (Socket, Socket) {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw SocketError("socketpair", errno: errno)
        }
        return (try Socket(adopting: fds[0]), try Socket(adopting: fds[1]))
    }

    // MARK: - Adoption through the immediate launcher

    func testAdoptsEveryFamilyAndKindWithNames() throws {
        let tcp = try listener(loopback(.stream))
        let udp = try bound(loopback(.datagram))
        let path = "\(directory)/stream.sock"
        let unixStream = try listener(SocketAddress(.stream, .unixPath(path)))
        let abstract = abstractName("dgram")
        let unixDatagram = try bound(SocketAddress(.datagram, .unixAbstract(Array(abstract.utf8))))
        let (connection, peer) = try socketPair()
        defer { for socket in [tcp, udp, unixStream, unixDatagram, connection, peer] { socket.close() } }

        let report = try launch(
            [tcp, udp, unixStream, unixDatagram, connection].map(\.fileDescriptor),
            environment: ["LISTEN_FDS=5", "LISTEN_FDNAMES=web:web:local:abs-dgram:connection"])
        XCTAssertEqual(report.value("count"), "5", "\(report)")
        XCTAssertEqual(report.values("socket"), [
            "fd=3 name=web kind=listener family=inet transport=stream cloexec=1 address=\(try tcp.localAddress())",
            "fd=4 name=web kind=datagram family=inet transport=datagram cloexec=1 address=\(try udp.localAddress())",
            "fd=5 name=local kind=listener family=unix transport=stream cloexec=1 address=unix:\(path)",
            "fd=6 name=abs-dgram kind=datagram family=unix transport=datagram cloexec=1 address=unixgram:@\(abstract)",
            "fd=7 name=connection kind=connection family=unix transport=stream cloexec=1 address=unix:(unnamed)",
        ])
        XCTAssertEqual(report.value("names"), "web,local,abs-dgram,connection")
        XCTAssertEqual(report.value("connections"), "7")
        XCTAssertEqual(report.value("env"), "LISTEN_PID=<unset> LISTEN_FDS=<unset> LISTEN_FDNAMES=<unset>")
        XCTAssertEqual(report.value("second"), "same 5", "a second adopt() returns the same sockets, not nothing")
    }

    func testWithoutNamesEverySocketIsUnknown() throws {
        let tcp = try listener(loopback(.stream))
        let udp = try bound(loopback(.datagram))
        defer { tcp.close(); udp.close() }
        let report = try launch([tcp.fileDescriptor, udp.fileDescriptor], environment: ["LISTEN_FDS=2"])
        XCTAssertEqual(report.values("socket").map { $0.split(separator: " ")[1] }, ["name=unknown", "name=unknown"], "\(report)")
    }

    func testNoVariablesMeansNoSockets() throws {
        // The launcher sets LISTEN_PID to the probe's PID, but there is no LISTEN_FDS.
        let report = try launch([], environment: [])
        XCTAssertEqual(report.value("count"), "0", "\(report)")
        XCTAssertEqual(report.value("second"), "same 0")
    }

    func testListenPIDOfAnotherProcessMeansNoSocketsAndNoError() throws {
        let tcp = try listener(loopback(.stream))
        defer { tcp.close() }
        let report = try launch([tcp.fileDescriptor], environment: ["LISTEN_PID=1", "LISTEN_FDS=1", "LISTEN_FDNAMES=web"])
        XCTAssertEqual(report.value("count"), "0", "\(report)")
        XCTAssertNil(report.value("error"))
        XCTAssertEqual(report.value("env"), "LISTEN_PID=<unset> LISTEN_FDS=<unset> LISTEN_FDNAMES=<unset>")
    }

    func testNameCountMismatchSaysHowMany() throws {
        let sockets = try (0..<3).map { _ in try listener(loopback(.stream)) }
        defer { for socket in sockets { socket.close() } }
        let report = try launch(sockets.map(\.fileDescriptor), environment: ["LISTEN_FDS=3", "LISTEN_FDNAMES=a:b"])
        XCTAssertEqual(report.value("error"), "LISTEN_FDNAMES has 2 names for 3 descriptors (LISTEN_FDNAMES='a:b')", "\(report)")
        XCTAssertEqual(report.value("errno"), String(EINVAL))
        XCTAssertEqual(report.value("env"), "LISTEN_PID=<unset> LISTEN_FDS=<unset> LISTEN_FDNAMES=<unset>")
        XCTAssertEqual(report.value("second"), "error LISTEN_FDNAMES has 2 names for 3 descriptors (LISTEN_FDNAMES='a:b')",
                       "the second call repeats the error rather than finding nothing")
    }

    func testNonSocketDescriptorIsNamed() throws {
        let tcp = try listener(loopback(.stream))
        defer { tcp.close() }
        let file = open("\(directory)/plain-file", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        defer { close(file) }
        let report = try launch([tcp.fileDescriptor, file], environment: ["LISTEN_FDS=2", "LISTEN_FDNAMES=web:x"])
        XCTAssertEqual(report.value("error"), "fd 4: not a socket (LISTEN_FDNAMES entry 'x')", "\(report)")
        XCTAssertEqual(report.value("errno"), String(ENOTSOCK))
        XCTAssertEqual(report.value("error-fd"), "4")
        XCTAssertEqual(report.value("env"), "LISTEN_PID=<unset> LISTEN_FDS=<unset> LISTEN_FDNAMES=<unset>")
    }

    // A descriptor that is closed when the process starts cannot be tested in a child of this
    // binary: the XCTest runtime opens files before the probe runs and takes the lowest free
    // numbers (seen: 4, 5, 6, 8 …), so the slot is no longer closed. SystemdServerTests covers it
    // in-process (InheritedSocket on a closed descriptor, and the EBADF diagnosis).

    func testUnsupportedSocketTypeIsNamed() throws {
        let seqpacket = socket(AF_UNIX, cshims_sock_seqpacket | Int32(SOCK_CLOEXEC.rawValue), 0)
        XCTAssertGreaterThanOrEqual(seqpacket, 0)
        defer { close(seqpacket) }
        let report = try launch([seqpacket], environment: ["LISTEN_FDS=1", "LISTEN_FDNAMES=sp"])
        XCTAssertEqual(
            report.value("error"),
            "fd 3: SOCK_SEQPACKET sockets are not supported, only stream and datagram (LISTEN_FDNAMES entry 'sp')", "\(report)")
    }

    func testMalformedVariablesAreErrors() throws {
        let tcp = try listener(loopback(.stream))
        defer { tcp.close() }
        var report = try launch([tcp.fileDescriptor], environment: ["LISTEN_FDS=three"])
        XCTAssertEqual(report.value("error"), "LISTEN_FDS is not a positive number: 'three'", "\(report)")
        XCTAssertEqual(report.value("env"), "LISTEN_PID=<unset> LISTEN_FDS=<unset> LISTEN_FDNAMES=<unset>")
        report = try launch([tcp.fileDescriptor], environment: ["LISTEN_FDS=0"])
        XCTAssertEqual(report.value("error"), "LISTEN_FDS is not a positive number: '0'", "\(report)")
        report = try launch([tcp.fileDescriptor], environment: ["LISTEN_PID=me", "LISTEN_FDS=1"])
        XCTAssertEqual(report.value("error"), "LISTEN_PID is not a process ID: 'me'", "\(report)")
    }

    // MARK: - The real systemd-socket-activate

    private func requireSocketActivate() throws -> String {
        let tool = "/usr/bin/systemd-socket-activate"
        guard access(tool, X_OK) == 0 else { throw XCTSkip("\(tool) is not installed") }
        return tool
    }

    /// `systemd-socket-activate OPTIONS this-binary probe`, with the probe's variables passed by -E.
    private func activate(_ options: [String], serve: Bool) throws -> (pid: pid_t, result: String, log: String) {
        let tool = try requireSocketActivate()
        let result = "\(directory)/result", log = "\(directory)/log"
        let passed = probeEnvironment(result: result, serve: serve).dropFirst().flatMap { ["-E", $0] }
        let pid = try spawn([tool] + options + passed + [try testBinary(), probeSelector], environment: ["PATH=/usr/bin:/bin"], log: log)
        return (pid, result, log)
    }

    func testSystemdSocketActivateListeningStreamSocket() throws {
        let path = "\(directory)/echo.sock"
        let (pid, result, log) = try activate(["-l", path, "--fdname=echo"], serve: true)
        defer { kill(pid, SIGKILL); waitpid(pid, nil, WNOHANG) }
        XCTAssertTrue(waitForFile(path), "systemd-socket-activate did not bind \(path): \(contents(log))")
        // The tool execs the probe once this first connection arrives; it waits in the backlog.
        let client = try connectOnceListening(path)
        defer { client.close() }
        try client.setTimeouts(receive: 30, send: 30)
        try client.sendAll(Array("activated\n".utf8))
        try client.shutdown(Int32(SHUT_WR))
        XCTAssertEqual(String(decoding: try readAll(client), as: UTF8.self), "activated\n")
        XCTAssertEqual(waitForExit(pid), 0, contents(log))
        let report = try self.report(result, log: log)
        XCTAssertEqual(report.value("pid"), String(pid), "the tool execs in place")
        XCTAssertEqual(report.values("socket"), ["fd=3 name=echo kind=listener family=unix transport=stream cloexec=1 address=unix:\(path)"])
        XCTAssertEqual(report.value("env"), "LISTEN_PID=<unset> LISTEN_FDS=<unset> LISTEN_FDNAMES=<unset>")
        XCTAssertEqual(report.value("server"), "stream")
        XCTAssertTrue(report.lines.contains("served"), "\(report)")
        XCTAssertEqual(access(path, F_OK), 0, "an adopted socket's file is never removed")
    }

    func testSystemdSocketActivateAcceptConnection() throws {
        let path = "\(directory)/accept.sock"
        let (pid, result, log) = try activate(["--accept", "-l", path], serve: true)
        defer {
            kill(pid, SIGTERM)
            _ = waitForExit(pid, timeout: 10)
        }
        XCTAssertTrue(waitForFile(path), "systemd-socket-activate did not bind \(path): \(contents(log))")
        let client = try connectOnceListening(path)
        defer { client.close() }
        try client.setTimeouts(receive: 30, send: 30)
        try client.sendAll(Array("one connection\n".utf8))
        XCTAssertEqual(String(decoding: try readAll(client), as: UTF8.self), "one connection\n",
                       "served through the handler, then EOF: \(contents(log))")
        XCTAssertTrue(waitForFile(result), contents(log))
        let report = try self.report(result, log: log)
        XCTAssertEqual(report.value("count"), "1", "\(report)")
        XCTAssertEqual(report.values("socket"), ["fd=3 name=unknown kind=connection family=unix transport=stream cloexec=1 address=unix:\(path)"])
        XCTAssertEqual(report.value("connections"), "3")
        XCTAssertEqual(report.value("server"), "connection from unix:(unnamed)")
        XCTAssertTrue(report.lines.contains("served"), "\(report)")
    }

    func testSystemdSocketActivateDatagramSocket() throws {
        let path = "\(directory)/dgram.sock"
        let (pid, result, log) = try activate(["--datagram", "-l", path, "--fdname=dgram"], serve: true)
        defer { kill(pid, SIGKILL); waitpid(pid, nil, WNOHANG) }
        XCTAssertTrue(waitForFile(path), "systemd-socket-activate did not bind \(path): \(contents(log))")
        let clientAddress = SocketAddress(.datagram, .unixPath("\(directory)/client.sock"))
        let client = try bound(clientAddress)
        defer { client.close() }
        try client.setTimeouts(receive: 30, send: 30)
        // The trigger datagram stays queued for the probe, which echoes it.
        try client.sendDatagram(Array("ping".utf8), to: SocketAddress(.datagram, .unixPath(path)))
        let reply = try client.receiveDatagram(maxSize: 100)
        XCTAssertEqual(reply.map { String(decoding: $0.bytes, as: UTF8.self) }, "ping")
        XCTAssertEqual(waitForExit(pid), 0, contents(log))
        let report = try self.report(result, log: log)
        XCTAssertEqual(report.values("socket"), ["fd=3 name=dgram kind=datagram family=unix transport=datagram cloexec=1 address=unixgram:\(path)"])
        XCTAssertEqual(report.value("server"), "datagram")
        XCTAssertTrue(report.lines.contains("served"), "\(report)")
    }

    private func readAll(_ socket: Socket) throws -> [UInt8] {
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = try buffer.withUnsafeMutableBytes { try socket.receive(into: $0) }
            if count == 0 { return result }
            result += buffer[0..<count]
        }
    }
}
