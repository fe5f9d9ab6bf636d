import FamilyServer
import Foundation  // probe
import Glibc
import Synchronization
import XCTest

// Shared helpers of the FamilyServer tests: temporary directories and unique names, a `runServer`
// harness like CPython's `run_server`, blocking clients, echo handlers, and counters of the
// process's descriptors, threads and children.
//
// Every test uses its own temporary directory for Unix paths, port 0 on 127.0.0.1 / ::1, and
// abstract names made unique by pid and a counter, so tests can run in parallel processes. Clients
// end their side with shutdown(SHUT_WR), never by relying on close(): a forked child may hold a
// copy of a client's descriptor.

/// A test expectation that failed in a way XCTest cannot express inline.
struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// An error handlers throw on purpose.
struct DeliberateError: Error, Equatable, CustomStringConvertible {
    let description: String
    init(_ description: String = "deliberate test error") { self.description = description }
}

// MARK: - Unique names and temporary directories

private let uniqueCounter = Atomic<Int>(0)

/// A name unique across the processes running tests at once: pid plus a per-process counter.
func uniqueName(_ tag: String) -> String {
    let number = uniqueCounter.add(1, ordering: .relaxed).newValue
    return "fstest-\(getpid())-\(number)-\(tag)"
}

/// Creates a fresh directory under /tmp (mkdtemp) and returns its path.
func makeTemporaryDirectory() -> String {
    var template = Array("/tmp/fstest.XXXXXX".utf8CString)
    guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
        fatalError("mkdtemp: \(String(cString: strerror(errno)))")
    }
    return String(cString: made)
}

/// A test case with a temporary directory of its own, removed after the test.
class FamilyServerTestCase: XCTestCase {
    /// This test's private directory.
    private(set) var directory = ""

    override func setUp() {
        super.setUp()
        directory = makeTemporaryDirectory()
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
        super.tearDown()
    }

    /// A path inside this test's directory.
    func path(_ name: String) -> String { "\(directory)/\(name)" }

    /// An address of `family` for `transport`: port 0 on a loopback address, a fresh path in this
    /// test's directory, or a fresh abstract name.
    func address(_ family: TestFamily, _ transport: SocketAddress.Transport) -> SocketAddress {
        switch family {
        case .ipv4: return SocketAddress(transport, .inet(IPAddress(numeric: "127.0.0.1")!, port: 0))
        case .ipv6: return SocketAddress(transport, .inet(IPAddress(numeric: "::1")!, port: 0))
        case .unixPath: return SocketAddress(transport, .unixPath(path(uniqueName("server.sock"))))
        case .unixAbstract: return SocketAddress(transport, .unixAbstract(Array(uniqueName("server").utf8)))
        }
    }

    /// A client address for a Unix datagram client (which must be bound to get replies), else `nil`.
    func clientAddress(for server: SocketAddress) -> SocketAddress? {
        switch server.endpoint {
        case .unixPath: return SocketAddress(.datagram, .unixPath(path(uniqueName("client.sock"))))
        case .unixAbstract: return SocketAddress(.datagram, .unixAbstract(Array(uniqueName("client").utf8)))
        default: return nil
        }
    }

    /// Skips the test when the machine has no IPv6 loopback.
    func requireIPv6() throws {
        let probe = try Socket(family: AF_INET6, transport: .stream)
        defer { probe.close() }
        do {
            try probe.bind(to: SocketAddress(.stream, .inet(IPAddress(numeric: "::1")!, port: 0)))
        } catch {
            throw XCTSkip("no IPv6 loopback: \(error)")
        }
    }

    /// Makes a server of `transport` on `family` with `model`, serving `handler`.
    func makeServer(
        _ family: TestFamily, _ transport: SocketAddress.Transport, _ model: TestModel,
        handler: BaseRequestHandler.Type? = nil
    ) throws -> BaseServer {
        let address = address(family, transport)
        switch transport {
        case .stream:
            return try StreamServer(address: address, handler: handler ?? StreamEchoHandler.self, model: model.make())
        case .datagram:
            return try DatagramServer(address: address, handler: handler ?? DatagramEchoHandler.self, model: model.make())
        }
    }

