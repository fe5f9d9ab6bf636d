import FamilyServer
import Foundation
import Glibc
import XCTest

/// README's async echo server (`Examples/AsyncEcho`, the `async-echo-example` executable) as a real
/// process: it is the code the README shows, it serves, and on SIGTERM it refuses new connections,
/// serves the open one to its end and exits 0.
final class AsyncEchoExampleTests: XCTestCase {
    private static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// The example binary, next to the test bundle in the build directory.
    private static let binaryPath: String = {
        let runner = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var directory = URL(fileURLWithPath: runner).deletingLastPathComponent()
        for _ in 0..<4 {  // the XCTest runner may sit inside the .xctest bundle directory
            let candidate = directory.appendingPathComponent("async-echo-example").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        return "async-echo-example"
    }()

    private var scratch: ScratchDirectory!

    override func setUpWithError() throws { scratch = try ScratchDirectory() }
    override func tearDown() { scratch.remove() }

    /// The Swift code blocks of the Markdown file at `path` (relative to the package root).
    private func swiftBlocks(_ path: String) throws -> [String] {
        let text = try String(contentsOf: Self.packageRoot.appendingPathComponent(path), encoding: .utf8)
        let parts = text.components(separatedBy: "```")
        return stride(from: 1, to: parts.count, by: 2).map { parts[$0] }
            .filter { $0.hasPrefix("swift\n") }.map { String($0.dropFirst("swift\n".count)) }
    }

    private func exampleSource() throws -> String {
        try String(contentsOf: Self.packageRoot.appendingPathComponent("Examples/AsyncEcho/main.swift"), encoding: .utf8)
    }

    func testTheReadmeShowsTheExampleSource() throws {
        let source = try exampleSource()
        let blocks = try swiftBlocks("README.md")
        XCTAssertTrue(blocks.contains(source), "one of README's Swift blocks is Examples/AsyncEcho/main.swift, as it is")
        XCTAssertLessThanOrEqual(source.split(separator: "\n").count, 13, "a short example")
    }

    /// The DocC landing page shows the same program without its imports.
    func testTheDocumentationShowsTheExampleBody() throws {
        let source = try exampleSource()
        let body = try XCTUnwrap(source.range(of: "\n\n").map { String(source[$0.upperBound...]) }, "imports, a blank line, code")
        let blocks = try swiftBlocks("Sources/FamilyServerLifecycle/FamilyServerLifecycle.docc/FamilyServerLifecycle.md")
        XCTAssertEqual(blocks, [body], "FamilyServerLifecycle.md shows Examples/AsyncEcho/main.swift below its imports")
    }

    func testSIGTERMRefusesNewConnectionsDrainsTheOpenOneAndExitsZero() throws {
        let address = scratch.socketAddress("echo.sock")
        let stderrPath = "\(scratch.path)/stderr"
        XCTAssertTrue(FileManager.default.createFile(atPath: stderrPath, contents: nil), stderrPath)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binaryPath)
        process.arguments = ["\(address)"]
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        try process.run()
        let pid = process.processIdentifier
        defer {
            if process.isRunning { kill(pid, SIGKILL) }
            process.waitUntilExit()
        }
        func stderr() -> String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

        var connected: BlockingClient?
        try waitUntil("\(Self.binaryPath) \(address) accepts a connection") {
            guard process.isRunning else { throw LifecycleTestFailure("the example exited: \(stderr())") }
            connected = try? BlockingClient(address)
            return connected != nil
        }
        let client = try XCTUnwrap(connected)
        defer { client.close() }
        // An answer means the service runs, so its ServiceGroup already traps SIGTERM.
        try client.send("before the stop\n")
        XCTAssertEqual(try client.receiveText(like: "before the stop\n"), "before the stop\n")

        XCTAssertEqual(kill(pid, SIGTERM), 0)
        try waitUntil("new connections to \(address) refused after SIGTERM") { connectionIsRefused(address) }
        XCTAssertTrue(process.isRunning, "the example waits for its open connection: \(stderr())")
        try client.send("after the stop\n")
        XCTAssertEqual(try client.receiveText(like: "after the stop\n"), "after the stop\n", "drained: still served")

        try client.endSending()
        XCTAssertTrue(try client.receivesEndOfStream())
        try waitUntil("the example exits once its connection ended") { !process.isRunning }
        XCTAssertEqual(process.terminationReason, .exit, stderr())
        XCTAssertEqual(process.terminationStatus, 0, stderr())
    }
}
