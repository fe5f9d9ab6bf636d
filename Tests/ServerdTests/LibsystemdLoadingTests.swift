import Foundation
import XCTest

/// libsystemd is bound on first use: a serverd that systemd did not start never maps it (half a millisecond of every
/// start, measured by `make bench`'s start-up workload), and one with a notify socket loads it and notifies.
final class LibsystemdLoadingTests: XCTestCase {
    /// Whether the process maps libsystemd (read with read(2): /proc files report size 0).
    private func mapsLibsystemd(_ pid: pid_t) throws -> Bool {
        let maps = try XCTUnwrap(FileHandle(forReadingAtPath: "/proc/\(pid)/maps")).readDataToEndOfFile()
        let text = String(decoding: maps, as: UTF8.self)
        XCTAssertTrue(text.contains("libc.so"), "the maps were read")
        return text.contains("libsystemd.so")
    }

    func testAStartWithoutSystemdNeverLoadsLibsystemd() throws {
        let serverd = try ServerdProcess(["--listen", "echo@tcp://127.0.0.1:0"])
        try serverd.waitForListening(1)
        XCTAssertTrue(try TestClient.connect(serverd.address(0)).echoes("no systemd"))
        XCTAssertFalse(try mapsLibsystemd(serverd.pid), "libsystemd mapped without systemd")
        try serverd.stop()
    }

    func testANotifySocketLoadsLibsystemdAndGetsReady() throws {
        let sink = try NotifySink(abstractTag: "lazy-libsystemd")
        let serverd = try ServerdProcess(["--listen", "echo@tcp://127.0.0.1:0"], environment: sink.environment)
        try sink.next("READY", "1")
        XCTAssertTrue(try mapsLibsystemd(serverd.pid))
        try serverd.stop()
    }
}
