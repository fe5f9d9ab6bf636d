import Foundation
import XCTest

@testable import serverd

/// serverd's own TOML parser (`Sources/serverd/ConfigFile/TOML`): positions, every class of error, the limits that
/// keep any input from trapping, and agreement with Python's `tomllib` on a corpus of valid, invalid and randomly
/// mutated documents.
final class TOMLParserTests: XCTestCase {
    // MARK: - Values and positions

    func testDescriptionsAreLineColonColumn() {
        XCTAssertEqual(TOMLPosition(line: 3, column: 14).description, "3:14")
        XCTAssertEqual(TOMLError(position: TOMLPosition(line: 1, column: 2), message: "bad").description, "1:2: bad")
    }

    func testTypeNames() throws {
        let table = try parse("""
            s = "x"
            i = 1
            f = 1.5
            b = true
            d = 1979-05-27
            a = []
            t = {}
            """)
        XCTAssertEqual(table.entries.map(\.node.value.typeName), ["string", "integer", "float", "boolean", "date-time", "array", "table"])
    }

    func testPositionsOfKeysValuesAndHeaders() throws {
        let table = try parse("""
            port = 7
              name.first = "x"
            [[listener]]
            listen = "echo@tcp://[::1]:7"
            [[listener]]
            [server.log]
            "é" = "ü"
            """)
        XCTAssertEqual(table["port"]?.keyPosition, TOMLPosition(line: 1, column: 1))
        XCTAssertEqual(table["port"]?.node, TOMLNode(value: .integer(7), position: TOMLPosition(line: 1, column: 8)))
        // A table a dotted key implies is where its key is.
        XCTAssertEqual(table["name"]?.node.position, TOMLPosition(line: 2, column: 3))
        let name = try XCTUnwrap(table["name"]?.node.value.tableValue)
        XCTAssertEqual(name["first"]?.keyPosition, TOMLPosition(line: 2, column: 8))
        XCTAssertEqual(name["first"]?.node.position, TOMLPosition(line: 2, column: 16))
        // An array of tables is where its first header is, each table where its own header is.
        let listeners = try XCTUnwrap(table["listener"])
        XCTAssertEqual(listeners.keyPosition, TOMLPosition(line: 3, column: 3))
        XCTAssertEqual(listeners.node.position, TOMLPosition(line: 3, column: 1))
        guard case .array(let elements) = listeners.node.value else { return XCTFail("\(listeners.node.value)") }
        XCTAssertEqual(elements.map(\.position), [TOMLPosition(line: 3, column: 1), TOMLPosition(line: 5, column: 1)])
        XCTAssertEqual(elements.first?.value.tableValue?["listen"]?.node.position, TOMLPosition(line: 4, column: 10))
        XCTAssertEqual(elements.last?.value, .table(TOMLTable()))
        // [server.log] implies `server` (at its key) and defines `log` (at the header).
        XCTAssertEqual(table["server"]?.node.position, TOMLPosition(line: 6, column: 2))
        let log = try XCTUnwrap(table["server"]?.node.value.tableValue?["log"])
        XCTAssertEqual(log.node.position, TOMLPosition(line: 6, column: 1))
        // Columns count bytes: `é` takes two, so `=` is column 6 and the value starts at column 8.
        XCTAssertEqual(log.node.value.tableValue?["é"]?.node, TOMLNode(value: .string("ü"), position: TOMLPosition(line: 7, column: 8)))
    }

    func testHeaderOfAnImpliedTableMovesItsPositionToTheHeader() throws {
        let table = try parse("[a.b]\n[a]\n")
        XCTAssertEqual(table["a"]?.node.position, TOMLPosition(line: 2, column: 1))
        XCTAssertEqual(table["a"]?.keyPosition, TOMLPosition(line: 1, column: 2))
    }

    func testEntriesKeepDocumentOrder() throws {
        let table = try parse("b = 1\na = 2\n[z]\n[c]\n[z.y]\n")
        XCTAssertEqual(table.entries.map(\.key), ["b", "a", "z", "c"])
    }

    func testSubscriptComparesKeysByBytes() throws {
        let table = try parse("\"\\u00e9\" = 1\n\"e\\u0301\" = 2\n")
        XCTAssertEqual(table.entries.count, 2)
        XCTAssertEqual(table["\u{e9}"]?.node.value, .integer(1))
        XCTAssertEqual(table["e\u{301}"]?.node.value, .integer(2))
        XCTAssertNil(table["e"])
    }

    func testCRLFLineBreaksReadAsLF() throws {
        let table = try parse("a = 1\r\nb = '''\r\nx\r\ny'''\r\n")
        XCTAssertEqual(table["b"]?.node, TOMLNode(value: .string("x\ny"), position: TOMLPosition(line: 2, column: 5)))
    }

