import FamilyServer
import Foundation
import Glibc
import XCTest

// Bad socket-activation input, each through Support/launch.py: serverd exits 78 (configuration)
// with exactly one `serverd: ` line, the last on stderr, naming the descriptor (or variable) at
// fault and what was expected; systemd is told ERRNO=22 (EINVAL, as for every configuration
// error) and never READY. What serverd was handed, it leaves in place.
final class SystemdErrorTests: XCTestCase {
    /// Runs serverd `arguments` under launch.py `launch` with a notify socket of its own; checks
    /// exit 78, the one `serverd:` line containing every `expected` text, and ERRNO=22.
    @discardableResult
    private func expectConfigurationError(
        _ arguments: [String], launch: [String], expected: [String], directory: TemporaryDirectory? = nil,
        file: StaticString = #filePath, line: UInt = #line
    ) throws -> String {
        let sink = try NotifySink(abstractTag: "error")
        let serverd = try ServerdProcess(
            arguments, directory: directory, environment: sink.environment, launcher: Activation.launcher(launch))
        let status = try serverd.waitForExit(file: file, line: line)
        let stderr = serverd.stderr
        XCTAssertEqual(status, 78, stderr, file: file, line: line)
        let lines = stderr.split(separator: "\n").map(String.init)
        let serverdLines = lines.filter { $0.hasPrefix("serverd: ") }
        XCTAssertEqual(serverdLines.count, 1, "exactly one serverd: line:\n\(stderr)", file: file, line: line)
        XCTAssertTrue(lines.last?.hasPrefix("serverd: ") == true, "the serverd: line comes last:\n\(stderr)", file: file, line: line)
        let message = serverdLines.first ?? ""
        for text in expected {
            XCTAssertTrue(message.contains(text), "'\(message)' does not mention \(text)", file: file, line: line)
        }
        let errno = try sink.next("ERRNO", timeout: 5, file: file, line: line)
        XCTAssertEqual(errno["ERRNO"], "\(EINVAL)", "\(errno)", file: file, line: line)
        XCTAssertEqual(errno.pid, serverd.pid, file: file, line: line)
        XCTAssertTrue(sink.messages.allSatisfy { $0["READY"] == nil }, "\(sink.messages)", file: file, line: line)
        return message
    }

    func testListenFDSThatIsNotANumber() throws {
        try expectConfigurationError(
            ["--listen", "echo@systemd:a"], launch: ["--fds=three", "a=tcp:127.0.0.1"],
            expected: ["LISTEN_FDS", "'three'", "number"])
    }

    func testFdNamesThatDoNotMatchTheCount() throws {
        try expectConfigurationError(
            ["--listen", "echo@systemd"], launch: ["--fdnames=a", "a=tcp:127.0.0.1", "b=udp:127.0.0.1"],
            expected: ["LISTEN_FDNAMES", "1 name for 2 descriptors"])
        try expectConfigurationError(
            ["--listen", "echo@systemd"], launch: ["--fdnames=a:b:c", "a=tcp:127.0.0.1", "b=udp:127.0.0.1"],
            expected: ["LISTEN_FDNAMES", "3 names for 2 descriptors"])
    }

    func testInheritedDescriptorThatIsClosed() throws {
        try expectConfigurationError(
            ["--listen", "echo@systemd"], launch: ["a=tcp:127.0.0.1", "gone=closed"],
            expected: ["fd 4", "not open", "'gone'"])
    }

    func testInheritedDescriptorThatIsNotASocket() throws {
        let directory = try TemporaryDirectory()
        let plain = try directory.write("plain.txt", "not a socket\n")
        try expectConfigurationError(
            ["--listen", "echo@systemd"], launch: ["a=file:\(plain)"], expected: ["fd 3", "not a socket", "'a'"],
            directory: directory)
    }

    func testInheritedSocketOfAnUnsupportedType() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("sp.sock")
        try expectConfigurationError(
            ["--listen", "echo@systemd"], launch: ["sp=seqpacket:\(path)"], expected: ["fd 3", "SOCK_SEQPACKET", "stream and datagram"],
            directory: directory)
        XCTAssertTrue(FileManager.default.fileExists(atPath: path), "an inherited socket file is never removed")
    }

    func testSystemdNameWithNoSuchSocket() throws {
        try expectConfigurationError(
            ["--listen", "echo@systemd:wanted"], launch: ["given=tcp:127.0.0.1"],
            expected: ["systemd:wanted", "no inherited socket named 'wanted'", "fd 3 'given'"])
    }

    func testExecOnAnInheritedDatagramSocket() throws {
        try expectConfigurationError(
            ["--listen", "exec@systemd:x", "--", "/usr/bin/env"], launch: ["x=udp:127.0.0.1"],
            expected: ["exec@systemd:x", "fd 3", "datagram", "needs wait mode"])
    }

    func testFdNameThatIsNoService() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("n.sock")
        try expectConfigurationError(
            [], launch: ["echo=udp:127.0.0.1", "nosuch=unix:\(path)"], expected: ["fd 4", "'nosuch'", "not a service", "echo"],
            directory: directory)
        XCTAssertTrue(FileManager.default.fileExists(atPath: path), "an inherited socket file is never removed")
    }
}
