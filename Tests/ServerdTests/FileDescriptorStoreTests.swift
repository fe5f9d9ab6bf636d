import FamilyServer
import Foundation
import Glibc
import XCTest

/// `--fd-store`: every socket serverd binds is handed to the service manager's fd store under its listener's name
/// and comes back at the next start, where it is taken over by name before anything is bound: the ports (port 0
/// included) and the Unix socket file stay the same across a crash (SIGKILL) and a stop and start, and clients are
/// queued rather than refused meanwhile. A reload that removes a listener removes it from the store. The manager is
/// Support/fd_store.py, which keeps the descriptors as systemd does and starts serverd again each time it exits.
final class FileDescriptorStoreTests: XCTestCase {
    private static let storeScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Support/fd_store.py").path

    private func events(_ log: String) -> [String] {
        readLossy(log).split(separator: "\n").map(String.init)
    }

    /// The pid of the manager's start number `number` (from 1), once it reported `READY=1`.
    private func readyPID(_ number: Int, log: String, _ serverd: ServerdProcess) throws -> pid_t {
        try serverd.waitFor(timeout: 30) {
            let lines = events(log)
            guard let start = lines.first(where: { $0.hasPrefix("start \(number) ") }),
                let pid = pid_t(start.split(separator: " ")[2]), lines.contains("ready \(pid)")
            else { return nil }
            return pid
        }
    }

    func testListenersSurviveACrashAndARestartThroughTheStore() throws {
        let directory = try TemporaryDirectory()
        let log = directory.path("manager.log")
        let config = try directory.write(
            "serverd.toml",
            "listen = [\"echo@tcp://127.0.0.1:0\", \"echo@udp://127.0.0.1:0\", \"echo@unix:\(directory.path("s.sock"))\"]\n")
        let serverd = try ServerdProcess(
            ["--fd-store", "--config", config], directory: directory,
            launcher: [Activation.python, Self.storeScript, "--log=\(log)", "--starts=3", "--"])
        let first = try readyPID(1, log: log, serverd)
        let lines = try serverd.waitForListening(3)
        XCTAssertEqual(events(log).filter { $0.hasPrefix("store serverd+") }.count, 3, events(log).joined(separator: "\n"))
        let addresses = try lines.map { try SocketAddress(parsing: String($0.split(separator: "@", maxSplits: 1)[1])) }

        let stop = StopFlag()
        let counters = addresses.map { _ in OutcomeCounter() }
        var threads: [ClientThread] = []
        for (index, address) in addresses.enumerated() {
            let counter = counters[index]
            if address.transport == .stream {
                threads.append(ClientThread("store client \(index)") {
                    for _ in 0..<100_000 where !stop.isRaised {
                        let (outcome, detail) = streamEchoRoundTrip(address, Array("store \(index)\n".utf8), timeout: 20)
                        counter.record(outcome, detail)
                        usleep(500)
                    }
                })
            } else {
                let client = try DatagramEchoClient(address, label: "store", attempts: 20, attemptTimeout: 0.5)
                nonisolated(unsafe) let unsafeClient = client
                threads.append(ClientThread("store client \(index)") {
                    for _ in 0..<100_000 where !stop.isRaised {
                        let (outcome, detail) = unsafeClient.roundTrip(counter)
                        counter.record(outcome, detail)
                        usleep(500)
                    }
                })
            }
        }
        let total = { counters.reduce(0) { $0 + $1.total } }
        _ = try serverd.waitFor { total() >= 1000 ? true : nil }

        // A crash: the store gives the sockets back, the same addresses serve again.
        kill(first, SIGKILL)
        let second = try readyPID(2, log: log, serverd)
        XCTAssertTrue(events(log).contains { $0.hasPrefix("start 2 ") && $0.split(separator: ",").count == 3 }, events(log).joined(separator: "\n"))
        XCTAssertEqual(Array(try serverd.waitForListening(6).suffix(3)), lines, "the same ports and path after the crash")
        let before = total()
        _ = try serverd.waitFor { total() >= before + 1000 ? true : nil }

        // A reload that removes the UDP listener removes it from the store.
        try directory.write(
            "serverd.toml", "listen = [\"echo@tcp://127.0.0.1:0\", \"echo@unix:\(directory.path("s.sock"))\"]\n")
        stop.raise()
        for thread in threads { XCTAssertTrue(thread.join(timeout: 60)) }
        kill(second, SIGHUP)
        _ = try serverd.waitFor { events(log).contains { $0.hasPrefix("remove serverd+echo@udp") } ? true : nil }

        // A stop and start: the socket file stays for the next start, which takes it over.
        kill(second, SIGTERM)
        let third = try readyPID(3, log: log, serverd)
        XCTAssertTrue(FileManager.default.fileExists(atPath: directory.path("s.sock")))
        XCTAssertEqual(Array(try serverd.waitForListening(8).suffix(2)), [lines[0], lines[2]])
        XCTAssertEqual(streamEchoRoundTrip(addresses[0], Array("tcp\n".utf8)).0, .ok)
        XCTAssertEqual(streamEchoRoundTrip(addresses[2], Array("unix\n".utf8)).0, .ok)
        XCTAssertFalse(serverd.stderr.contains("binding it anew"), serverd.stderr)
        kill(third, SIGTERM)
        XCTAssertEqual(try serverd.waitForExit(), 0)
        XCTAssertTrue(events(log).contains("exit \(second) 0"), events(log).joined(separator: "\n"))

        for (index, counter) in counters.enumerated() {
            print("FileDescriptorStoreTests: \(lines[index]): \(counter.total) round trips: \(counter.summary)")
            XCTAssertEqual(counter[.refused], 0, "\(lines[index]): \(counter.summary)")
            XCTAssertGreaterThan(counter[.ok], 100, "\(lines[index]): \(counter.summary)")
            // A connection the crashed process had accepted is reset: that is all a SIGKILL may cost.
            XCTAssertLessThanOrEqual(counter[.reset] + counter[.closedEarly], 2, "\(lines[index]): \(counter.summary)")
        }
    }
}
