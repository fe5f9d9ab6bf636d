// libFuzzer target: serverd's own TOML parser (`TOMLParser.parse`), compiled from the daemon's files
// (ServerdTOML/TOML is a symbolic link to ../Sources/serverd/ConfigFile/TOML), on the raw input bytes.
//
// Besides "no trap, no leak, no hang" it checks:
//   - an error's position lies inside the document (line 1…lines+1, column ≥ 1) and its message is not empty;
//   - an accepted document's keys are distinct in every table, and every position lies inside the document;
//   - an accepted document, written back as TOML (every table inline, every string a basic string), parses
//     again to the same values (NaN equal to NaN, -0.0 different from 0.0).
@testable import ServerdTOML
import FuzzDriver
import Glibc

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTOML(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let bytes else { return -1 }
    let document = Array(UnsafeBufferPointer(start: bytes, count: size))
    let lines = document.reduce(1) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
    let table: TOMLTable
    do {
        table = try TOMLParser.parse(document)
    } catch {
        guard (1...lines).contains(error.position.line), error.position.column >= 1, !error.message.isEmpty else {
            fail("error out of place: \(error) (document of \(lines) lines)")
        }
        return 0
    }
    check(table, lines: lines)
    let written = Array(render(table).utf8)
    do {
        let again = try TOMLParser.parse(written)
        guard dump(.table(again)) == dump(.table(table)) else {
            fail("round trip changed the values:\n\(dump(.table(table)))\n\(dump(.table(again)))")
        }
    } catch {
        fail("round trip refused: \(error)\n\(String(decoding: written, as: UTF8.self))")
    }
    return 0
}

private func fail(_ message: String) -> Never {
    let line = "fuzz-toml: \(message)\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
    abort()
}

/// Distinct keys and positions inside the document, all the way down.
private func check(_ table: TOMLTable, lines: Int) {
    var seen = Set<[UInt8]>()
    for entry in table.entries {
        guard seen.insert(Array(entry.key.utf8)).inserted else { fail("key \(entry.key.debugDescription) twice") }
        check(entry.keyPosition, lines: lines)
        check(entry.node, lines: lines)
    }
}

private func check(_ node: TOMLNode, lines: Int) {
    check(node.position, lines: lines)
    switch node.value {
    case .table(let table): check(table, lines: lines)
    case .array(let elements): elements.forEach { check($0, lines: lines) }
    default: break
    }
}

private func check(_ position: TOMLPosition, lines: Int) {
    guard (1...lines).contains(position.line), position.column >= 1 else {
        fail("position \(position) outside a document of \(lines) lines")
    }
}

/// The table as TOML: `"key" = value` lines, tables inline.
private func render(_ table: TOMLTable) -> String {
    table.entries.map { quote($0.key) + " = " + render($0.node.value) + "\n" }.joined()
}

private func render(_ value: TOMLValue) -> String {
    switch value {
    case .string(let string): return quote(string)
    case .integer(let integer): return "\(integer)"
    case .float(let float): return float.isNaN ? "nan" : "\(float)"
    case .boolean(let boolean): return "\(boolean)"
    case .dateTime(let dateTime): return dateTime.text
    case .array(let elements): return "[" + elements.map { render($0.value) }.joined(separator: ", ") + "]"
    case .table(let table):
        return "{" + table.entries.map { quote($0.key) + " = " + render($0.node.value) }.joined(separator: ", ") + "}"
    }
}

/// A basic string: quotes, backslashes and control characters escaped.
private func quote(_ string: String) -> String {
    var text = "\""
    for scalar in string.unicodeScalars {
        switch scalar {
        case "\"": text += "\\\""
        case "\\": text += "\\\\"
        case _ where scalar.value < 0x20 || scalar.value == 0x7F:
            let hex = String(scalar.value, radix: 16)
            text += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: text.unicodeScalars.append(scalar)
        }
    }
    return text + "\""
}

/// The values, types and key order as text (as TOMLParserTests compares them with tomllib).
private func dump(_ value: TOMLValue) -> String {
    switch value {
    case .table(let table):
        return "{" + table.entries.map { "\(Array($0.key.utf8))=" + dump($0.node.value) }.joined(separator: ",") + "}"
    case .array(let elements): return "[" + elements.map { dump($0.value) }.joined(separator: ",") + "]"
    case .string(let string): return "s:\(Array(string.utf8))"
    case .integer(let integer): return "i:\(integer)"
    case .float(let float): return float.isNaN ? "f:nan" : "f:\(float.bitPattern)"
    case .boolean(let boolean): return "b:\(boolean)"
    case .dateTime(let dateTime): return "d:\(dateTime.kind.rawValue):\(dateTime.text)"
    }
}

// The program's main: libFuzzer's driver, with its usual flags (-max_total_time, -runs, corpus
// directories, …), calling the function above for every input.
var arguments = CommandLine.argc
var argumentValues: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&arguments, &argumentValues, fuzzTOML))