    /// CPython's `run_server`: checks the bound address (unless `checkAddress` is false), serves
    /// with a poll interval of 10 ms while `client` runs three times against the server's
    /// address (see ``serving(_:pollInterval:client:)``), then shuts the server down, joins the
    /// serving thread, closes the server, and checks that the descriptor is -1 and, for a
    /// forking server, that no child is left.
    ///
    /// `client` may run in a child process: it reports failures by throwing (``expect(_:_:)``),
    /// never with XCTAssert.
    func runServer(
        _ server: BaseServer, checkAddress: Bool = true, file: StaticString = #filePath, line: UInt = #line,
        _ client: (SocketAddress) throws -> Void
    ) throws {
        if checkAddress {
            XCTAssertEqual(server.serverAddress, try server.socket.localAddress(), file: file, line: line)
        }
        let address = connectable(server.serverAddress)
        let thread: TestThread
        do {
            thread = try serving(server) {
                for _ in 0..<3 { try client(address) }
            }
        } catch {
            server.serverClose()
            throw error
        }
        server.shutdown()
        XCTAssertTrue(thread.join(), "serveForever did not return after shutdown()", file: file, line: line)
        server.serverClose()
        XCTAssertEqual(server.fileno, -1, file: file, line: line)
        if let forking = server.processingModel as? ForkingModel {
            XCTAssertEqual(forking.activeChildren, [], "children left after serverClose", file: file, line: line)
        }
    }

    /// The client side of CPython's stream tests: sends `hello world\n`, expects it back, then EOF.
    func streamEchoClient(_ address: SocketAddress) throws {
        let reply = try Client.exchange(address, Array("hello world\n".utf8))
        try expect(String(decoding: reply, as: UTF8.self) == "hello world\n", "stream echo replied \(reply)")
    }

    /// The client side of CPython's datagram tests: sends `hello world\n`, expects it back.
    func datagramEchoClient(_ address: SocketAddress) throws {
        let reply = try Client.datagramExchange(address, Array("hello world\n".utf8), from: clientAddress(for: address))
        try expect(String(decoding: reply, as: UTF8.self) == "hello world\n", "datagram echo replied \(reply)")
    }
}

// MARK: - Serving while a client runs

/// Throws a ``TestFailure`` saying `message` unless `condition` holds. For code that may run in a
/// child process (clients of forking servers), where XCTest's assertions would be lost.
func expect(_ condition: Bool, _ message: @autoclosure () -> String) throws {
    if !condition { throw TestFailure(message()) }
}

/// Serves `server` on a new thread while `client` runs, and returns that thread, still serving.
///
/// For a forking server the client runs in a child process forked *before* the serve loop
/// starts, and this thread waits for it in read(2) and waitpid(2). fork() copies only the
/// calling thread: a lock that another thread holds at that moment stays locked forever in the
/// child, and the Swift runtime takes locks in generic code (observed: a forked handler hung in
/// swift_getWitnessTable while the test's client thread ran). So the serve loop must fork only
/// while no other thread of this process runs Swift code.
///
/// If `client` fails, the server is shut down and the error rethrown.
func serving(_ server: BaseServer, pollInterval: Double = 0.01, client: () throws -> Void) throws -> TestThread {
    if server.processingModel is ForkingModel {
        let process = try ClientProcess(client)
        let thread = try TestThread { server.serveForever(pollInterval: pollInterval) }
        do {
            try process.wait()
        } catch {
            server.shutdown()
            thread.join()
            throw error
        }
        return thread
    }
    let thread = try TestThread { server.serveForever(pollInterval: pollInterval) }
    do {
        try client()
    } catch {
        server.shutdown()
        thread.join()
        throw error
    }
    return thread
}

/// A client running in a child process, which reports its failure through a pipe.
final class ClientProcess {
    let pid: pid_t
    private let report: Int32

