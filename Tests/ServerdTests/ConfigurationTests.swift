import FamilyServer
import Glibc
import Logging
import XCTest

@testable import serverd

/// The command line, the configuration file, their merging into the desired state, CIDR blocks, socket modes and the
/// log line format. Every test that writes files does so in its own temporary directory.
final class ConfigurationTests: XCTestCase {
    /// The test's own temporary directory, made by mkdtemp(3) and removed after the test.
    private var directory = ""
    /// The process's working directory, which the command line's relative paths are taken from.
    private var workingDirectory = ""

    override func setUpWithError() throws {
        var template = Array("/tmp/serverd-configuration-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        directory = try XCTUnwrap(made.map { String(cString: $0) }, "mkdtemp failed")
        workingDirectory = try XCTUnwrap(
            getcwd(nil, 0).map { pointer in
                defer { free(pointer) }
                return String(cString: pointer)
            })
    }

    override func tearDownWithError() throws {
        guard !directory.isEmpty, let entries = opendir(directory) else { return }
        while let entry = readdir(entries) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { bytes in
                String(decoding: bytes.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." {
                unlink("\(directory)/\(name)")
            }
        }
        closedir(entries)
        rmdir(directory)
    }

    // MARK: - Helpers

    /// Writes `text` to a file in the test's directory and returns its path.
    private func file(_ text: String, named name: String = "serverd.toml") -> String {
        let path = "\(directory)/\(name)"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        XCTAssertGreaterThanOrEqual(fd, 0, "cannot create \(path)")
        XCTAssertTrue(FileDescriptorWriter.write(text, to: fd))
        close(fd)
        return path
    }

    /// The text of a file.
    private func contents(of path: String) throws -> String {
        do {
            return String(decoding: try TextFile.read(path), as: UTF8.self)
        } catch {
            XCTFail("\(error)")
            return ""
        }
    }

    /// Parses a command line that must ask to run.
    private func invocation(_ arguments: [String]) throws -> Invocation {
        switch try parse(arguments) {
        case .run(let invocation):
            return invocation
        case .print(let text):
            XCTFail("expected options, got output: \(text)")
            throw DaemonError(.usage, "no invocation")
        }
    }

    /// Parses a command line, failing the test on a usage error.
    private func parse(_ arguments: [String]) throws -> CommandLineRequest {
        do {
            return try CommandLineParser.parse(arguments, workingDirectory: workingDirectory)
        } catch {
            XCTFail("unexpected usage error: \(error.message)")
            throw error
        }
    }

    /// The desired state of an invocation, with no implicit listener.
    private func build(_ invocation: Invocation) throws(DaemonError) -> DesiredState {
        try DesiredState.build(invocation, implicitListeners: { _ throws(DaemonError) in [] })
    }

    /// Parses a command line and builds the desired state, failing the test on any error.
    private func load(_ arguments: [String]) throws -> DesiredState {
        let invocation = try invocation(arguments)
        do {
            return try build(invocation)
        } catch {
            XCTFail("unexpected error: \(error.message)")
            throw error
        }
    }

    /// The error that parsing a command line and building its desired state ends with; fails the test if there is
    /// none.
    private func failure(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) -> DaemonError? {
        do throws(DaemonError) {
            guard case .run(let invocation) = try CommandLineParser.parse(arguments, workingDirectory: workingDirectory)
            else {
                XCTFail("expected an error, got output", file: file, line: line)
                return nil
            }
            let state = try build(invocation)
            XCTFail("expected an error, got \(state)", file: file, line: line)
            return nil
        } catch {
            return error
        }
    }

    /// Asserts that a command line fails with `status` and exactly `message`.
    private func assertFailure(
        _ arguments: [String], _ status: ExitStatus, _ message: String,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        guard let error = failure(arguments, file: file, line: line) else { return }
        XCTAssertEqual(error.status, status, error.message, file: file, line: line)
        XCTAssertEqual(error.message, message, file: file, line: line)
        XCTAssertEqual(error.errno, EINVAL, file: file, line: line)
    }

    /// Asserts that a configuration file fails to load with status 78 and exactly `message`, where `FILE` stands for
    /// the file's path and `CWD` for the working directory.
    private func assertFileFailure(
        _ text: String, _ message: String, file: StaticString = #filePath, line: UInt = #line
    ) {
        let path = self.file(text)
        let expected = message.replacing("FILE", with: path).replacing("CWD", with: workingDirectory)
        assertFailure(["--config", path], .configuration, expected, file: file, line: line)
    }

    /// The block a valid CIDR text parses to.
    private func block(_ text: String) throws -> CIDRBlock {
        do {
            return try CIDRBlock(parsing: text)
        } catch {
            XCTFail("\(text): \(error.reason)")
            throw error
        }
    }

    /// The reason a check refuses a value, or `nil` when it accepts it.
    private func reason<Value>(_ check: () throws(OptionValueError) -> Value) -> String? {
        do {
            _ = try check()
            return nil
        } catch {
            return error.reason
        }
    }

    // MARK: - Command line

    func testCommandLineReadsEveryOption() throws {
        let invocation = try invocation([
            "--listen", "echo@tcp://127.0.0.1:7", "--listen", "exec@unix:@x", "--config", "/etc/serverd.toml",
            "--check-config", "--model", "forking", "--max-connections", "5", "--max-per-source", "2",
            "--idle-timeout", "2.5", "--max-line", "80", "--drain-timeout", "0", "--allow-uid", "0,1000",
            "--allow-uid", "1001", "--allow-gid", "root", "--allow", "10.0.0.0/8,::1", "--deny", "10.1.0.0/16",
            "--socket-mode", "0660", "--daemon", "--pidfile", "/run/s.pid", "--user", "nobody", "--group", "nogroup",
            "--log-level", "debug", "--log-file", "/var/log/s.log", "--", "/bin/cat", "-u",
        ])
        let options = invocation.options
        XCTAssertEqual(invocation.listen, ["echo@tcp://127.0.0.1:7", "exec@unix:@x"])
        XCTAssertEqual(invocation.configFile, "/etc/serverd.toml")
        XCTAssertTrue(invocation.checkOnly)
        XCTAssertEqual(options["model"]?.value, .model(.forking))
        XCTAssertEqual(options["max-connections"]?.value, .integer(5))
        XCTAssertEqual(options["max-per-source"]?.value, .integer(2))
        XCTAssertEqual(options["idle-timeout"]?.value, .duration(.milliseconds(2500)))
        XCTAssertEqual(options["max-line"]?.value, .integer(80))
        XCTAssertEqual(options["drain-timeout"]?.value, .duration(.zero))
        XCTAssertEqual(options["allow-uid"]?.value, .ids([0, 1000, 1001]))
        XCTAssertEqual(options["allow-gid"]?.value, .ids([0]))
        XCTAssertEqual(options["allow"]?.value.blocks.map(\.description), ["10.0.0.0/8", "::1/128"])
        XCTAssertEqual(options["deny"]?.value.blocks.map(\.description), ["10.1.0.0/16"])
        XCTAssertEqual(options["socket-mode"]?.value, .mode(0o660))
        XCTAssertEqual(options["daemon"]?.value, .flag(true))
        XCTAssertEqual(options["pidfile"]?.value, .text("/run/s.pid"))
        XCTAssertEqual(options["user"]?.value, .text("nobody"))
        XCTAssertEqual(options["group"]?.value, .text("nogroup"))
        XCTAssertEqual(options["log-level"]?.value, .logLevel(.debug))
        XCTAssertEqual(options["log-file"]?.value, .text("/var/log/s.log"))
        XCTAssertEqual(options["exec"]?.value, .words(["/bin/cat", "-u"]))
        XCTAssertEqual(options["max-connections"]?.place, "--max-connections")
        XCTAssertEqual(options["exec"]?.place, "-- PROGRAM")
    }

    func testOptionsNotGivenStayUnset() throws {
        let invocation = try invocation([])
        XCTAssertEqual(invocation, Invocation(workingDirectory: workingDirectory))
        XCTAssertEqual(invocation.options, OptionLayer())
        XCTAssertEqual(invocation.listen, [])
        XCTAssertNil(invocation.configFile)
        XCTAssertFalse(invocation.checkOnly)
    }

    func testBuiltInDefaults() throws {
        let state = try load(["--listen", "echo@tcp://127.0.0.1:7"])
        let settings = state.settings
        XCTAssertEqual(settings.model, .threading)
        XCTAssertEqual(settings.drainTimeout, .seconds(10))
        XCTAssertFalse(settings.daemonize)
        XCTAssertNil(settings.pidfile)
        XCTAssertNil(settings.user)
        XCTAssertNil(settings.group)
        XCTAssertEqual(settings.logLevel, .info)
        XCTAssertNil(settings.logFile)
        XCTAssertEqual(state.listeners.map(\.place), ["--listen"])
        let policy = state.listeners[0].policy
        XCTAssertEqual(policy.service, .echo)
        XCTAssertEqual(policy.exec, [])
        XCTAssertEqual(policy.maxConnections, 1024)
        XCTAssertNil(policy.maxPerSource)
        XCTAssertEqual(policy.idleTimeout, .seconds(300))
        XCTAssertEqual(policy.maxLine, 65536)
        XCTAssertNil(policy.socketMode)
        XCTAssertNil(policy.allowUIDs)
        XCTAssertNil(policy.allowGIDs)
        XCTAssertNil(policy.allow)
        XCTAssertEqual(policy.deny, [])
        XCTAssertEqual(policy.requestTimeout, .seconds(60))
        XCTAssertEqual(policy.minRate, 0)
        XCTAssertEqual(policy.sourcePrefixV4, 32)
        XCTAssertEqual(policy.sourcePrefixV6, 64)
        XCTAssertEqual(policy.replyRatePerSource, 100)
        XCTAssertEqual(try load([]).listeners, [])
    }

    /// The implicit listeners are asked for with the addresses the configuration declares (none: the inherited
    /// sockets, else the built-in set, serve), and follow the configured ones.
    func testImplicitListenersFollowTheConfiguredOnes() throws {
        var asked: [[ListenAddress]] = []
        let implicit = { (declared: [ListenAddress]) throws(DaemonError) -> [String] in
            asked.append(declared)
            return ["echo@unix:@serverd-implicit"]
        }
        let bare = try DesiredState.build(try invocation([]), implicitListeners: implicit)
        XCTAssertEqual(bare.listeners.map(\.text), ["echo@unix:@serverd-implicit"])
        XCTAssertEqual(bare.listeners.map(\.place), ["implicit listener"])
        let configured = try DesiredState.build(
            try invocation(["--listen", "discard@unix:@serverd-own"]), implicitListeners: implicit)
        XCTAssertEqual(configured.listeners.map(\.text), ["discard@unix:@serverd-own", "echo@unix:@serverd-implicit"])
        XCTAssertEqual(asked.map(\.count), [0, 1])
    }

    func testHelpShowsEveryOptionWithItsDefault() throws {
        guard case .print(let help) = try parse(["--help"]) else {
            return XCTFail("--help did not ask to print")
        }
        guard case .print(let short) = try parse(["-h"]) else {
            return XCTFail("-h did not ask to print")
        }
        XCTAssertEqual(short, help)
        let options = [
            "--listen", "--config", "--check-config", "--model", "--max-connections", "--max-per-source",
            "--idle-timeout", "--max-line", "--drain-timeout", "--request-timeout", "--min-rate", "--source-prefix-v4",
            "--source-prefix-v6", "--reply-rate-per-source", "--allow-uid", "--allow-gid", "--allow ", "--deny",
            "--socket-mode", "--daemon", "--fd-store", "--pidfile", "--user", "--group", "--log-level", "--log-file", "--version",
            "--wait", "--wait-start-limit", "--max-rate ", "--max-rate-per-source", "--log-connections", "--log-format",
            "--help", "-- PROGRAM",
        ]
        for option in options {
            XCTAssertTrue(help.contains(option), "help lacks \(option)")
        }
        let flattened = help.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        for defaultText in [
            "(default: threading)", "(default: 1024)", "(default: unlimited)", "(default: 300)", "(default: 65536)",
            "(default: 10)", "(default: everyone)", "(default: info)", "(default: none)", "(default: foreground)",
            "(default: from the umask)", "(default: stderr, or syslog with --daemon)", "(default: off)",
        ] {
            XCTAssertTrue(flattened.contains(defaultText), "help lacks \(defaultText)")
        }
        XCTAssertEqual(
            flattened.ranges(of: "(default:").count, OptionTable.all.count,
            "one default for each option, the program (exec) and each key of [[listener]] alone")
    }

    /// `--version` prints the version the package is built as (debian/changelog, the man page's header), and
    /// `--generate-completion-script` the completion scripts that debian/rules installs.
    func testVersionAndCompletionScriptArePrinted() throws {
        guard case .print(let version) = try parse(["--version"]) else {
            return XCTFail("--version did not ask to print")
        }
        // Was the literal "serverd 0.1.0": now the version the package declares, whatever it is.
        XCTAssertEqual(version, "serverd \(try packagedVersion())", "--version agrees with debian/changelog")
        let request: CommandLineRequest
        do {
            request = try CommandLineParser.parse(
                ["--generate-completion-script", "bash"], workingDirectory: workingDirectory)
        } catch {
            // debian/rules runs `serverd --generate-completion-script bash|zsh|fish` to build the package.
            return XCTFail("--generate-completion-script bash: \(error.message) (exit \(error.status.rawValue))")
        }
        guard case .print(let script) = request else {
            return XCTFail("--generate-completion-script did not ask to print")
        }
        XCTAssertTrue(script.contains("complete -F _serverd serverd"))
        XCTAssertTrue(script.contains("--max-connections"))
    }

    /// The upstream version of the newest debian/changelog entry: `0.1.0` of `serverd (0.1.0-1) bookworm; …`.
    private func packagedVersion() throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let changelog = try contents(of: root.appendingPathComponent("packaging/debian/changelog").path)
        let first = try XCTUnwrap(changelog.split(separator: "\n").first)
        let open = try XCTUnwrap(first.firstIndex(of: "("))
        let close = try XCTUnwrap(first.firstIndex(of: ")"))
        let full = first[first.index(after: open)..<close]
        return String(full.prefix { $0 != "-" })
    }

