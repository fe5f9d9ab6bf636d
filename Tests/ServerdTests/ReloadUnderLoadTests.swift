import FamilyServer
import Foundation
import Glibc
import XCTest

/// The acceptance test of the reload plan (SPEC section 3, "Signals: SIGHUP"): echo traffic on
/// TCP, IPv6, UDP, Unix stream and Unix datagram listeners while 200 SIGHUPs alternate two
/// configurations that change options of every listener, add one and remove another. Kept
/// listeners keep their sockets (and so their ports, `:0` included: a listener is identified by
/// its configured address text), nothing refuses or resets a client of theirs, no descriptor or
/// socket file leaks, and a reload that fails half-way (a port taken) changes nothing.
final class ReloadUnderLoadTests: XCTestCase {
    /// The per-listener options of one configuration; A and B differ in every one of them.
    private struct Options {
        var idleTimeout: Int
        var maxLine: Int
        var maxConnections: Int
        var maxPerSource: Int
        var requestTimeout: Int
        var replyRate: Int
        var socketMode: String
        var allow4: [String]
        var allow6: [String]
        var allowUID: [UInt32]
        var allowGID: [UInt32]
    }

    private static let uid = getuid()
    private static let gid = getgid()
    /// A uid that is not the test's: an allow-uid list of only this one serves nobody here.
    private static let otherUID: UInt32 = getuid() == 65534 ? 65533 : 65534

    private static let optionsA = Options(
        idleTimeout: 300, maxLine: 4096, maxConnections: 64, maxPerSource: 100, requestTimeout: 600,
        replyRate: 100_000, socketMode: "0660", allow4: ["127.0.0.0/8"], allow6: ["::1/128"],
        allowUID: [uid], allowGID: [])
    private static let optionsB = Options(
        idleTimeout: 200, maxLine: 8192, maxConnections: 128, maxPerSource: 200, requestTimeout: 500,
        replyRate: 200_000, socketMode: "0666", allow4: ["127.0.0.1/32", "10.0.0.0/8"], allow6: ["::1/128", "fd00::/8"],
        allowUID: [uid], allowGID: [gid])

    private func quote(_ items: [String]) -> String { "[" + items.map { "\"\($0)\"" }.joined(separator: ", ") + "]" }
    private func numbers(_ items: [UInt32]) -> String { "[" + items.map(String.init).joined(separator: ", ") + "]" }

    /// The five kept listeners with `options`, then `extra` (more `[[listener]]` tables).
    private func configText(run: String, _ o: Options, extra: [String]) -> String {
        let common = """
            idle-timeout = \(o.idleTimeout)
            max-line = \(o.maxLine)
            max-connections = \(o.maxConnections)
            request-timeout = \(o.requestTimeout)
            reply-rate-per-source = \(o.replyRate)
            """
        let unixAccess = "allow-uid = \(numbers(o.allowUID))" + (o.allowGID.isEmpty ? "" : "\nallow-gid = \(numbers(o.allowGID))")
        var tables = [
            """
            [[listener]]
            listen = "echo@tcp://127.0.0.1:0"
            \(common)
            max-per-source = \(o.maxPerSource)
            allow = \(quote(o.allow4))
            """,
            """
            [[listener]]
            listen = "echo@tcp://[::1]:0"
            \(common)
            max-per-source = \(o.maxPerSource)
            allow = \(quote(o.allow6))
            """,
            """
            [[listener]]
            listen = "echo@udp://127.0.0.1:0"
            \(common)
            allow = \(quote(o.allow4))
            """,
            """
            [[listener]]
            listen = "echo@unix:\(run)/s.sock"
            \(common)
            socket-mode = "\(o.socketMode)"
            \(unixAccess)
            """,
            """
            [[listener]]
            listen = "echo@unixgram:\(run)/g.sock"
            \(common)
            socket-mode = "\(o.socketMode)"
            \(unixAccess)
            """,
        ]
        tables += extra
        return "# written by ReloadUnderLoadTests\n\n" + tables.joined(separator: "\n\n") + "\n"
    }

    /// A: the kept five plus `only-a.sock`. B: the kept five (other options) plus `only-b.sock`
    /// (a Unix datagram socket, so that the added and the removed one differ in kind too).
    private func configA(_ run: String) -> String {
        configText(run: run, Self.optionsA, extra: ["[[listener]]\nlisten = \"echo@unix:\(run)/only-a.sock\"\nsocket-mode = \"0600\""])
    }

    private func configB(_ run: String) -> String {
        configText(run: run, Self.optionsB, extra: ["[[listener]]\nlisten = \"echo@unixgram:\(run)/only-b.sock\""])
    }