    /// Forks now and runs `body` in the child, which then exits: 0 if `body` returned, 1 with
    /// the error's description written to the pipe if it threw.
    init(_ body: () throws -> Void) throws {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw SocketError("pipe", errno: errno) }
        let pid = fork()
        if pid == 0 {
            close(fds[0])
            var status: Int32 = 0
            do {
                try body()
            } catch {
                let text = Array("\(error)".utf8)
                _ = text.withUnsafeBytes { write(fds[1], $0.baseAddress, $0.count) }
                status = 1
            }
            _exit(status)
        }
        close(fds[1])
        guard pid > 0 else {
            close(fds[0])
            throw SocketError("fork", errno: errno)
        }
        self.pid = pid
        self.report = fds[0]
    }

    /// Waits for the child to exit.
    /// - Throws: ``TestFailure`` with the child's error, or its exit status.
    func wait() throws {
        var text: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(report, $0.baseAddress, $0.count) }
            if count > 0 {
                text += buffer[0..<count]
            } else if count == 0 || errno != EINTR {
                break
            }
        }
        close(report)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        if status != 0 {
            throw TestFailure("client process: \(text.isEmpty ? "exit status \(status)" : String(decoding: text, as: UTF8.self))")
        }
    }
}

/// The families every server test runs on.
enum TestFamily: String, CaseIterable, Sendable {
    case ipv4, ipv6, unixPath, unixAbstract
}

/// The three processing models.
enum TestModel: String, CaseIterable, Sendable {
    case serial, threading, forking

    /// The models a test that runs every model runs: all of them, but under ThreadSanitizer
    /// (`FAMILYSERVER_TEST_NO_FORK=1`, set by Stress/sanitized-test.sh) not forking. A fork from this test
    /// process, whose other threads run the client, can leave the child waiting for ever on a lock one of them
    /// held (seen under TSan: Swift's metadata once-lock); the daemon forks only while single-threaded.
    static var inThisRun: [TestModel] {
        ProcessInfo.processInfo.environment["FAMILYSERVER_TEST_NO_FORK"] == "1" ? [.serial, .threading] : allCases
    }

    /// A fresh model of this kind.
    func make() -> ProcessingModel {
        switch self {
        case .serial: return SerialModel()
        case .threading: return ThreadingModel()
        case .forking: return ForkingModel()
        }
    }
}

/// The address a client connects to for a server bound at `address`: a wildcard becomes loopback.
func connectable(_ address: SocketAddress) -> SocketAddress {
    guard let ip = address.ip, ip.isWildcard, let port = address.port else { return address }
    let loopback = IPAddress(numeric: ip.isIPv4 ? "127.0.0.1" : "::1")!
    return SocketAddress(address.transport, .inet(loopback, port: port))
}

// MARK: - Handlers

/// Echoes one line back (CPython's `MyMixinHandler` + `StreamRequestHandler` echo).
final class StreamEchoHandler: StreamRequestHandler {
    override func handle() throws {
        try wfile.write(try rfile.readline())
    }
}

/// Echoes every datagram back to its sender.
final class DatagramEchoHandler: DatagramRequestHandler {
    override func handle() throws {
        try wfile.write(try rfile.readToEnd())
    }
}

/// Echoes every byte until the client ends its side.
final class StreamEchoAllHandler: StreamRequestHandler {
    override func handle() throws {
        while true {
            let chunk = try rfile.readAvailable()
            if chunk.isEmpty { return }
            try wfile.write(chunk)
        }
    }
}

// MARK: - Clients

/// Blocking clients with a generous timeout, so that a broken server fails a test instead of
/// hanging it.
enum Client {
    /// Seconds a client waits for any one send or receive.
    static let timeout = 30.0

    /// A connected stream socket.
    static func connect(_ address: SocketAddress) throws -> Socket {
        let socket = try Socket(family: address.family, transport: .stream)
        do {
            try socket.setTimeouts(receive: timeout, send: timeout)
            try socket.connect(to: address)
        } catch {
            socket.close()
            throw error
        }
        return socket
    }

