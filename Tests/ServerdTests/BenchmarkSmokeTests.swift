import Foundation
import XCTest

/// Keeps the benchmark driver from rotting: a one-second-per-workload run of `Benchmarks/run.py`
/// against this build's serverd in every model. It asserts that every workload ran and got its
/// replies, never how fast.
final class BenchmarkSmokeTests: XCTestCase {
    func testBenchmarkDriverRunsEveryWorkloadAgainstServerd() throws {
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let script = repository.appendingPathComponent("Benchmarks/run.py").path
        guard FileManager.default.fileExists(atPath: "/usr/bin/cc") else {
            throw XCTSkip("the benchmark's load generator needs a C compiler")
        }
        let directory = try TemporaryDirectory()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", script, "--smoke", "--serverd", ServerdProcess.binaryPath,
            "--only", "serverd-threading,serverd-forking,serverd-serial,serverd-event", "--build-dir", directory.path,
        ]
        process.currentDirectoryURL = repository
        let output = directory.path("bench.log")
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: output)
        process.standardError = FileHandle(forWritingAtPath: output)
        try process.run()
        process.waitUntilExit()
        let log = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        XCTAssertEqual(process.terminationStatus, 0, log)
    }
}
