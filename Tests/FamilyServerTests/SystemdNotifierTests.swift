@testable import FamilyServer
import Glibc
import Synchronization
import XCTest

// The sd_notify side of the systemd integration, tested against real datagram sockets: each test
// binds its own AF_UNIX notify socket (a path in a fresh directory, or an abstract name), points
// NOTIFY_SOCKET at it with setenv, and reads what libsystemd sent with recvmsg, SCM_RIGHTS included.
// The systemd variables are saved before and restored after every test.

/// A notify socket of our own: what PID 1 would bind, read with recvmsg.
final class SystemdNotifySink: Sendable {
    /// The socket; its descriptor is read directly for recvmsg.
    let socket: Socket
    /// The value for NOTIFY_SOCKET: the path, or `@name`.
    let notifyAddress: String

    /// Binds a sink at a filesystem path.
    init(path: String) throws {
        socket = try Socket(family: AF_UNIX, transport: .datagram)
        try socket.bind(to: SocketAddress(.datagram, .unixPath(path)))
        notifyAddress = path
    }

    /// Binds a sink in the abstract namespace.
    init(abstract name: String) throws {
        socket = try Socket(family: AF_UNIX, transport: .datagram)
        try socket.bind(to: SocketAddress(.datagram, .unixAbstract(Array(name.utf8))))
        notifyAddress = "@" + name
    }

    /// Receives one message and the descriptors that came with it (close-on-exec, owned by the
    /// caller); `nil` when nothing arrives within `timeout` seconds.
    func receive(timeout: Double = 5) throws -> (message: String, fds: [Int32])? {
        guard try Poll.readable([socket.fileDescriptor], timeout: timeout)[0] else { return nil }
        var data = [UInt8](repeating: 0, count: 4096)
        var control = [UInt8](repeating: 0, count: 1024)
        let fd = socket.fileDescriptor
        var controlLength = 0
        let count = data.withUnsafeMutableBytes { dataBytes in
            control.withUnsafeMutableBytes { controlBytes in
                var iov = iovec(iov_base: dataBytes.baseAddress, iov_len: dataBytes.count)
                return withUnsafeMutablePointer(to: &iov) { iovPointer in
                    var header = msghdr()
                    header.msg_iov = iovPointer
                    header.msg_iovlen = 1
                    header.msg_control = controlBytes.baseAddress
                    header.msg_controllen = controlBytes.count
                    let received = recvmsg(fd, &header, Int32(MSG_CMSG_CLOEXEC))
                    controlLength = Int(header.msg_controllen)
                    return received
                }
            }
        }
        if count < 0 { throw SocketError("recvmsg", errno: errno, subject: notifyAddress) }
        // struct cmsghdr on Linux: size_t cmsg_len, int cmsg_level, int cmsg_type, then the data,
        // each header aligned to size_t.
        var fds: [Int32] = []
        let headerSize = MemoryLayout<Int>.size + 2 * MemoryLayout<Int32>.size
        var offset = 0
        control.withUnsafeBytes { raw in
            while offset + headerSize <= controlLength {
                let length = raw.loadUnaligned(fromByteOffset: offset, as: Int.self)
                let level = raw.loadUnaligned(fromByteOffset: offset + MemoryLayout<Int>.size, as: Int32.self)
                let type = raw.loadUnaligned(fromByteOffset: offset + MemoryLayout<Int>.size + 4, as: Int32.self)
                if length < headerSize { break }
                if level == SOL_SOCKET && type == Int32(SCM_RIGHTS) {
                    for index in 0..<((length - headerSize) / 4) {
                        fds.append(raw.loadUnaligned(fromByteOffset: offset + headerSize + 4 * index, as: Int32.self))
                    }
                }
                offset += (length + MemoryLayout<Int>.size - 1) & ~(MemoryLayout<Int>.size - 1)
            }
        }
        return (String(decoding: data[0..<count], as: UTF8.self), fds)
    }