    func testUsageErrorsNameTheOption() {
        assertFailure(["--frobnicate"], .usage, "unknown option '--frobnicate'")
        assertFailure(
            ["--max-conections", "5"], .usage, "unknown option '--max-conections' (did you mean --max-connections?)")
        assertFailure(["--max-connections", "abc"], .usage, "--max-connections: 'abc' is not a valid integer")
        assertFailure(
            ["--max-connections", "0"], .usage, "--max-connections: 0 is out of range (must be from 1 to 1000000)")
        assertFailure(["--max-line=-5"], .usage, "--max-line: -5 is out of range (must be from 1 to 1073741824)")
        assertFailure(["--idle-timeout", "soon"], .usage, "--idle-timeout: 'soon' is not a number of seconds")
        assertFailure(["--model", "pooled"], .usage, "--model: 'pooled' is not one of serial, threading, forking, event")
        assertFailure(
            ["--log-level", "trace"], .usage, "--log-level: 'trace' is not one of debug, info, notice, warning, error")
        assertFailure(
            ["--socket-mode", "0999"], .usage,
            "--socket-mode: '0999' is not an octal file mode from 0 to 7777 (like 0660)")
        assertFailure(
            ["--allow", "10.0.0.0/8,"], .usage,
            "--allow: '10.0.0.0/8,' has an empty entry (expected a comma-separated list)")
        assertFailure(["--allow-uid", "12x"], .usage, "--allow-uid: '12x' is not a valid uid")
        assertFailure(
            ["--allow-gid", "no-such-group-serverd"], .usage,
            "--allow-gid: 'no-such-group-serverd' is not a gid nor a known group name")
        // Was ArgumentParser's "missing value for '--model <MODEL>'": the parser of our own words it so.
        assertFailure(["--model"], .usage, "--model: missing value (MODEL)")
        assertFailure(["--daemon=yes"], .usage, "--daemon takes no value")
        // Was "unexpected argument 'extra'": now with how to write an option or a program.
        assertFailure(
            ["extra"], .usage, "unexpected argument 'extra' (options start with --; a program goes after --)")
        assertFailure(["--", ""], .usage, "-- PROGRAM: the program name is empty")
    }

