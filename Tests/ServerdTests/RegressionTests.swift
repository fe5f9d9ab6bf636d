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
}
