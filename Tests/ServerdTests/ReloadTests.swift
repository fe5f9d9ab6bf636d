import FamilyServer
import Foundation
import Glibc
import XCTest

/// SIGHUP re-reads `--config`: unchanged listeners keep their sockets and connections, new ones
/// start (a new `listening on` line), removed ones close, an invalid file changes nothing.
final class ReloadTests: XCTestCase {
    func testReloadKeepsUnchangedListenersAndAddsNewOnes() throws {
        let dir = try TemporaryDirectory()
        let config = try writeConfig(dir, #"listen = ["stamp@tcp://127.0.0.1:0"]"#)
        let serverd = try ServerdProcess(["--config", config], directory: dir)
        try serverd.waitForListening(1)
        let kept = serverd.address(0)
        let open = try TestClient.connect(kept)
        XCTAssertTrue(try open.roundTrip("before").hasSuffix("] before\n"))

        try writeConfig(dir, """
            listen = ["stamp@tcp://127.0.0.1:0", "echo@tcp://[::1]:0"]

            [[listener]]
            listen = "echo@unix:\(dir.path("added.sock"))"
            """)
        serverd.send(SIGHUP)
        let lines = try serverd.waitForListening(3)
        XCTAssertEqual(lines[0], "stamp@\(kept)")
        XCTAssertTrue(lines[1...].contains { $0.hasPrefix("echo@tcp://[::1]:") }, "\(lines)")
        XCTAssertTrue(lines[1...].contains("echo@unix:\(dir.path("added.sock"))"), "\(lines)")
        XCTAssertTrue(try open.roundTrip("after").hasSuffix("] after\n"), "the open connection keeps working")
        XCTAssertTrue(try TestClient.connect(kept).roundTrip("same port").hasSuffix("] same port\n"), "the kept socket still accepts")
        let added = try XCTUnwrap(lines.first { $0.hasPrefix("echo@tcp://") }.map(addressPart))
        XCTAssertTrue(try TestClient.connect(added).echoes("new"))
        XCTAssertTrue(try TestClient.connect("unix:\(dir.path("added.sock"))").echoes("new unix"))
        XCTAssertEqual(serverd.listeningLines.count, 3, "the kept listener is not started again:\n\(serverd.stderr)")
        open.close()
        try serverd.stop()
    }

    func testReloadRemovesListeners() throws {
        let dir = try TemporaryDirectory()
        let config = try writeConfig(dir, """
            listen = ["stamp@tcp://127.0.0.1:0", "echo@tcp://127.0.0.1:0", "echo@unix:\(dir.path("gone.sock"))", "echo@udp://127.0.0.1:0"]
            """)
        let serverd = try ServerdProcess(["--config", config], directory: dir)
        try serverd.waitForListening(4)
        let stay = serverd.address(0)
        let removed = serverd.address(1)
        let removedUDP = serverd.address(3)
        let open = try TestClient.connect(stay)
        XCTAssertTrue(try open.roundTrip("1").hasSuffix("] 1\n"))
        XCTAssertTrue(try TestClient.connect(removed).echoes("still here"))
        XCTAssertEqual(try datagramRoundTrip(removedUDP, Array("u".utf8)), Array("u".utf8))

        try writeConfig(dir, #"listen = ["stamp@tcp://127.0.0.1:0"]"#)
        serverd.send(SIGHUP)
        _ = try serverd.waitFor { connectionIsRefused(removed) ? true : nil }
        _ = try serverd.waitFor { FileManager.default.fileExists(atPath: dir.path("gone.sock")) ? nil : true }
        XCTAssertTrue(connectionIsRefused("unix:\(dir.path("gone.sock"))"))
        // The removed UDP listener stops answering (a closed port may also report ECONNREFUSED).
        _ = try serverd.waitFor { ((try? datagramRoundTrip(removedUDP, Array("u".utf8), timeout: 0.3)) ?? nil) == nil ? true : nil }
        XCTAssertTrue(try open.roundTrip("2").hasSuffix("] 2\n"))
        XCTAssertTrue(try TestClient.connect(stay).roundTrip("3").hasSuffix("] 3\n"))
        XCTAssertEqual(serverd.listeningLines.count, 4)
        open.close()
        try serverd.stop()
    }

    func testInvalidConfigChangesNothingAndIsLogged() throws {
        let dir = try TemporaryDirectory()
        let config = try writeConfig(dir, #"listen = ["echo@tcp://127.0.0.1:0", "stamp@tcp://[::1]:0"]"#)
        let serverd = try ServerdProcess(["--config", config], directory: dir)
        try serverd.waitForListening(2)
        let open = try TestClient.connect(serverd.address(0))
        XCTAssertTrue(try open.echoes("a"))
        let linesBefore = serverd.stderr.split(separator: "\n").count

        for broken in [
            "listen = [\"echo@tcp://127.0.0.1:0\"\nmodel = \n",  // syntax
            "listen = [\"echo@tcp://127.0.0.1:0\"]\nmax-connections = -3\n",  // bad value
            "listen = [\"echo@tcp://127.0.0.1:0\"]\nno-such-key = 1\n",  // unknown key
            "listen = [\"nosuch@tcp://127.0.0.1:0\"]\n",  // unknown service
        ] {
            let errorsBefore = serverd.stderr.split(separator: "\n").count
            try writeConfig(dir, broken)
            serverd.send(SIGHUP)
            // The SIGHUP's own notice names the file too: wait for the line that says how the reload ended.
            let log = try serverd.waitFor { () -> String? in
                serverd.stderr.split(separator: "\n").dropFirst(errorsBefore).last { $0.contains("reload") && !$0.contains("received SIGHUP") }
                    .map(String.init)
            }
            XCTAssertTrue(log.contains("error") && log.contains("reload failed"), log)
            XCTAssertTrue(log.contains(config), "the error names the file: \(log)")
            XCTAssertTrue(serverd.process.isRunning)
        }
        XCTAssertGreaterThan(serverd.stderr.split(separator: "\n").count, linesBefore)
        XCTAssertEqual(serverd.listeningLines.count, 2, "nothing started:\n\(serverd.stderr)")
        XCTAssertTrue(try open.echoes("b"), "the open connection keeps working")
        XCTAssertTrue(try TestClient.connect(serverd.address(0)).echoes("c"))
        XCTAssertTrue(try TestClient.connect(serverd.address(1)).roundTrip("d").hasSuffix("] d\n"), "the listener the broken file left out is kept")

        // A valid file afterwards is applied.
        try writeConfig(dir, #"listen = ["echo@tcp://127.0.0.1:0", "stamp@tcp://[::1]:0", "daytime@tcp://127.0.0.1:0"]"#)
        serverd.send(SIGHUP)
        let lines = try serverd.waitForListening(3)
        XCTAssertTrue(lines[2].hasPrefix("daytime@tcp://127.0.0.1:"))
        open.close()
        try serverd.stop()
    }

    func testMissingConfigFileOnReloadChangesNothing() throws {
        let dir = try TemporaryDirectory()
        let config = try writeConfig(dir, #"listen = ["echo@tcp://127.0.0.1:0"]"#)
        let serverd = try ServerdProcess(["--config", config], directory: dir)
        try serverd.waitForListening(1)
        unlink(config)
        serverd.send(SIGHUP)
        try serverd.waitForLog("reload failed")
        XCTAssertTrue(try TestClient.connect(serverd.address(0)).echoes("kept"))
        try serverd.stop()
    }

    /// A listener whose options change keeps its socket: new connections get the new options, open ones keep theirs.
    /// (Before the reload plan, the listener was replaced: a new port, and its clients refused.)
    func testChangedOptionsApplyInPlace() throws {
        let dir = try TemporaryDirectory()
        let config = try writeConfig(dir, """
            [[listener]]
            listen = "stamp@tcp://127.0.0.1:0"
            max-line = 4
            """)
        let serverd = try ServerdProcess(["--config", config], directory: dir)
        try serverd.waitForListening(1)
        let address = serverd.address(0)
        let tooLong = try TestClient.connect(address)
        try tooLong.send("123456\n")
        XCTAssertTrue(tooLong.isClosedWithoutData())
        let open = try TestClient.connect(address)
        XCTAssertTrue(try open.roundTrip("12").hasSuffix("] 12\n"))

        try writeConfig(dir, """
            [[listener]]
            listen = "stamp@tcp://127.0.0.1:0"
            max-line = 8
            """)
        serverd.send(SIGHUP)
        try serverd.waitForLog("reloaded: 1 kept, 0 added, 0 removed")
        XCTAssertEqual(serverd.listeningLines.count, 1, "the listener is not opened again:\n\(serverd.stderr)")
        XCTAssertTrue(try TestClient.connect(address).roundTrip("123456").hasSuffix("] 123456\n"), "new connections get max-line 8")
        try open.send("123456\n")
        XCTAssertTrue(open.isClosedWithoutData(), "the open connection keeps max-line 4")
        try serverd.stop()
    }

    /// Command-line listeners and top-level options that the file does not set survive a reload.
    func testCommandLineListenersSurviveReload() throws {
        let dir = try TemporaryDirectory()
        let config = try writeConfig(dir, #"listen = ["echo@tcp://127.0.0.1:0"]"#)
        let serverd = try ServerdProcess(["--config", config, "--listen", "stamp@tcp://127.0.0.1:0"], directory: dir)
        let lines = try serverd.waitForListening(2)
        let stamp = try XCTUnwrap(lines.first { $0.hasPrefix("stamp@") }.map(addressPart))
        let open = try TestClient.connect(stamp)
        XCTAssertTrue(try open.roundTrip("x").hasSuffix("] x\n"))
        try writeConfig(dir, #"listen = ["echo@tcp://127.0.0.1:0", "daytime@tcp://127.0.0.1:0"]"#)
        serverd.send(SIGHUP)
        try serverd.waitForListening(3)
        XCTAssertTrue(try open.roundTrip("y").hasSuffix("] y\n"))
        XCTAssertTrue(try TestClient.connect(stamp).roundTrip("z").hasSuffix("] z\n"))
        open.close()
        try serverd.stop()
    }

    func testReloadWithoutConfigKeepsServing() throws {
        let serverd = try ServerdProcess(["--listen", "echo@tcp://127.0.0.1:0"])
        try serverd.waitForListening(1)
        let open = try TestClient.connect(serverd.address(0))
        XCTAssertTrue(try open.echoes("1"))
        serverd.send(SIGHUP)
        try serverd.waitForLog("SIGHUP")
        serverd.send(SIGHUP)
        try serverd.waitForLog("SIGHUP", count: 2)
        XCTAssertTrue(try open.echoes("2"))
        XCTAssertTrue(try TestClient.connect(serverd.address(0)).echoes("3"))
        XCTAssertEqual(serverd.listeningLines.count, 1)
        open.close()
        try serverd.stop()
    }

    /// Under forking, a worker serving another listener's connection must not keep a removed
    /// listener's socket open: its port refuses once the reload is done.
    func testRemovedListenerRefusesWhileForkedWorkersRun() throws {
        let dir = try TemporaryDirectory()
        let config = try writeConfig(dir, """
            model = "forking"
            listen = ["stamp@tcp://127.0.0.1:0", "echo@tcp://127.0.0.1:0"]
            """)
        let serverd = try ServerdProcess(["--config", config], directory: dir)
        try serverd.waitForListening(2)
        let removed = serverd.address(1)
        let open = try TestClient.connect(serverd.address(0))
        XCTAssertTrue(try open.roundTrip("worker").hasSuffix("] worker\n"))
        try writeConfig(dir, """
            model = "forking"
            listen = ["stamp@tcp://127.0.0.1:0"]
            """)
        serverd.send(SIGHUP)
        try serverd.waitForLog("closing")
        _ = try serverd.waitFor { connectionIsRefused(removed) ? true : nil }
        XCTAssertTrue(try open.roundTrip("still").hasSuffix("] still\n"))
        open.close()
        try serverd.stop()
    }

    /// A listener on a fixed port whose options change keeps its socket (TCP and UDP) under every model, even while a
    /// connection on it is being served: nothing is bound again, new connections get the new options.
    private func assertChangedListenerKeepsItsSocket(model: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let probe = try Socket(family: AF_INET, transport: .stream)
        try probe.bind(to: SocketAddress(parsing: "tcp://127.0.0.1:0"))
        let port = try XCTUnwrap(try probe.localAddress().port)
        probe.close()
        let dir = try TemporaryDirectory()
        func configText(maxLine: Int) -> String {
            """
            model = "\(model)"
            max-line = \(maxLine)
            listen = ["stamp@tcp://127.0.0.1:\(port)", "stamp@udp://127.0.0.1:\(port)"]
            """
        }
        let config = try writeConfig(dir, configText(maxLine: 4))
        let serverd = try ServerdProcess(["--config", config], directory: dir)
        try serverd.waitForListening(2, file: file, line: line)
        let open = try TestClient.connect("tcp://127.0.0.1:\(port)")
        XCTAssertTrue(try open.roundTrip("1234").hasSuffix("] 1234\n"), file: file, line: line)
        try writeConfig(dir, configText(maxLine: 8))
        serverd.send(SIGHUP)
        try serverd.waitForLog("reloaded: 2 kept, 0 added, 0 removed", file: file, line: line)
        XCTAssertEqual(serverd.listeningLines.count, 2, serverd.stderr, file: file, line: line)
        XCTAssertTrue(try open.roundTrip("5678").hasSuffix("] 5678\n"), "the old connection goes on", file: file, line: line)
        open.close()  // the serial model serves the next connection once this one is over
        XCTAssertTrue(try TestClient.connect("tcp://127.0.0.1:\(port)").roundTrip("12345678").hasSuffix("] 12345678\n"),
            "the new options apply", file: file, line: line)
        XCTAssertNotNil(try datagramRoundTrip("udp://127.0.0.1:\(port)", Array("u".utf8)), file: file, line: line)
        try serverd.stop(file: file, line: line)
    }

    func testChangedListenerKeepsItsSocketUnderThreading() throws {
        try assertChangedListenerKeepsItsSocket(model: "threading")
    }

    func testChangedListenerKeepsItsSocketUnderForking() throws {
        try assertChangedListenerKeepsItsSocket(model: "forking")
    }

    func testChangedListenerKeepsItsSocketUnderSerial() throws {
        try assertChangedListenerKeepsItsSocket(model: "serial")
    }

    func testChangedListenerKeepsItsSocketUnderEvent() throws {
        try assertChangedListenerKeepsItsSocket(model: "event")
    }
    /// The model is daemon-wide; a reload that changes a listener's options under forking still serves it.
    func testReloadUnderForkingModel() throws {
        let dir = try TemporaryDirectory()
        let config = try writeConfig(dir, """
            model = "forking"
            listen = ["echo@tcp://127.0.0.1:0"]
            """)
        let serverd = try ServerdProcess(["--config", config], directory: dir)
        try serverd.waitForListening(1)
        let open = try TestClient.connect(serverd.address(0))
        XCTAssertTrue(try open.echoes("f"))
        try writeConfig(dir, """
            model = "forking"
            listen = ["echo@tcp://127.0.0.1:0", "stamp@unix:\(dir.path("s.sock"))"]
            """)
        serverd.send(SIGHUP)
        try serverd.waitForListening(2)
        XCTAssertTrue(try open.echoes("g"))
        XCTAssertTrue(try TestClient.connect("unix:\(dir.path("s.sock"))").roundTrip("h").hasSuffix("] h\n"))
        open.close()
        try serverd.stop()
    }
}
