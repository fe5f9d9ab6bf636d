import FamilyServer
import Glibc
import Synchronization
import XCTest

/// Unix socket files under contention and under a local attacker who can write the socket's
/// directory: servers racing for one path never both serve, the socket file never exists with
/// other bits than `socketMode`, the mode is never applied through a symlink swapped in after
/// `bind`, and the lock file beside the socket is never followed through a symlink.
///
/// The races are run many rounds each; they hold by construction (a lock held across examining,
/// replacing and binding; the mode set before the file exists; no call by path after `bind`).
final class UnixSocketFileRaceTests: FamilyServerTestCase {
    /// Runs `body` on `count` threads released at the same moment; returns once all have ended.
    private func together(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) throws {
        let go = Atomic<Bool>(false)
        let ready = Atomic<Int>(0)
        let threads = try (0..<count).map { index in
            try TestThread {
                ready.add(1, ordering: .relaxed)
                while !go.load(ordering: .acquiring) { sched_yield() }
                body(index)
            }
        }
        while ready.load(ordering: .relaxed) < count { sched_yield() }
        go.store(true, ordering: .releasing)
        for thread in threads { XCTAssertTrue(thread.join()) }
    }

    /// Servers started at once on a path holding a stale socket file: exactly one binds and keeps
    /// its socket file; the others are "address in use". (Probing then unlinking let a second
    /// server take the socket of a first that had bound but not yet listened.)
    func testServersRacingForAStalePathNeverBothServe() throws {
        for round in 0..<120 {
            let requested = address(.unixPath, .stream)
            let stale = try Socket(family: AF_UNIX, transport: .stream)
            try stale.bind(to: requested)
            stale.close()
            let servers = ConditionLock<[BaseServer]>([])
            let failures = ConditionLock<[String]>([])
            try together(6) { _ in
                do {
                    let server = try StreamServer(address: requested, handler: StreamEchoHandler.self)
                    servers.withLock { $0.append(server) }
                } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }
            let bound = servers.withLock { $0 }
            defer { bound.forEach { $0.serverClose() } }
            XCTAssertEqual(bound.count, 1, "round \(round): \(bound.count) servers bound \(requested.path!); failures: \(failures.withLock { $0 })")
            for error in failures.withLock({ $0 }) {
                XCTAssertTrue(error.contains("Address already in use"), "round \(round): \(error)")
            }
            if bound.count != 1 { return }
            XCTAssertEqual(fileType(requested.path!), S_IFSOCK)
            let client = try Socket(family: AF_UNIX, transport: .stream)
            defer { client.close() }
            XCTAssertNoThrow(try client.connect(to: requested), "round \(round): the winner's socket file was replaced")
        }
    }

    /// With `socketMode` and a restrictive umask, a watcher never sees the socket file with any
    /// other bits (a `chmod` after `bind` left it at mode & ~umask for a moment).
    func testSocketFileNeverHasOtherBitsThanSocketMode() throws {
        let previous = umask(0o077)
        defer { umask(previous) }
        for round in 0..<150 {
            let requested = address(.unixPath, .stream)
            let socketPath = requested.path!
            let seen = ConditionLock<Set<mode_t>>([])
            let done = Atomic<Bool>(false)
            let watcher = try TestThread {
                var info = stat()
                while !done.load(ordering: .acquiring) {
                    if lstat(socketPath, &info) == 0 { seen.withLock { _ = $0.insert(info.st_mode & 0o7777) } }
                }
            }
            let server = try StreamServer(address: requested, handler: StreamEchoHandler.self, bindAndActivate: false)
            server.socketMode = 0o666
            try server.bindAndActivate()
            done.store(true, ordering: .releasing)
            XCTAssertTrue(watcher.join())
            server.serverClose()
            let modes = seen.withLock { $0 }
            XCTAssertTrue(modes.isSubset(of: [0o666]), "round \(round): modes seen \(modes.map { String($0, radix: 8) })")
            if !modes.isSubset(of: [0o666]) { return }
        }
        XCTAssertEqual(umask(0o077), 0o077, "the process umask was left alone")
    }