    func testMalformedOrUnknownListenIsUsageError() {
        let known = "(known: echo, discard, daytime, stamp or exec)"
        assertFailure(
            ["--listen", "chargen@tcp://[::1]:19"], .usage,
            "--listen 'chargen@tcp://[::1]:19': unknown service 'chargen' \(known)")
        assertFailure(
            ["--listen", "tcp://127.0.0.1:7"], .usage,
            "--listen 'tcp://127.0.0.1:7': expected SERVICE@ADDRESS, found no '@'")
        assertFailure(["--listen", "@unix:x"], .usage, "--listen '@unix:x': the service name before '@' is empty")
        assertFailure(["--listen", "echo@"], .usage, "--listen 'echo@': the address after '@' is empty")
        // Now names the address as resolved (a relative Unix path is taken from the working directory).
        assertFailure(
            ["--listen", "echo@unix:x", "--listen", "echo@unix:x"], .usage,
            "--listen 'echo@unix:x': unix:\(workingDirectory)/x already declared by an earlier --listen")
    }

    func testAddressIsTheTextAfterTheFirstAt() throws {
        let listener = try load(["--listen", "echo@unix:@abstract@name"]).listeners[0]
        XCTAssertEqual(listener.policy.service, .echo)
        XCTAssertEqual(listener.identity.address, try ListenAddress(parsing: "unix:@abstract@name"))
        XCTAssertEqual(listener.identity.description, "unix:@abstract@name")
        XCTAssertEqual(listener.text, "echo@unix:@abstract@name")
    }

    /// New: the duplicate-address rule of the desired state.
    func testDuplicateAddressesAreRefusedExceptPortZero() throws {
        // Two port-0 declarations are allowed (each asks for a port of its own); the service and an ordinal among
        // declarations of the same service tell them apart.
        let ephemeral = try load(["--listen", "echo@tcp://127.0.0.1:0", "--listen", "discard@tcp://127.0.0.1:0"])
        XCTAssertEqual(ephemeral.listeners.map(\.identity.ordinal), [0, 0])
        let same = try load(["--listen", "echo@tcp://127.0.0.1:0", "--listen", "echo@tcp://127.0.0.1:0"])
        XCTAssertEqual(same.listeners.map(\.identity.ordinal), [0, 1])
        XCTAssertNotEqual(ephemeral.listeners[0].identity, ephemeral.listeners[1].identity)
        // A non-zero address declared twice is refused whatever the service.
        assertFailure(
            ["--listen", "echo@tcp://127.0.0.1:7000", "--listen", "discard@tcp://127.0.0.1:7000"], .usage,
            "--listen 'discard@tcp://127.0.0.1:7000': tcp://127.0.0.1:7000 already declared by an earlier --listen")
        // The same port on another transport is another address.
        XCTAssertEqual(
            try load(["--listen", "echo@tcp://127.0.0.1:7000", "--listen", "echo@udp://127.0.0.1:7000"]).listeners.count,
            2)
        // One declared in the file and again on the command line: a configuration error naming the file's place.
        let path = file("listen = [\"echo@unix:@dup\"]\n")
        assertFailure(
            ["--config", path, "--listen", "discard@unix:@dup"], .configuration,
            "--listen 'discard@unix:@dup': unix:@dup already declared at \(path):1:11")
    }

    // MARK: - Configuration file and precedence

