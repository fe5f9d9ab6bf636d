import Foundation
import XCTest

/// The shell completions the package ships are written from the option table: each offers every option, and bash's
/// parses.
final class CompletionScriptTests: XCTestCase {
    func testEveryShellsScriptOffersEveryOption() throws {
        let help = try ServerdProcess.run(["--help"]).stdout
        // The head line of each option in --help: two spaces, then the flag.
        let flags = Set(help.split(separator: "\n").filter { $0.hasPrefix("  --") }.compactMap {
            $0.dropFirst(2).split(separator: " ").first.map(String.init)
        }).subtracting(["--"])
        XCTAssertGreaterThan(flags.count, 20, help)
        for shell in ["bash", "zsh", "fish"] {
            let result = try ServerdProcess.run(["--generate-completion-script", shell])
            XCTAssertEqual(result.status, 0, result.stderr)
            for flag in flags {
                let needle = shell == "fish" ? "-l \(flag.dropFirst(2)) " : flag
                XCTAssertTrue(result.stdout.contains(needle), "\(shell) offers \(flag)")
            }
        }
        let bash = try ServerdProcess.run(["--generate-completion-script", "bash"]).stdout
        let file = NSTemporaryDirectory() + "serverd-completion-\(getpid()).bash"
        try bash.write(toFile: file, atomically: true, encoding: .utf8)
        defer { unlink(file) }
        let check = Process()
        check.executableURL = URL(fileURLWithPath: "/bin/bash")
        check.arguments = ["-n", file]
        try check.run()
        check.waitUntilExit()
        XCTAssertEqual(check.terminationStatus, 0, "bash -n accepts the script")
        XCTAssertEqual(try ServerdProcess.run(["--generate-completion-script", "tcsh"]).status, 64)
    }
}
