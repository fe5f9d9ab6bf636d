import FamilyServer
import Foundation
import Glibc
import XCTest

/// Issue 11, item 1: serverd runs as root, and a local user who sends it a Unix datagram must not
/// get the reply delivered to any socket but its own. The attacker (Support/attacker.py, run as
/// the unprivileged account) sends a request while serverd is stopped with SIGSTOP, then swaps
/// its address for a way to a root-owned victim socket that the test binds; serverd continues
/// and must drop the reply, saying why.
final class LocalAttackerDatagramTests: XCTestCase {
    private static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Support/attacker.py").path

    /// A test directory the attacker can enter, a directory it owns, serverd's echo listener on a
    /// socket anyone may write to, and a copy of the attacker script it can read.
    private struct Scene {
        let directory: TemporaryDirectory
        let attackerDirectory: String
        let serverd: ServerdProcess
        let echo: String
        let script: String

        init() throws {
            _ = try UnprivilegedUser.ensure()
            directory = try TemporaryDirectory()
            chmod(directory.path, 0o755)
            attackerDirectory = directory.path("attacker")
            mkdir(attackerDirectory, 0o755)
            try UnprivilegedUser.give(attackerDirectory)
            script = directory.path("attacker.py")
            try FileManager.default.copyItem(atPath: LocalAttackerDatagramTests.script, toPath: script)
            chmod(script, 0o644)
            echo = directory.path("echo.sock")
            serverd = try ServerdProcess(["--listen", "echo@unixgram:" + echo, "--socket-mode", "0666"], directory: directory)
            try serverd.waitForListening(1)
        }

        /// Runs the attacker while serverd is stopped, so that its swap happens before the reply.
        func attackWhileStopped(_ arguments: [String], then: () throws -> Void = {}) throws {
            serverd.send(SIGSTOP)
            defer { serverd.send(SIGCONT) }
            let (status, output) = try UnprivilegedUser.run(["/usr/bin/python3", script] + arguments)
            XCTAssertEqual(status, 0, "attacker failed: \(output)")
            try then()
        }
    }

    /// A root-owned datagram socket the reply must never reach.
    private func victim(at address: SocketAddress) throws -> Socket {
        let socket = try Socket(family: AF_UNIX, transport: .datagram)
        try socket.bind(to: address)
        try socket.setNonBlocking(true)
        return socket
    }

    /// Waits until serverd logged the dropped reply or the victim received something; then
    /// checks that the victim got nothing and the log says `reason`.
    private func expectDropped(_ scene: Scene, victim: Socket, reason: String, file: StaticString = #filePath, line: UInt = #line) throws {
        var delivered: [UInt8]?
        _ = try scene.serverd.waitFor(file: file, line: line) { () -> Bool? in
            delivered = try? victim.receiveDatagram(maxSize: 100)?.bytes
            return delivered != nil || scene.serverd.stderr.contains("dropped") ? true : nil
        }
        XCTAssertNil(delivered.map { String(decoding: $0, as: UTF8.self) }, "the reply reached the victim", file: file, line: line)
        XCTAssertTrue(scene.serverd.stderr.contains(reason), scene.serverd.stderr, file: file, line: line)
        try scene.serverd.stop(file: file, line: line)
    }

    func testASymlinkSwappedInForTheSendersSocketIsNotFollowed() throws {
        let scene = try Scene()
        let victim = try victim(at: SocketAddress(.datagram, .unixPath(scene.directory.path("victim.sock"))))
        defer { victim.close() }
        try scene.attackWhileStopped(["swap-file", scene.attackerDirectory + "/c.sock", scene.echo, scene.directory.path("victim.sock")])
        try expectDropped(scene, victim: victim, reason: "is a symlink now")
    }

    /// serverd remembers the socket files it verified; the attack must not get through that.
    func testASymlinkSwapAfterAnHonestExchangeFromTheSamePathIsNotFollowed() throws {
        let scene = try Scene()
        let client = scene.attackerDirectory + "/c.sock"
        let (status, output) = try UnprivilegedUser.run(["/usr/bin/python3", scene.script, "honest", client, scene.echo])
        XCTAssertEqual(output, "hello\n", "status \(status): \(scene.serverd.stderr)")
        let victim = try victim(at: SocketAddress(.datagram, .unixPath(scene.directory.path("victim.sock"))))
        defer { victim.close() }
        try scene.attackWhileStopped(["swap-file", client, scene.echo, scene.directory.path("victim.sock")])
        try expectDropped(scene, victim: victim, reason: "is a symlink now")
    }

    func testADirectorySwappedForASymlinkIsNotFollowed() throws {
        let scene = try Scene()
        let sub = scene.attackerDirectory + "/sub"
        XCTAssertEqual(try UnprivilegedUser.run(["/bin/mkdir", sub]).status, 0)
        let victimDirectory = scene.directory.path("services")
        mkdir(victimDirectory, 0o755)
        let victim = try victim(at: SocketAddress(.datagram, .unixPath(victimDirectory + "/c.sock")))
        defer { victim.close() }
        try scene.attackWhileStopped(["swap-dir", sub, scene.echo, victimDirectory])
        try expectDropped(scene, victim: victim, reason: "symlink that someone other than root could have placed")
    }

    func testAnAbstractNameTakenOverByRootGetsNoReply() throws {
        let scene = try Scene()
        let name = "serverd-test-\(UUID().uuidString)"
        // An honest exchange first, so that serverd remembers which socket held the name.
        let (status, output) = try UnprivilegedUser.run(["/usr/bin/python3", scene.script, "honest", "@" + name, scene.echo])
        XCTAssertEqual(output, "hello\n", "status \(status): \(scene.serverd.stderr)")
        var victimSocket: Socket?
        defer { victimSocket?.close() }
        try scene.attackWhileStopped(["abstract", name, scene.echo]) {
            // The attacker has exited; a root service now holds the name.
            victimSocket = try victim(at: SocketAddress(.datagram, .unixAbstract(Array(name.utf8))))
        }
        let (uid, _) = try UnprivilegedUser.ensure()
        try expectDropped(scene, victim: try XCTUnwrap(victimSocket), reason: "is held by uid 0 now, not by the sender (uid \(uid))")
    }

    func testAnHonestUserGetsItsReplies() throws {
        let scene = try Scene()
        for client in [scene.attackerDirectory + "/honest.sock", "-"] {
            let (status, output) = try UnprivilegedUser.run(["/usr/bin/python3", scene.script, "honest", client, scene.echo])
            XCTAssertEqual(status, 0, output + scene.serverd.stderr)
            XCTAssertEqual(output, "hello\n", scene.serverd.stderr)
        }
        XCTAssertFalse(scene.serverd.stderr.contains("dropped"), scene.serverd.stderr)
        try scene.serverd.stop()
    }
}
