import Foundation
import Glibc
import XCTest

/// The local attacker of the security tests: an ordinary account (`serverd-test`) that the test
/// setup creates with `useradd` when it is missing, and programs run as that account through
/// `setpriv`. serverd itself runs as root in those tests, as it does when packaged.
enum UnprivilegedUser {
    /// The account's name.
    static let name = "serverd-test"

    /// The account's uid and gid, creating it first if needed. Skips the test unless it runs as
    /// root (only root can create the account and start processes as it).
    static func ensure() throws -> (uid: uid_t, gid: gid_t) {
        guard getuid() == 0 else { throw XCTSkip("needs root to create and use the account \(name)") }
        for _ in 0..<50 {
            if let entry = getpwnam(name) { return (entry.pointee.pw_uid, entry.pointee.pw_gid) }
            // Tests run in parallel: a concurrent useradd may hold the lock or win the race.
            _ = try? runCommand([
                "/usr/sbin/useradd", "--system", "--user-group", "--no-create-home",
                "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name,
            ])
            if getpwnam(name) == nil { usleep(100_000) }
        }
        throw TestFailure("cannot create the account \(name) with useradd")
    }

    /// Makes `path` owned by the account (a directory it then controls, as an attacker's own).
    static func give(_ path: String) throws {
        let (uid, gid) = try ensure()
        guard chown(path, uid, gid) == 0 else { throw TestFailure("chown \(path): \(String(cString: strerror(errno)))") }
    }

    /// Starts `arguments` as the account (no supplementary groups) and returns the process.
    static func start(_ arguments: [String], standardOutput: FileHandle? = nil) throws -> Process {
        let (uid, gid) = try ensure()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        process.arguments = ["--reuid=\(uid)", "--regid=\(gid)", "--clear-groups", "--"] + arguments
        process.standardInput = FileHandle.nullDevice
        if let standardOutput { process.standardOutput = standardOutput }
        try process.run()
        return process
    }

    /// Runs `arguments` as the account to completion; returns its exit status and output.
    static func run(_ arguments: [String], timeout: Double = 30) throws -> (status: Int32, output: String) {
        let (uid, gid) = try ensure()
        return try runCommand(["/usr/bin/setpriv", "--reuid=\(uid)", "--regid=\(gid)", "--clear-groups", "--"] + arguments, timeout: timeout)
    }

    /// Runs a command to completion (bounded by `timeout`, then killed); stdout and stderr together.
    @discardableResult
    static func runCommand(_ arguments: [String], timeout: Double = 30) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        // Output goes to a file, not a pipe: a full pipe would stall a chatty command.
        let outputPath = NSTemporaryDirectory() + "serverd-test-output-\(UUID().uuidString)"
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        defer { unlink(outputPath) }
        let handle = FileHandle(forWritingAtPath: outputPath)
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline {
            usleep(10_000)
        }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
        try? handle?.close()
        let output = FileManager.default.contents(atPath: outputPath) ?? Data()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }
}