    func testListenerTableWinsOverCommandLineWhichWinsOverFileWhichWinsOverDefault() throws {
        let path = file(
            """
            model = "forking"
            drain-timeout = 2.5
            log-level = "warning"
            max-connections = 64
            idle-timeout = 6
            max-line = 100
            allow = ["10.0.0.0/8"]
            listen = ["stamp@tcp://127.0.0.1:21568"]

            [[listener]]
            listen = "echo@tcp://127.0.0.1:7"
            max-connections = 3
            allow = ["172.16.0.0/12"]
            """)
        let invocation = try invocation([
            "--config", path, "--max-connections", "10", "--idle-timeout", "7", "--model", "serial",
            "--allow", "192.168.0.0/16",
        ])
        XCTAssertEqual(invocation.configFile, path)
        let state = try load(["--config", path, "--max-connections", "10", "--idle-timeout", "7", "--model", "serial",
            "--allow", "192.168.0.0/16"])
        XCTAssertEqual(state.settings.model, .serial, "command line over file")
        XCTAssertEqual(state.settings.drainTimeout, .milliseconds(2500), "file over default")
        XCTAssertEqual(state.settings.logLevel, .warning, "file over default")

        let top = state.listeners[0].policy
        XCTAssertEqual(top.maxConnections, 10, "command line over file")
        XCTAssertEqual(top.idleTimeout, .seconds(7), "command line over file")
        XCTAssertEqual(top.maxLine, 100, "file over default")
        XCTAssertEqual(top.allow?.map(\.description), ["192.168.0.0/16"], "command line over file")
        XCTAssertEqual(top.maxPerSource, nil, "default")

        let table = state.listeners[1].policy
        XCTAssertEqual(table.maxConnections, 3, "listener table over command line")
        XCTAssertEqual(table.allow?.map(\.description), ["172.16.0.0/12"], "listener table over command line")
        XCTAssertEqual(table.idleTimeout, .seconds(7), "command line over file")
        XCTAssertEqual(table.maxLine, 100, "file over default")

        let fileOnly = try load(["--config", path])
        XCTAssertEqual(fileOnly.settings.model, .forking, "file over default")
        XCTAssertEqual(fileOnly.listeners.map(\.policy.maxConnections), [64, 3], "listener table over file")
        XCTAssertEqual(fileOnly.listeners.map(\.policy.idleTimeout), [.seconds(6), .seconds(6)])
    }

    func testCommandLineListenAddsToTheFileListeners() throws {
        let path = file(
            """
            # serverd test configuration
            listen = [
                "stamp@tcp://127.0.0.1:21568",
                "echo@unix:/run/serverd/echo.sock",
            ]

            [[listener]]
            listen = "exec@tcp://[::]:2000"
            exec = ["/usr/bin/env"]
            """)
        let state = try load(["--config", path, "--listen", "daytime@udp://127.0.0.1:13"])
        XCTAssertEqual(
            state.listeners.map(\.text),
            [
                "stamp@tcp://127.0.0.1:21568", "echo@unix:/run/serverd/echo.sock", "exec@tcp://[::]:2000",
                "daytime@udp://127.0.0.1:13",
            ])
        // Places are now FILE:LINE:COLUMN, of each string.
        XCTAssertEqual(
            state.listeners.map(\.place), ["\(path):3:5", "\(path):4:5", "\(path):8:10", "--listen"])
    }

    func testExecProgramComesFromTableElseCommandLineElseFile() throws {
        let path = file(
            """
            exec = ["/bin/file-level"]
            listen = ["exec@unix:@top", "echo@unix:@plain"]

            [[listener]]
            listen = "exec@unix:@own"
            exec = ["/bin/own", "-x"]
            """)
        let withoutCommandLine = try load(["--config", path])
        XCTAssertEqual(withoutCommandLine.listeners.map(\.policy.exec), [["/bin/file-level"], [], ["/bin/own", "-x"]])
        let withCommandLine = try load(["--config", path, "--", "/bin/cli", "arg"])
        XCTAssertEqual(withCommandLine.listeners.map(\.policy.exec), [["/bin/cli", "arg"], [], ["/bin/own", "-x"]])
    }

    func testDaemonWideKeysAndSocketModesFromFile() throws {
        let path = file(
            """
            daemon = true
            pidfile = "/run/serverd.pid"
            user = "nobody"
            group = "nogroup"
            log-file = "/var/log/serverd.log"
            socket-mode = 660
            allow-uid = [0, "root"]
            allow-gid = [0]
            deny = ["::ffff:10.0.0.0/104"]
            max-per-source = 4

            [[listener]]
            listen = "echo@unix:a"
            socket-mode = 0o600

            [[listener]]
            listen = "echo@unix:b"
            socket-mode = "0640"

            [[listener]]
            listen = "echo@unix:c"
            socket-mode = 0x1b0

            [[listener]]
            listen = "echo@tcp://127.0.0.1:7"
            """)
        let state = try load(["--config", path])
        XCTAssertTrue(state.settings.daemonize)
        XCTAssertEqual(state.settings.pidfile, "/run/serverd.pid")
        XCTAssertEqual(state.settings.user, "nobody")
        XCTAssertEqual(state.settings.group, "nogroup")
        XCTAssertEqual(state.settings.logFile, "/var/log/serverd.log")
        XCTAssertEqual(state.listeners.map(\.policy.socketMode), [0o600, 0o640, 0o660, 0o660])
        let policy = state.listeners[0].policy
        XCTAssertEqual(policy.allowUIDs, [0, 0])
        XCTAssertEqual(policy.allowGIDs, [0])
        XCTAssertEqual(policy.deny.map(\.description), ["10.0.0.0/8"])
        XCTAssertEqual(policy.maxPerSource, 4)

        let topLevelMode = try load(
            ["--config", file("socket-mode = 660\nlisten = [\"echo@unix:d\"]", named: "d.toml")])
        XCTAssertEqual(topLevelMode.listeners[0].policy.socketMode, 0o660, "decimal digits are read as octal")
    }