    /// An attacker who replaces the new socket file by a symlink to a victim file (one atomic
    /// `rename` over it) as soon as it appears never gets the victim's mode changed.
    func testSocketModeIsNeverAppliedThroughASymlink() throws {
        let victim = path("victim")
        try writeFile(victim, "secret")
        XCTAssertEqual(chmod(victim, 0o600), 0)
        for round in 0..<500 {
            let socketPath = path(uniqueName("swapped.sock"))
            let link = socketPath + ".link"
            XCTAssertEqual(symlink(victim, link), 0)
            let stop = Atomic<Bool>(false)
            let spinning = Atomic<Bool>(false)
            let attacker = try TestThread {
                spinning.store(true, ordering: .releasing)
                var info = stat()
                while !stop.load(ordering: .acquiring) {
                    if lstat(socketPath, &info) == 0 && info.st_mode & S_IFMT == S_IFSOCK {
                        rename(link, socketPath)
                        return
                    }
                }
            }
            while !spinning.load(ordering: .acquiring) { sched_yield() }
            let server = try? StreamServer(
                address: SocketAddress(.stream, .unixPath(socketPath)), handler: StreamEchoHandler.self, bindAndActivate: false)
            server?.socketMode = 0o666
            try? server?.bindAndActivate()
            stop.store(true, ordering: .releasing)
            XCTAssertTrue(attacker.join())
            server?.serverClose()
            var info = stat()
            XCTAssertEqual(stat(victim, &info), 0)
            XCTAssertEqual(info.st_mode & 0o7777, 0o600, "round \(round): the victim's mode was changed through the symlink")
            XCTAssertEqual(readFile(victim), "secret")
            if info.st_mode & 0o7777 != 0o600 { return }
        }
    }

    /// A second server on a path whose server still runs is refused even when the socket file
    /// itself was removed meanwhile (a cleaner, a user): never two servers for one path. The
    /// error names the lock file and the holder's pid.
    func testSecondServerIsRefusedWhileTheFirstHoldsTheLock() throws {
        for transport: SocketAddress.Transport in [.stream, .datagram] {
            let requested = address(.unixPath, transport)
            let first = try makeServer(at: requested)
            defer { first.serverClose() }
            XCTAssertEqual(fileType(requested.path! + ".lock"), S_IFREG)
            unlink(requested.path!)
            XCTAssertThrowsError(try makeServer(at: requested)) { error in
                XCTAssertEqual((error as? SocketError)?.errno, EADDRINUSE, "\(error)")
                XCTAssertTrue("\(error)".contains(".lock") && "\(error)".contains("pid \(getpid())"), "\(error)")
            }
            XCTAssertNil(fileType(requested.path!), "the refused server created no socket file")
        }
    }

    /// A symlink at `PATH.lock` is never followed: the server is refused, the target untouched.
    func testSymlinkAtTheLockFileIsNotFollowed() throws {
        let target = path("target")
        try writeFile(target, "target")
        let requested = address(.unixPath, .stream)
        XCTAssertEqual(symlink(target, requested.path! + ".lock"), 0)
        XCTAssertThrowsError(try makeServer(at: requested)) { error in
            XCTAssertEqual((error as? SocketError)?.errno, EADDRINUSE, "\(error)")
        }
        XCTAssertEqual(readFile(target), "target")
        XCTAssertEqual(fileType(requested.path! + ".lock"), S_IFLNK)
        XCTAssertNil(fileType(requested.path!))
    }

    private func makeServer(at address: SocketAddress) throws -> BaseServer {
        address.transport == .stream
            ? try StreamServer(address: address, handler: StreamEchoHandler.self)
            : try DatagramServer(address: address, handler: DatagramEchoHandler.self)
    }
}
