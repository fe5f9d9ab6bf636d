import FamilyServer
import Foundation
import Glibc
import XCTest

/// `--model forking --prefork N` over real processes: which process served a connection is read from the worker's
/// debug line (`worker process PID serves ADDRESS`), logged only by pre-forked workers.
final class PreforkTests: XCTestCase {
    /// The process ids of the workers that served, in the order of their debug lines.
    private func workerLines(_ serverd: ServerdProcess) -> [pid_t] {
        serverd.stderr.split(separator: "\n").compactMap { line in
            guard let range = line.range(of: "worker process ") else { return nil }
            return pid_t(line[range.upperBound...].prefix { $0.isNumber })
        }
    }

    /// Starts a forking serverd with `--prefork workers` and waits until the workers are forked.
    private func startForking(workers: Int, _ options: [String]) throws -> ServerdProcess {
        let serverd = try ServerdProcess(
            ["--model", "forking", "--log-level", "debug", "--prefork", "\(workers)"] + options)
        try serverd.waitForListening(1)
        _ = try serverd.waitFor { childProcesses(of: serverd.pid).count == workers ? true : nil }
        return serverd
    }

    /// One echo on a connection of its own.
    private func echoOnce(_ serverd: ServerdProcess, _ text: String) throws {
        let client = try TestClient.connect(serverd.address(0))
        defer { client.close() }
        XCTAssertTrue(try client.echoes(text))
    }

    func testAWorkerServesConnectionAfterConnection() throws {
        let serverd = try startForking(workers: 2, ["--listen", "echo@tcp://127.0.0.1:0"])
        let pool = Set(childProcesses(of: serverd.pid))
        // A connection that comes before the worker reported the last one's end gets a child of its own: keep
        // connecting, one at a time, until a worker served twice.
        var count = 0
        let repeated = try serverd.waitFor { () -> pid_t? in
            count += 1
            try echoOnce(serverd, "connection \(count)\n")
            let workers = workerLines(serverd)
            return workers.first { worker in workers.filter { $0 == worker }.count >= 2 }
        }
        XCTAssertTrue(pool.contains(repeated), "a worker of the pool forked at start")
        XCTAssertTrue(Set(workerLines(serverd)).isSubset(of: pool), "only the pool's workers log worker lines")
        _ = try serverd.waitFor { Set(childProcesses(of: serverd.pid)) == pool ? true : nil }
        try serverd.stop()
        for worker in pool { XCTAssertTrue(processIsGone(worker), "worker \(worker) gone after the stop") }
    }

    /// Connections beyond the pool get a child of their own; max-connections counts workers and children together.
    func testOverflowGetsAChildAndMaxConnectionsHolds() throws {
        let serverd = try startForking(workers: 1, ["--max-connections", "2", "--listen", "echo@tcp://127.0.0.1:0"])
        let first = try TestClient.connect(serverd.address(0))
        XCTAssertTrue(try first.echoes("1"))
        let second = try TestClient.connect(serverd.address(0))
        XCTAssertTrue(try second.echoes("2"), "served beside the busy worker")
        XCTAssertEqual(workerLines(serverd).count, 1, "only the first connection went to the worker")
        XCTAssertEqual(childProcesses(of: serverd.pid).count, 2, "a worker and a child of its own")
        let third = try TestClient.connect(serverd.address(0))
        try third.send("3")
        XCTAssertTrue(third.staysSilent(for: 0.5), "max-connections 2: the third waits")
        first.close()
        XCTAssertEqual(try third.receive(count: 1), Array("3".utf8), "served once the worker's connection ended")
        XCTAssertTrue(try second.echoes("22"))
        second.close()
        third.close()
        try serverd.stop()
    }

    func testMaxPerSourceIsReleasedByTheWorker() throws {
        let serverd = try startForking(workers: 2, ["--max-per-source", "1", "--listen", "echo@tcp://127.0.0.1:0"])
        let address = serverd.address(0)
        let first = try TestClient.connect(address)
        XCTAssertTrue(try first.echoes("first"))
        let extra = try TestClient.connect(address)
        try? extra.send("extra")
        XCTAssertTrue(extra.isClosedWithoutData(), "a second connection from 127.0.0.1 is closed unserved")
        first.close()
        _ = try serverd.waitFor {
            let again = try TestClient.connect(address)
            return (try? again.echoes("again")) == true ? true : nil
        }
        XCTAssertFalse(workerLines(serverd).isEmpty, "workers served")
        try serverd.stop()
    }

    /// A worker killed in the middle of a connection is reaped and logged, its connection slot is released, and the
    /// next connection gets a fresh worker.
    func testAKilledWorkerIsReplacedAndReleasesItsSlot() throws {
        let serverd = try startForking(workers: 1, ["--max-connections", "1", "--listen", "echo@tcp://127.0.0.1:0"])
        let client = try TestClient.connect(serverd.address(0))
        XCTAssertTrue(try client.echoes("before"))
        let worker = try XCTUnwrap(workerLines(serverd).first)
        XCTAssertEqual(kill(worker, SIGKILL), 0)
        XCTAssertTrue(client.isClosedByServer(), "the connection ends with its worker")
        client.close()
        try serverd.waitForLog("worker process \(worker) killed by signal 9")
        _ = try serverd.waitFor { processIsGone(worker) ? true : nil }
        try echoOnce(serverd, "after\n")
        let fresh = try XCTUnwrap(workerLines(serverd).last)
        XCTAssertNotEqual(fresh, worker, "a fresh worker, in the slot the killed one released")
        try serverd.stop()
    }