    func testIntegersAtTheEdgesOf64Bits() throws {
        let table = try parse("max = 9223372036854775807\nmin = -9223372036854775808\nhex = 0x7fff_ffff_ffff_ffff\nbin = 0b101\noct = 0o17\n")
        XCTAssertEqual(table.entries.map(\.node.value), [
            .integer(.max), .integer(.min), .integer(.max), .integer(5), .integer(15),
        ])
    }

    func testDateTimesAreCanonical() throws {
        let table = try parse("""
            a = 1979-05-27 07:32:00.9990000-00:00
            b = 1979-05-27t07:32:00+05:30
            c = 1979-05-27T07:32:00.1234567
            d = 2000-02-29
            e = 07:32:00.000
            """)
        XCTAssertEqual(table.entries.map(\.node.value), [
            .dateTime(TOMLDateTime(kind: .offsetDateTime, text: "1979-05-27T07:32:00.999Z")),
            .dateTime(TOMLDateTime(kind: .offsetDateTime, text: "1979-05-27T07:32:00+05:30")),
            .dateTime(TOMLDateTime(kind: .localDateTime, text: "1979-05-27T07:32:00.123456")),
            .dateTime(TOMLDateTime(kind: .localDate, text: "2000-02-29")),
            .dateTime(TOMLDateTime(kind: .localTime, text: "07:32:00")),
        ])
    }

    // MARK: - Errors

    func testEveryErrorClassHasItsPositionAndSaysWhatFailed() {
        let cases: [(document: [UInt8], position: String, message: String)] = [
            ([UInt8]("a = \"".utf8) + [0xFF, 0x22], "1:6", "invalid UTF-8"),
            ([UInt8]("a = \"".utf8) + [0xED, 0xA0, 0x80, 0x22], "1:6", "invalid UTF-8"),
            (Array("a = \"x\u{1}\"".utf8), "1:7", "control character U+0001 is not allowed in a string"),
            (Array("a = 'x\u{0}'".utf8), "1:7", "control character U+0000 is not allowed in a literal string"),
            (Array("# \u{7F}".utf8), "1:3", "control character U+007F is not allowed in a comment"),
            (Array("a = 1\rb = 2".utf8), "1:6", "found control character U+000D"),
            (Array("\n\nkey".utf8), "3:4", "expected '=' after the key 'key'"),
            (Array("a = 1 b".utf8), "1:7", "expected the end of the line after a key/value pair, found 'b'"),
            (Array("a = [1 2]".utf8), "1:8", "expected ',' or ']'"),
            (Array("a = {x = 1,\n}".utf8), "1:12", "expected a key"),
            (Array("a = \"\\q\"".utf8), "1:6", "invalid escape sequence"),
            (Array("a = \"\\uD800\"".utf8), "1:6", "not a Unicode scalar value"),
            (Array("a = \"abc".utf8), "1:9", "the string that starts at 1:5 is not closed"),
            (Array("a = 1\na = 2".utf8), "2:1", "key 'a' is defined twice (first at 1:1)"),
            (Array("[t]\n[t]".utf8), "2:2", "table 't' is defined twice (first at 1:1)"),
            (Array("a.b = 1\n[a]".utf8), "2:2", "table 'a' is defined twice"),
            (Array("t = {x = 1}\nt.y = 2".utf8), "2:1", "cannot add to 't' with a dotted key: it is a table (at 1:5)"),
            (Array("a = []\n[[a]]".utf8), "2:3", "cannot make 'a' an array of tables: it is already an array (at 1:5)"),
            (Array("[[a]]\n[a]".utf8), "2:2", "'a' is an array of tables (at 1:1)"),
            (Array("a = 9223372036854775808".utf8), "1:5", "does not fit in 64 bits"),
            (Array("a = -9223372036854775809".utf8), "1:5", "does not fit in 64 bits"),
            (Array("a = 0xFFFFFFFFFFFFFFFFF".utf8), "1:5", "does not fit in 64 bits"),
            (Array("a = 2023-02-29".utf8), "1:5", "2023-02-29 is not a valid date"),
            (Array("a = 0000-01-01".utf8), "1:5", "is not a valid date"),
            (Array("a = wat".utf8), "1:5", "expected a value"),
        ]
        for (document, position, message) in cases {
            let text = String(decoding: document, as: UTF8.self)
            XCTAssertThrowsError(try TOMLParser.parse(document), text) { error in
                guard let error = error as? TOMLError else { return XCTFail("\(error)") }
                XCTAssertEqual(error.position.description, position, "\(text): \(error)")
                XCTAssertTrue(error.message.contains(message), "\(text): \(error)")
            }
        }
    }

