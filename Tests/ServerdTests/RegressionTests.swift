import FamilyServer
import Glibc
import XCTest

/// One test per bug that the issue-7 work (Fuzz/, Stress/) found, through the real serverd
/// binary, named after the bug.
final class RegressionTests: XCTestCase {
    /// fuzz-address: `--listen echo@unix:@NAME` with a 107-byte NAME (the longest the SPEC allows)
    /// passed the parser and then killed serverd with SIGILL (a precondition in the sockaddr
    /// encoder was off by one for abstract names). It must serve.
    func testListenerOnA107ByteAbstractNameServes() throws {
        let prefix = "serverd-reg-\(getpid())-"
        let name = prefix + String(repeating: "a", count: 107 - prefix.utf8.count)
        let serverd = try ServerdProcess(["--listen", "echo@unix:@\(name)"])
        let lines = try serverd.waitForListening(1)
        XCTAssertEqual(lines, ["echo@unix:@\(name)"])
        let client = try TestClient.connect("unix:@\(name)")
        try client.send("ping\n")
        XCTAssertEqual(try client.receive(count: 5), Array("ping\n".utf8))
        client.socket.close()
        serverd.send(SIGTERM)
        XCTAssertEqual(try serverd.waitForExit(), 0)
    }

    /// test-stress (emfile): out of descriptors, the accept loop pauses 100 ms and retries, and it
    /// logged a warning for every pause: ten lines a second per listener for as long as a client
    /// holds the descriptors, a log flood any peer can cause. Now the first pause is logged and then
    /// at most one line every 10 s, with the number of pauses in between.
    func testDescriptorExhaustionDoesNotFloodTheLog() throws {
        let serverd = try ServerdProcess(
            ["--listen", "stamp@tcp://127.0.0.1:0"], launcher: ["/usr/bin/prlimit", "--nofile=24:24", "--"])
        try serverd.waitForListening(1)
        let address = "tcp://127.0.0.1:\(try serverd.port())"
        var held: [TestClient] = []
        for _ in 0..<40 { held.append(try TestClient.connect(address)) }
        _ = try serverd.waitFor(timeout: 10) { serverd.stderr.contains("pausing accept") ? true : nil }
        usleep(2_500_000)  // 2.5 s out of descriptors: 25 pauses
        let warnings = serverd.stderr.components(separatedBy: "pausing accept").count - 1
        XCTAssertLessThanOrEqual(warnings, 2, serverd.stderr)
        for client in held { client.socket.close() }
        // And it serves again once descriptors are free.
        let client = try TestClient.connect(address)
        try client.send("back\n")
        XCTAssertTrue(try client.receiveLine().hasSuffix("] back\n"))
        client.socket.close()
        serverd.send(SIGTERM)
        XCTAssertEqual(try serverd.waitForExit(), 0)
    }
}