    /// Receives one message, failing the test when none comes; closes any descriptors.
    func message(file: StaticString = #filePath, line: UInt = #line) throws -> String {
        guard let (message, fds) = try receive() else {
            XCTFail("no notification arrived on \(notifyAddress)", file: file, line: line)
            return ""
        }
        for fd in fds { close(fd) }
        return message
    }

    /// Sets NOTIFY_SOCKET to this sink.
    func export() { setenv("NOTIFY_SOCKET", notifyAddress, 1) }
}

/// Saves the systemd variables and restores them after each test.
class SystemdEnvironmentTestCase: XCTestCase {
    static let variables = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"]
    private var saved: [String: String?] = [:]
    /// A fresh directory for this test's socket files.
    private(set) var directory = ""

    override func setUp() {
        super.setUp()
        saved = [:]
        for name in Self.variables {
            saved[name] = getenv(name).map { String(cString: $0) }
            unsetenv(name)
        }
        var template = Array("/tmp/fs-systemd.XXXXXX".utf8CString)
        directory = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }

    override func tearDown() {
        for (name, value) in saved {
            if let value { setenv(name, value, 1) } else { unsetenv(name) }
        }
        if let dir = opendir(directory) {
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if name != "." && name != ".." { unlink("\(directory)/\(name)") }
            }
            closedir(dir)
        }
        rmdir(directory)
        super.tearDown()
    }

    /// A unique abstract socket name.
    func abstractName(_ tag: String) -> String { "fs-systemd-\(getpid())-\(tag)-\(MonotonicClock.microseconds())" }
}

final class SystemdNotifierTests: SystemdEnvironmentTestCase {
    func testWithoutNotifySocketEveryCallIsANoOp() throws {
        let notifier = SystemdNotifier()
        XCTAssertFalse(notifier.isEnabled)
        XCTAssertNil(notifier.socketAddress)
        XCTAssertFalse(try notifier.ready(status: "x"))
        XCTAssertFalse(try notifier.status("x"))
        XCTAssertFalse(try notifier.stopping())
        XCTAssertFalse(try notifier.reloading())
        XCTAssertFalse(try notifier.watchdog())
        XCTAssertFalse(try notifier.mainPID(getpid()))
        XCTAssertFalse(try notifier.extendTimeout(usec: 1))
        XCTAssertFalse(try notifier.errno(EINVAL))
        XCTAssertFalse(try notifier.storeDescriptors([0], name: "stdin"))
        XCTAssertFalse(try notifier.removeStoredDescriptors(name: "stdin"))
        XCTAssertFalse(try notifier.barrier())
        setenv("NOTIFY_SOCKET", "", 1)
        XCTAssertFalse(notifier.isEnabled, "an empty NOTIFY_SOCKET counts as unset")
    }

    func testEveryMessageArrivesOnAPathSocket() throws {
        let sink = try SystemdNotifySink(path: "\(directory)/notify")
        sink.export()
        let notifier = SystemdNotifier()
        XCTAssertTrue(notifier.isEnabled)
        XCTAssertEqual(notifier.socketAddress, "\(directory)/notify")

        XCTAssertTrue(try notifier.ready(status: "Serving 3 listeners"))
        XCTAssertEqual(try sink.message(), "READY=1\nSTATUS=Serving 3 listeners")
        XCTAssertTrue(try notifier.ready())
        XCTAssertEqual(try sink.message(), "READY=1")
        XCTAssertTrue(try notifier.status("12 connections"))
        XCTAssertEqual(try sink.message(), "STATUS=12 connections")
        XCTAssertTrue(try notifier.stopping())
        XCTAssertEqual(try sink.message(), "STOPPING=1")
        XCTAssertTrue(try notifier.stopping(status: "draining"))
        XCTAssertEqual(try sink.message(), "STOPPING=1\nSTATUS=draining")
        XCTAssertTrue(try notifier.watchdog())
        XCTAssertEqual(try sink.message(), "WATCHDOG=1")
        XCTAssertTrue(try notifier.mainPID(4242))
        XCTAssertEqual(try sink.message(), "MAINPID=4242")
        XCTAssertTrue(try notifier.extendTimeout(usec: 30_000_000))
        XCTAssertEqual(try sink.message(), "EXTEND_TIMEOUT_USEC=30000000")
        XCTAssertTrue(try notifier.errno(EADDRINUSE, status: "tcp://127.0.0.1:1: in use"))
        XCTAssertEqual(try sink.message(), "ERRNO=\(EADDRINUSE)\nSTATUS=tcp://127.0.0.1:1: in use")
        XCTAssertTrue(try notifier.notify(["X_SERVERD": "1", "STATUS": "custom"]))
        XCTAssertEqual(try sink.message(), "X_SERVERD=1\nSTATUS=custom")
    }

