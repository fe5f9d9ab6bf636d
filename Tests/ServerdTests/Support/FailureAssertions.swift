import XCTest

/// Asserts that serverd run with `arguments` exits with `status` and ends with exactly one `serverd: ` line, the last
/// one, naming every text of `needles`.
func assertServerdFails(
    _ arguments: [String], status: Int32, mentioning needles: [String], file: StaticString = #filePath,
    line: UInt = #line
) throws {
    let result = try ServerdProcess.run(arguments)
    XCTAssertEqual(result.status, status, "\(arguments): \(result.stderr)", file: file, line: line)
    let lines = result.stderr.split(separator: "\n")
    XCTAssertEqual(lines.filter { $0.hasPrefix("serverd: ") }.count, 1, result.stderr, file: file, line: line)
    let last = lines.last.map(String.init) ?? ""
    XCTAssertTrue(last.hasPrefix("serverd: "), "the serverd: line is the last: \(result.stderr)", file: file, line: line)
    for needle in needles {
        XCTAssertTrue(last.contains(needle), "'\(last)' names \(needle)", file: file, line: line)
    }
}