    func testNestingUpTo100LevelsIsAcceptedAndDeeperIsAnError() throws {
        XCTAssertNoThrow(try parse("a = " + String(repeating: "[", count: 100) + String(repeating: "]", count: 100)))
        XCTAssertNoThrow(try parse("[" + Array(repeating: "k", count: 100).joined(separator: ".") + "]"))
        let tooDeep = [
            "a = " + String(repeating: "[", count: 101) + String(repeating: "]", count: 101),
            "a = " + String(repeating: "{b = ", count: 101) + "1" + String(repeating: "}", count: 101),
            "[" + Array(repeating: "k", count: 101).joined(separator: ".") + "]",
            Array(repeating: "k", count: 102).joined(separator: ".") + " = 1",
            // 100 tables that dotted keys imply, then an array at level 101.
            String(repeating: "x.", count: 100) + "a = [1]",
        ]
        for document in tooDeep {
            XCTAssertThrowsError(try parse(document), String(document.prefix(40))) { error in
                XCTAssertTrue("\(error)".contains("nest more than 100 levels deep"), "\(error)")
            }
        }
    }

    func testHugeNestingAndLengthDoNotOverflowTheStack() {
        for document in [
            String(repeating: "[", count: 1_000_000),
            "a = " + String(repeating: "{a = ", count: 200_000),
            String(repeating: "a.", count: 200_000) + "a = 1",
            "[" + String(repeating: "a.", count: 200_000) + "a]",
            String(repeating: "[[a]]\n", count: 20_000),
        ] {
            // Must return (an error or not), not crash.
            _ = try? parse(document)
        }
    }

    // MARK: - Agreement with Python's tomllib

    /// Every document of the corpus (`TOMLCorpus/valid`, `TOMLCorpus/invalid`) and `mutationCount` random
    /// mutations of them (seeded, so every run checks the same documents) go through both parsers; both must
    /// accept or both refuse each document, and for an accepted one give the same values, types and key order.
    ///
    /// `Support/toml_reference.py` runs `tomllib` once over all of them. It applies two rules of TOML 1.0 that
    /// `tomllib` does not, which are the only deliberate differences from bare `tomllib`: integers must fit in 64
    /// bits, and tables and arrays nest at most 100 levels (`tomllib` fails with RecursionError a few hundred
    /// levels down). There is no other known disagreement.
    func testAgreesWithPythonTomllibOnCorpusAndMutations() throws {
        let valid = try corpus("valid")
        let invalid = try corpus("invalid")
        XCTAssertGreaterThan(valid.count, 40)
        XCTAssertGreaterThan(invalid.count, 100)
        var documents = valid + invalid
        var generator = SplitMix64(seed: 0x7031_5eed)
        let bases = documents.map(\.bytes).filter { $0.count < 3000 }
        for index in 0..<Self.mutationCount {
            documents.append(("mutation \(index)", Self.mutate(bases, &generator)))
        }

        let verdicts = try referenceVerdicts(documents.map(\.bytes))
        XCTAssertEqual(verdicts.count, documents.count, "one verdict per document")
        var accepted = 0
        var disagreements = 0
        for (document, reference) in zip(documents, verdicts) {
            let ours: String
            do {
                ours = "ok " + Self.dump(try TOMLParser.parse(document.bytes))
                accepted += 1
            } catch {
                ours = "error \(error)"
            }
            let agree = ours.hasPrefix("ok ") ? ours == reference : reference.hasPrefix("error ")
            if !agree {
                disagreements += 1
                if disagreements <= 10 {
                    XCTFail("\(document.name): \(String(decoding: document.bytes.prefix(300), as: UTF8.self).debugDescription)\n  tomllib: \(reference.prefix(300))\n  serverd: \(ours.prefix(300))")
                }
            }
        }
        XCTAssertEqual(disagreements, 0)
        for (name, bytes) in valid {
            XCTAssertNoThrow(try TOMLParser.parse(bytes), name)
        }
        for (name, bytes) in invalid {
            XCTAssertThrowsError(try TOMLParser.parse(bytes), name)
        }
        print("TOMLParserTests: \(documents.count) documents (\(valid.count) valid, \(invalid.count) invalid, \(Self.mutationCount) mutated), \(accepted) accepted, \(disagreements) disagreements with tomllib")
    }

    /// How many mutated documents the comparison adds: enough to reach the corners, few enough to stay fast.
    static let mutationCount = 4000

    /// The parsed table of `text`.
    private func parse(_ text: String) throws -> TOMLTable {
        try TOMLParser.parse(Array(text.utf8))
    }

