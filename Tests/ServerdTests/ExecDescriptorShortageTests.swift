import FamilyServer
import Foundation
import Glibc
import XCTest

/// An exec connection accepted while serverd is out of descriptors is not lost: its handler
/// waits (bounded) for the descriptors its child needs, which connections ending free.
final class ExecDescriptorShortageTests: XCTestCase {
    /// Open descriptors of a process.
    private func descriptorCount(_ pid: pid_t) -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).count
    }

    func testAcceptedConnectionWaitsForDescriptorsAndIsServed() throws {
        let limit = 32
        let serverd = try ServerdProcess(
            ["--listen", "echo@tcp://127.0.0.1:0", "--listen", "exec@tcp://127.0.0.1:0", "--", "/bin/cat"],
            launcher: ["/usr/bin/prlimit", "--nofile=\(limit):\(limit)", "--"])
        try serverd.waitForListening(2)
        // Echo connections (one descriptor each in the threading model) until one descriptor is
        // left: the exec connection takes it, and its stderr pipe finds none.
        var held: [TestClient] = []
        while descriptorCount(serverd.pid) < limit - 1 {
            let client = try TestClient.connect(serverd.address(0))
            XCTAssertTrue(try client.echoes("hold"))
            held.append(client)
            XCTAssertLessThan(held.count, limit, "serverd's descriptors do not fill up")
            if held.count >= limit { return }
        }
        XCTAssertEqual(descriptorCount(serverd.pid), limit - 1, serverd.stderr)
        let exec = try TestClient.connect(serverd.address(1))
        let shortage = try serverd.waitFor {
            let log = serverd.stderr
            return log.contains("out of descriptors") || log.contains("Too many open files") ? log : nil
        }
        for client in held { client.close() }
        XCTAssertTrue((try? exec.echoes("served after the shortage\n")) == true, shortage)
        try exec.finishSending()
        XCTAssertEqual(try exec.receiveAll(), [])
        XCTAssertFalse(serverd.stderr.contains("error:"), serverd.stderr)
        try serverd.stop()
    }
}
