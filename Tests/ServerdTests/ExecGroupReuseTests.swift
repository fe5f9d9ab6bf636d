import Foundation
import Glibc
import XCTest

@testable import serverd

/// A process group serverd listed for an exec child is signalled at stop only while it is still that child's group.
/// The ids of groups whose leader serverd reaped stay listed while members live on; once such a group empties, its id
/// (the leader's pid) may be taken again by an unrelated group leader in serverd's own session — another test's
/// serverd, or a job of the terminal serverd runs in. Before, the stop sent that group SIGTERM and SIGKILL: in CI a
/// parallel test's process died without a word while ExecChurnTests stopped its serverd.
final class ExecGroupReuseTests: XCTestCase {
    /// `sleep 1000` leading a group of its own in this process's session, ended at teardown.
    private func groupLeader() throws -> pid_t {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)
        var pid: pid_t = 0
        var arguments: [UnsafeMutablePointer<CChar>?] = ["/bin/sleep", "1000"].map { (word: String) in strdup(word) } + [nil]
        defer { arguments.forEach { free($0) } }
        guard posix_spawn(&pid, "/bin/sleep", nil, &attributes, &arguments, environ) == 0 else {
            throw TestFailure("posix_spawn failed")
        }
        addTeardownBlock {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
        return pid
    }

    func testAGroupWhoseIdIsTakenAgainIsNotAnExecChildsGroup() throws {
        let unrelated = try groupLeader()
        XCTAssertEqual(getpgid(unrelated), unrelated)
        // Listed, its leader not a running exec child, its pid held by a live process: taken again, not ours.
        XCTAssertEqual(LiveProcessGroups.among([unrelated], running: []), [])
        // The same group while its leader is serverd's running child: ours.
        XCTAssertEqual(LiveProcessGroups.among([unrelated], running: [unrelated]), [unrelated])
    }

    func testAGroupOutlivingItsReapedLeaderIsStillAnExecChildsGroup() throws {
        // A leader that is reaped while a member of its group lives on: its pid cannot be handed out again.
        let leader = try groupLeader()
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, leader)
        var member: pid_t = 0
        var arguments: [UnsafeMutablePointer<CChar>?] = ["/bin/sleep", "1000"].map { (word: String) in strdup(word) } + [nil]
        defer { arguments.forEach { free($0) } }
        XCTAssertEqual(posix_spawn(&member, "/bin/sleep", nil, &attributes, &arguments, environ), 0)
        addTeardownBlock {
            kill(member, SIGKILL)
            var status: Int32 = 0
            waitpid(member, &status, 0)
        }
        kill(leader, SIGKILL)
        var status: Int32 = 0
        XCTAssertEqual(waitpid(leader, &status, 0), leader)
        XCTAssertEqual(getpgid(member), leader)
        XCTAssertEqual(LiveProcessGroups.among([leader], running: []), [leader])
    }
}