    /// The documents of `TOMLCorpus/<kind>/`, sorted by name.
    private func corpus(_ kind: String) throws -> [(name: String, bytes: [UInt8])] {
        let directory = Self.testsDirectory.appendingPathComponent("TOMLCorpus/\(kind)")
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".toml") }.sorted()
        return try names.map { name in
            ("\(kind)/\(name)", [UInt8](try Data(contentsOf: directory.appendingPathComponent(name))))
        }
    }

    private static let testsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()

    /// `tomllib`'s verdict on each document, from one run of `Support/toml_reference.py`.
    private func referenceVerdicts(_ documents: [[UInt8]]) throws -> [String] {
        let directory = try ScratchDirectory()
        defer { directory.remove() }
        var input = Data()
        for document in documents {
            input.append(contentsOf: Array("\(document.count)\n".utf8))
            input.append(contentsOf: document)
        }
        try input.write(to: URL(fileURLWithPath: directory.path("input")))
        _ = FileManager.default.createFile(atPath: directory.path("output"), contents: nil)
        _ = FileManager.default.createFile(atPath: directory.path("errors"), contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Self.testsDirectory.appendingPathComponent("Support/toml_reference.py").path]
        process.standardInput = FileHandle(forReadingAtPath: directory.path("input"))
        process.standardOutput = FileHandle(forWritingAtPath: directory.path("output"))
        process.standardError = FileHandle(forWritingAtPath: directory.path("errors"))
        try process.run()
        process.waitUntilExit()
        let errors = (try? String(contentsOfFile: directory.path("errors"), encoding: .utf8)) ?? ""
        if errors.contains("No module named 'tomllib'") {
            throw XCTSkip("the reference needs Python 3.11 or later (tomllib)")
        }
        XCTAssertEqual(process.terminationStatus, 0, errors)
        let output = try String(contentsOfFile: directory.path("output"), encoding: .utf8)
        return output.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    // MARK: - Mutations

    /// A document made from one of `bases` by one to four byte flips, insertions, deletions or splices of a
    /// piece of another base; inserted bytes are mostly ones that matter to TOML.
    private static func mutate(_ bases: [[UInt8]], _ generator: inout SplitMix64) -> [UInt8] {
        let interesting = Array("\"'[]{}=,.#\\\n\r\t 0123456789+-_:eEtTzZxobuUnf".utf8) + [0x00, 0x7F, 0xFF, 0xC3]
        var document = bases[generator.next(below: bases.count)]
        for _ in 0...generator.next(below: 4) {
            let at = generator.next(below: document.count + 1)
            switch generator.next(below: 5) {
            case 0 where !document.isEmpty:
                document[min(at, document.count - 1)] = interesting[generator.next(below: interesting.count)]
            case 1:
                document.insert(interesting[generator.next(below: interesting.count)], at: at)
            case 2 where !document.isEmpty:
                document.removeSubrange(at..<min(at + 1 + generator.next(below: 4), document.count))
            case 3:
                let other = bases[generator.next(below: bases.count)]
                let from = generator.next(below: other.count + 1)
                document.insert(contentsOf: other[from..<min(from + 1 + generator.next(below: 20), other.count)], at: at)
            case 4 where !document.isEmpty:
                document[min(at, document.count - 1)] = UInt8(truncatingIfNeeded: generator.next())
            default:
                break
            }
        }
        return document
    }

    // MARK: - Canonical dump, as Support/toml_reference.py writes it

    static func dump(_ table: TOMLTable) -> String {
        "{" + table.entries.map { hex(Array($0.key.utf8)) + "=" + dump($0.node.value) }.joined(separator: ",") + "}"
    }

    static func dump(_ value: TOMLValue) -> String {
        switch value {
        case .table(let table): return dump(table)
        case .array(let nodes): return "[" + nodes.map { dump($0.value) }.joined(separator: ",") + "]"
        case .string(let string): return "s:" + hex(Array(string.utf8))
        case .integer(let integer): return "i:\(integer)"
        case .float(let float):
            if float.isNaN { return "f:nan" }
            let bits = String(float.bitPattern, radix: 16)
            return "f:" + String(repeating: "0", count: 16 - bits.count) + bits
        case .boolean(let boolean): return "b:\(boolean)"
        case .dateTime(let dateTime):
            let tag = switch dateTime.kind {
            case .offsetDateTime: "odt"
            case .localDateTime: "ldt"
            case .localDate: "ld"
            case .localTime: "lt"
            }
            return tag + ":" + dateTime.text
        }
    }

    private static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }
}

/// A directory of its own under the temporary directory, for the reference's input and output.
private struct ScratchDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("toml-reference-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    func remove() { try? FileManager.default.removeItem(at: url) }
}

/// A small seeded generator (SplitMix64), so that every run mutates the corpus the same way.
private struct SplitMix64 {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in `0..<bound` (`bound` > 0).
    mutating func next(below bound: Int) -> Int {
        Int(next() % UInt64(bound))
    }
}

private extension TOMLValue {
    var tableValue: TOMLTable? {
        if case .table(let table) = self { return table }
        return nil
    }
}