    func testReloadingCarriesTheMonotonicClock() throws {
        let sink = try SystemdNotifySink(path: "\(directory)/notify")
        sink.export()
        // Read CLOCK_MONOTONIC directly: systemd compares MONOTONIC_USEC with that clock.
        func clockMonotonic() -> UInt64 {
            var ts = timespec()
            clock_gettime(CLOCK_MONOTONIC, &ts)
            return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1_000
        }
        let before = clockMonotonic()
        XCTAssertTrue(try SystemdNotifier().reloading(status: "re-reading /etc/serverd/serverd.toml"))
        let after = clockMonotonic()
        let lines = try sink.message().split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 3, "\(lines)")
        XCTAssertEqual(lines.first, "RELOADING=1")
        XCTAssertEqual(lines.last, "STATUS=re-reading /etc/serverd/serverd.toml")
        let usecLine = lines.dropFirst().first ?? ""
        XCTAssertTrue(usecLine.hasPrefix("MONOTONIC_USEC="), usecLine)
        let usec = try XCTUnwrap(UInt64(usecLine.dropFirst("MONOTONIC_USEC=".count)))
        XCTAssertGreaterThanOrEqual(usec, before)
        XCTAssertLessThanOrEqual(usec, after)
    }

    func testAbstractNotifySocket() throws {
        let sink = try SystemdNotifySink(abstract: abstractName("notify"))
        sink.export()
        XCTAssertTrue(SystemdNotifier().socketAddress?.hasPrefix("@") ?? false)
        XCTAssertTrue(try SystemdNotifier().ready(status: "abstract"))
        XCTAssertEqual(try sink.message(), "READY=1\nSTATUS=abstract")
    }

    func testLineBreaksInValuesCannotInjectAssignments() throws {
        let sink = try SystemdNotifySink(path: "\(directory)/notify")
        sink.export()
        XCTAssertTrue(try SystemdNotifier().status("two\nREADY=1\r\nlines\0end"))
        XCTAssertEqual(try sink.message(), "STATUS=two READY=1  lines end")
    }

    func testFileDescriptorStoreSendsTheDescriptors() throws {
        let sink = try SystemdNotifySink(path: "\(directory)/notify")
        sink.export()
        var ends: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&ends), 0)
        defer { close(ends[0]); close(ends[1]) }
        let listener = try Socket(family: AF_INET, transport: .stream)
        defer { listener.close() }
        try listener.bind(to: SocketAddress(.stream, .inet(IPAddress(numeric: "127.0.0.1")!, port: 0)))
        try listener.listen(backlog: 4)

        XCTAssertTrue(try SystemdNotifier().storeDescriptors([ends[0], listener.fileDescriptor], name: "echo-tcp"))
        guard let (message, fds) = try sink.receive() else { return XCTFail("no FDSTORE message") }
        defer { for fd in fds { close(fd) } }
        XCTAssertEqual(message, "FDSTORE=1\nFDNAME=echo-tcp")
        XCTAssertEqual(fds.count, 2, "SCM_RIGHTS carries both descriptors")
        guard fds.count == 2 else { return }
        // The first is the same pipe: what goes into our write end comes out of the received copy.
        XCTAssertEqual(write(ends[1], "ping", 4), 4)
        var buffer = [UInt8](repeating: 0, count: 8)
        XCTAssertEqual(read(fds[0], &buffer, 8), 4)
        XCTAssertEqual(String(decoding: buffer[0..<4], as: UTF8.self), "ping")
        // The second is the same listening socket.
        let received = try Socket(adopting: fds[1])
        XCTAssertEqual(try received.localAddress(), try listener.localAddress())
        XCTAssertTrue(received.isListening)
        _ = received.takeDescriptor()
        // Ours stay open.
        XCTAssertGreaterThanOrEqual(fcntl(ends[0], F_GETFD), 0)
        XCTAssertFalse(listener.isClosed)

        XCTAssertTrue(try SystemdNotifier().storeDescriptors([ends[0]], name: "keep", poll: false))
        XCTAssertEqual(try sink.message(), "FDSTORE=1\nFDNAME=keep\nFDPOLL=0")
        XCTAssertTrue(try SystemdNotifier().removeStoredDescriptors(name: "keep"))
        XCTAssertEqual(try sink.message(), "FDSTOREREMOVE=1\nFDNAME=keep")
    }

    func testFileDescriptorStoreRejectsBadNamesAndEmptyLists() throws {
        let sink = try SystemdNotifySink(path: "\(directory)/notify")
        sink.export()
        let notifier = SystemdNotifier()
        var ends: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&ends), 0)
        defer { close(ends[0]); close(ends[1]) }
        for name in ["", "a:b", "tab\there", String(repeating: "n", count: 256), "caf\u{e9}"] {
            XCTAssertThrowsError(try notifier.storeDescriptors([ends[0]], name: name), "FDNAME '\(name)'") { error in
                XCTAssertEqual((error as? SocketError)?.errno, EINVAL)
                XCTAssertTrue("\(error)".contains("FDNAME"), "\(error)")
            }
        }
        XCTAssertThrowsError(try notifier.storeDescriptors([], name: "x")) { error in
            XCTAssertEqual((error as? SocketError)?.errno, EINVAL)
        }
        XCTAssertNil(try sink.receive(timeout: 0.1)?.message, "nothing was sent")
        let longest = String(repeating: "n", count: 255)
        XCTAssertTrue(try notifier.storeDescriptors([ends[0]], name: longest))
        XCTAssertEqual(try sink.message(), "FDSTORE=1\nFDNAME=\(longest)")
        // A closed descriptor: libsystemd's sendmsg fails with EBADF.
        XCTAssertThrowsError(try notifier.storeDescriptors([9999], name: "closed")) { error in
            XCTAssertEqual((error as? SocketError)?.errno, EBADF)
            XCTAssertTrue("\(error)".contains("sd_pid_notify_with_fds(FDSTORE=1)"), "\(error)")
        }
    }

    func testSendingToAMissingSocketThrowsWithErrno() throws {
        setenv("NOTIFY_SOCKET", "\(directory)/nobody-here", 1)
        XCTAssertThrowsError(try SystemdNotifier().ready()) { error in
            guard let error = error as? SocketError else { return XCTFail("\(error)") }
            XCTAssertEqual(error.errno, ENOENT)
            XCTAssertTrue(error.description.contains("READY=1"), error.description)
            XCTAssertTrue(error.description.contains("NOTIFY_SOCKET=\(directory)/nobody-here"), error.description)
        }
        // A socket file nobody reads any more: connection refused.
        let sink = try SystemdNotifySink(path: "\(directory)/gone")
        sink.socket.close()
        setenv("NOTIFY_SOCKET", "\(directory)/gone", 1)
        XCTAssertThrowsError(try SystemdNotifier().status("x")) { error in
            XCTAssertEqual((error as? SocketError)?.errno, ECONNREFUSED)
        }
    }

    func testBarrierWaitsForTheManagerToCloseItsDescriptor() throws {
        let sink = try SystemdNotifySink(path: "\(directory)/notify")
        sink.export()
        // Nobody reads: the barrier times out.
        XCTAssertThrowsError(try SystemdNotifier().barrier(timeout: 100_000)) { error in
            XCTAssertEqual((error as? SocketError)?.errno, ETIMEDOUT)
        }
        XCTAssertEqual(try sink.message(), "BARRIER=1")
        // A reader that closes what it receives, as PID 1 does, releases it.
        let seen = Mutex<[String]>([])
        let done = Atomic<Bool>(false)
        try DetachedThread.start {
            if let (message, fds) = try? sink.receive(timeout: 10) {
                for fd in fds { close(fd) }
                seen.withLock { $0.append("\(message) fds=\(fds.count)") }
            }
            done.store(true, ordering: .releasing)
        }
        XCTAssertTrue(try SystemdNotifier().barrier(timeout: 10_000_000))
        let deadline = MonotonicClock.seconds() + 10
        while !done.load(ordering: .acquiring) && MonotonicClock.seconds() < deadline { usleep(1000) }
        XCTAssertEqual(seen.withLock { $0 }, ["BARRIER=1 fds=1"])
    }
}

