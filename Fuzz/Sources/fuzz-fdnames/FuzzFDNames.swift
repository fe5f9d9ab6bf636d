// libFuzzer target: socket activation's parse of LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES
// (libsystemd's `sd_listen_fds_with_names` plus FamilyServer's adoption and diagnosis around it),
// through the library's uncached adoption path (`@testable`: the package is built with
// `-enable-testing`).
//
// Input: `LISTEN_FDS` text, LF, `LISTEN_FDNAMES` text (absent: unset), optionally LF and a
// `LISTEN_PID` text (absent: this process's PID). Descriptors 3…8 are prepared once as sockets
// of every kind adoption meets (a listening stream socket, a datagram socket, a connected stream
// socket, a SEQPACKET socket, a pipe) where they are free.
//
// Properties checked on every input:
//   - the three variables are gone from the environment afterwards, whatever the outcome;
//   - on success: LISTEN_FDS sockets on 3, 4, … in order, each named by its LISTEN_FDNAMES entry
//     (or `unknown` without names), and the kind matches what the kernel says;
//   - on failure: the error names a descriptor in range or the variable at fault, and a name
//     count mismatch is reported as such;
//   - no descriptor is ever closed by a failed adoption (the prepared ones stay open).
@testable import FamilyServer
import FuzzDriver
import Glibc

private func fail(_ message: String) -> Never {
    let line = "fuzz-fdnames: \(message)\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
    abort()
}

/// The descriptors this fuzzer put in place (fd → what it is), prepared once.
nonisolated(unsafe) private var prepared: [Int32: String] = [:]

private func prepare() {
    /// Moves a new descriptor out of the way (to 100 or above), so that creating the objects does
    /// not itself occupy 3…8.
    func high(_ fd: Int32, _ what: String) -> Int32 {
        guard fd >= 0 else { fail("cannot create \(what): errno \(errno)") }
        let moved = fcntl(fd, F_DUPFD, 100)
        guard moved >= 0 else { fail("F_DUPFD \(what): errno \(errno)") }
        close(fd)
        return moved
    }
    func listening(_ family: Int32) -> Int32 {
        let fd = socket(family, Int32(SOCK_STREAM.rawValue), 0)
        if family == AF_UNIX {
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)  // autobind: an abstract name the kernel picks
            _ = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sa_family_t>.size)) }
            }
        } else {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
            _ = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        _ = listen(fd, 1)
        return fd
    }
    var pair: [Int32] = [-1, -1]
    guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0 else { fail("socketpair: \(errno)") }
    var pipeFDs: [Int32] = [-1, -1]
    guard pipe(&pipeFDs) == 0 else { fail("pipe: \(errno)") }
    _ = high(pair[1], "connection peer")  // kept open (high) so the connection stays connected
    _ = high(pipeFDs[1], "pipe writer")
    let objects: [(String, Int32)] = [
        ("listener", high(listening(AF_UNIX), "listener")),
        ("datagram", high(socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0), "datagram")),
        ("connection", high(pair[0], "connection")),
        ("seqpacket", high(socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue), 0), "seqpacket")),
        ("pipe", high(pipeFDs[0], "pipe")),
        ("listener2", high(listening(AF_INET), "listener2")),
    ]
    // Fill 3, 4, … in order, skipping any descriptor libFuzzer itself holds.
    var target: Int32 = 3
    for (what, fd) in objects {
        while fcntl(target, F_GETFD) >= 0 { target += 1 }
        guard dup2(fd, target) == target else { fail("dup2 \(what): errno \(errno)") }
        close(fd)
        prepared[target] = what
        target += 1
    }
}

