import FamilyServer
import Foundation
import Glibc

// Helpers for tests that drive traffic from client threads while the test thread signals serverd:
// outcome counters, a stop flag, joinable threads, single echo round trips that classify every
// failure by its errno, /proc descriptor counts and byte-exact file reads and writes.

/// How one client round trip ended.
enum RoundTripOutcome: Hashable, CustomStringConvertible {
    /// The reply came back, byte for byte.
    case ok
    /// ECONNREFUSED, or ENOENT for a Unix socket file that is gone.
    case refused
    /// ECONNRESET or EPIPE.
    case reset
    /// No reply within the client's timeout (stream), or none after every retry (datagram).
    case timeout
    /// The peer closed before the whole echo came back.
    case closedEarly
    /// Bytes came back but not the ones sent.
    case wrong
    /// Any other error.
    case other

    var description: String {
        switch self {
        case .ok: "ok"
        case .refused: "refused"
        case .reset: "reset"
        case .timeout: "timeout"
        case .closedEarly: "closed early"
        case .wrong: "wrong echo"
        case .other: "other error"
        }
    }

    static func classify(_ error: any Error) -> RoundTripOutcome {
        switch (error as? SocketError)?.errno {
        case ECONNREFUSED, ENOENT: .refused
        case ECONNRESET, EPIPE: .reset
        case EAGAIN, ETIMEDOUT, EINPROGRESS: .timeout
        default: .other
        }
    }
}

/// Counts of outcomes, shared between client threads and the test thread.
final class OutcomeCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var counts: [RoundTripOutcome: Int] = [:]
    private var samples: [String] = []
    private var retries = 0

    func record(_ outcome: RoundTripOutcome, _ detail: @autoclosure () -> String = "") {
        lock.lock()
        defer { lock.unlock() }
        counts[outcome, default: 0] += 1
        if outcome != .ok && samples.count < 10 { samples.append("\(outcome): \(detail())") }
    }

    /// A datagram sent again after a reply did not come in time.
    func recordRetry() {
        lock.lock()
        retries += 1
        lock.unlock()
    }

    subscript(outcome: RoundTripOutcome) -> Int {
        lock.lock()
        defer { lock.unlock() }
        return counts[outcome] ?? 0
    }

    /// Every round trip so far, whatever its outcome.
    var total: Int {
        lock.lock()
        defer { lock.unlock() }
        return counts.values.reduce(0, +)
    }

    /// Every outcome but `ok`.
    var failures: Int {
        lock.lock()
        defer { lock.unlock() }
        return counts.filter { $0.key != .ok }.values.reduce(0, +)
    }

    var summary: String {
        lock.lock()
        defer { lock.unlock() }
        let parts = counts.sorted { $0.key.description < $1.key.description }.map { "\($0.key): \($0.value)" }
        return "[\(parts.joined(separator: ", "))], retries \(retries); first failures: \(samples)"
    }
}

/// A flag the test thread raises to end its client threads.
final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var raised = false

    var isRaised: Bool {
        lock.lock()
        defer { lock.unlock() }
        return raised
    }

    func raise() {
        lock.lock()
        raised = true
        lock.unlock()
    }
}

/// A thread running `body` once, which the test can wait for.
final class ClientThread: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)

    init(_ name: String, _ body: @escaping @Sendable () -> Void) {
        let thread = Thread { [done] in
            body()
            done.signal()
        }
        thread.name = name
        thread.start()
    }

    /// Waits for the thread to finish; false if it did not within `timeout` seconds.
    func join(timeout: Double) -> Bool {
        done.wait(timeout: .now() + timeout) == .success
    }
}

/// One stream echo round trip on a fresh connection: connect, send `payload`, read it back, close.
func streamEchoRoundTrip(_ address: SocketAddress, _ payload: [UInt8], timeout: Double = 5) -> (RoundTripOutcome, String) {
    do {
        let socket = try Socket(family: address.family, transport: .stream)
        defer { socket.close() }
        try socket.setTimeouts(receive: timeout, send: timeout)
        try socket.connect(to: address)
        try socket.sendAll(payload)
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while received.count < payload.count {
            let n = try buffer.withUnsafeMutableBytes { try socket.receive(into: $0) }
            if n == 0 { break }
            received += buffer[0..<n]
        }
        if received == payload { return (.ok, "") }
        if received.count < payload.count && Array(payload.prefix(received.count)) == received {
            return (.closedEarly, "\(received.count) of \(payload.count) bytes")
        }
        return (.wrong, String(decoding: received, as: UTF8.self))
    } catch {
        return (RoundTripOutcome.classify(error), "\(error)")
    }
}

