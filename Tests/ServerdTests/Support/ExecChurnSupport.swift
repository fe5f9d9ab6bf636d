import FamilyServer
import Foundation
import Glibc

// Helpers for the exec churn tests: one short exec connection classified by how it ended, a
// small pool of client threads working through a list of such connections, the process table
// from /proc, and a reaper for the processes that exec children leave behind.

// MARK: - One connection

/// How one exec connection ended, seen from the client.
struct ChurnResult {
    enum End: Hashable, CustomStringConvertible {
        /// The server closed the connection (recv returned 0).
        case eof
        /// ECONNRESET or EPIPE, on the send or on a receive.
        case reset
        /// Nothing more came within the client's timeout.
        case timeout
        /// Any other failure (connect refused, …): the call and errno.
        case failed(String)

        var description: String {
            switch self {
            case .eof: "eof"
            case .reset: "reset"
            case .timeout: "timeout"
            case .failed(let what): "failed (\(what))"
            }
        }
    }

    /// What the server sent, at most ``ChurnResult/byteCap`` bytes of it.
    var bytes: [UInt8]
    var end: End
    /// Whether more than ``ChurnResult/byteCap`` bytes came.
    var overflowed = false

    static let byteCap = 256

    var text: String { String(decoding: bytes, as: UTF8.self) }
}

/// One stream connection: connect, send `sending` (if any), then read until the server closes,
/// resets, or `timeout` seconds pass without a byte. Never raises SIGPIPE (MSG_NOSIGNAL).
func churnConnection(_ target: SocketAddress, sending: [UInt8], timeout: Double) -> ChurnResult {
    let socket: Socket
    do {
        socket = try Socket(family: target.family, transport: .stream)
    } catch {
        return ChurnResult(bytes: [], end: .failed("\(error)"))
    }
    defer { socket.close() }
    do {
        try socket.setTimeouts(receive: timeout, send: timeout)
        try socket.connect(to: target)
    } catch {
        return ChurnResult(bytes: [], end: .failed("\(error)"))
    }
    if !sending.isEmpty {
        do {
            try socket.sendAll(sending)
        } catch where error.errno == ECONNRESET || error.errno == EPIPE {
            // The child was gone before the bytes went out: what it sent may still be readable.
        } catch {
            return ChurnResult(bytes: [], end: .failed("\(error)"))
        }
    }
    var result = ChurnResult(bytes: [], end: .eof)
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        do {
            let n = try buffer.withUnsafeMutableBytes { try socket.receive(into: $0) }
            if n == 0 { return result }
            let room = ChurnResult.byteCap - result.bytes.count
            if n > room { result.overflowed = true }
            result.bytes += buffer[0..<min(n, room)]
        } catch {
            switch (error as? SocketError)?.errno {
            case ECONNRESET, EPIPE: result.end = .reset
            case EAGAIN, ETIMEDOUT: result.end = .timeout
            default: result.end = .failed("\(error)")
            }
            return result
        }
    }
}

// MARK: - Client pool

/// Per-target counts of verdicts with a few samples of the unexpected ones, shared by client threads.
final class ChurnTally: @unchecked Sendable {
    private let lock = NSLock()
    private var counts: [String: [String: Int]] = [:]
    private var samples: [String: [String]] = [:]

    func record(_ target: String, _ verdict: String, sample: @autoclosure () -> String? = nil) {
        lock.lock()
        defer { lock.unlock() }
        counts[target, default: [:]][verdict, default: 0] += 1
        if let text = sample(), samples[target, default: []].count < 5 {
            samples[target, default: []].append(text)
        }
    }

    func count(_ target: String, _ verdict: String) -> Int {
        lock.lock()
        defer { lock.unlock() }
        return counts[target]?[verdict] ?? 0
    }

    func verdicts(_ target: String) -> [String: Int] {
        lock.lock()
        defer { lock.unlock() }
        return counts[target] ?? [:]
    }

    func samples(_ target: String) -> [String] {
        lock.lock()
        defer { lock.unlock() }
        return samples[target] ?? []
    }

    var total: Int {
        lock.lock()
        defer { lock.unlock() }
        return counts.values.reduce(0) { $0 + $1.values.reduce(0, +) }
    }
}

/// Hands out the indices of a fixed job list to client threads, until the list is done or the
/// deadline has passed.
final class JobQueue: @unchecked Sendable {
    private let lock = NSLock()
    private let jobs: [Int]
    private var next = 0
    private let deadline: Double

    init(_ jobs: [Int], seconds: Double) {
        self.jobs = jobs
        deadline = MonotonicClock.seconds() + seconds
    }

    /// The next job, or nil when there is none left or time is up.
    func take() -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard next < jobs.count, MonotonicClock.seconds() < deadline else { return nil }
        next += 1
        return jobs[next - 1]
    }

    /// How many jobs were handed out.
    var taken: Int {
        lock.lock()
        defer { lock.unlock() }
        return next
    }
}

/// Runs `work(job)` for every job of `queue` on `threads` threads at once; returns once all
/// threads are done (or `joinTimeout` seconds after the queue's deadline at most: false then).
func runClientPool(threads: Int, queue: JobQueue, joinTimeout: Double, _ work: @escaping @Sendable (Int) -> Void) -> Bool {
    let workers = (0..<threads).map { index in
        ClientThread("churn client \(index)") {
            while let job = queue.take() { work(job) }
        }
    }
    let deadline = MonotonicClock.seconds() + joinTimeout
    return workers.allSatisfy { $0.join(timeout: max(0, deadline - MonotonicClock.seconds())) }
}

