import CShims
import Glibc
import XCTest

/// The table of exec process groups (Sources/CShims/exec.c) over real processes: bounded, pruned
/// of empty groups when full, holding a group while a member lives, closed at stop.
final class ExecGroupTableTests: XCTestCase {
    /// A spawned child: its pid and the record it reports to.
    private struct Spawned {
        var pid: pid_t
        var record: OpaquePointer
    }

    /// Spawns `argv` in a group of its own, entered in `table`, on /dev/null.
    private func spawn(_ table: OpaquePointer, _ argv: [String]) throws -> Spawned {
        let null = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { close(null) }
        var arguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        var environment: [UnsafeMutablePointer<CChar>?] = [nil]
        defer { arguments.forEach { free($0) } }
        let descriptors: [Int32] = [null, null, null]
        var pidfd: Int32 = -1
        var pid: pid_t = -1
        let record = arguments.withUnsafeMutableBufferPointer { argv in
            environment.withUnsafeMutableBufferPointer { envp in
                descriptors.withUnsafeBufferPointer { fds in
                    var request = cshims_spawn_request()
                    request.file = UnsafePointer(argv[0])
                    request.argv = UnsafePointer(argv.baseAddress)
                    request.envp = UnsafePointer(envp.baseAddress)
                    request.listen_pid_index = -1
                    request.descriptors = fds.baseAddress
                    request.count = 3
                    request.groups = table
                    request.umask = -1
                    return cshims_spawn(&request, &pid, &pidfd)
                }
            }
        }
        if pidfd >= 0 { close(pidfd) }
        guard let record else { throw TestFailure("cshims_spawn: errno \(cshims_errno())") }
        return Spawned(pid: pid, record: record)
    }

    /// Reaps a spawned child that ends by itself; returns why it did not run its program (0: it did) and the slot it
    /// took (-1: none), and frees its record.
    private func finish(_ child: Spawned) -> (failure: Int32, slot: Int32) {
        reap(child.pid)
        defer { cshims_spawn_record_free(child.record) }
        return (cshims_spawn_failure(child.record), cshims_spawn_group_slot(child.record))
    }

    /// Spawns a long sleeper that leads its own group; SIGKILLed and reaped at teardown if still there.
    private func spawnSleeper(_ table: OpaquePointer) throws -> Spawned {
        let child = try spawn(table, ["/bin/sleep", "1000"])
        addTeardownBlock { [pid = child.pid] in self.endIfRunning(pid) }
        // Its slot is written before it runs sleep: wait until it does.
        let deadline = monotonicSecondsForTest() + 10
        while (try? String(contentsOfFile: "/proc/\(child.pid)/comm", encoding: .utf8)) != "sleep\n" && monotonicSecondsForTest() < deadline {
            usleep(1_000)
        }
        return child
    }

    /// SIGKILLs and reaps `pid` if it is a child of this process not reaped yet (never a recycled pid).
    private func endIfRunning(_ pid: pid_t) {
        var status: Int32 = 0
        guard pid > 0, waitpid(pid, &status, WNOHANG) == 0 else { return }
        kill(pid, SIGKILL)
        reap(pid)
    }

    private func reap(_ pid: pid_t) {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }

    /// Starts `sleep 1000` as this process's child inside group `pgid` (posix_spawn with
    /// POSIX_SPAWN_SETPGROUP), so that the test can end and reap it itself.
    private func sleeper(inGroup pgid: pid_t) throws -> pid_t {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, pgid)
        var pid: pid_t = 0
        var arguments: [UnsafeMutablePointer<CChar>?] = ["/bin/sleep", "1000"].map { (word: String) in strdup(word) } + [nil]
        defer { arguments.forEach { free($0) } }
        let result = posix_spawn(&pid, "/bin/sleep", nil, &attributes, &arguments, environ)
        guard result == 0 else { throw TestFailure("posix_spawn: errno \(result)") }
        addTeardownBlock { [pid] in self.endIfRunning(pid) }
        return pid
    }

    func testFullTableRefusesUntilAGroupIsEmptyAndClosedTableRefusesAll() throws {
        let table = try XCTUnwrap(cshims_group_table_create(2))
        // A group left behind: its leader gets a member, then exits and is reaped.
        let leaderChild = try spawnSleeper(table)
        let leader = leaderChild.pid
        XCTAssertEqual(getpgid(leader), leader, "the child leads its own group")
        let member = try sleeper(inGroup: leader)
        kill(leader, SIGKILL)
        let (leaderFailure, leaderSlot) = finish(leaderChild)
        XCTAssertEqual(leaderFailure, 0)
        XCTAssertEqual(cshims_group_table_release(table, leader, leaderSlot), 0, "a member lives on: the group stays listed")
        // Children that exit free their slot when released: the one free slot serves again and again.
        for _ in 0..<5 {
            let child = try spawn(table, ["/bin/true"])
            let (failure, slot) = finish(child)
            XCTAssertEqual(failure, 0)
            XCTAssertGreaterThanOrEqual(slot, 0)
            XCTAssertEqual(cshims_group_table_release(table, child.pid, slot), 1)
        }
        // Two live groups fill it: the next child is refused before it runs anything.
        let runningChild = try spawnSleeper(table)
        let running = runningChild.pid
        let refused = finish(try spawn(table, ["/bin/true"]))
        XCTAssertEqual(refused.failure, EAGAIN)
        XCTAssertEqual(refused.slot, -1)
        // The group left behind empties: a full table prunes it and the spawn succeeds.
        kill(member, SIGKILL)
        reap(member)
        let admitted = try spawn(table, ["/bin/true"])
        let (admittedFailure, admittedSlot) = finish(admitted)
        XCTAssertEqual(admittedFailure, 0)
        _ = cshims_group_table_release(table, admitted.pid, admittedSlot)
        // Closing lists the live groups and refuses every later spawn.
        var listed = [pid_t](repeating: 0, count: 2)
        XCTAssertEqual(cshims_group_table_close(table, &listed, 2), 1)
        XCTAssertEqual(listed[0], running)
        let late = finish(try spawn(table, ["/bin/true"]))
        XCTAssertEqual(late.failure, ECANCELED)
        kill(running, SIGKILL)
        XCTAssertEqual(finish(runningChild).failure, 0)
    }
}

/// Monotonic seconds, for the test's own deadlines.
private func monotonicSecondsForTest() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}