/// A datagram client with its own socket for its whole life (a Unix one autobound, so that replies
/// have somewhere to go), sending numbered requests and matching replies by their number.
///
/// Retry policy: a request whose reply has not come within `attemptTimeout` seconds is sent again,
/// up to `attempts` times in all; only then is it counted lost (`.timeout`). Replies to earlier,
/// already retried requests that arrive late are recognised by their number and skipped. Loopback
/// and Unix datagrams are not dropped by the kernel while the receiving socket lives and its buffer
/// has room, so with a kept socket nothing should ever be lost; the retries only make the count fair.
final class DatagramEchoClient {
    let socket: Socket
    let target: SocketAddress
    let label: String
    let attempts: Int
    let attemptTimeout: Double
    private var sequence = 0

    init(_ target: SocketAddress, label: String, attempts: Int = 4, attemptTimeout: Double = 1.5) throws {
        self.target = target
        self.label = label
        self.attempts = attempts
        self.attemptTimeout = attemptTimeout
        socket = try Socket(family: target.family, transport: .datagram)
        if target.isUnix {
            try socket.bind(to: SocketAddress(.datagram, .unnamed))
        }
        try socket.setTimeouts(receive: attemptTimeout, send: 5)
    }

    deinit { socket.close() }

    /// One numbered request and its reply, retried as documented above.
    func roundTrip(_ counter: OutcomeCounter) -> (RoundTripOutcome, String) {
        sequence += 1
        let prefix = "\(label) #"
        let payload = Array("\(prefix)\(sequence) \(String(repeating: "d", count: 40))".utf8)
        for attempt in 1...attempts {
            if attempt > 1 { counter.recordRetry() }
            do {
                try socket.sendDatagram(payload, to: target)
            } catch {
                return (RoundTripOutcome.classify(error), "send: \(error)")
            }
            let deadline = MonotonicClock.seconds() + attemptTimeout
            while MonotonicClock.seconds() < deadline {
                do {
                    guard let reply = try socket.receiveDatagram(maxSize: 65536)?.bytes else { continue }
                    if reply == payload { return (.ok, "") }
                    // A late reply to an earlier request of this client: skip it.
                    let text = String(decoding: reply, as: UTF8.self)
                    if text.hasPrefix(prefix), let number = Int(text.dropFirst(prefix.count).prefix { $0.isNumber }),
                        number < sequence
                    {
                        continue
                    }
                    return (.wrong, text)
                } catch {
                    let outcome = RoundTripOutcome.classify(error)
                    if outcome == .timeout { break }
                    return (outcome, "receive: \(error)")
                }
            }
        }
        return (.timeout, "no reply to \(label) #\(sequence) after \(attempts) sends, \(attemptTimeout) s each")
    }
}

/// How many descriptors a process has open (entries of /proc/PID/fd).
func descriptorCount(_ pid: pid_t) -> Int {
    ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).count
}

/// The descriptor count once it reads the same twice in a row 50 ms apart (or the last one read
/// after `attempts` tries): a count taken while the process is between two calls that open and
/// close a descriptor would otherwise be off by one.
func settledDescriptorCount(_ pid: pid_t, attempts: Int = 40) -> Int {
    var last = descriptorCount(pid)
    for _ in 0..<attempts {
        usleep(50_000)
        let now = descriptorCount(pid)
        if now == last { return now }
        last = now
    }
    return last
}

/// The entries of a directory, sorted (empty if it cannot be read).
func directoryEntries(_ path: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
}

/// A file's bytes decoded as UTF-8 with invalid sequences replaced (so that a log holding bytes
/// that are not UTF-8 still reads), or "" if it cannot be read.
func readLossy(_ path: String) -> String {
    guard let data = FileManager.default.contents(atPath: path) else { return "" }
    return String(decoding: data, as: UTF8.self)
}

/// Replaces `path` by `bytes` atomically: written to a temporary file beside it, then renamed.
func replaceFile(_ path: String, with bytes: [UInt8]) throws {
    let temporary = path + ".new"
    guard FileManager.default.createFile(atPath: temporary, contents: Data(bytes)) else {
        throw TestFailure("cannot write \(temporary)")
    }
    guard rename(temporary, path) == 0 else { throw TestFailure("rename \(temporary): errno \(errno)") }
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes, without failing: the
/// assertion that follows says what was expected. (A removed listener's socket file, or the
/// descriptors of connections the clients closed, may go a moment after `READY=1`.)
func eventually(timeout: Double = 5, _ condition: () -> Bool) {
    let deadline = MonotonicClock.seconds() + timeout
    while !condition() && MonotonicClock.seconds() < deadline { usleep(20_000) }
}

/// `fd N -> target` for every descriptor of a process, for failure messages.
func descriptorList(_ pid: pid_t) -> String {
    let fds = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).compactMap(Int32.init).sorted()
    return fds.map { "\($0) -> \(descriptorTarget(pid, $0) ?? "?")" }.joined(separator: ", ")
}