    /// Sends SIGHUP and waits for `RELOADING=1`, then `READY=1`; returns the READY message.
    private func reload(_ serverd: ServerdProcess, _ sink: NotifySink, file: StaticString = #filePath, line: UInt = #line) throws -> NotifySink.Message {
        serverd.send(SIGHUP)
        try sink.next("RELOADING", "1", timeout: 15, file: file, line: line)
        return try sink.next("READY", "1", timeout: 15, file: file, line: line)
    }

    private func reloadFailed(_ message: NotifySink.Message) -> Bool {
        (message["STATUS"] ?? "").lowercased().contains("reload failed")
    }

    /// The socket files (and `.lock` files, if serverd keeps them) that `names` should leave in `run`.
    private func expectedEntries(_ names: [String], locks: Bool) -> [String] {
        (names + (locks ? names.map { $0 + ".lock" } : [])).sorted()
    }

    func testTwoHundredReloadsUnderLoadRefuseNothingAndLeakNothing() throws {
        let started = MonotonicClock.seconds()
        let dir = try TemporaryDirectory()
        let run = dir.path("run")
        XCTAssertEqual(mkdir(run, 0o755), 0)
        let config = dir.path("serverd.toml")
        try replaceFile(config, with: Array(configA(run).utf8))
        let sink = try NotifySink(abstractTag: "reload-load")
        let serverd = try ServerdProcess(["--config", config, "--log-level", "info"], directory: dir, environment: sink.environment)
        try sink.next("READY", "1")
        let lines = try serverd.waitForListening(6)
        func address(_ prefix: String) throws -> String {
            try XCTUnwrap(lines.first { $0.hasPrefix(prefix) }.map(addressPart), "no \(prefix) in \(lines)")
        }
        // The real addresses, read once: kept listeners must keep them.
        let kept: [(label: String, address: String)] = [
            ("tcp", try address("echo@tcp://127.0.0.1:")),
            ("tcp6", try address("echo@tcp://[::1]:")),
            ("udp", try address("echo@udp://127.0.0.1:")),
            ("unix", "unix:\(run)/s.sock"),
            ("unixgram", "unixgram:\(run)/g.sock"),
        ]
        XCTAssertFalse(kept[0].address.hasSuffix(":0"), kept[0].address)
        XCTAssertTrue(lines.contains("echo@unix:\(run)/only-a.sock"), "\(lines)")
        // Lock files beside the socket files: counted if serverd keeps them (it does today).
        let locks = FileManager.default.fileExists(atPath: "\(run)/s.sock.lock")
        let namesA = ["s.sock", "g.sock", "only-a.sock"]
        let namesB = ["s.sock", "g.sock", "only-b.sock"]
        XCTAssertEqual(directoryEntries(run), expectedEntries(namesA, locks: locks))

        // Long-lived connections, open across every reload.
        let longLived = try ["tcp", "tcp6", "unix"].map { label in
            (label, try TestClient.connect(kept.first { $0.label == label }!.address, timeout: 10))
        }
        for (label, client) in longLived { XCTAssertTrue(try client.echoes("hello \(label)\n"), label) }

        // Two warm-up reloads (A → B → A), outside the load, give the descriptor baseline of A.
        let warmB = try reload(serverd, sink)
        XCTAssertFalse(reloadFailed(warmB), "\(warmB)\n\(serverd.stderr)")
        let warmA = try reload(serverd, sink)
        XCTAssertFalse(reloadFailed(warmA), "\(warmA)\n\(serverd.stderr)")
        let baseline = settledDescriptorCount(serverd.pid)

        // The load: one client thread per kept listener, round trip after round trip until the
        // reloads are done. Stream clients open a connection per round trip.
        let stop = StopFlag()
        let counters = kept.map { _ in OutcomeCounter() }
        var threads: [ClientThread] = []
        for (index, listener) in kept.enumerated() {
            let counter = counters[index]
            let target = try SocketAddress(parsing: listener.address)
            let label = listener.label
            if target.transport == .datagram {
                threads.append(ClientThread("load-\(label)") {
                    guard let client = try? DatagramEchoClient(target, label: label) else {
                        counter.record(.other, "cannot open the client socket")
                        return
                    }
                    while !stop.isRaised {
                        let (outcome, detail) = client.roundTrip(counter)
                        counter.record(outcome, detail)
                        usleep(2000)
                    }
                })
            } else {
                threads.append(ClientThread("load-\(label)") {
                    var number = 0
                    while !stop.isRaised {
                        number += 1
                        let payload = Array("\(label) connection \(number) \(String(repeating: "s", count: 40))\n".utf8)
                        let (outcome, detail) = streamEchoRoundTrip(target, payload)
                        counter.record(outcome, detail)
                        usleep(2000)
                    }
                })
            }
        }

        // 200 SIGHUPs: B, A, B, …, A; each waits for the reload to finish. Bounded in time too.
        let reloads = 200
        let loopStarted = MonotonicClock.seconds()
        let loopDeadline = MonotonicClock.seconds() + 120
        var failedReloads: [String] = []
        var done = 0
        defer { stop.raise() }
        for index in 1...reloads {
            let useB = index % 2 == 1
            try replaceFile(config, with: Array((useB ? configB(run) : configA(run)).utf8))
            let before = counters.map(\.total)
            let ready = try reload(serverd, sink)
            if reloadFailed(ready) { failedReloads.append("#\(index): \(ready)") }
            done = index
            // Let every client finish a round trip begun under this reload before the next one
            // (a pacing wait, capped at 0.1 s, never an assertion: a stalled client is counted anyway).
            let paceDeadline = MonotonicClock.seconds() + 0.1
            while zip(counters, before).contains(where: { $0.0.total <= $0.1 + 1 }) && MonotonicClock.seconds() < paceDeadline {
                usleep(1000)
            }
            if index % 50 == 0 {
                for (label, client) in longLived {
                    XCTAssertTrue((try? client.echoes("reload \(index) \(label)\n")) ?? false, "long-lived \(label) after reload \(index)")
                }
            }
            if MonotonicClock.seconds() > loopDeadline {
                XCTFail("only \(index) of \(reloads) reloads within 120 s")
                break
            }
        }
        let loopSeconds = MonotonicClock.seconds() - loopStarted
        stop.raise()
        for thread in threads { XCTAssertTrue(thread.join(timeout: 30), "a load thread did not finish") }

        XCTAssertEqual(done, reloads)
        XCTAssertEqual(failedReloads, [], "good configurations must reload:\n\(serverd.stderr.suffix(3000))")
        XCTAssertTrue(serverd.process.isRunning)
        for (index, listener) in kept.enumerated() {
            let counter = counters[index]
            print("ReloadUnderLoadTests: \(listener.label) \(listener.address): \(counter.summary)")
            XCTAssertEqual(counter[.refused], 0, "\(listener.label): refused: \(counter.summary)")
            XCTAssertEqual(counter[.reset], 0, "\(listener.label): reset: \(counter.summary)")
            XCTAssertEqual(counter[.wrong], 0, "\(listener.label): wrong echo: \(counter.summary)")
            XCTAssertEqual(counter.failures, 0, "\(listener.label): \(counter.summary)")
            // Not vacuous: the clients really ran during the reloads.
            XCTAssertGreaterThanOrEqual(counter[.ok], 100, "\(listener.label): too few round trips: \(counter.summary)")
        }
        // The kept listeners still answer on the addresses read at the start.
        for listener in kept {
            let target = try SocketAddress(parsing: listener.address)
            let outcome: RoundTripOutcome
            if target.transport == .datagram {
                outcome = try DatagramEchoClient(target, label: "final-\(listener.label)").roundTrip(OutcomeCounter()).0
            } else {
                outcome = streamEchoRoundTrip(target, Array("final \(listener.label)\n".utf8)).0
            }
            XCTAssertEqual(outcome, .ok, "\(listener.label) at \(listener.address) after the reloads")
        }
        for (label, client) in longLived {
            XCTAssertTrue((try? client.echoes("after all reloads \(label)\n")) ?? false, "long-lived \(label) after all reloads")
        }
        // Whatever serverd logs about kept listeners, it never announces one of them at another port.
        for listener in kept.prefix(3) {
            let scheme = String(listener.address.prefix { $0 != ":" }) + "://"
            let host = listener.label == "tcp6" ? "[::1]" : "127.0.0.1"
            let announced = Set(serverd.listeningLines.filter { $0.hasPrefix("echo@\(scheme)\(host):") }.map(addressPart))
            XCTAssertEqual(announced, [listener.address], "\(listener.label) keeps the port it got at the start")
        }

        // No leak: the descriptor count of config A is what it was after the first reload to A
        // (connections the load threads closed may still be finishing: wait, bounded).
        eventually(timeout: 15) { settledDescriptorCount(serverd.pid) <= baseline }
        XCTAssertEqual(settledDescriptorCount(serverd.pid), baseline, "descriptors of serverd: \(descriptorList(serverd.pid))")
        eventually { directoryEntries(run) == expectedEntries(namesA, locks: locks) }
        XCTAssertEqual(directoryEntries(run), expectedEntries(namesA, locks: locks), "socket files of config A only")

        // A reload that fails half-way changes nothing: a new listener on a port the test holds,
        // another new one before it in the file (a Unix socket, which would leave a file behind),
        // options of the kept listeners changed so that they would no longer serve the test
        // (allow lists without loopback or without the test's uid), and only-a removed.
        let holder = try Socket(family: AF_INET, transport: .stream)
        defer { holder.close() }
        try holder.bind(to: SocketAddress(parsing: "tcp://127.0.0.1:0"))
        try holder.listen(backlog: 8)
        let takenPort = try XCTUnwrap(try holder.localAddress().port)
        var failing = Self.optionsA
        failing.idleTimeout = 100
        failing.maxLine = 2048
        failing.socketMode = "0600"
        failing.allow4 = ["10.0.0.0/8"]
        failing.allow6 = ["fd00::/8"]
        failing.allowUID = [Self.otherUID]
        failing.allowGID = []
        let failingText = configText(run: run, failing, extra: [
            "[[listener]]\nlisten = \"echo@unix:\(run)/fail-new.sock\"",
            "[[listener]]\nlisten = \"echo@tcp://127.0.0.1:\(takenPort)\"",
        ])
        try replaceFile(config, with: Array(failingText.utf8))
        let linesBeforeFailure = serverd.listeningLines.count
        let failed = try reload(serverd, sink)
        XCTAssertTrue(reloadFailed(failed), "READY=1 after a failed reload says so in STATUS=: \(failed)")
        XCTAssertTrue(serverd.process.isRunning)
        XCTAssertEqual(serverd.listeningLines.count, linesBeforeFailure, "nothing started:\n\(serverd.listeningLines)")
        eventually { directoryEntries(run) == expectedEntries(namesA, locks: locks) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(run)/fail-new.sock"), "no socket file of the failed plan")
        XCTAssertEqual(directoryEntries(run), expectedEntries(namesA, locks: locks), "the files of config A, unchanged")
        XCTAssertEqual(
            streamEchoRoundTrip(try SocketAddress(parsing: "unix:\(run)/only-a.sock"), Array("removed?\n".utf8)).0, .ok,
            "the listener the failed reload would have removed still serves")
        for listener in kept {
            let target = try SocketAddress(parsing: listener.address)
            let outcome: RoundTripOutcome
            if target.transport == .datagram {
                outcome = try DatagramEchoClient(target, label: "failed-\(listener.label)").roundTrip(OutcomeCounter()).0
            } else {
                outcome = streamEchoRoundTrip(target, Array("failed \(listener.label)\n".utf8)).0
            }
            XCTAssertEqual(outcome, .ok, "\(listener.label) keeps its old options after the failed reload")
        }
        for (label, client) in longLived {
            XCTAssertTrue((try? client.echoes("after the failed reload \(label)\n")) ?? false, "long-lived \(label)")
        }
        // The connections of the checks above close on serverd's side a moment after the client's.
        eventually(timeout: 15) { settledDescriptorCount(serverd.pid) <= baseline }
        XCTAssertEqual(settledDescriptorCount(serverd.pid), baseline, "descriptors of serverd: \(descriptorList(serverd.pid))")
        XCTAssertTrue(readLossy(serverd.stderrPath).lowercased().contains("reload failed"), "the failure is logged")

        // A good reload afterwards is applied.
        holder.close()
        try replaceFile(config, with: Array(configB(run).utf8))
        let good = try reload(serverd, sink)
        XCTAssertFalse(reloadFailed(good), "\(good)")
        eventually { directoryEntries(run) == expectedEntries(namesB, locks: locks) }
        XCTAssertEqual(directoryEntries(run), expectedEntries(namesB, locks: locks))
        XCTAssertEqual(
            try datagramRoundTrip("unixgram:\(run)/only-b.sock", Array("added".utf8)), Array("added".utf8), "the added listener serves")
        XCTAssertTrue(connectionIsRefused("unix:\(run)/only-a.sock"))
        for listener in kept where listener.label == "tcp" || listener.label == "unix" {
            XCTAssertEqual(streamEchoRoundTrip(try SocketAddress(parsing: listener.address), Array("good\n".utf8)).0, .ok, listener.label)
        }
        for (label, client) in longLived {
            XCTAssertTrue((try? client.echoes("end \(label)\n")) ?? false, "long-lived \(label) at the end")
            client.close()
        }
        try serverd.stop()
        XCTAssertEqual(directoryEntries(run), [], "a stop removes every socket file serverd created")
        print("ReloadUnderLoadTests: \(done) reloads under load in \(String(format: "%.1f", loopSeconds)) s, whole test \(String(format: "%.1f", MonotonicClock.seconds() - started)) s")
    }
}
