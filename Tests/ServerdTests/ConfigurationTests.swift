import Glibc
import Logging
import XCTest

@testable import serverd

/// The command line, the configuration file, their merging, CIDR blocks, socket modes and the log line format.
/// Every test that writes files does so in its own temporary directory.
final class ConfigurationTests: XCTestCase {
    /// The test's own temporary directory, made by mkdtemp(3) and removed after the test.
    private var directory = ""

    override func setUpWithError() throws {
        var template = Array("/tmp/serverd-configuration-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        directory = try XCTUnwrap(made.map { String(cString: $0) }, "mkdtemp failed")
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
            return try TextFile.read(path)
        } catch {
            XCTFail("\(error)")
            return ""
        }
    }

    /// Parses a command line that must ask to run.
    private func command(_ arguments: [String]) throws -> ServerdCommand {
        switch try parse(arguments) {
        case .run(let command):
            return command
        case .print(let text):
            XCTFail("expected options, got output: \(text)")
            throw DaemonError(.usage, "no command")
        }
    }

    /// Parses a command line, failing the test on a usage error.
    private func parse(_ arguments: [String]) throws -> CommandLineRequest {
        do {
            return try ServerdCommand.parseCommandLine(arguments)
        } catch {
            XCTFail("unexpected usage error: \(error.message)")
            throw error
        }
    }

    /// Parses a command line and loads the configuration, failing the test on any error.
    private func load(_ arguments: [String]) throws -> DaemonConfiguration {
        let command = try command(arguments)
        do {
            return try DaemonConfiguration.load(from: command)
        } catch {
            XCTFail("unexpected error: \(error.message)")
            throw error
        }
    }