    func testPathsAreMadeAbsolute() throws {
        let path = file("pidfile = \"run/serverd.pid\"\nlog-file = \"/var/log/serverd.log\"\n")
        XCTAssertEqual(try load(["--config", path]).settings.pidfile, "\(directory)/run/serverd.pid", "relative to the file")
        XCTAssertEqual(try load(["--config", path]).settings.logFile, "/var/log/serverd.log")
        let invocation = try invocation(["--config", "serverd.toml", "--pidfile", "s.pid", "--log-file", "log/s.log"])
        XCTAssertEqual(invocation.configFile, "\(workingDirectory)/serverd.toml")
        XCTAssertEqual(invocation.options["pidfile"]?.value, .text("\(workingDirectory)/s.pid"))
        XCTAssertEqual(invocation.options["log-file"]?.value, .text("\(workingDirectory)/log/s.log"))
        // Relative Unix socket paths, of the command line and of the file, are taken from the working directory.
        let socketFile = file("listen = [\"echo@unix:f.sock\"]\n", named: "sockets.toml")
        let state = try load(["--config", socketFile, "--listen", "echo@unix:c.sock"])
        XCTAssertEqual(
            state.listeners.map(\.identity.description),
            ["unix:\(workingDirectory)/f.sock", "unix:\(workingDirectory)/c.sock"])
        assertFailure(["--pidfile", ""], .usage, "--pidfile: must not be empty")
        XCTAssertEqual(DirectoryHandle.split("/serverd.toml").directory, "/")
        XCTAssertEqual(try ValueSyntax.absolutePath("x.pid", relativeTo: "/"), "/x.pid")
    }

    func testSyntaxErrorNamesFileAndLine() throws {
        let path = file("model = \"serial\"\nlisten = [\"echo@unix:x\",,]\n")
        let error = try XCTUnwrap(failure(["--config", path]))
        XCTAssertEqual(error.status, .configuration)
        // Now FILE:LINE:COLUMN: the second comma.
        XCTAssertTrue(error.message.hasPrefix("\(path):2:25: "), error.message)
        XCTAssertEqual(error.errno, EINVAL)
    }

    // Places are now FILE:LINE:COLUMN throughout.
    func testUnknownKeyIsNamedWithItsLine() {
        // Now with the key it most likely meant.
        assertFileFailure(
            "model = \"serial\"\n\nmax-conections = 5\n",
            "FILE:3:1: unknown key 'max-conections' (did you mean 'max-connections'?)")
        assertFileFailure("config = \"other.toml\"\n", "FILE:1:1: unknown key 'config'")
        assertFileFailure("check-config = true\n", "FILE:1:1: unknown key 'check-config'")
        assertFileFailure("[server]\nport = 7\n", "FILE:1:2: unknown key 'server'")
        assertFileFailure(
            "[[listener]]\nlisten = \"echo@unix:x\"\nbacklog = 5\n", "FILE:3:1: unknown key 'backlog' in [[listener]]")
        assertFileFailure(
            "[[listener]]\nlisten = \"echo@unix:x\"\nmodel = \"serial\"\n",
            "FILE:3:1: 'model' applies to the whole daemon: set it at the top level, not in [[listener]]")
    }

    func testBadValueIsNamedWithKeyAndLine() {
        assertFileFailure(
            "max-connections = 0\n", "FILE:1:1: max-connections: 0 is out of range (must be from 1 to 1000000)")
        assertFileFailure(
            "\nmax-connections = -3\n", "FILE:2:1: max-connections: -3 is out of range (must be from 1 to 1000000)")
        assertFileFailure("max-line = \"80\"\n", "FILE:1:1: max-line: must be an integer, not a string")
        assertFileFailure(
            "idle-timeout = -1\n", "FILE:1:1: idle-timeout: -1 is out of range (must be from 0 to 86400 seconds)")
        assertFileFailure("model = \"pooled\"\n", "FILE:1:1: model: 'pooled' is not one of serial, threading, forking, event")
        assertFileFailure("daemon = \"yes\"\n", "FILE:1:1: daemon: must be true or false, not a string")
        assertFileFailure(
            "socket-mode = 999\n", "FILE:1:1: socket-mode: '999' is not an octal file mode from 0 to 7777 (like 0660)")
        assertFileFailure(
            "socket-mode = 0o17777\n", "FILE:1:1: socket-mode: 0o17777 is not a file mode from 0 to 0o7777")
        assertFileFailure(
            "allow = [\"127.0.0.0/8\", \"10.0.0.0/33\"]\n",
            "FILE:1:1: allow: '10.0.0.0/33' is not a CIDR block: the prefix length must be a number from 0 to 32")
        // The example is now written as an array: [\"127.0.0.0/8\"] (was \"127.0.0.0/8\").
        assertFileFailure(
            "allow = \"127.0.0.0/8\"\n",
            "FILE:1:1: allow: must be an array of CIDR blocks like [\"127.0.0.0/8\"], not a string")
        assertFileFailure("allow-uid = [1000, 4294967295]\n", "FILE:1:1: allow-uid: 4294967295 is not a valid uid")
        assertFileFailure(
            "allow-uid = [\"no-such-user-serverd\"]\n",
            "FILE:1:1: allow-uid: 'no-such-user-serverd' is not a uid nor a known user name")
        assertFileFailure(
            "allow-gid = [true]\n",
            "FILE:1:1: allow-gid: must be an array of gids or group names, but element 1 is a boolean")
        assertFileFailure(
            "[[listener]]\nlisten = \"echo@unix:x\"\n\nmax-per-source = 0\n",
            "FILE:4:1: max-per-source: 0 is out of range (must be from 1 to 1000000)")
        assertFileFailure(
            "[listener]\nlisten = \"echo@unix:x\"\n",
            "FILE:1:2: listener: must be [[listener]] tables, not a single [listener] table or a value")
    }

    func testMalformedOrUnknownServiceInFileIsConfigurationError() {
        assertFileFailure(
            "listen = [\n  \"echo@unix:x\",\n  \"chargen@tcp://[::1]:19\",\n]\n",
            "FILE:3:3: listen 'chargen@tcp://[::1]:19': unknown service 'chargen' "
                + "(known: echo, discard, daytime, stamp or exec)")
        assertFileFailure(
            "\n[[listener]]\nlisten = \"echo\"\n", "FILE:3:10: listen 'echo': expected SERVICE@ADDRESS, found no '@'")
        assertFileFailure(
            "[[listener]]\nexec = [\"/bin/cat\"]\n", "FILE:1:1: [[listener]] needs a listen = \"SERVICE@ADDRESS\" key")
        // Now names the address as resolved (a relative Unix path is taken from the working directory).
        assertFileFailure(
            "listen = [\"echo@unix:x\"]\n[[listener]]\nlisten = \"echo@unix:x\"\n",
            "FILE:3:10: listen 'echo@unix:x': unix:CWD/x already declared at FILE:1:11")
    }