final class SystemdWatchdogTests: SystemdEnvironmentTestCase {
    func testNoWatchdogWithoutWatchdogUsec() throws {
        XCTAssertNil(try Watchdog.fromEnvironment())
    }

    func testWatchdogUsecAloneEnablesIt() throws {
        setenv("WATCHDOG_USEC", "3000000", 1)
        let watchdog = try XCTUnwrap(try Watchdog.fromEnvironment())
        XCTAssertEqual(watchdog.timeoutMicroseconds, 3_000_000)
        XCTAssertEqual(watchdog.intervalMicroseconds, 1_500_000)
        XCTAssertEqual(watchdog.interval, 1.5)
        XCTAssertEqual(watchdog.recommendedPollInterval, 0.75)
        XCTAssertNotNil(getenv("WATCHDOG_USEC"), "the variables stay for the daemon; children get a filtered environment")
    }

    func testWatchdogPidDecidesWhoPings() throws {
        setenv("WATCHDOG_USEC", "2000000", 1)
        setenv("WATCHDOG_PID", String(getpid()), 1)
        XCTAssertNotNil(try Watchdog.fromEnvironment(), "WATCHDOG_PID naming this process")
        setenv("WATCHDOG_PID", "1", 1)
        XCTAssertNil(try Watchdog.fromEnvironment(), "WATCHDOG_PID naming another process")
    }