    /// The error that parsing and loading a command line ends with; fails the test if there is none.
    private func failure(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) -> DaemonError? {
        do {
            guard case .run(let command) = try ServerdCommand.parseCommandLine(arguments) else {
                XCTFail("expected an error, got output", file: file, line: line)
                return nil
            }
            let configuration = try DaemonConfiguration.load(from: command)
            XCTFail("expected an error, got \(configuration)", file: file, line: line)
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
    /// the file's path.
    private func assertFileFailure(
        _ text: String, _ message: String, file: StaticString = #filePath, line: UInt = #line
    ) {
        let path = self.file(text)
        let expected = message.replacing("FILE", with: path)
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
        let command = try command([
            "--listen", "echo@tcp://127.0.0.1:7", "--listen", "exec@unix:@x", "--config", "/etc/serverd.toml",
            "--check-config", "--model", "forking", "--max-connections", "5", "--max-per-source", "2",
            "--idle-timeout", "2.5", "--max-line", "80", "--drain-timeout", "0", "--allow-uid", "0,1000",
            "--allow-uid", "1001", "--allow-gid", "root", "--allow", "10.0.0.0/8,::1", "--deny", "10.1.0.0/16",
            "--socket-mode", "0660", "--daemon", "--pidfile", "/run/s.pid", "--user", "nobody", "--group", "nogroup",
            "--log-level", "debug", "--log-file", "/var/log/s.log", "--", "/bin/cat", "-u",
        ])
        XCTAssertEqual(command.listen.map(\.text), ["echo@tcp://127.0.0.1:7", "exec@unix:@x"])
        XCTAssertEqual(command.config, "/etc/serverd.toml")
        XCTAssertTrue(command.checkConfig)
        XCTAssertEqual(command.model, .forking)
        XCTAssertEqual(command.maxConnections, 5)
        XCTAssertEqual(command.maxPerSource, 2)
        XCTAssertEqual(command.idleTimeout, 2.5)
        XCTAssertEqual(command.maxLine, 80)
        XCTAssertEqual(command.drainTimeout, 0)
        XCTAssertEqual(command.listenerOverrides.allowUIDs, [0, 1000, 1001])
        XCTAssertEqual(command.listenerOverrides.allowGIDs, [0])
        XCTAssertEqual(command.listenerOverrides.allow?.map(\.description), ["10.0.0.0/8", "::1/128"])
        XCTAssertEqual(command.listenerOverrides.deny?.map(\.description), ["10.1.0.0/16"])
        XCTAssertEqual(command.socketMode, 0o660)
        XCTAssertTrue(command.daemon)
        XCTAssertEqual(command.pidfile, "/run/s.pid")
        XCTAssertEqual(command.user, "nobody")
        XCTAssertEqual(command.group, "nogroup")
        XCTAssertEqual(command.logLevel, .debug)
        XCTAssertEqual(command.logFile, "/var/log/s.log")
        XCTAssertEqual(command.program, ["/bin/cat", "-u"])
    }

    func testOptionsNotGivenStayUnset() throws {
        let command = try command([])
        XCTAssertEqual(command.listenerOverrides, ListenerOverrides())
        XCTAssertEqual(command.daemonOverrides, DaemonOverrides())
        XCTAssertNil(command.config)
        XCTAssertFalse(command.checkConfig)
    }

    func testBuiltInDefaults() throws {
        let configuration = try load(["--listen", "echo@tcp://127.0.0.1:7"])
        XCTAssertEqual(configuration.model, .threading)
        XCTAssertEqual(configuration.drainTimeout, 10)
        XCTAssertFalse(configuration.daemonize)
        XCTAssertNil(configuration.pidfile)
        XCTAssertEqual(configuration.logLevel, .info)
        XCTAssertNil(configuration.logFile)
        XCTAssertEqual(configuration.listeners.map(\.origin), ["--listen"])
        let settings = configuration.listeners[0].settings
        XCTAssertEqual(settings.maxConnections, 1024)
        XCTAssertNil(settings.maxPerSource)
        XCTAssertEqual(settings.idleTimeout, 300)
        XCTAssertEqual(settings.maxLine, 65536)
        XCTAssertNil(settings.socketMode)
        XCTAssertNil(settings.allowUIDs)
        XCTAssertNil(settings.allow)
        XCTAssertEqual(settings.requestTimeout, 60)
        XCTAssertEqual(settings.minRate, 0)
        XCTAssertEqual(settings.sourcePrefixV4, 32)
        XCTAssertEqual(settings.sourcePrefixV6, 64)
        XCTAssertEqual(settings.replyRatePerSource, 100)
        XCTAssertEqual(try load([]).listeners, [])
    }

    func testHelpShowsEveryOptionWithItsDefault() throws {
        guard case .print(let help) = try parse(["--help"]) else {
            return XCTFail("--help did not ask to print")
        }
        let options = [
            "--listen", "--config", "--check-config", "--model", "--max-connections", "--max-per-source",
            "--idle-timeout", "--max-line", "--drain-timeout", "--request-timeout", "--min-rate", "--source-prefix-v4",
            "--source-prefix-v6", "--reply-rate-per-source", "--allow-uid", "--allow-gid", "--allow ", "--deny",
            "--socket-mode", "--daemon", "--pidfile", "--user", "--group", "--log-level", "--log-file", "--version",
            "--help",
        ]
        for option in options {
            XCTAssertTrue(help.contains(option), "help lacks \(option)")
        }
        let flattened = help.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        for defaultText in [
            "(default: threading)", "(default: 1024)", "(default: unlimited)", "(default: 300)", "(default: 65536)",
            "(default: 10)", "(default: everyone)", "(default: info)", "(default: none)", "(default: foreground)",
            "(default: from the umask)", "(default: stderr, or syslog with --daemon)",
        ] {
            XCTAssertTrue(flattened.contains(defaultText), "help lacks \(defaultText)")
        }
        XCTAssertEqual(
            flattened.ranges(of: "(default:").count, 26, "one default for each of 25 options and the program")
    }

    func testVersionAndCompletionScriptArePrinted() throws {
        guard case .print(let version) = try parse(["--version"]) else {
            return XCTFail("--version did not ask to print")
        }
        XCTAssertEqual(version, "serverd 0.1.0")
        guard case .print(let script) = try parse(["--generate-completion-script", "bash"]) else {
            return XCTFail("--generate-completion-script did not ask to print")
        }
        XCTAssertTrue(script.hasPrefix("#!/bin/bash"))
        XCTAssertTrue(script.contains("--max-connections"))
    }

    func testUsageErrorsNameTheOption() {
        assertFailure(["--frobnicate"], .usage, "unknown option '--frobnicate'")
        assertFailure(["--max-connections", "abc"], .usage, "--max-connections: 'abc' is not a valid integer")
        assertFailure(
            ["--max-connections", "0"], .usage, "--max-connections: 0 is out of range (must be from 1 to 1000000)")
        assertFailure(["--max-line=-5"], .usage, "--max-line: -5 is out of range (must be from 1 to 1073741824)")
        assertFailure(["--idle-timeout", "soon"], .usage, "--idle-timeout: 'soon' is not a number of seconds")
        assertFailure(["--model", "pooled"], .usage, "--model: 'pooled' is not one of serial, threading, forking")
        assertFailure(
            ["--log-level", "trace"], .usage, "--log-level: 'trace' is not one of debug, info, notice, warning, error")
        assertFailure(
            ["--socket-mode", "0999"], .usage,
            "--socket-mode: '0999' is not an octal file mode from 0 to 7777 (like 0660)")
        assertFailure(
            ["--allow", "10.0.0.0/8,"], .usage,
            "--allow: '10.0.0.0/8,' has an empty entry (expected a comma-separated list)")
        assertFailure(["--allow-uid", "12x"], .usage, "--allow-uid: '12x' is not a valid uid")
        assertFailure(["--model"], .usage, "missing value for '--model <MODEL>'")
        assertFailure(["extra"], .usage, "unexpected argument 'extra'")
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
        assertFailure(
            ["--listen", "echo@unix:x", "--listen", "echo@unix:x"], .usage,
            "--listen 'echo@unix:x': already declared by an earlier --listen")
    }

    func testAddressIsTheTextAfterTheFirstAt() throws {
        let listener = try load(["--listen", "echo@unix:@abstract@name"]).listeners[0]
        XCTAssertEqual(listener.service, .echo)
        XCTAssertEqual(listener.address, "unix:@abstract@name")
        XCTAssertEqual(listener.text, "echo@unix:@abstract@name")
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
        let configuration = try load([
            "--config", path, "--max-connections", "10", "--idle-timeout", "7", "--model", "serial",
            "--allow", "192.168.0.0/16",
        ])
        XCTAssertEqual(configuration.model, .serial, "command line over file")
        XCTAssertEqual(configuration.drainTimeout, 2.5, "file over default")
        XCTAssertEqual(configuration.logLevel, .warning, "file over default")
        XCTAssertEqual(configuration.configFile, path)

        let top = configuration.listeners[0].settings
        XCTAssertEqual(top.maxConnections, 10, "command line over file")
        XCTAssertEqual(top.idleTimeout, 7, "command line over file")
        XCTAssertEqual(top.maxLine, 100, "file over default")
        XCTAssertEqual(top.allow?.map(\.description), ["192.168.0.0/16"], "command line over file")
        XCTAssertEqual(top.maxPerSource, nil, "default")

        let table = configuration.listeners[1].settings
        XCTAssertEqual(table.maxConnections, 3, "listener table over command line")
        XCTAssertEqual(table.allow?.map(\.description), ["172.16.0.0/12"], "listener table over command line")
        XCTAssertEqual(table.idleTimeout, 7, "command line over file")
        XCTAssertEqual(table.maxLine, 100, "file over default")
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
        let configuration = try load(["--config", path, "--listen", "daytime@udp://127.0.0.1:13"])
        XCTAssertEqual(
            configuration.listeners.map(\.text),
            [
                "stamp@tcp://127.0.0.1:21568", "echo@unix:/run/serverd/echo.sock", "exec@tcp://[::]:2000",
                "daytime@udp://127.0.0.1:13",
            ])
        XCTAssertEqual(configuration.listeners.map(\.origin), ["\(path):3", "\(path):4", "\(path):8", "--listen"])
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
        XCTAssertEqual(withoutCommandLine.listeners.map(\.settings.exec), [["/bin/file-level"], [], ["/bin/own", "-x"]])
        let withCommandLine = try load(["--config", path, "--", "/bin/cli", "arg"])
        XCTAssertEqual(withCommandLine.listeners.map(\.settings.exec), [["/bin/cli", "arg"], [], ["/bin/own", "-x"]])
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
        let configuration = try load(["--config", path])
        XCTAssertTrue(configuration.daemonize)
        XCTAssertEqual(configuration.pidfile, "/run/serverd.pid")
        XCTAssertEqual(configuration.user, "nobody")
        XCTAssertEqual(configuration.group, "nogroup")
        XCTAssertEqual(configuration.logFile, "/var/log/serverd.log")
        XCTAssertEqual(configuration.listeners.map(\.settings.socketMode), [0o600, 0o640, 0o660, 0o660])
        let settings = configuration.listeners[0].settings
        XCTAssertEqual(settings.allowUIDs, [0, 0])
        XCTAssertEqual(settings.allowGIDs, [0])
        XCTAssertEqual(settings.deny.map(\.description), ["10.0.0.0/8"])
        XCTAssertEqual(settings.maxPerSource, 4)

        let topLevelMode = try load(
            ["--config", file("socket-mode = 660\nlisten = [\"echo@unix:d\"]", named: "d.toml")])
        XCTAssertEqual(topLevelMode.listeners[0].settings.socketMode, 0o660, "decimal digits are read as octal")
    }

    func testPathsAreMadeAbsolute() throws {
        let workingDirectory = try XCTUnwrap(getcwd(nil, 0).map { pointer in
            defer { free(pointer) }
            return String(cString: pointer)
        })
        let path = file("pidfile = \"run/serverd.pid\"\nlog-file = \"/var/log/serverd.log\"\n")
        XCTAssertEqual(try load(["--config", path]).pidfile, "\(directory)/run/serverd.pid", "relative to the file")
        XCTAssertEqual(try load(["--config", path]).logFile, "/var/log/serverd.log")
        let command = try command(["--config", "serverd.toml", "--pidfile", "s.pid", "--log-file", "log/s.log"])
        XCTAssertEqual(command.config, "\(workingDirectory)/serverd.toml")
        XCTAssertEqual(command.pidfile, "\(workingDirectory)/s.pid")
        XCTAssertEqual(command.logFile, "\(workingDirectory)/log/s.log")
        assertFailure(["--pidfile", ""], .usage, "--pidfile: must not be empty")
        XCTAssertEqual(OptionValue.directory(of: "/serverd.toml"), "/")
        XCTAssertEqual(try OptionValue.absolutePath("x.pid", relativeTo: "/"), "/x.pid")
    }

    func testSyntaxErrorNamesFileAndLine() throws {
        let path = file("model = \"serial\"\nlisten = [\"echo@unix:x\",,]\n")
        let error = try XCTUnwrap(failure(["--config", path]))
        XCTAssertEqual(error.status, .configuration)
        XCTAssertTrue(error.message.hasPrefix("\(path):2: "), error.message)
        XCTAssertEqual(error.errno, EINVAL)
    }

    func testUnknownKeyIsNamedWithItsLine() {
        assertFileFailure("model = \"serial\"\n\nmax-conections = 5\n", "FILE:3: unknown key 'max-conections'")
        assertFileFailure("config = \"other.toml\"\n", "FILE:1: unknown key 'config'")
        assertFileFailure("[server]\nport = 7\n", "FILE:1: unknown key 'server'")
        assertFileFailure(
            "[[listener]]\nlisten = \"echo@unix:x\"\nbacklog = 5\n", "FILE:3: unknown key 'backlog' in [[listener]]")
        assertFileFailure(
            "[[listener]]\nlisten = \"echo@unix:x\"\nmodel = \"serial\"\n",
            "FILE:3: 'model' applies to the whole daemon: set it at the top level, not in [[listener]]")
    }

    func testBadValueIsNamedWithKeyAndLine() {
        assertFileFailure(
            "max-connections = 0\n", "FILE:1: max-connections: 0 is out of range (must be from 1 to 1000000)")
        assertFileFailure(
            "\nmax-connections = -3\n", "FILE:2: max-connections: -3 is out of range (must be from 1 to 1000000)")
        assertFileFailure("max-line = \"80\"\n", "FILE:1: max-line: must be an integer, not a string")
        assertFileFailure(
            "idle-timeout = -1\n", "FILE:1: idle-timeout: -1 is out of range (must be from 0 to 86400 seconds)")
        assertFileFailure("model = \"pooled\"\n", "FILE:1: model: 'pooled' is not one of serial, threading, forking")
        assertFileFailure("daemon = \"yes\"\n", "FILE:1: daemon: must be true or false, not a string")
        assertFileFailure(
            "socket-mode = 999\n", "FILE:1: socket-mode: '999' is not an octal file mode from 0 to 7777 (like 0660)")
        assertFileFailure(
            "allow = [\"127.0.0.0/8\", \"10.0.0.0/33\"]\n",
            "FILE:1: allow: '10.0.0.0/33' is not a CIDR block: the prefix length must be a number from 0 to 32")
        assertFileFailure(
            "allow = \"127.0.0.0/8\"\n",
            "FILE:1: allow: must be an array of CIDR blocks like \"127.0.0.0/8\", not a string")
        assertFileFailure("allow-uid = [1000, 4294967295]\n", "FILE:1: allow-uid: 4294967295 is not a valid uid")
        assertFileFailure(
            "allow-gid = [true]\n",
            "FILE:1: allow-gid: must be an array of gids or group names, but element 1 is a boolean")
        assertFileFailure(
            "[[listener]]\nlisten = \"echo@unix:x\"\n\nmax-per-source = 0\n",
            "FILE:4: max-per-source: 0 is out of range (must be from 1 to 1000000)")
        assertFileFailure(
            "[listener]\nlisten = \"echo@unix:x\"\n",
            "FILE:1: listener: must be [[listener]] tables, not a single [listener] table or a value")
    }

    func testMalformedOrUnknownServiceInFileIsConfigurationError() {
        assertFileFailure(
            "listen = [\n  \"echo@unix:x\",\n  \"chargen@tcp://[::1]:19\",\n]\n",
            "FILE:3: listen 'chargen@tcp://[::1]:19': unknown service 'chargen' "
                + "(known: echo, discard, daytime, stamp or exec)")
        assertFileFailure(
            "\n[[listener]]\nlisten = \"echo\"\n", "FILE:3: listen 'echo': expected SERVICE@ADDRESS, found no '@'")
        assertFileFailure(
            "[[listener]]\nexec = [\"/bin/cat\"]\n", "FILE:1: [[listener]] needs a listen = \"SERVICE@ADDRESS\" key")
        assertFileFailure(
            "listen = [\"echo@unix:x\"]\n[[listener]]\nlisten = \"echo@unix:x\"\n",
            "FILE:3: listen 'echo@unix:x': already declared at FILE:1")
    }

    func testExecWithoutProgramIsConfigurationError() {
        assertFailure(
            ["--listen", "exec@tcp://127.0.0.1:2000"], .configuration,
            "exec@tcp://127.0.0.1:2000: the exec service needs a program (after -- or exec = [...])")
        assertFileFailure(
            "listen = [\"exec@unix:@x\"]\n",
            "exec@unix:@x: the exec service needs a program (after -- or exec = [...])")
        assertFileFailure(
            "exec = []\n",
            "FILE:1: exec: must name a program: expected an array holding a program and its arguments, "
                + "like [\"/usr/bin/env\"]")
        assertFileFailure(
            "[[listener]]\nlisten = \"echo@unix:x\"\nexec = [\"/bin/cat\"]\n",
            "FILE:3: exec: 'echo@unix:x' is no exec listener, so it runs no program")
    }

    func testUnreadableConfigFileNamesFileAndReason() {
        let missing = "\(directory)/missing.toml"
        assertFailure(["--config", missing], .configuration, "\(missing): cannot open: No such file or directory")
        assertFailure(["--config", directory], .configuration, "\(directory): cannot read: Is a directory")
    }

    func testCheckConfigAndReloadReadTheFileAgain() throws {
        let path = file("listen = [\"echo@unix:x\"]\n")
        let command = try command(["--config", path, "--check-config"])
        let first = try DaemonConfiguration.load(from: command)
        XCTAssertTrue(first.checkConfig)
        _ = file("# edited\nlisten = [\"echo@unix:x\", \"discard@unix:y\"]\n")
        let second = try DaemonConfiguration.load(from: command)
        XCTAssertEqual(second.listeners.map(\.text), ["echo@unix:x", "discard@unix:y"])
        XCTAssertTrue(second.listeners[0].isEquivalent(to: first.listeners[0]))
        XCTAssertNotEqual(second.listeners[0], first.listeners[0], "the origin is part of equality")
    }

    func testListenerEquivalenceComparesTextAndSettings() {
        let base = ListenerConfiguration(service: .echo, address: "unix:x", settings: ListenerSettings(), origin: "a")
        var moved = base
        moved.origin = "b:3"
        XCTAssertTrue(base.isEquivalent(to: moved))
        var changed = base
        changed.settings.maxLine = 10
        XCTAssertFalse(base.isEquivalent(to: changed))
        var otherService = base
        otherService.service = .discard
        XCTAssertFalse(base.isEquivalent(to: otherService))
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
        var settings = ListenerSettings()
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
        XCTAssertEqual(try OptionValue.socketMode("0660"), 0o660)
        XCTAssertEqual(try OptionValue.socketMode("660"), 0o660)
        XCTAssertEqual(try OptionValue.socketMode("0o600"), 0o600)
        XCTAssertEqual(try OptionValue.socketMode("7777"), 0o7777)
        XCTAssertEqual(try OptionValue.socketMode("0"), 0)
        XCTAssertEqual(try OptionValue.socketMode(660, writtenInDecimal: true), 0o660)
        XCTAssertEqual(try OptionValue.socketMode(0o660, writtenInDecimal: false), 0o660)
        for bad in ["", "0o", "8", "0999", "17777", "-660", "rw-rw----", "0x1b0"] {
            XCTAssertNotNil(
                reason { () throws(OptionValueError) in try OptionValue.socketMode(bad) }, "'\(bad)' accepted")
        }
        XCTAssertNotNil(
            reason { () throws(OptionValueError) in try OptionValue.socketMode(0o17777, writtenInDecimal: false) })
        XCTAssertNotNil(
            reason { () throws(OptionValueError) in try OptionValue.socketMode(-1, writtenInDecimal: false) })
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
        XCTAssertEqual(try OptionValue.seconds("0.25"), 0.25)
        XCTAssertEqual(try OptionValue.seconds("0"), 0)
        XCTAssertEqual(try OptionValue.seconds("86400"), 86400)
        XCTAssertEqual(
            reason { () throws(OptionValueError) in try OptionValue.seconds("86400.5") },
            "86400.5 is out of range (must be from 0 to 86400 seconds)")
        XCTAssertNotNil(reason { () throws(OptionValueError) in try OptionValue.seconds("inf") })
        XCTAssertNotNil(reason { () throws(OptionValueError) in try OptionValue.seconds("nan") })
        XCTAssertNotNil(reason { () throws(OptionValueError) in try OptionValue.seconds("-0.5") })
    }

    func testKeyLocatorSkipsMultilineStringsAndFindsListenerTables() {
        let locator = TOMLKeyLocator(
            text: """
                model = \"\"\"
                max-line = 5
                \"\"\"
                'max-line' = 7   # quoted key
                [[listener]]
                  listen = "echo@unix:x"
                [[listener]]
                socket-mode = 0o600
                """)
        XCTAssertEqual(
            locator.entry("max-line", in: .top), TOMLKeyLocator.Entry(line: 4, valueText: "7   # quoted key"))
        XCTAssertEqual(locator.entry("listen", in: .listener(0))?.line, 6)
        XCTAssertNil(locator.entry("listen", in: .top))
        XCTAssertEqual(locator.entry("socket-mode", in: .listener(1))?.valueText, "0o600")
        XCTAssertEqual(locator.headerLine(ofListener: 1), 7)
        XCTAssertNil(locator.headerLine(ofListener: 2))
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
        var configuration = try load([])
        XCTAssertEqual(LogDestination(for: configuration), .standardError)
        configuration.daemonize = true
        XCTAssertEqual(LogDestination(for: configuration), .syslog)
        configuration.logFile = "/var/log/serverd.log"
        XCTAssertEqual(LogDestination(for: configuration), .file("/var/log/serverd.log"))
        XCTAssertEqual(LogLevelName.allCases.map(\.loggerLevel), [.debug, .info, .notice, .warning, .error])
    }
}
