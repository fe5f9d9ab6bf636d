import FamilyServer
import Foundation
import Glibc
import XCTest

/// The `[[listener]]` keys that set who exec children run as and within which limits (`user`, `group`, `chroot`,
/// `chdir`, `umask`, `env`, `rlimit-*`), applied in the child before `exec`, per connection and in wait mode.
final class ExecIdentityTests: XCTestCase {
    /// What the probe prints: uid, gid, groups, umask, working directory, two variables, then /proc/self/limits.
    private let probe = """
        ["/bin/sh", "-c", "echo uid=$(id -u) gid=$(id -g) groups=$(id -G); echo umask=$(umask); echo pwd=$(pwd); \
        echo lang=${LANG-unset} home=${HOME-unset} proto=${PROTO-unset}; cat /proc/self/limits"]
        """

    private func limit(_ name: String, in text: String) -> [String]? {
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(name) }) else { return nil }
        return line.dropFirst(name.count).split(separator: " ").prefix(2).map(String.init)
    }

    func testExecChildRunsAsTheListenersUserWithItsLimits() throws {
        guard getuid() == 0 else { throw XCTSkip("switching users needs root") }
        let directory = try TemporaryDirectory()
        let config = try writeConfig(directory, """
            [[listener]]
            listen = "exec@tcp://127.0.0.1:0"
            exec = \(probe)
            user = "nobody"
            umask = "027"
            chdir = "/tmp"
            env = ["LANG=C.UTF-8", "-HOME"]
            rlimit-nofile = 64
            rlimit-cpu = 100
            rlimit-nproc = 50
            rlimit-as = 1073741824

            [[listener]]
            listen = "exec@unix:\(directory.path("plain.sock"))"
            exec = \(probe)
            """)
        let serverd = try ServerdProcess(["--config", config], directory: directory)
        let addresses = try serverd.waitForListening(2).map(addressPart)
        let text = String(decoding: try TestClient.connect(addresses[0]).receiveAll(), as: UTF8.self)
        XCTAssertTrue(text.contains("uid=65534 gid=65534 groups=65534\n"), text)
        XCTAssertTrue(text.contains("umask=0027\n"), text)
        XCTAssertTrue(text.contains("pwd=/tmp\n"), text)
        XCTAssertTrue(text.contains("lang=C.UTF-8 home=unset proto=TCP\n"), text)
        XCTAssertEqual(limit("Max open files", in: text), ["64", "64"], text)
        XCTAssertEqual(limit("Max cpu time", in: text), ["100", "100"], text)
        XCTAssertEqual(limit("Max processes", in: text), ["50", "50"], text)
        XCTAssertEqual(limit("Max address space", in: text), ["1073741824", "1073741824"], text)
        // A listener without those keys runs its children as serverd runs.
        let plain = String(decoding: try TestClient.connect(addresses[1]).receiveAll(), as: UTF8.self)
        XCTAssertTrue(plain.contains("uid=0 gid=0"), plain)
        XCTAssertNotEqual(limit("Max open files", in: plain), ["64", "64"], plain)
        try serverd.stop()
    }

    /// A wait-mode program gets the same identity and limits (issue 18): it writes them to stderr, into the log.
    func testWaitModeProgramRunsAsTheListenersUser() throws {
        guard getuid() == 0 else { throw XCTSkip("switching users needs root") }
        let directory = try TemporaryDirectory()
        let config = try writeConfig(directory, """
            [[listener]]
            listen = "exec@udp://127.0.0.1:0"
            wait = true
            exec = ["/bin/sh", "-c", "echo uid=$(id -u) gid=$(id -g) >&2; grep 'Max open files' /proc/self/limits >&2; \
            echo pid=$$ listen_pid=$LISTEN_PID fds=$LISTEN_FDS marker=$SERVERD_WAIT_MARKER >&2"]
            user = "nobody"
            group = "nogroup"
            rlimit-nofile = 32
            env = ["SERVERD_WAIT_MARKER=set", "-LISTEN_FDS"]
            """)
        let serverd = try ServerdProcess(["--config", config], directory: directory)
        let address = try SocketAddress(parsing: try serverd.waitForListening(1).map(addressPart)[0])
        try Socket(family: AF_INET, transport: .datagram).sendDatagram(Array("start".utf8), to: address)
        let log = try serverd.waitForLog("exited with status 0")
        XCTAssertTrue(log.contains(": uid=65534 gid=65534"), log)
        XCTAssertTrue(log.range(of: #"Max open files +32 +32"#, options: .regularExpression) != nil, log)
        // env changes apply to serverd's variables; the socket activation variables come after them, intact.
        let pid = try XCTUnwrap(log.range(of: #"pid=(\d+) listen_pid=\1 fds=1 marker=set"#, options: .regularExpression), log)
        XCTAssertFalse(log[pid].isEmpty)
        try serverd.stop()
    }

    /// `chroot`: the program is found and runs inside the directory (a copy of /bin/sh and its libraries), which is
    /// its `/`; `--check-config` looks for the program there too.
    func testChrootRunsTheProgramInsideTheDirectory() throws {
        guard getuid() == 0 else { throw XCTSkip("chroot needs root") }
        let directory = try TemporaryDirectory()
        let root = directory.path("jail")
        for file in ["/bin/sh", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"] {
            let target = root + file
            try FileManager.default.createDirectory(
                atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: file))
                .map { $0.hasPrefix("/") ? $0 : (file as NSString).deletingLastPathComponent + "/" + $0 } ?? file,
                toPath: target)
        }
        try FileManager.default.createDirectory(atPath: root + "/marker-inside-the-jail", withIntermediateDirectories: false)
        let config = try writeConfig(directory, """
            [[listener]]
            listen = "exec@unix:\(directory.path("jail.sock"))"
            exec = ["/bin/sh", "-c", "echo pwd=$(pwd); for f in /*; do echo \\"$f\\"; done"]
            chroot = "\(root)"
            """)
        let check = try ServerdProcess.run(["--config", config, "--check-config"], directory: directory)
        XCTAssertEqual(check.status, 0, check.stderr)
        XCTAssertTrue(check.stdout.contains("chroot \(root)"), check.stdout)
        let serverd = try ServerdProcess(["--config", config], directory: directory)
        let address = try serverd.waitForListening(1).map(addressPart)[0]
        let text = String(decoding: try TestClient.connect(address).receiveAll(), as: UTF8.self)
        XCTAssertEqual(text, "pwd=/\n/bin\n/lib\n/lib64\n/marker-inside-the-jail\n", serverd.stderr)
        try serverd.stop()
        // Outside the chroot the program is not found: the check fails, naming the chroot.
        try FileManager.default.removeItem(atPath: root + "/bin/sh")
        let missing = try ServerdProcess.run(["--config", config, "--check-config"], directory: directory)
        XCTAssertEqual(missing.status, 78, missing.stderr)
        XCTAssertTrue(missing.stderr.contains("inside chroot \(root)"), missing.stderr)
    }

    func testMisplacedOrWrongIdentityKeysAreConfigurationErrors() throws {
        let directory = try TemporaryDirectory()
        let cases: [(text: String, message: String)] = [
            ("chroot = \"/srv\"\nlisten = [\"exec@tcp://127.0.0.1:0\"]\nexec = [\"/bin/cat\"]",
             "'chroot' sets one listener's exec children: set it in [[listener]]"),
            ("[[listener]]\nlisten = \"exec@tcp://127.0.0.1:0\"\nexec = [\"/bin/cat\"]\nuser = \"no-such-user-here\"",
             "user: 'no-such-user-here' is not a uid nor a known user name"),
            ("[[listener]]\nlisten = \"exec@tcp://127.0.0.1:0\"\nexec = [\"/bin/cat\"]\nrlimit-nofile = -1",
             "rlimit-nofile:"),
            ("[[listener]]\nlisten = \"exec@tcp://127.0.0.1:0\"\nexec = [\"/bin/cat\"]\nenv = [\"1BAD=x\"]",
             "env: '1BAD=x' is neither NAME=value nor -NAME"),
            ("[[listener]]\nlisten = \"echo@tcp://127.0.0.1:0\"\nuser = \"nobody\"",
             "is no exec listener, so it has no exec children"),
        ]
        for (index, item) in cases.enumerated() {
            let config = try writeConfig(directory, item.text, name: "case\(index).toml")
            let result = try ServerdProcess.run(["--config", config, "--check-config"], directory: directory)
            XCTAssertEqual(result.status, 78, "\(item.text): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(item.message), "\(item.text): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains("case\(index).toml:"), result.stderr)
        }
        // At the top level `user` stays the daemon's own option.
        let daemonUser = try writeConfig(
            directory, "user = \"nobody\"\nlisten = [\"echo@tcp://127.0.0.1:0\"]", name: "daemon.toml")
        let result = try ServerdProcess.run(["--config", daemonUser, "--check-config"], directory: directory)
        XCTAssertEqual(result.status, 0, result.stderr)
    }
}