    func testMalformedWatchdogUsecIsAnError() throws {
        for value in ["soon", "0", ""] {
            setenv("WATCHDOG_USEC", value, 1)
            XCTAssertThrowsError(try Watchdog.fromEnvironment(), "WATCHDOG_USEC='\(value)'") { error in
                guard let error = error as? SocketError else { return XCTFail("\(error)") }
                XCTAssertEqual(error.errno, EINVAL)
                XCTAssertTrue(error.description.contains("WATCHDOG_USEC=\(value)"), error.description)
            }
        }
    }

    func testPingIfDuePingsOncePerInterval() throws {
        let sink = try SystemdNotifySink(path: "\(directory)/notify")
        sink.export()
        setenv("WATCHDOG_USEC", "2000000", 1)
        let watchdog = try XCTUnwrap(try Watchdog.fromEnvironment())
        let start: UInt64 = 50_000_000
        XCTAssertTrue(try watchdog.pingIfDue(now: start), "the first call pings")
        XCTAssertEqual(try sink.message(), "WATCHDOG=1")
        XCTAssertFalse(try watchdog.pingIfDue(now: start + 10))
        XCTAssertFalse(try watchdog.pingIfDue(now: start + 999_999))
        XCTAssertFalse(try watchdog.pingIfDue(now: start - 5), "a clock reading older than the last ping")
        XCTAssertTrue(try watchdog.pingIfDue(now: start + 1_000_000), "one interval (half of WATCHDOG_USEC) later")
        XCTAssertEqual(try sink.message(), "WATCHDOG=1")
        XCTAssertFalse(try watchdog.pingIfDue(now: start + 1_500_000))
        XCTAssertNil(try sink.receive(timeout: 0.1).map(\.message), "no ping in between")
        XCTAssertTrue(try watchdog.ping())
        XCTAssertEqual(try sink.message(), "WATCHDOG=1")
    }