    /// Reads until the peer ends its side.
    static func readToEnd(_ socket: Socket) throws -> [UInt8] {
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = try buffer.withUnsafeMutableBytes { try socket.receive(into: $0) }
            if count == 0 { return result }
            result += buffer[0..<count]
        }
    }

    /// Reads exactly `count` bytes (fewer only if the peer ends its side first).
    static func read(_ socket: Socket, count: Int) throws -> [UInt8] {
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while result.count < count {
            let wanted = min(buffer.count, count - result.count)
            let received = try buffer.withUnsafeMutableBytes {
                try socket.receive(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<wanted]))
            }
            if received == 0 { break }
            result += buffer[0..<received]
        }
        return result
    }

    /// Reads up to and including the next LF (byte by byte, so nothing after it is consumed).
    static func readLine(_ socket: Socket) throws -> [UInt8] {
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            let count = try withUnsafeMutableBytes(of: &byte) { try socket.receive(into: $0) }
            if count == 0 { return line }
            line.append(byte)
            if byte == 0x0A { return line }
        }
    }

    /// Connects, sends `payload`, ends the sending side with shutdown(SHUT_WR) and reads the
    /// reply until the server closes.
    static func exchange(_ address: SocketAddress, _ payload: [UInt8]) throws -> [UInt8] {
        let socket = try connect(address)
        defer { socket.close() }
        try socket.sendAll(payload)
        try socket.shutdown(Int32(SHUT_WR))
        return try readToEnd(socket)
    }

    /// A datagram socket for talking to `server`, bound to `local` if given.
    static func datagramSocket(for server: SocketAddress, bindingTo local: SocketAddress? = nil) throws -> Socket {
        let socket = try Socket(family: server.family, transport: .datagram)
        do {
            try socket.setTimeouts(receive: timeout, send: timeout)
            if let local { try socket.bind(to: local) }
        } catch {
            socket.close()
            throw error
        }
        return socket
    }

    /// Receives one datagram, failing after the client timeout.
    static func receiveDatagram(_ socket: Socket, maxSize: Int = 65536) throws -> [UInt8] {
        guard let (bytes, _) = try socket.receiveDatagram(maxSize: maxSize) else {
            throw TestFailure("no datagram within \(timeout) s")
        }
        return bytes
    }

    /// Sends one datagram to `address` from a socket bound to `local` (if given) and returns the reply.
    static func datagramExchange(_ address: SocketAddress, _ payload: [UInt8], from local: SocketAddress?) throws -> [UInt8] {
        let socket = try datagramSocket(for: address, bindingTo: local)
        defer {
            socket.close()
            if let path = local?.path { unlink(path) }
        }
        try socket.sendDatagram(payload, to: address)
        return try receiveDatagram(socket)
    }
}

// MARK: - Threads

/// A thread running one closure, which can be waited for.
final class TestThread: Sendable {
    private let finished: ConditionLock<Bool>

    /// Starts `body` on a new thread (1 MiB stack).
    init(_ body: @escaping @Sendable () -> Void) throws {
        let finished = ConditionLock(false)
        self.finished = finished
        try DetachedThread.start(stackSize: 1 << 20) {
            body()
            finished.withLock(notify: .all) { $0 = true }
        }
    }

    /// Waits up to `timeout` seconds for the closure to return; returns whether it did.
    @discardableResult
    func join(timeout: Double = 30) -> Bool {
        finished.wait(until: { $0 }, timeout: timeout) { _, done in done }
    }
}

/// Waits until `condition` holds, checking every 10 ms for up to `timeout` seconds.
/// - Returns: whether it held in time.
@discardableResult
func eventually(timeout: Double = 10, _ condition: () -> Bool) -> Bool {
    let deadline = MonotonicClock.seconds() + timeout
    while true {
        if condition() { return true }
        if MonotonicClock.seconds() >= deadline { return false }
        usleep(10_000)
    }
}

// MARK: - Recording

/// Lines recorded by handlers and server hooks running on any thread of this process.
final class EventLog: Sendable {
    /// A pthread lock, which ThreadSanitizer sees (it saw two reactor threads' appends under a
    /// Synchronization.Mutex, whose futex it does not follow, as a race).
    private let lines = ConditionLock<[String]>([])

    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
    func count(of line: String) -> Int { all.filter { $0 == line }.count }
}

/// Lines recorded in a file, so that forked children can record too (O_APPEND, one write a line).
final class LogFile: Sendable {
    let path: String

    init(path: String) { self.path = path }

    func append(_ line: String) {
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }

    var contents: String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
}

// MARK: - The process's resources

