import CShims
import FamilyServer
import Glibc
import Logging

/// Every process group an exec child leads, from the moment the child enters it (before it runs
/// the program) until the group is empty, so that the daemon can end them all when it stops:
/// the groups of children still running, and those whose leader exited but whose members live on
/// (a program that left a process in the background).
///
/// Each child enters its group in the table itself, between clone and exec (``ExecChild``; it
/// runs on the daemon's memory until exec), so that no group runs the program unlisted. Its size is fixed: a spawn finding it full frees the slots
/// of empty groups first (`kill(-pgid, 0)` failing with ESRCH) and, if none is empty, refuses to
/// run the program (EAGAIN) rather than start a group that nobody would end.
final class ExecProcessGroups: @unchecked Sendable {
    /// Groups listed at once, at most: more than enough for `--max-connections` children plus
    /// what they leave behind.
    static let capacity = 8192

    /// The daemon's table, created with the first listener (``InFlightRegistry``).
    static let shared = ExecProcessGroups()

    /// How long groups have between SIGTERM and SIGKILL when the daemon stops.
    static let terminationGrace = 2.0

    /// The shared table; nil if it could not be mapped (`creationErrno` says why).
    let table: OpaquePointer?
    let creationErrno: Int32

    private init() {
        table = cshims_group_table_create(Int32(Self.capacity))
        creationErrno = table == nil ? errno : 0
    }

    /// Once the child that leads the group has been reaped: forgets the group unless members live on.
    func release(_ child: ExecChild) {
        guard let table else { return }
        _ = cshims_group_table_release(table, child.pid, child.groupSlot)
    }

    /// When the daemon stops: closes the table (no program starts from now on), sends SIGTERM to
    /// every group with a live member, SIGKILL after ``terminationGrace`` to those still alive,
    /// and waits a little for them to go, calling `meanwhile` (which reaps the children that end). A stopped member is
    /// continued so that it sees SIGTERM.
    func end(logger: Logger, meanwhile: () -> Void = {}) {
        guard let table else { return }
        var listed = [pid_t](repeating: 0, count: Self.capacity)
        let count = Int(cshims_group_table_close(table, &listed, Int32(Self.capacity)))
        let groups = Set(listed.prefix(count))
        let live = LiveProcessGroups.among(groups, running: ExecSupervisor.shared.runningPIDs)
        guard !live.isEmpty else { return }
        logger.notice("ending \(live.count) exec process group\(live.count == 1 ? "" : "s") (SIGTERM, SIGKILL after \(Self.terminationGrace) s)")
        for pgid in live {
            kill(-pgid, SIGTERM)
            kill(-pgid, SIGCONT)
        }
        let survivors = waitUntilGone(live, seconds: Self.terminationGrace, meanwhile: meanwhile)
        if !survivors.isEmpty {
            logger.warning("exec process groups \(survivors.sorted()) outlived SIGTERM: sending SIGKILL")
            for pgid in survivors { kill(-pgid, SIGKILL) }
            let stubborn = waitUntilGone(survivors, seconds: 1, meanwhile: meanwhile)
            if !stubborn.isEmpty {
                logger.error("exec process groups \(stubborn.sorted()) still have live members after SIGKILL")
            }
        }
    }

    /// Polls until no group of `groups` has a live member or `seconds` pass; returns those left.
    private func waitUntilGone(_ groups: Set<pid_t>, seconds: Double, meanwhile: () -> Void) -> Set<pid_t> {
        let deadline = MonotonicClock.seconds() + seconds
        var left = LiveProcessGroups.among(groups, running: ExecSupervisor.shared.runningPIDs)
        while !left.isEmpty && MonotonicClock.seconds() < deadline {
            usleep(10_000)
            meanwhile()
            left = LiveProcessGroups.among(left, running: ExecSupervisor.shared.runningPIDs)
        }
        return left
    }
}