    func testExecWithoutProgramIsConfigurationError() {
        // Now names where the listener was declared (was "exec@tcp://127.0.0.1:2000: …"); still exit 78.
        assertFailure(
            ["--listen", "exec@tcp://127.0.0.1:2000"], .configuration,
            "--listen 'exec@tcp://127.0.0.1:2000': the exec service needs a program (after -- or exec = [...])")
        assertFileFailure(
            "listen = [\"exec@unix:@x\"]\n",
            "FILE:1:11: listen 'exec@unix:@x': the exec service needs a program (after -- or exec = [...])")
        // Reworded: "expected an array like [...]" (was "an array holding a program and its arguments, like [...]").
        assertFileFailure(
            "exec = []\n",
            "FILE:1:1: exec: must name a program: expected an array like [\"/usr/bin/env\"]")
        assertFileFailure(
            "[[listener]]\nlisten = \"echo@unix:x\"\nexec = [\"/bin/cat\"]\n",
            "FILE:3:1: exec: 'echo@unix:x' is no exec listener, so it runs no program")
    }

    func testUnreadableConfigFileNamesFileAndReason() {
        let missing = "\(directory)/missing.toml"
        assertFailure(["--config", missing], .configuration, "\(missing): cannot open: No such file or directory")
        assertFailure(["--config", directory], .configuration, "\(directory): cannot read: Is a directory")
    }

    func testCheckConfigAndReloadReadTheFileAgain() throws {
        let path = file("listen = [\"echo@unix:x\"]\n")
        let invocation = try invocation(["--config", path, "--check-config"])
        XCTAssertTrue(invocation.checkOnly)
        let first = try build(invocation)
        _ = file("# edited\nlisten = [\"echo@unix:x\", \"discard@unix:y\"]\n")
        let second = try build(invocation)
        XCTAssertEqual(second.listeners.map(\.text), ["echo@unix:x", "discard@unix:y"])
        // Was ListenerConfiguration.isEquivalent: a reload now keeps a listener whose identity stays.
        XCTAssertEqual(second.listeners[0].identity, first.listeners[0].identity)
        XCTAssertEqual(second.listeners[0].policy, first.listeners[0].policy)
        XCTAssertNotEqual(second.listeners[0], first.listeners[0], "the place is part of equality")
        let plan = ReloadPlan(desired: second.listeners, running: first.listeners.map(\.identity))
        XCTAssertEqual(plan.update.map(\.text), ["echo@unix:x"])
        XCTAssertEqual(plan.add.map(\.text), ["discard@unix:y"])
        XCTAssertEqual(plan.remove, [])
    }

    /// Was testListenerEquivalenceComparesTextAndSettings (ListenerConfiguration.isEquivalent): a reload now matches
    /// listeners by identity (address and socket origin) and updates the policy of a kept one in place.
    func testReloadPlanMatchesListenersByIdentity() throws {
        let base = try load(["--listen", "echo@unix:@x"]).listeners[0]
        let running = [base.identity]
        var moved = base
        moved.place = "b:3:1"
        XCTAssertEqual(ReloadPlan(desired: [moved], running: running).update, [moved])
        var changed = base
        changed.policy.maxLine = 10
        let changedPlan = ReloadPlan(desired: [changed], running: running)
        XCTAssertEqual(changedPlan.update.map(\.policy.maxLine), [10], "kept, with the new policy")
        XCTAssertEqual(changedPlan.add, [])
        XCTAssertEqual(changedPlan.remove, [])
        // Deliberate change: another service on the same address keeps the socket (was: a different listener).
        let otherService = try load(["--listen", "discard@unix:@x"]).listeners[0]
        let otherPlan = ReloadPlan(desired: [otherService], running: running)
        XCTAssertEqual(otherPlan.update.map(\.policy.service), [.discard])
        XCTAssertEqual(otherPlan.add, [])
        XCTAssertEqual(otherPlan.remove, [])
        let elsewhere = try load(["--listen", "echo@unix:@y"]).listeners[0]
        let movedPlan = ReloadPlan(desired: [elsewhere], running: running)
        XCTAssertEqual(movedPlan.add, [elsewhere])
        XCTAssertEqual(movedPlan.remove, running)
        XCTAssertEqual(movedPlan.update, [])
    }

    /// New: the access rules of the desired state (empty lists, rules that cannot apply).
    func testEmptyAllowListsAndRulesThatCannotApplyAreRefused() throws {
        assertFileFailure(
            "allow = []\nlisten = [\"echo@tcp://127.0.0.1:0\"]\n",
            "FILE:1:1: allow: an empty list would serve no source; list the blocks to serve, or leave allow out to "
                + "serve every source not denied")
        assertFileFailure(
            "[[listener]]\nlisten = \"echo@unix:@e\"\nallow-uid = []\n",
            "FILE:3:1: allow-uid: an empty list would serve no peer; list the uids to serve, or leave allow-uid out to "
                + "serve every peer")
        // An empty allow-uid beside a non-empty allow-gid is fine.
        let path = file("[[listener]]\nlisten = \"echo@unix:@g\"\nallow-uid = []\nallow-gid = [0]\n", named: "g.toml")
        XCTAssertEqual(try load(["--config", path]).listeners[0].policy.allowGIDs, [0])
        // A listener's own rule must fit it.
        assertFileFailure(
            "[[listener]]\nlisten = \"echo@tcp://127.0.0.1:0\"\nallow-uid = [0]\n",
            "FILE:3:1: allow-uid: applies only to Unix listeners (unix:, unixgram:), and 'echo@tcp://127.0.0.1:0' is "
                + "an inet socket")
        // A rule of the top level or the command line applies where it fits, and must fit some listener.
        let mixed = try load(["--listen", "echo@unix:@m", "--listen", "echo@tcp://127.0.0.1:0", "--allow", "::1"])
        XCTAssertEqual(mixed.listeners.count, 2)
        assertFailure(
            ["--listen", "echo@unix:@m", "--allow", "::1"], .usage,
            "--allow: applies only to inet listeners (tcp://, udp://), and 'echo@unix:@m' is a Unix socket")
        assertFileFailure(
            "deny = [\"10.0.0.0/8\"]\nlisten = [\"echo@unix:@m\"]\n",
            "FILE:1:1: deny: applies only to inet listeners (tcp://, udp://), and 'echo@unix:@m' is a Unix socket")
    }