    func testPingIfDueFromManyThreadsPingsOnce() throws {
        let sink = try SystemdNotifySink(path: "\(directory)/notify")
        sink.export()
        let watchdog = Watchdog(timeoutMicroseconds: 60_000_000)
        let pings = Atomic<Int>(0)
        let finished = Atomic<Int>(0)
        let now = MonotonicClock.microseconds()
        for _ in 0..<8 {
            try DetachedThread.start {
                for _ in 0..<100 where (try? watchdog.pingIfDue(now: now)) == true {
                    pings.add(1, ordering: .relaxed)
                }
                finished.add(1, ordering: .releasing)
            }
        }
        let deadline = MonotonicClock.seconds() + 10
        while finished.load(ordering: .acquiring) < 8 && MonotonicClock.seconds() < deadline { usleep(1000) }
        XCTAssertEqual(pings.load(ordering: .relaxed), 1)
        XCTAssertEqual(try sink.message(), "WATCHDOG=1")
        XCTAssertNil(try sink.receive(timeout: 0.1).map(\.message))
    }

    func testWithoutNotifySocketPingIsANoOp() throws {
        let watchdog = Watchdog(timeoutMicroseconds: 1_000_000)
        XCTAssertFalse(try watchdog.pingIfDue())
    }
}

final class SystemdEnvironmentTests: SystemdEnvironmentTestCase {
    func testFilteredDropsOnlyTheDaemonsVariables() {
        let environment = [
            "PATH=/usr/bin", "LISTEN_PID=12", "LISTEN_FDS=2", "LISTEN_FDNAMES=a:b", "LISTEN_PIDFDID=9",
            "NOTIFY_SOCKET=/run/systemd/notify", "WATCHDOG_USEC=1000", "WATCHDOG_PID=12",
            "LISTENER=keep", "NOTIFY_SOCKETS=keep", "WATCHDOG=keep", "EMPTY=", "NOEQUALS",
        ]
        XCTAssertEqual(
            SystemdEnvironment.filtered(environment),
            ["PATH=/usr/bin", "LISTENER=keep", "NOTIFY_SOCKETS=keep", "WATCHDOG=keep", "EMPTY=", "NOEQUALS"])
    }

    func testEnvironmentForChildrenLeavesTheDaemonsOwnIntact() {
        setenv("NOTIFY_SOCKET", "@fs-test", 1)
        setenv("WATCHDOG_USEC", "5000000", 1)
        setenv("LISTEN_FDS", "1", 1)
        setenv("FS_SYSTEMD_TEST_KEEP", "yes", 1)
        defer { unsetenv("FS_SYSTEMD_TEST_KEEP") }
        let children = SystemdEnvironment.environmentForChildren()
        XCTAssertTrue(children.contains("FS_SYSTEMD_TEST_KEEP=yes"))
        XCTAssertFalse(children.contains { $0.hasPrefix("NOTIFY_SOCKET=") || $0.hasPrefix("WATCHDOG_") || $0.hasPrefix("LISTEN_") })
        XCTAssertEqual(String(cString: getenv("NOTIFY_SOCKET")), "@fs-test", "the daemon keeps notifying")
        XCTAssertTrue(SystemdEnvironment.currentEnvironment().contains("NOTIFY_SOCKET=@fs-test"))
    }

    func testRemoveDaemonOnlyVariables() {
        setenv("NOTIFY_SOCKET", "@fs-test", 1)
        setenv("WATCHDOG_PID", "1", 1)
        setenv("LISTEN_FDNAMES", "x", 1)
        setenv("FS_SYSTEMD_TEST_KEEP", "yes", 1)
        defer { unsetenv("FS_SYSTEMD_TEST_KEEP") }
        SystemdEnvironment.removeDaemonOnlyVariables()
        XCTAssertNil(getenv("NOTIFY_SOCKET"))
        XCTAssertNil(getenv("WATCHDOG_PID"))
        XCTAssertNil(getenv("LISTEN_FDNAMES"))
        XCTAssertNotNil(getenv("FS_SYSTEMD_TEST_KEEP"))
    }
}
