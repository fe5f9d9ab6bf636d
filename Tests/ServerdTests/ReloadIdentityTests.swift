import FamilyServer
import Foundation
import Glibc
import XCTest

/// What a reload keeps, drops and finds again, beyond the plan's arithmetic: inherited sockets stay with serverd
/// (a `systemd:NAME` listener removed by one reload is served again by the next), implicit listeners never survive a
/// configuration that names listeners, a changed service applies to new connections on the same socket, and SIGHUP
/// reopens the log file.
final class ReloadIdentityTests: XCTestCase {
    /// Before: the removed listener's inherited socket was closed, and declaring it again failed with "no inherited
    /// socket named 'e'".
    func testRemovedSystemdListenerIsServedAgainByALaterReload() throws {
        let dir = try TemporaryDirectory()
        let report = dir.path("report")
        let config = try writeConfig(dir, #"listen = ["echo@systemd:e", "stamp@systemd:s"]"#)
        let serverd = try ServerdProcess(
            ["--config", config], directory: dir,
            launcher: Activation.launcher(["--report=\(report)", "e=tcp:127.0.0.1", "s=tcp:127.0.0.1"]))
        let bound = try Activation.report(report)
        try serverd.waitForListening(2)
        let echo = bound[0].address
        XCTAssertTrue(try TestClient.connect(echo).echoes("first"))

        try writeConfig(dir, #"listen = ["stamp@systemd:s"]"#)
        serverd.send(SIGHUP)
        try serverd.waitForLog("reloaded: 1 kept, 0 added, 1 removed")
        try writeConfig(dir, #"listen = ["echo@systemd:e", "stamp@systemd:s"]"#)
        serverd.send(SIGHUP)
        try serverd.waitForLog("reloaded: 1 kept, 1 added, 0 removed")
        XCTAssertFalse(serverd.stderr.contains("reload failed"), serverd.stderr)
        XCTAssertTrue(try TestClient.connect(echo).echoes("again"), "the inherited socket is served again")
        try serverd.stop()
    }

    /// A reload to a configuration that names listeners keeps serving the inherited socket that none of them claims,
    /// by its fd name (an inherited socket is never left to hang its clients); the named listener is added.
    func testInheritedSocketStaysServedBesideAConfigurationThatNamesListeners() throws {
        let dir = try TemporaryDirectory()
        let report = dir.path("report")
        let config = try writeConfig(dir, "idle-timeout = 30\n")
        let serverd = try ServerdProcess(
            ["--config", config], directory: dir,
            launcher: Activation.launcher(["--report=\(report)", "echo=tcp:127.0.0.1"]))
        let bound = try Activation.report(report)
        try serverd.waitForListening(1)
        XCTAssertTrue(try TestClient.connect(bound[0].address).echoes("implicit"))
        let named = dir.path("named.sock")
        try writeConfig(dir, "listen = [\"stamp@unix:\(named)\"]\n")
        serverd.send(SIGHUP)
        try serverd.waitForLog("reloaded: 1 kept, 1 added, 0 removed")
        XCTAssertTrue(try TestClient.connect("unix:\(named)").isStamped("named"))
        XCTAssertTrue(try TestClient.connect(bound[0].address).echoes("still served"))
        try serverd.stop()
    }

    /// A listener whose service changes keeps its socket; new connections get the new service.
    func testChangedServiceAppliesToNewConnectionsOnTheSameSocket() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path("s.sock")
        let config = try writeConfig(dir, "listen = [\"echo@unix:\(path)\"]\n")
        let serverd = try ServerdProcess(["--config", config], directory: dir)
        try serverd.waitForListening(1)
        let open = try TestClient.connect("unix:\(path)")
        XCTAssertTrue(try open.echoes("echo"))
        try writeConfig(dir, "listen = [\"stamp@unix:\(path)\"]\n")
        serverd.send(SIGHUP)
        try serverd.waitForLog("reloaded: 1 kept, 0 added, 0 removed")
        XCTAssertTrue(try TestClient.connect("unix:\(path)").isStamped("now stamp"))
        XCTAssertTrue(try open.echoes("still echo"), "the open connection keeps its service")
        XCTAssertEqual(serverd.listeningLines.count, 1)
        open.close()
        try serverd.stop()
    }

    /// A raised `max-connections` takes effect at once on the kept socket: a client waiting in the backlog at the old
    /// limit is served without anyone leaving. (Before: the listener was replaced; the waiting client was reset.)
    func testRaisedConnectionLimitServesTheWaitingClient() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path("s.sock")
        func text(_ limit: Int) -> String { "max-connections = \(limit)\nlisten = [\"echo@unix:\(path)\"]\n" }
        let config = try writeConfig(dir, text(1))
        let serverd = try ServerdProcess(["--config", config], directory: dir)
        try serverd.waitForListening(1)
        let first = try TestClient.connect("unix:\(path)")
        XCTAssertTrue(try first.echoes("first"))
        let waiting = try TestClient.connect("unix:\(path)", timeout: 1)
        try waiting.send("waiting\n")
        XCTAssertThrowsError(try waiting.receiveLine(), "at the limit of 1 the second client waits in the backlog")
        try writeConfig(dir, text(2))
        serverd.send(SIGHUP)
        try serverd.waitForLog("reloaded: 1 kept, 0 added, 0 removed")
        try waiting.socket.setTimeouts(receive: 10, send: 10)
        XCTAssertEqual(try waiting.receiveLine(), "waiting\n", "served once the limit is 2, the first client still there")
        XCTAssertTrue(try first.echoes("still here"))
        first.close()
        waiting.close()
        try serverd.stop()
    }

    /// Before: the log file stayed open across SIGHUP, and after logrotate moved it the log went to the moved file.
    func testSIGHUPReopensTheLogFile() throws {
        let dir = try TemporaryDirectory()
        let log = dir.path("serverd.log")
        let serverd = try ServerdProcess(["--listen", "echo@tcp://127.0.0.1:0", "--log-file", log], directory: dir)
        try waitForListening(inFile: log, 1)
        XCTAssertEqual(rename(log, log + ".1"), 0)
        serverd.send(SIGHUP)
        _ = try poll(timeout: 20, "the reopened \(log)") { readText(log).contains("reloaded") ? true : nil }
        XCTAssertFalse(readText(log + ".1").contains("reloaded"), "nothing more goes to the rotated file")
        try serverd.stop()
        XCTAssertTrue(readText(log).contains("stopped"))
    }
}
