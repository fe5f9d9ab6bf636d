import FamilyServer
import Foundation
import Glibc
import XCTest

// Helpers of the FamilyServerLifecycle tests: temporary directories, blocking clients over real
// sockets, and waiting with a generous deadline for something to happen (never for a fixed time).

/// A test expectation that failed in a way XCTest cannot express inline.
struct LifecycleTestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A fresh directory under /tmp (mkdtemp), removed by ``remove()``.
struct ScratchDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/fslifecycle.XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw LifecycleTestFailure("mkdtemp /tmp/fslifecycle.XXXXXX: \(String(cString: strerror(errno)))")
        }
        path = String(cString: made)
    }

    /// A Unix stream address inside the directory.
    func socketAddress(_ name: String) -> SocketAddress { SocketAddress(.stream, .unixPath("\(path)/\(name)")) }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// An address on 127.0.0.1, port 0.
let loopbackIPv4 = SocketAddress(.stream, .inet(IPAddress(numeric: "127.0.0.1")!, port: 0))
/// An address on ::1, port 0.
let loopbackIPv6 = SocketAddress(.stream, .inet(IPAddress(numeric: "::1")!, port: 0))

/// Whether this machine has an IPv6 loopback to bind.
func hasIPv6Loopback() -> Bool {
    guard let probe = try? Socket(family: AF_INET6, transport: .stream) else { return false }
    defer { probe.close() }
    return (try? probe.bind(to: loopbackIPv6)) != nil
}

/// A blocking client connection with a 10 s receive timeout, so that a broken server fails the test
/// instead of hanging it.
final class BlockingClient: Sendable {
    let socket: Socket

    init(_ address: SocketAddress) throws {
        socket = try Socket(family: address.family, transport: .stream)
        try socket.connect(to: address)
        try socket.setReceiveTimeout(10)
    }

    func send(_ text: String) throws { try socket.sendAll(Array(text.utf8)) }

    /// Reads until `count` bytes came or the stream ended.
    func receive(count: Int) throws -> [UInt8] {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while bytes.count < count {
            let got = try buffer.withUnsafeMutableBytes { raw in
                try socket.receive(into: UnsafeMutableRawBufferPointer(rebasing: raw[..<min(raw.count, count - bytes.count)]))
            }
            if got == 0 { break }
            bytes += buffer[..<got]
        }
        return bytes
    }

    /// Reads `text.utf8.count` bytes and returns them as text.
    func receiveText(like text: String) throws -> String {
        String(decoding: try receive(count: text.utf8.count), as: UTF8.self)
    }

    /// Whether the peer ended the stream (the next read returns 0 bytes).
    func receivesEndOfStream() throws -> Bool {
        var byte: UInt8 = 0
        return try withUnsafeMutableBytes(of: &byte) { try socket.receive(into: $0) } == 0
    }

    func endSending() throws { try socket.shutdown(Int32(SHUT_WR)) }

    func close() { socket.close() }
}

/// Whether a new connection to `address` is refused (ECONNREFUSED, or ENOENT once a Unix socket
/// file is gone).
func connectionIsRefused(_ address: SocketAddress) -> Bool {
    do {
        let probe = try BlockingClient(address)
        probe.close()
        return false
    } catch let error as SocketError {
        return error.errno == ECONNREFUSED || error.errno == ENOENT
    } catch {
        return false
    }
}

/// Waits until `condition` holds, checking every 10 ms for at most `seconds`.
func waitUntil(
    _ what: String, seconds: Double = 20, file: StaticString = #filePath, line: UInt = #line,
    _ condition: () throws -> Bool
) throws {
    let deadline = Date().addingTimeInterval(seconds)
    while try !condition() {
        guard Date() < deadline else { throw LifecycleTestFailure("\(what): not within \(seconds) s (\(file):\(line))") }
        usleep(10_000)
    }
}

/// Async form of ``waitUntil(_:seconds:file:line:_:)``: sleeps the task, not the thread.
func eventually(
    _ what: String, seconds: Double = 20, file: StaticString = #filePath, line: UInt = #line,
    _ condition: () throws -> Bool
) async throws {
    let deadline = Date().addingTimeInterval(seconds)
    while try !condition() {
        guard Date() < deadline else { throw LifecycleTestFailure("\(what): not within \(seconds) s (\(file):\(line))") }
        try await Task.sleep(nanoseconds: 10_000_000)
    }
}