/// Names in a /proc directory (without `.` and `..`).
func procEntries(_ directory: String) -> [String] {
    guard let dir = opendir(directory) else { return [] }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

/// The open descriptors of this process, counted in two groups: sockets, pipes and files, which
/// only the code under test opens here; and anonymous inodes (eventfd, timerfd, epoll), which
/// libdispatch and Foundation also create lazily now and then, so a test allows those a little
/// slack (and checks a server's own eventfd by checking that the server is released).
struct Descriptors: CustomStringConvertible {
    var files = 0
    var anonymous = 0

    init() {
        for entry in openDescriptors() {
            if entry.contains("=anon_inode:") { anonymous += 1 } else { files += 1 }
        }
    }

    var description: String { "\(files) sockets/pipes/files and \(anonymous) anonymous descriptors" }

    /// Whether this has no more descriptors than `other`, allowing `slack` more anonymous ones.
    func isWithin(_ other: Descriptors, slack: Int = 2) -> Bool {
        files <= other.files && anonymous <= other.anonymous + slack
    }
}

/// What every open descriptor of this process refers to, for failure messages.
func openDescriptors() -> [String] {
    procEntries("/proc/self/fd").compactMap { fd -> String? in
        var buffer = [CChar](repeating: 0, count: 512)
        let count = readlink("/proc/self/fd/\(fd)", &buffer, buffer.count - 1)
        guard count >= 0 else { return nil }
        return "\(fd)=\(String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self))"
    }
}

/// Threads of this process.
func threadCount() -> Int { procEntries("/proc/self/task").count }

/// Child processes of this process, zombies included (every thread's `children` list).
func childProcesses() -> Set<pid_t> {
    var children = Set<pid_t>()
    for task in procEntries("/proc/self/task") {
        guard let text = try? String(contentsOfFile: "/proc/self/task/\(task)/children", encoding: .utf8) else { continue }
        for field in text.split(separator: " ") {
            if let pid = pid_t(field.trimmingCharacters(in: .whitespacesAndNewlines)) { children.insert(pid) }
        }
    }
    return children
}

/// The file type bits of `path` (lstat), or `nil` if nothing is there.
func fileType(_ path: String) -> mode_t? {
    var info = stat()
    guard lstat(path, &info) == 0 else { return nil }
    return info.st_mode & S_IFMT
}

// MARK: - Servers that record

/// A server whose handlers and hooks record what happened in ``events``.
protocol EventRecording: AnyObject {
    var events: EventLog { get }
}

extension BaseRequestHandler {
    /// Records `line` in the server's event log (the server must be ``EventRecording``).
    func record(_ line: String) {
        (server as! EventRecording).events.append(line)
    }
}

/// A stream server recording every `handleError` as `error: …`.
final class RecordingStreamServer: StreamServer, EventRecording, @unchecked Sendable {
    let events = EventLog()

    override func handleError(_ request: Request?, clientAddress: SocketAddress?, error: any Error) {
        events.append("error: \(error)")
    }
}

/// A datagram server recording every `handleError` as `error: …`.
final class RecordingDatagramServer: DatagramServer, EventRecording, @unchecked Sendable {
    let events = EventLog()

    override func handleError(_ request: Request?, clientAddress: SocketAddress?, error: any Error) {
        events.append("error: \(error)")
    }
}

/// Creates (or replaces) a regular file at `path` holding `text`.
func writeFile(_ path: String, _ text: String) throws {
    guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8)) else {
        throw TestFailure("cannot create \(path)")
    }
}

/// The contents of the file at `path`, or `nil` if it cannot be read.
func readFile(_ path: String) -> String? {
    try? String(contentsOfFile: path, encoding: .utf8)
}

/// The threads that recorded each label, for tests of which thread runs what.
final class ThreadLog: Sendable {
    private let entries = ConditionLock<[(label: String, thread: UInt)]>([])

    /// Records that the calling thread did `label`.
    func record(_ label: String) { entries.withLock { $0.append((label, UInt(pthread_self()))) } }

    /// The distinct threads that recorded `label`, in the order first seen.
    func threads(of label: String) -> [pthread_t] {
        var seen: [pthread_t] = []
        for entry in entries.withLock({ $0 }) where entry.label == label && !seen.contains(entry.thread) {
            seen.append(entry.thread)
        }
        return seen
    }
}