    /// New: `ListenerPrecheck`, the dry run of binding shared by `--check-config`, start and reload.
    func testPrecheckFindsWhatBindingWouldRefuse() throws {
        func precheck(_ arguments: [String]) throws -> DaemonError? {
            let state = try load(arguments)
            do throws(DaemonError) {
                try ListenerPrecheck.check(state, inherited: InheritedSocketPool.adopt())
                return nil
            } catch {
                return error
            }
        }
        XCTAssertNil(try precheck(["--listen", "echo@tcp://127.0.0.1:0", "--listen", "echo@tcp://127.0.0.1:0"]))
        let overlap = try XCTUnwrap(
            try precheck(["--listen", "echo@tcp://0.0.0.0:7001", "--listen", "echo@tcp://127.0.0.1:7001"]))
        XCTAssertEqual(overlap.status, .unavailable, overlap.message)
        XCTAssertTrue(overlap.message.contains("would bind the same port"), overlap.message)
        let datagramExec = try XCTUnwrap(try precheck(["--listen", "exec@udp://127.0.0.1:0", "--", "/bin/cat"]))
        XCTAssertEqual(datagramExec.status, .configuration, datagramExec.message)
        XCTAssertEqual(
            datagramExec.message, "--listen 'exec@udp://127.0.0.1:0': exec on a datagram socket needs wait mode (wait = true, or --wait)")
        let noDirectory = try XCTUnwrap(try precheck(["--listen", "echo@unix:\(directory)/missing/s.sock"]))
        XCTAssertEqual(noDirectory.status, .osError, noDirectory.message)
        let noProgram = try XCTUnwrap(
            try precheck(["--listen", "exec@tcp://127.0.0.1:0", "--", "\(directory)/no-such-program"]))
        XCTAssertEqual(noProgram.status, .configuration, noProgram.message)
    }

    /// Was testKeyLocatorSkipsMultilineStringsAndFindsListenerTables (TOMLKeyLocator is gone): the parser reports the
    /// places itself; a key inside a multi-line string is no key, a quoted key is its key, and each `[[listener]]`
    /// table's keys and header have their own places.
    func testPlacesSkipMultilineStringsAndFindListenerTables() throws {
        let text = """
            log-file = \"\"\"
            max-line = 5
            \"\"\"
            'max-line' = 7   # quoted key
            [[listener]]
              listen = "echo@unix:@x"
            [[listener]]
            socket-mode = 0o600
            """
        let path = "\(directory)/located.toml"
        do {
            _ = try ConfigFile(path: path, bytes: Array(text.utf8))
            XCTFail("a [[listener]] without listen is refused")
        } catch {
            XCTAssertEqual(error.message, "\(path):7:1: [[listener]] needs a listen = \"SERVICE@ADDRESS\" key")
        }
        let complete = try ConfigFile(path: path, bytes: Array((text + "\nlisten = \"echo@unix:@y\"\n").utf8))
        XCTAssertEqual(complete.topLevel["max-line"], OptionLayer.Entry(value: .integer(7), place: "\(path):4:1"))
        XCTAssertEqual(complete.topLevel["log-file"]?.value, .text("\(directory)/max-line = 5\n"))
        XCTAssertEqual(complete.listeners.map(\.place), ["\(path):6:12", "\(path):9:10"])
        XCTAssertNil(complete.listeners[0].options["socket-mode"])
        XCTAssertEqual(
            complete.listeners[1].options["socket-mode"], OptionLayer.Entry(value: .mode(0o600), place: "\(path):8:1"))
    }

    // MARK: - Values

    func testCIDRBlocksParseToCanonicalForms() throws {
        XCTAssertEqual(try block("10.0.0.0/8").description, "10.0.0.0/8")
        XCTAssertEqual(try block("192.168.1.7/24").description, "192.168.1.0/24")
        XCTAssertEqual(try block("192.168.1.7").description, "192.168.1.7/32")
        XCTAssertEqual(try block("::1").description, "::1/128")
        XCTAssertEqual(try block("2001:DB8:0:0::1/32").description, "2001:db8::/32")
        XCTAssertEqual(try block("0.0.0.0/0").description, "0.0.0.0/0")
        XCTAssertEqual(try block("::ffff:10.1.2.3").description, "10.1.2.3/32")
        XCTAssertEqual(try block("10.0.0.0/8").network, [10, 0, 0, 0])
        XCTAssertEqual(try block("10.0.0.0/8").prefixLength, 8)
        let malformed = [
            "", "/8", "10.0.0/8", "10.0.0.0/", "10.0.0.0/x", "10.0.0.0/+8", "10.0.0.0/33", "::1/129", "fe80::1%eth0",
            "host",
        ]
        for bad in malformed {
            XCTAssertNotNil(reason { () throws(OptionValueError) in try CIDRBlock(parsing: bad) }, "'\(bad)' accepted")
        }
        XCTAssertEqual(
            reason { () throws(OptionValueError) in try CIDRBlock(parsing: "300.1.2.3/8") },
            "'300.1.2.3/8' is not a CIDR block: '300.1.2.3' is not an IPv4 or IPv6 address")
    }

