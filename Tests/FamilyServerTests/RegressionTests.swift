@testable import FamilyServer
import Glibc
import XCTest

/// One test per bug that the issue-7 work (Fuzz/, Stress/) found in the library, named after the
/// bug. Self-contained: no helper of the other test files is used.
final class RegressionTests: XCTestCase {
    /// fuzz-address: `unix:@NAME` with a 107-byte name passed the parser (SPEC: more than 107 bytes
    /// is the error) but tripped the sockaddr encoder's off-by-one precondition, so `serverd
    /// --listen echo@unix:@<107 bytes>` died with SIGILL on bind. The name fills `sun_path` after
    /// the leading NUL exactly.
    func testAbstractNameOf107BytesBindsConnectsAndRoundTrips() throws {
        let prefix = "fsreg-\(getpid())-"
        let name = prefix + String(repeating: "n", count: SocketAddress.maxUnixPathBytes - prefix.utf8.count)
        XCTAssertEqual(name.utf8.count, 107)
        let address = try SocketAddress(parsing: "unix:@\(name)")
        XCTAssertEqual(address.description, "unix:@\(name)")

        // The sockaddr encoding decodes back to the same address.
        let decoded = address.withSockAddr { (sa, length) -> SocketAddress? in
            var storage = sockaddr_storage()
            withUnsafeMutableBytes(of: &storage) {
                $0.copyMemory(from: UnsafeRawBufferPointer(start: sa, count: Int(length)))
            }
            return SocketAddress(storage: storage, length: length, transport: .stream)
        }
        XCTAssertEqual(decoded, address)

        // And a real socket binds to it, reports it, and accepts a client that connects to it.
        let server = try Socket(family: AF_UNIX, transport: .stream)
        defer { server.close() }
        try server.bind(to: address)
        try server.listen(backlog: 1)
        XCTAssertEqual(try server.localAddress(), address)
        let client = try Socket(family: AF_UNIX, transport: .stream)
        defer { client.close() }
        try client.connect(to: address)

        // 108 bytes is still the "too long" error, never a truncation.
        XCTAssertThrowsError(try SocketAddress(parsing: "unix:@\(name)x")) { error in
            XCTAssertTrue("\(error)".contains("too long"), "\(error)")
        }
    }

    /// fuzz-fdnames: the diagnosis of a failed socket activation split LISTEN_FDNAMES on Swift
    /// Characters, but a `:` followed by a combining mark is one Character, while libsystemd
    /// splits on every `:` byte; such a name count mismatch was then reported as a bare
    /// "sd_listen_fds_with_names: Invalid argument" instead of naming the counts.
    func testFDNamesAreSplitOnEveryColonByteAsLibsystemdDoes() {
        let names = "a:\u{0328}b"
        let environment = ActivationEnvironment(pid: String(getpid()), fds: "1", names: names)
        XCTAssertEqual(environment.nameList, ["a", "\u{0328}b"])
        XCTAssertEqual(environment.diagnose(errno: EINVAL), .nameCountMismatch(names: 2, descriptors: 1, value: names))
    }
}
