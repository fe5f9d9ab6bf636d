import FamilyServer
import Foundation
import Glibc
import XCTest

/// The files serverd creates, facing a local user (the `serverd-test` account) while serverd runs
/// as root: a symlink planted at the `--pidfile` path, a file squatting the default Unix socket
/// path in a world-writable directory (and the private directory that replaces it), a second
/// instance on a socket path still held by a first, and a `--user` daemon that must still remove
/// its root-owned socket files, lock files and pidfile when it stops or dies.
final class LocalAttackerFileTests: XCTestCase {
    /// A test directory that the attacker can traverse (TemporaryDirectory makes it 0700).
    private func sharedDirectory() throws -> TemporaryDirectory {
        _ = try UnprivilegedUser.ensure()
        let dir = try TemporaryDirectory()
        XCTAssertEqual(chmod(dir.path, 0o755), 0)
        return dir
    }

    /// Waits until serverd reports `count` listeners (true) or exits first (false).
    private func servesOrExits(_ serverd: ServerdProcess, _ count: Int) throws -> Bool {
        try serverd.waitFor { serverd.listeningLines.count >= count ? true : serverd.process.isRunning ? nil : false }
    }

    /// The names in `dir` besides serverd's own stdout/stderr logs.
    private func leftovers(_ dir: TemporaryDirectory) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { !["stderr.log", "stdout.log", "serverd.log"].contains($0) }.sorted()
    }

    private func owner(_ path: String) -> uid_t? {
        var info = stat()
        return lstat(path, &info) == 0 ? info.st_uid : nil
    }

    // MARK: - --pidfile

    /// A symlink that a local user put at the pidfile path (in a directory it owns) is refused,
    /// never followed: the file it points to is neither truncated nor written.
    func testPidfileSymlinkPlantedByALocalUserIsNotFollowed() throws {
        let dir = try sharedDirectory()
        let attackerDirectory = dir.path("attacker")
        XCTAssertEqual(mkdir(attackerDirectory, 0o755), 0)
        try UnprivilegedUser.give(attackerDirectory)
        let victim = try dir.write("victim", "precious\n")
        let pidfile = attackerDirectory + "/serverd.pid"
        XCTAssertEqual(try UnprivilegedUser.run(["/bin/ln", "-s", victim, pidfile]).status, 0)

        let serverd = try ServerdProcess(["--pidfile", pidfile, "--listen", "echo@tcp://127.0.0.1:0"], directory: dir)
        if try servesOrExits(serverd, 1) { try serverd.stop() }
        XCTAssertEqual(readText(victim), "precious\n", "root wrote through the attacker's symlink")
        XCTAssertEqual(try serverd.waitForExit(), 77, serverd.stderr)
        let last = serverd.stderr.split(separator: "\n").last ?? ""
        XCTAssertTrue(last.hasPrefix("serverd: ") && last.contains(pidfile) && last.contains("symbolic link"), serverd.stderr)
        XCTAssertFalse(serverd.stderr.contains("listening on"), "refused before binding anything:\n\(serverd.stderr)")
    }

    // MARK: - --log-file

    /// A symlink a local user puts at the log file's name — before the start, or after logrotate moved the file and
    /// before the SIGHUP that reopens it — is never followed: the file it points to stays as it was. At start the
    /// symlink is refused (77); at SIGHUP serverd keeps writing to the file it had open.
    func testLogFileSymlinkPlantedByALocalUserIsNotFollowed() throws {
        let dir = try sharedDirectory()
        let attackerDirectory = dir.path("attacker")
        XCTAssertEqual(mkdir(attackerDirectory, 0o755), 0)
        try UnprivilegedUser.give(attackerDirectory)
        let victim = try dir.write("victim", "precious\n")
        let log = attackerDirectory + "/serverd.log"
        XCTAssertEqual(try UnprivilegedUser.run(["/bin/ln", "-s", victim, log]).status, 0)
        let refused = try ServerdProcess.run(["--log-file", log, "--listen", "echo@tcp://127.0.0.1:0"], directory: dir)
        XCTAssertEqual(refused.status, 77, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("symbolic link"), refused.stderr)
        XCTAssertEqual(readText(victim), "precious\n")

        XCTAssertEqual(try UnprivilegedUser.run(["/bin/rm", log]).status, 0)
        let serverd = try ServerdProcess(["--log-file", log, "--listen", "echo@tcp://127.0.0.1:0"], directory: dir)
        try waitForListening(inFile: log, 1)
        XCTAssertEqual(try UnprivilegedUser.run(["/bin/mv", log, log + ".1"]).status, 0)
        XCTAssertEqual(try UnprivilegedUser.run(["/bin/ln", "-s", victim, log]).status, 0)
        serverd.send(SIGHUP)
        _ = try poll(timeout: 20, "the reload in the old file") { readText(log + ".1").contains("reloaded") ? true : nil }
        XCTAssertEqual(readText(victim), "precious\n", "root wrote through the attacker's symlink")
        XCTAssertTrue(readText(log + ".1").contains("cannot reopen the log file"), readText(log + ".1"))
        try serverd.stop()
    }

    // MARK: - --user: files created as root are removed

    /// The `--user` daemon's root-owned socket files, lock files and pidfile (in a directory only
    /// root may write) are all gone once it stopped. Before, writing the pidfile after dropping
    /// privileges failed (77).
    func testUserDaemonRemovesItsRootOwnedFilesOnSIGTERM() throws {
        let (uid, _) = try UnprivilegedUser.ensure()
        let dir = try sharedDirectory()
        let pidfile = dir.path("serverd.pid")
        let serverd = try ServerdProcess([
            "--user", UnprivilegedUser.name, "--pidfile", pidfile, "--socket-mode", "0666",
            "--listen", "echo@unix:\(dir.path("s.sock"))", "--listen", "echo@unixgram:\(dir.path("g.sock"))",
        ], directory: dir)
        XCTAssertTrue(try servesOrExits(serverd, 2), serverd.stderr)
        XCTAssertEqual(try serverd.waitFor { pidFromFile(pidfile) ?? (serverd.process.isRunning ? nil : -1) }, serverd.pid, serverd.stderr)
        XCTAssertEqual(procStatus(serverd.pid, "Uid").first, "\(uid)")
        XCTAssertEqual(owner(dir.path("s.sock")), 0, "created as root")
        XCTAssertEqual(leftovers(dir), ["g.sock", "g.sock.lock", "s.sock", "s.sock.lock", "serverd.pid"])
        XCTAssertTrue(try TestClient.connect("unix:\(dir.path("s.sock"))").echoes("user"))
        try serverd.stop()
        XCTAssertEqual(leftovers(dir), [], "every file serverd created is gone when it has exited")
    }

    /// A `--user` daemon that is killed (no clean stop at all) still leaves no file behind: the
    /// privileged helper sees its pipe end and removes them.
    func testKilledUserDaemonLeavesNoFiles() throws {
        _ = try UnprivilegedUser.ensure()
        let dir = try sharedDirectory()
        let pidfile = dir.path("serverd.pid")
        let serverd = try ServerdProcess(
            ["--user", UnprivilegedUser.name, "--pidfile", pidfile, "--listen", "echo@unix:\(dir.path("s.sock"))"], directory: dir)
        XCTAssertTrue(try servesOrExits(serverd, 1), serverd.stderr)
        XCTAssertEqual(try serverd.waitFor { pidFromFile(pidfile) ?? (serverd.process.isRunning ? nil : -1) }, serverd.pid, serverd.stderr)
        serverd.send(SIGKILL)
        _ = try serverd.waitForExit()
        _ = try poll("the files of the killed daemon to be removed", context: { "\(self.leftovers(dir))" }) {
            leftovers(dir).isEmpty ? true : nil
        }
    }

    /// The same with `--daemon`: the helper is the detached daemon's, and the files go on SIGTERM.
    func testDetachedUserDaemonRemovesItsRootOwnedFiles() throws {
        let (uid, _) = try UnprivilegedUser.ensure()
        let dir = try sharedDirectory()
        let pidfile = dir.path("serverd.pid")
        killDaemonAtTeardown(self, pidfile: pidfile)
        let parent = try ServerdProcess([
            "--daemon", "--user", UnprivilegedUser.name, "--pidfile", pidfile, "--log-file", dir.path("serverd.log"),
            "--listen", "echo@unix:\(dir.path("s.sock"))",
        ], directory: dir)
        XCTAssertEqual(try parent.waitForExit(), 0, parent.stderr)
        let pid = try XCTUnwrap(pidFromFile(pidfile), "pidfile written before the parent exits")
        XCTAssertEqual(procStatus(pid, "Uid").first, "\(uid)")
        XCTAssertTrue(try TestClient.connect("unix:\(dir.path("s.sock"))").echoes("detached"))
        XCTAssertEqual(kill(pid, SIGTERM), 0)
        _ = try poll("pid \(pid) to exit") { processIsGone(pid) ? true : nil }
        _ = try poll("the detached daemon's files to be removed", context: { "\(self.leftovers(dir))" }) {
            leftovers(dir).isEmpty ? true : nil
        }
        XCTAssertTrue(readText(dir.path("serverd.log")).contains("stopped"), readText(dir.path("serverd.log")))
    }

    // MARK: - Two instances, one socket path

    /// While one serverd serves a socket path, a second one on the same path is refused (69,
    /// naming the first one's pid) even after the socket file was removed under the first one:
    /// two instances never both serve one path.
    func testSecondInstanceIsRefusedWhileTheFirstHoldsThePath() throws {
        let dir = try sharedDirectory()
        let socketPath = dir.path("s.sock")
        let first = try ServerdProcess(["--listen", "echo@unix:\(socketPath)"], directory: dir)
        try first.waitForListening(1)
        XCTAssertEqual(unlink(socketPath), 0)
        let second = try ServerdProcess(["--listen", "echo@unix:\(socketPath)"], directory: try TemporaryDirectory())
        if try servesOrExits(second, 1) { try second.stop() }
        XCTAssertEqual(try second.waitForExit(), 69, second.stderr)
        let last = second.stderr.split(separator: "\n").last ?? ""
        XCTAssertTrue(last.hasPrefix("serverd: ") && last.contains(socketPath) && last.contains("pid \(first.pid)"), second.stderr)
        XCTAssertNil(owner(socketPath), "the refused instance created no socket file")
        XCTAssertTrue(first.process.isRunning)
        try first.stop()
        XCTAssertEqual(leftovers(dir), [])
    }

    // MARK: - The default Unix socket in a world-writable directory

    /// The embedded default set in its own network namespace (its fixed TCP and UDP ports then
    /// clash with no other test), with `TMPDIR` a sticky world-writable directory of the test.
    private func startDefaultSet(tmp: String, directory: TemporaryDirectory) throws -> ServerdProcess {
        try ServerdProcess(
            [], directory: directory, environment: ["XDG_RUNTIME_DIR": "", "TMPDIR": tmp],
            launcher: ["/usr/bin/unshare", "--net", "/bin/sh", "-c", "/usr/sbin/ip link set lo up && exec \"$@\"", "sh"])
    }

    private func makeStickyTmp(_ dir: TemporaryDirectory) -> String {
        let tmp = dir.path("tmp")
        XCTAssertEqual(mkdir(tmp, 0o755), 0)
        XCTAssertEqual(chmod(tmp, 0o1777), 0)
        return tmp
    }

    /// A local user who created `serverd.sock` in the shared directory first no longer keeps
    /// serverd from starting: the default socket lives in `serverd-0`, a directory of root's
    /// with mode 0700, removed again at exit; the user's file is left alone.
    func testDefaultSocketIsNotBlockedByALocalUsersFile() throws {
        let dir = try sharedDirectory()
        let tmp = makeStickyTmp(dir)
        XCTAssertEqual(try UnprivilegedUser.run(["/usr/bin/touch", tmp + "/serverd.sock"]).status, 0)
        let serverd = try startDefaultSet(tmp: tmp, directory: dir)
        XCTAssertTrue(try servesOrExits(serverd, 4), serverd.stderr)
        let privateDirectory = tmp + "/serverd-\(geteuid())"
        XCTAssertEqual(serverd.listeningLines.last, "echo@unix:\(privateDirectory)/serverd.sock")
        var info = stat()
        XCTAssertEqual(lstat(privateDirectory, &info), 0)
        XCTAssertEqual(info.st_mode & S_IFMT, S_IFDIR)
        XCTAssertEqual(info.st_mode & 0o7777, 0o700)
        XCTAssertEqual(info.st_uid, geteuid())
        XCTAssertTrue(try TestClient.connect("unix:\(privateDirectory)/serverd.sock").echoes("private"))
        try serverd.stop()
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp), ["serverd.sock"], "the private directory is gone, the user's file stays")
        XCTAssertEqual(owner(tmp + "/serverd.sock"), try UnprivilegedUser.ensure().uid)
    }

    /// A `serverd-0` that a local user made first (here a symlink to a directory of its own) is
    /// neither used nor touched: serverd falls back to a fresh private directory and says so.
    func testSquattedPrivateDirectoryIsNotUsed() throws {
        let dir = try sharedDirectory()
        let tmp = makeStickyTmp(dir)
        let squat = tmp + "/serverd-\(geteuid())"
        let script = "import os, sys; os.mkdir(sys.argv[1] + '.mine', 0o777); os.chmod(sys.argv[1] + '.mine', 0o777); os.symlink(sys.argv[1] + '.mine', sys.argv[1])"
        XCTAssertEqual(try UnprivilegedUser.run(["/usr/bin/python3", "-c", script, squat]).status, 0)
        let serverd = try startDefaultSet(tmp: tmp, directory: dir)
        XCTAssertTrue(try servesOrExits(serverd, 4), serverd.stderr)
        let unixLine = try XCTUnwrap(serverd.listeningLines.last)
        XCTAssertTrue(unixLine.hasPrefix("echo@unix:\(squat)."), unixLine)
        XCTAssertFalse(unixLine.hasPrefix("echo@unix:\(squat).mine"), unixLine)
        XCTAssertTrue(serverd.stderr.contains("\(squat) is not a directory"), serverd.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: squat + ".mine"), [], "nothing created in the user's directory")
        try serverd.stop()
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: tmp)), ["serverd-\(geteuid())", "serverd-\(geteuid()).mine"])
    }
}