    /// SIGHUP retires the workers: the next connection is served with the new configuration (here another service
    /// on the same socket, which the worker runs) by a worker forked anew.
    func testReloadReplacesWorkers() throws {
        let dir = try TemporaryDirectory()
        let address = "unix:\(dir.path("s.sock"))"
        let configuration = { (service: String) in
            """
            model = "forking"
            prefork = 1
            listen = ["\(service)@\(address)"]
            """
        }
        let config = try writeConfig(dir, configuration("echo"))
        let serverd = try ServerdProcess(["--config", config, "--log-level", "debug"], directory: dir)
        try serverd.waitForListening(1)
        let old = try serverd.waitFor { childProcesses(of: serverd.pid).first }
        let before = try TestClient.connect(address)
        XCTAssertEqual(try before.roundTrip("old"), "old\n")
        before.close()
        XCTAssertEqual(workerLines(serverd), [old], "the pool's worker served")
        _ = try serverd.waitFor { occurrences(of: "ended:", in: serverd.stderr) == 1 ? true : nil }
        let descriptors = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(serverd.pid)/fd").count
        _ = try writeConfig(dir, configuration("stamp"))
        serverd.send(SIGHUP)
        try serverd.waitForLog("reloaded: 1 kept")
        _ = try serverd.waitFor { processIsGone(old) ? true : nil }
        // The serve loop's next pass forks the fresh worker (a connection before it gets a child of its own, which a
        // slow host such as ThreadSanitizer's showed): wait for it.
        let fresh = try serverd.waitFor { childProcesses(of: serverd.pid).first { $0 != old } }
        let after = try TestClient.connect(address)
        XCTAssertTrue(try after.roundTrip("new").hasSuffix("] new\n"), "stamped: the old worker would have echoed")
        after.close()
        XCTAssertEqual(workerLines(serverd).last, fresh, "the fresh worker served")
        _ = try serverd.waitFor { occurrences(of: "ended:", in: serverd.stderr) == 2 ? true : nil }
        _ = try serverd.waitFor { childProcesses(of: serverd.pid) == [fresh] ? true : nil }
        XCTAssertEqual(
            try FileManager.default.contentsOfDirectory(atPath: "/proc/\(serverd.pid)/fd").count, descriptors,
            "one worker's channel before and after")
        try serverd.stop()
    }

    /// With several listeners, a reload retires every pool's idle workers at once, even while a worker of another
    /// pool is busy: no worker holds another pool's channel open (which would hide its retirement from that pool's
    /// workers until the holder exits). Both ways round, since which pool forks first is not the test's to choose.
    func testReloadRetiresIdleWorkersOfEveryListenerWhileAnotherIsBusy() throws {
        let dir = try TemporaryDirectory()
        let unix = "unix:\(dir.path("s.sock"))"
        let config = try writeConfig(dir, """
            model = "forking"
            prefork = 1
            listen = ["echo@tcp://127.0.0.1:0", "echo@\(unix)"]
            """)
        let serverd = try ServerdProcess(["--config", config, "--log-level", "debug"], directory: dir)
        try serverd.waitForListening(2)
        for address in [serverd.address(0), unix] {
            let pool = try serverd.waitFor { () -> Set<pid_t>? in
                let children = Set(childProcesses(of: serverd.pid))
                return children.count == 2 ? children : nil
            }
            let held = try TestClient.connect(address)
            XCTAssertTrue(try held.echoes("held\n"))
            let busy = try XCTUnwrap(workerLines(serverd).last)
            let idle = try XCTUnwrap(pool.subtracting([busy]).first, "\(pool), \(busy)")
            serverd.send(SIGHUP)
            _ = try serverd.waitFor { processIsGone(idle) ? true : nil }
            XCTAssertTrue(try held.echoes("still\n"), "the busy worker serves on")
            held.close()
            _ = try serverd.waitFor { processIsGone(busy) ? true : nil }
        }
        try serverd.stop()
    }

    /// SIGTERM: a worker finishes its connection, then every worker exits with serverd.
    func testStopDrainsTheWorkers() throws {
        let serverd = try startForking(workers: 2, ["--listen", "echo@tcp://127.0.0.1:0"])
        let workers = Set(childProcesses(of: serverd.pid))
        let busy = try TestClient.connect(serverd.address(0))
        XCTAssertTrue(try busy.echoes("busy"))
        serverd.send(SIGTERM)
        try serverd.waitForLog("draining")
        XCTAssertTrue(try busy.echoes("still served"), "the worker serves its connection to the end")
        busy.close()
        XCTAssertEqual(try serverd.waitForExit(), 0, serverd.stderr)
        for worker in workers { XCTAssertTrue(processIsGone(worker), "worker \(worker) gone") }
    }

    func testPreforkNeedsTheForkingModel() throws {
        let result = try ServerdProcess.run(["--model", "threading", "--prefork", "2", "--listen", "echo@tcp://127.0.0.1:0"])
        XCTAssertEqual(result.status, 64, result.stderr)
        XCTAssertTrue(result.stderr.contains("prefork 2: only the forking model"), result.stderr)
        let outOfRange = try ServerdProcess.run(["--model", "forking", "--prefork", "257", "--check-config"])
        XCTAssertEqual(outOfRange.status, 64, outOfRange.stderr)
        XCTAssertTrue(outOfRange.stderr.contains("prefork"), outOfRange.stderr)
    }
}