// MARK: - /proc

/// One process as /proc/PID/stat shows it.
struct ProcessEntry: CustomStringConvertible {
    var pid: pid_t
    var command: String
    var state: String
    var parent: pid_t
    var group: pid_t
    var session: pid_t

    var isAlive: Bool { state != "Z" && state != "X" && state != "x" }

    var description: String { "\(pid) (\(command)) \(state) ppid \(parent) pgid \(group) sid \(session)" }
}

/// /proc/PID/stat of one process, parsed; nil if it is gone.
func processEntry(_ pid: pid_t) -> ProcessEntry? {
    let text = readText("/proc/\(pid)/stat")
    guard let open = text.firstIndex(of: "("), let close = text.lastIndex(of: ")") else { return nil }
    let fields = text[text.index(after: close)...].split(separator: " ")
    guard fields.count > 3, let parent = pid_t(fields[1]), let group = pid_t(fields[2]), let session = pid_t(fields[3]) else {
        return nil
    }
    return ProcessEntry(
        pid: pid, command: String(text[text.index(after: open)..<close]), state: String(fields[0]), parent: parent,
        group: group, session: session)
}

/// Every process on the machine.
func processTable() -> [ProcessEntry] {
    ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(pid_t.init).compactMap(processEntry)
}

/// The four signal sets of /proc/PID/status (`SigPnd` aside) as hex texts, by name.
func signalSets(inStatus text: String) -> [String: String] {
    var sets: [String: String] = [:]
    for line in text.split(separator: "\n") {
        for key in ["SigBlk", "SigIgn", "SigCgt", "ShdPnd", "SigPnd"] where line.hasPrefix(key + ":") {
            sets[key] = line.dropFirst(key.count + 1).trimmingCharacters(in: .whitespaces)
        }
    }
    return sets
}

/// The signal numbers of a hex signal set of /proc/PID/status (bit N-1 for signal N).
func signalNumbers(inMask hex: String) -> Set<Int32> {
    guard let mask = UInt64(hex, radix: 16) else { return [] }
    return Set((1...64).filter { mask & (1 << UInt64($0 - 1)) != 0 }.map(Int32.init))
}

// MARK: - Orphans

/// prctl(2) is variadic, so the Glibc module does not export it; x86-64 and aarch64 pass its
/// integer arguments as they pass a fixed list.
private typealias PrctlFunction = @convention(c) (Int32, UInt, UInt, UInt, UInt) -> Int32
private let PR_SET_CHILD_SUBREAPER: Int32 = 36

func setChildSubreaper(_ on: Bool) -> Bool {
    guard let handle = dlopen(nil, RTLD_NOW), let symbol = dlsym(handle, "prctl") else { return false }
    let prctl = unsafeBitCast(symbol, to: PrctlFunction.self)
    return prctl(PR_SET_CHILD_SUBREAPER, on ? 1 : 0, 0, 0, 0) == 0
}

/// Makes this test process the child subreaper while it lives, and reaps the orphans that land
/// here once they exit: an exec child's background process outlives it by design, and in this
/// container pid 1 reaps nobody, so without this every such process would stay a zombie for the
/// machine's life (100,000 connections would use up pid_max). The orphans are children of this
/// process from then on: ``liveOrphans`` lists those still running. Children this process had
/// before, and those named with ``keep(_:)`` (serverd itself, which Foundation reaps), are
/// never touched.
final class OrphanReaper: @unchecked Sendable {
    private let lock = NSLock()
    private var kept: Set<pid_t>
    private var reapedCount = 0
    private let stop = StopFlag()
    private var thread: ClientThread?
    private var finished = false

    init() throws {
        kept = Set(childProcesses(of: getpid()))
        guard setChildSubreaper(true) else { throw TestFailure("prctl(PR_SET_CHILD_SUBREAPER): errno \(errno)") }
        thread = ClientThread("orphan reaper") { [self] in
            while !stop.isRaised {
                reapZombies()
                usleep(20_000)
            }
        }
    }

    /// A child not to reap (the test's serverd).
    func keep(_ pid: pid_t) {
        lock.lock()
        kept.insert(pid)
        lock.unlock()
    }

    /// How many orphans were reaped so far.
    var reaped: Int {
        lock.lock()
        defer { lock.unlock() }
        return reapedCount
    }

    private func isKept(_ pid: pid_t) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return kept.contains(pid)
    }

    /// The orphans that are still running (children of this process not kept, not zombies).
    var liveOrphans: [ProcessEntry] {
        childProcesses(of: getpid()).filter { !isKept($0) }.compactMap(processEntry).filter(\.isAlive)
    }

    /// Reaps every orphan that has exited.
    private func reapZombies() {
        for pid in childProcesses(of: getpid()) where !isKept(pid) && processEntry(pid)?.isAlive == false {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                lock.lock()
                reapedCount += 1
                lock.unlock()
            }
        }
    }

    /// Stops being the subreaper; waits up to `seconds` for the orphans that are still running,
    /// reaping them as they exit. Returns those still running then (a failed test's).
    @discardableResult
    func finish(waiting seconds: Double = 5) -> [ProcessEntry] {
        lock.lock()
        let first = !finished
        finished = true
        lock.unlock()
        guard first else { return liveOrphans }
        _ = setChildSubreaper(false)
        eventually(timeout: seconds) { liveOrphans.isEmpty }
        stop.raise()
        _ = thread?.join(timeout: 5)
        reapZombies()
        return liveOrphans
    }
}