private func environment(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFDNames(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let bytes else { return -1 }
    if prepared.isEmpty { prepare() }
    let input = Array(UnsafeBufferPointer(start: bytes, count: size))
    let fields = input.split(separator: 0x0A, maxSplits: 2, omittingEmptySubsequences: false)
        .map { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }  // the environment ends a value at NUL
    let fds = fields[0]
    let names = fields.count > 1 ? fields[1] : nil
    let pid = fields.count > 2 ? fields[2] : String(getpid())
    setenv("LISTEN_PID", pid, 1)
    setenv("LISTEN_FDS", fds, 1)
    if let names { setenv("LISTEN_FDNAMES", names, 1) } else { unsetenv("LISTEN_FDNAMES") }

    let outcome = Result { () throws(SocketActivationError) in try InheritedSockets.adoptFromEnvironment() }

    for variable in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] where environment(variable) != nil {
        fail("\(variable) still set after adoption (LISTEN_FDS='\(fds)', LISTEN_FDNAMES=\(names.map { "'\($0)'" } ?? "unset"), LISTEN_PID='\(pid)')")
    }
    switch outcome {
    case .success(let sockets):
        defer { for socket in sockets { _ = socket.socket.takeDescriptor() } }  // they are ours, not adoption's
        if sockets.isEmpty { break }
        // libsystemd splits on ':' and also takes a backslash as an escape (`a\:b` is one name,
        // `a:b`); model only the plain split and, with a backslash, check just the count. (Bytes,
        // not Characters: a backslash or ':' followed by a combining mark is one Character.)
        let escaped = names?.utf8.contains(UInt8(ascii: "\\")) ?? false
        let list = escaped ? nil : names.map {
            $0.utf8.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        }
        for (index, socket) in sockets.enumerated() {
            let fd = Int32(3 + index)
            guard socket.fileDescriptor == fd, socket.socket.fileDescriptor == fd else {
                fail("socket \(index) on fd \(socket.fileDescriptor), expected \(fd)")
            }
            let expectedName = list.map { index < $0.count ? $0[index] : "?" } ?? (escaped ? socket.name : "unknown")
            guard socket.name == expectedName else {
                fail("fd \(fd) named '\(socket.name)', expected '\(expectedName)' (LISTEN_FDNAMES='\(names ?? "")')")
            }
            if let what = prepared[fd] {
                let expectedKind: InheritedSocket.Kind? =
                    what.hasPrefix("listener") ? .listener : what == "datagram" ? .datagram : what == "connection" ? .connection : nil
                guard socket.kind == expectedKind else { fail("fd \(fd) (\(what)) adopted as \(socket.kind)") }
            }
        }
    case .failure(let error):
        let message = error.description
        guard !message.isEmpty else { fail("empty error message") }
        if let fd = error.fileDescriptor, fd < 3 || Int(fd) >= 3 + (Int(fds) ?? Int(Int32.max)) {
            fail("error names fd \(fd), outside LISTEN_FDS='\(fds)': \(message)")
        }
        if case .nameCountMismatch(let count, let descriptors, _) = error, count == descriptors {
            fail("name count mismatch with equal counts: \(message)")
        }
        // libsystemd refuses a name count that differs from LISTEN_FDS; the diagnosis must say so
        // (it splits the names as libsystemd does) rather than fall back to a bare EINVAL.
        if case .systemdFailed(let cause) = error, cause.errno == EINVAL, let names, !names.utf8.contains(UInt8(ascii: "\\")),
           let count = Int(fds), count > 0, pid == String(getpid()) {
            let parts = names.isEmpty ? 0 : names.utf8.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false).count
            if parts != count { fail("name count mismatch (\(parts) names, \(count) fds) diagnosed as: \(message)") }
        }
    }
    // A failed adoption must leave every descriptor as it found it.
    for (fd, what) in prepared where fcntl(fd, F_GETFD) < 0 {
        fail("prepared fd \(fd) (\(what)) was closed (LISTEN_FDS='\(fds)', LISTEN_FDNAMES='\(names ?? "")')")
    }
    return 0
}

// The program's main: libFuzzer's driver, with its usual flags (-max_total_time, -runs, corpus
// directories, …), calling the function above for every input.
var arguments = CommandLine.argc
var argumentValues: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&arguments, &argumentValues, fuzzFDNames))
