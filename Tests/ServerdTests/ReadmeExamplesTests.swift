import Foundation
import XCTest

/// README's examples run as written: each `serverd` command line and the configuration file pass the check a start
/// runs (the same planning and checks, binding aside), from a fresh directory. Before the shared start path,
/// `--check-config` passed an example whose socket directory did not exist, which the start then failed on (exit 71).
final class ReadmeExamplesTests: XCTestCase {
    private func readme() throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
    }

    /// The code blocks of `language`.
    private func blocks(_ language: String) throws -> [String] {
        let parts = try readme().components(separatedBy: "```")
        return stride(from: 1, to: parts.count, by: 2).compactMap { index in
            let block = parts[index]
            guard block.hasPrefix(language + "\n") else { return nil }
            return String(block.dropFirst(language.count + 1))
        }
    }

    func testCommandLineExamplesPassTheCheck() throws {
        let commands = try blocks("sh").flatMap { $0.replacingOccurrences(of: "\\\n", with: " ").split(separator: "\n") }
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { $0.hasPrefix("serverd --listen") }
        XCTAssertFalse(commands.isEmpty, "README shows serverd command lines")
        for command in commands {
            let dir = try TemporaryDirectory()
            let words = command.split(separator: " ", omittingEmptySubsequences: true).dropFirst().map(String.init)
            let result = try ServerdProcess.run(["--check-config"] + words, directory: dir)
            XCTAssertEqual(result.status, 0, "\(command): \(result.stderr)")
        }
    }

    func testConfigurationExamplePassesTheCheck() throws {
        let files = try blocks("toml")
        XCTAssertFalse(files.isEmpty, "README shows a configuration file")
        for text in files {
            let dir = try TemporaryDirectory()
            let config = try writeConfig(dir, text)
            let result = try ServerdProcess.run(["--config", config, "--check-config"], directory: dir)
            XCTAssertEqual(result.status, 0, "\(text): \(result.stderr)")
            XCTAssertFalse(result.stdout.isEmpty)
        }
    }
}

/// A bare `serverd --check-config` (the implicit listeners) passes where the start would create the private directory
/// of the default Unix socket itself. Before: the shared check failed it with exit 71 ("socket directory … No such
/// file or directory"), which broke `make deb`'s own check of the shipped configuration.
final class ImplicitListenerCheckTests: XCTestCase {
    func testCheckPassesBeforeTheDefaultSocketsDirectoryExists() throws {
        let dir = try TemporaryDirectory()
        XCTAssertEqual(chmod(dir.path, 0o1777), 0)  // shared, like /tmp: serverd would make a private directory in it
        let result = try ServerdProcess.run(["--check-config"], directory: dir, environment: ["RUNTIME_DIRECTORY": dir.path])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("echo@unix:\(dir.path)/serverd-"), result.stdout)
    }
}