    func testCIDRBlockContainsAddressesIncludingIPv4Mapped() throws {
        let ten = try block("10.0.0.0/8")
        XCTAssertTrue(ten.contains([10, 200, 3, 4]))
        XCTAssertFalse(ten.contains([11, 0, 0, 1]))
        let mapped: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 9, 8, 7]
        XCTAssertTrue(ten.contains(mapped), "an IPv4-mapped client matches an IPv4 block")
        XCTAssertTrue(try block("::/0").contains(mapped), "an IPv6 block holds the mapped form of an IPv4 client")
        let loopback6: [UInt8] = Array(repeating: 0, count: 15) + [1]
        XCTAssertTrue(try block("::1").contains(loopback6))
        XCTAssertFalse(try block("::1").contains([127, 0, 0, 1]), "::1 is not the mapped form of 127.0.0.1")
        XCTAssertFalse(ten.contains(loopback6))
        XCTAssertTrue(try block("0.0.0.0/0").contains([203, 0, 113, 9]))
        XCTAssertTrue(try block("192.168.1.128/25").contains([192, 168, 1, 200]))
        XCTAssertFalse(try block("192.168.1.128/25").contains([192, 168, 1, 127]))
        XCTAssertTrue(
            try block("2001:db8::/33").contains([0x20, 0x01, 0x0d, 0xb8, 0x7f] + Array(repeating: 0, count: 11)))
        XCTAssertFalse(
            try block("2001:db8::/33").contains([0x20, 0x01, 0x0d, 0xb8, 0x80] + Array(repeating: 0, count: 11)))
    }

    func testAdmissionRules() throws {
        var settings = ListenerPolicy(service: .echo, values: [:])
        XCTAssertTrue(settings.admits(address: [8, 8, 8, 8]), "no rules: everyone")
        XCTAssertTrue(settings.admits(uid: 1234, gid: 1234), "no rules: everyone")
        settings.allow = [try block("10.0.0.0/8")]
        settings.deny = [try block("10.1.0.0/16")]
        XCTAssertTrue(settings.admits(address: [10, 2, 0, 1]))
        XCTAssertFalse(settings.admits(address: [10, 1, 0, 1]), "deny wins over allow")
        XCTAssertFalse(settings.admits(address: [8, 8, 8, 8]), "not allowed")
        settings.allowUIDs = [1000]
        XCTAssertTrue(settings.admits(uid: 1000, gid: 5))
        XCTAssertFalse(settings.admits(uid: 1001, gid: 5))
        settings.allowGIDs = [5]
        XCTAssertTrue(settings.admits(uid: 1001, gid: 5), "a listed gid is enough")
    }

    func testSocketModeParsing() {
        XCTAssertEqual(try ValueSyntax.socketMode("0660"), 0o660)
        XCTAssertEqual(try ValueSyntax.socketMode("660"), 0o660)
        XCTAssertEqual(try ValueSyntax.socketMode("0o600"), 0o600)
        XCTAssertEqual(try ValueSyntax.socketMode("7777"), 0o7777)
        XCTAssertEqual(try ValueSyntax.socketMode("0"), 0)
        XCTAssertEqual(try ValueSyntax.socketMode(660, writtenInDecimal: true), 0o660)
        XCTAssertEqual(try ValueSyntax.socketMode(0o660, writtenInDecimal: false), 0o660)
        for bad in ["", "0o", "8", "0999", "17777", "-660", "rw-rw----", "0x1b0"] {
            XCTAssertNotNil(
                reason { () throws(OptionValueError) in try ValueSyntax.socketMode(bad) }, "'\(bad)' accepted")
        }
        XCTAssertNotNil(
            reason { () throws(OptionValueError) in try ValueSyntax.socketMode(0o17777, writtenInDecimal: false) })
        XCTAssertNotNil(
            reason { () throws(OptionValueError) in try ValueSyntax.socketMode(-1, writtenInDecimal: false) })
    }

    func testAccountIDs() {
        XCTAssertEqual(try AccountID.resolveList("0,1000,root", kind: .user), [0, 1000, 0])
        XCTAssertEqual(try AccountID.resolve("root", kind: .group), 0)
        XCTAssertEqual(
            reason { () throws(OptionValueError) in try AccountID.resolve("no-such-user-serverd", kind: .user) },
            "'no-such-user-serverd' is not a uid nor a known user name")
        XCTAssertEqual(
            reason { () throws(OptionValueError) in try AccountID.resolve("4294967295", kind: .group) },
            "'4294967295' is not a valid gid")
    }

    func testSecondsAcceptDecimalsWithinRange() {
        // Seconds are now a Duration (were a Double).
        XCTAssertEqual(try ValueSyntax.duration("0.25"), .milliseconds(250))
        XCTAssertEqual(try ValueSyntax.duration("0"), .zero)
        XCTAssertEqual(try ValueSyntax.duration("86400"), .seconds(86400))
        XCTAssertEqual(
            reason { () throws(OptionValueError) in try ValueSyntax.duration("86400.5") },
            "86400.5 is out of range (must be from 0 to 86400 seconds)")
        XCTAssertNotNil(reason { () throws(OptionValueError) in try ValueSyntax.duration("inf") })
        XCTAssertNotNil(reason { () throws(OptionValueError) in try ValueSyntax.duration("nan") })
        XCTAssertNotNil(reason { () throws(OptionValueError) in try ValueSyntax.duration("-0.5") })
        XCTAssertEqual(try ValueSyntax.duration(2.5).seconds, 2.5)
    }

    // MARK: - Logging

    func testLogLinesArePrefixedPerLineWithMetadataLast() {
        XCTAssertEqual(
            ServerdLogHandler.lines(message: "listening on echo@unix:x", metadata: [:]), ["listening on echo@unix:x"])
        XCTAssertEqual(
            ServerdLogHandler.lines(message: "child said\nserverd: boom\n", metadata: ["pid": "7", "fd": "3"]),
            ["child said", "serverd: boom fd=3 pid=7"])
    }

    func testFileLogSinkAppendsPrefixedLines() throws {
        let path = "\(directory)/serverd.log"
        let sink: FileLogSink
        do {
            sink = try FileLogSink(path: path)
        } catch {
            return XCTFail(error.message)
        }
        defer { close(sink.descriptor) }
        let control = LogLevelControl(.notice)
        let logger = Logger(label: "test") { _ in ServerdLogHandler(sink: sink, levelControl: control) }
        logger.info("hidden at notice")
        logger.notice("listening on echo@tcp://127.0.0.1:5000", metadata: ["fd": "3"])
        control.set(.debug)
        logger.debug("serverd: not a fatal line\nsecond")
        let lines = try contents(of: path).split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 3, "\(lines)")
        XCTAssertTrue(
            lines[0].hasSuffix(" [\(getpid())] notice: listening on echo@tcp://127.0.0.1:5000 fd=3"), lines[0])
        XCTAssertTrue(lines[1].hasSuffix("debug: serverd: not a fatal line"), lines[1])
        XCTAssertTrue(lines[2].hasSuffix("debug: second"), lines[2])
        XCTAssertFalse(lines.contains(where: { $0.hasPrefix("serverd: ") }))
    }

    func testJournalStreamMustMatchTheDescriptor() throws {
        let path = file("", named: "stream")
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        defer { close(fd) }
        var status = stat()
        XCTAssertEqual(fstat(fd, &status), 0)
        XCTAssertTrue(StandardErrorLogSink.isJournalStream("\(status.st_dev):\(status.st_ino)", descriptor: fd))
        XCTAssertFalse(StandardErrorLogSink.isJournalStream("\(status.st_dev):\(status.st_ino + 1)", descriptor: fd))
        XCTAssertFalse(StandardErrorLogSink.isJournalStream("garbage", descriptor: fd))
        XCTAssertFalse(StandardErrorLogSink.isJournalStream(nil, descriptor: fd))
    }

    func testLogPrioritiesAndDestination() throws {
        XCTAssertEqual(
            [Logger.Level.debug, .info, .notice, .warning, .error, .critical].map(LogPriority.of), [7, 6, 5, 4, 3, 2])
        // LogDestination now comes from DaemonSettings.logDestination.
        XCTAssertEqual(try load([]).settings.logDestination, .standardError)
        XCTAssertEqual(try load(["--daemon"]).settings.logDestination, .syslog)
        XCTAssertEqual(
            try load(["--daemon", "--log-file", "/var/log/serverd.log"]).settings.logDestination,
            .file("/var/log/serverd.log"))
        XCTAssertEqual(
            try load(["--log-file", "/var/log/serverd.log"]).settings.logDestination, .file("/var/log/serverd.log"))
        XCTAssertEqual(LogLevelName.allCases.map(\.loggerLevel), [.debug, .info, .notice, .warning, .error])
    }
}
