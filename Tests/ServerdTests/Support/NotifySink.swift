import FamilyServer
import Foundation
import Glibc
import XCTest

/// A notify socket of the test's own, standing in for PID 1: an AF_UNIX datagram socket bound at a
/// path in the test's directory or at a unique abstract name, with SO_PASSCRED so that every
/// message carries its sender's PID. Pass ``environment`` to serverd (`NOTIFY_SOCKET=…`).
///
/// journald's native socket takes the same `KEY=VALUE` lines, so a sink also stands in for
/// `/run/systemd/journal/socket` (``ObservabilityTests``).
///
/// Every message received is kept in ``messages``; the `wait…` methods read until a message
/// matches or a timeout passes, never for a fixed time.
final class NotifySink {
    /// One sd_notify datagram: its `KEY=VALUE` lines and the sender's PID.
    struct Message: CustomStringConvertible {
        let text: String
        let pid: pid_t?
        let time: Double

        /// The assignments, in order.
        var assignments: [(key: String, value: String)] {
            text.split(separator: "\n").map { line in
                let parts = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                return (String(parts[0]), parts.count > 1 ? String(parts[1]) : "")
            }
        }

        /// The value of `key`, if the message has it.
        subscript(key: String) -> String? { assignments.first { $0.key == key }?.value }

        var description: String { "[\(pid.map(String.init) ?? "?")] \(text.replacingOccurrences(of: "\n", with: "\\n"))" }
    }

    private let socket: Socket
    /// The value for NOTIFY_SOCKET: the path, or `@name`.
    let address: String
    /// Every message received so far, oldest first.
    private(set) var messages: [Message] = []
    /// How many of ``messages`` the `next…` readers have consumed.
    private var consumed = 0

    /// Binds a sink at a filesystem path.
    init(path: String) throws {
        socket = try Socket(family: AF_UNIX, transport: .datagram)
        try socket.bind(to: SocketAddress(.datagram, .unixPath(path)))
        try socket.enablePassCredentials()
        address = path
    }

    /// Binds a sink at an abstract name unique to this process, `tag` and the moment.
    init(abstractTag tag: String) throws {
        let name = "serverd-test-notify-\(getpid())-\(tag)-\(MonotonicClock.microseconds())"
        socket = try Socket(family: AF_UNIX, transport: .datagram)
        try socket.bind(to: SocketAddress(.datagram, .unixAbstract(Array(name.utf8))))
        try socket.enablePassCredentials()
        address = "@" + name
    }

    deinit { socket.close() }

    /// `["NOTIFY_SOCKET": address]`, for the serverd environment.
    var environment: [String: String] { ["NOTIFY_SOCKET": address] }

    /// Forgets the messages already consumed (a long test's thousands of reloads).
    func discardConsumed() {
        messages.removeFirst(consumed)
        consumed = 0
    }

    /// Receives one message within `timeout` seconds (appending it to ``messages``), or `nil`.
    @discardableResult
    func receive(timeout: Double) throws -> Message? {
        guard try Poll.readable([socket.fileDescriptor], timeout: max(0, timeout))[0] else { return nil }
        guard let (bytes, _, credentials) = try socket.receiveDatagramWithCredentials(maxSize: 65536) else { return nil }
        let message = Message(text: String(decoding: bytes, as: UTF8.self), pid: credentials?.pid, time: MonotonicClock.seconds())
        messages.append(message)
        return message
    }

    /// Reads messages until one not yet consumed satisfies `match`; returns it (and consumes
    /// everything up to it). Fails the test after `timeout` seconds.
    @discardableResult
    func next(
        _ what: String, timeout: Double = 20, file: StaticString = #filePath, line: UInt = #line,
        where match: (Message) -> Bool
    ) throws -> Message {
        let deadline = MonotonicClock.seconds() + timeout
        while true {
            while consumed < messages.count {
                let message = messages[consumed]
                consumed += 1
                if match(message) { return message }
            }
            let left = deadline - MonotonicClock.seconds()
            if left <= 0 {
                XCTFail("no \(what) on \(address) within \(timeout) s; received: \(messages)", file: file, line: line)
                throw TestFailure("no \(what)")
            }
            try receive(timeout: min(left, 0.5))
        }
    }

    /// The next message that contains `KEY=VALUE` (or, with `value` nil, any `KEY=`).
    @discardableResult
    func next(
        _ key: String, _ value: String? = nil, timeout: Double = 20, file: StaticString = #filePath, line: UInt = #line
    ) throws -> Message {
        let what = value.map { "\(key)=\($0)" } ?? "\(key)="
        return try next(what, timeout: timeout, file: file, line: line) { message in
            guard let found = message[key] else { return false }
            return value == nil || found == value
        }
    }

    /// Reads for `seconds` and returns the messages that arrived meanwhile (a negative check
    /// bounded by the caller, e.g. "no WATCHDOG=1 within 3 s").
    func collect(for seconds: Double) throws -> [Message] {
        let start = messages.count
        let deadline = MonotonicClock.seconds() + seconds
        while case let left = deadline - MonotonicClock.seconds(), left > 0 {
            try receive(timeout: left)
        }
        return Array(messages[start...])
    }
}
