import FamilyServer
import Foundation
import Glibc
import XCTest

/// Each exec child leads a process group of its own; a process it leaves in the background,
/// holding its stderr, holds up neither its connection nor the stop; and when serverd stops, no
/// process it started is left alive (SIGTERM to each group, SIGKILL after a short grace).
final class ExecProcessGroupTests: XCTestCase {
    /// What the program reports on its first line.
    private struct Started {
        var sleeper: pid_t
        var shell: pid_t
        var group: pid_t
    }

    /// Leaves `sleep 1000` in the background (holding stderr and stdout), prints
    /// `SLEEPER SHELL PGID`, then copies the connection until EOF.
    private func program(ignoringSIGTERM: Bool) -> [String] {
        let trap = ignoringSIGTERM ? "trap '' TERM; " : ""
        return ["/bin/sh", "-c", trap + "sleep 1000 & echo $! $$ $(cut -d' ' -f5 /proc/$$/stat); cat"]
    }

    /// Reads the program's first line; registers a teardown that SIGKILLs, by the pids learned
    /// here, whatever of it a failing test leaves behind (only while they are still in its group).
    private func started(_ client: TestClient, file: StaticString = #filePath, line: UInt = #line) throws -> Started {
        let words = try client.receiveLine().split(separator: " ").compactMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        guard words.count == 3 else {
            XCTFail("the program did not report its pids: \(words)", file: file, line: line)
            throw TestFailure("no pids")
        }
        let result = Started(sleeper: words[0], shell: words[1], group: words[2])
        addTeardownBlock {
            for pid in [result.sleeper, result.shell] where procStat(pid).map({ $0.count > 2 && $0[2] == "\(result.group)" }) == true {
                kill(pid, SIGKILL)
            }
        }
        return result
    }

    /// The members of process group `pgid` that are alive (zombies, which nobody may reap in a
    /// container, are not).
    private func liveMembers(of pgid: pid_t) -> [pid_t] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(pid_t.init).filter { pid in
            guard let fields = procStat(pid), fields.count > 2 else { return false }
            return fields[2] == "\(pgid)" && fields[0] != "Z" && fields[0] != "X"
        }
    }

    /// The connection ends when the child exits although its background sleeper still holds
    /// stderr; the child led its own group; the sleeper lives on until serverd stops, then is ended.
    func testConnectionEndsWhenTheChildExitsAndStopEndsWhatItLeftBehind() throws {
        for model in ["threading", "forking"] {
            let serverd = try ServerdProcess(["--model", model, "--listen", "exec@tcp://127.0.0.1:0", "--"] + program(ignoringSIGTERM: false))
            try serverd.waitForListening(1)
            let client = try TestClient.connect(serverd.address(0))
            let child = try started(client)
            XCTAssertEqual(child.group, child.shell, "\(model): the exec child leads its own process group")
            XCTAssertNotEqual(child.group, getpgid(serverd.pid), model)
            XCTAssertTrue(try client.echoes("through cat\n"), model)
            try client.finishSending()
            XCTAssertTrue(client.isClosedByServer(timeout: 10), "\(model): the connection ends when the child exits")
            try serverd.waitForLog("end=exit")
            XCTAssertEqual(liveMembers(of: child.group), [child.sleeper], "\(model): only the sleeper lives on")
            try serverd.stop()
            XCTAssertEqual(liveMembers(of: child.group), [], "\(model): the sleeper is ended before serverd exits")
        }
    }

    /// A stop whose drain runs out (its deadline, or a second signal) ends a child in flight and a
    /// group left behind, both ignoring SIGTERM, within the drain timeout plus the grace before
    /// SIGKILL; nothing of either group is alive when serverd has exited.
    func testStopEndsEveryGroupWithinItsBound() throws {
        for model in ["threading", "forking"] {
            for secondSignal in [false, true] {
                let label = "\(model), \(secondSignal ? "second signal" : "drain deadline")"
                let serverd = try ServerdProcess([
                    "--model", model, "--drain-timeout", secondSignal ? "120" : "1", "--listen", "exec@tcp://127.0.0.1:0", "--",
                ] + program(ignoringSIGTERM: true))
                try serverd.waitForListening(1)
                let finished = try TestClient.connect(serverd.address(0))
                let leftBehind = try started(finished)
                try finished.finishSending()
                XCTAssertTrue(finished.isClosedByServer(timeout: 10), "\(label): the first connection ends with its child")
                let inFlight = try TestClient.connect(serverd.address(0))
                let running = try started(inFlight)
                serverd.send(SIGTERM)
                if secondSignal {
                    try serverd.waitForLog("stopping")
                    serverd.send(SIGTERM)
                }
                // Drain (1 s), grace before SIGKILL (2 s), the wait for SIGKILL and for handlers (3 s), slack.
                XCTAssertEqual(try serverd.waitForExit(timeout: 12), 0, "\(label): \(serverd.stderr)")
                XCTAssertTrue(serverd.stderr.contains("SIGKILL"), "\(label): \(serverd.stderr)")
                for group in [leftBehind.group, running.group] {
                    XCTAssertEqual(liveMembers(of: group), [], "\(label): group \(group) outlived serverd")
                }
                XCTAssertTrue(processIsGone(leftBehind.sleeper) && processIsGone(running.sleeper), label)
                XCTAssertTrue(inFlight.isClosedByServer(timeout: 5), label)
            }
        }
    }
}
