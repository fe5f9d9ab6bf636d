import FamilyServer
import Foundation
import Glibc
import XCTest

@testable import serverd

/// Issue 11, items 7 to 9 inside the configuration code: the listen array is located in one linear pass, CIDR blocks
/// of either family cover IPv4-mapped peers, the new options merge like the others, and peers map to source keys.
final class HardeningConfigurationTests: XCTestCase {
    /// A byte sequence that counts how many bytes its readers pull.
    private final class CountingBytes: Sequence {
        let bytes: [UInt8]
        var pulled = 0
        init(_ text: String) { bytes = Array(text.utf8) }

        func makeIterator() -> AnyIterator<UInt8> {
            var index = 0
            return AnyIterator { [self] in
                guard index < bytes.count else { return nil }
                pulled += 1
                defer { index += 1 }
                return bytes[index]
            }
        }
    }

    /// A `listen` array of `count` entries, several per line, with strings that contain quotes and brackets.
    private func largeListenArray(_ count: Int) -> (text: String, lines: [Int]) {
        var text = "model = \"threading\"\nlisten = [\n"
        var lines: [Int] = []
        var line = 3
        for index in 0..<count {
            let entry = index % 3 == 0 ? "'echo@unix:/run/s[\(index)]'" : "\"echo@unix:/run/\\\"s\\\"\(index)\""
            text += entry + (index % 2 == 0 ? ", " : ",  # ] \" a comment\n")
            lines.append(line)
            if index % 2 == 1 { line += 1 }
        }
        return (text + "]\n", lines)
    }

    /// Before: each entry's line was searched from the `listen =` line on, n²/2 line scans (20000 entries took
    /// minutes). Now one pass: the scanner pulls each byte of the text at most once, whatever the entry count.
    func testListenArrayIsLocatedInOnePass() {
        let (text, _) = largeListenArray(20_000)
        let bytes = CountingBytes(text)
        var strings = 0
        TOMLScanner.scan(bytes, firstLine: 1) { event in
            if case .stringStart = event { strings += 1 }
            return true
        }
        XCTAssertEqual(strings, 20_001, "model's string and every listen entry")
        XCTAssertLessThanOrEqual(bytes.pulled, text.utf8.count, "each byte read at most once")
    }

    /// Every listener of a large array names its own line, also with several entries on one line, quotes, brackets
    /// and comments in between.
    func testLargeListenArrayNamesEachEntrysLine() throws {
        let (text, lines) = largeListenArray(20_000)
        let file = try ConfigurationFile(path: "/etc/serverd.toml", text: text)
        XCTAssertEqual(file.listeners.count, 20_000)
        XCTAssertEqual(file.listeners.map(\.origin), lines.map { "/etc/serverd.toml:\($0)" })
    }

    func testNULEscapesAreFoundOnlyInBasicStrings() {
        func nul(_ text: String) -> Int? { TOMLKeyLocator(text: text).firstNULEscape()?.line }
        XCTAssertEqual(nul("a = 1\nb = \"x\\u0000\"\n"), 2)
        XCTAssertEqual(nul("b = \"\"\"\nx\n\\U00000000\"\"\"\n"), 3)
        XCTAssertNil(nul("b = 'x\\u0000'\n"))
        XCTAssertNil(nul("b = \"x\\\\u0000\"\n"))
        XCTAssertNil(nul("# \"\\u0000\"\nb = \"\\u0001\"\n"))
        XCTAssertEqual(TOMLKeyLocator(text: "a = 1\nb = [\n\"\\u0000\"]\n").firstNULEscape()?.key, "b")
    }

    func testIPv6BlocksHoldIPv4MappedAddresses() throws {
        let mapped: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1]
        let loopback6: [UInt8] = Array(repeating: 0, count: 15) + [1]
        let everyone = try CIDRBlock(parsing: "::/0")
        XCTAssertTrue(everyone.contains([127, 0, 0, 1]))
        XCTAssertTrue(everyone.contains(mapped))
        let allIPv4 = try CIDRBlock(parsing: "::ffff:0:0/96")
        XCTAssertTrue(allIPv4.contains(mapped))
        XCTAssertTrue(allIPv4.contains([10, 1, 2, 3]))
        XCTAssertFalse(allIPv4.contains(loopback6))
        XCTAssertFalse(try CIDRBlock(parsing: "::1/128").contains(mapped))
        XCTAssertTrue(try CIDRBlock(parsing: "127.0.0.0/8").contains(mapped), "IPv4 blocks keep matching mapped peers")
        XCTAssertFalse(try CIDRBlock(parsing: "127.0.0.0/8").contains(loopback6))
    }

    func testSourceKeysAggregateByPrefix() throws {
        var settings = ListenerSettings()
        settings.sourcePrefixV4 = 24
        func key(_ text: String) throws -> SourceKey? { SourceKey(peer: try SocketAddress(parsing: text), settings: settings) }
        XCTAssertEqual(try key("tcp://127.0.0.2:1"), try key("tcp://127.0.0.3:2"))
        XCTAssertEqual(try key("tcp://[::ffff:127.0.0.9]:1"), try key("tcp://127.0.0.2:1"), "mapped peers count as IPv4")
        XCTAssertNotEqual(try key("tcp://127.0.1.2:1"), try key("tcp://127.0.0.2:1"))
        XCTAssertEqual(try key("tcp://[2001:db8:0:1::1]:1"), try key("tcp://[2001:db8:0:1:ffff::2]:1"), "one /64")
        XCTAssertNotEqual(try key("tcp://[2001:db8:0:1::1]:1"), try key("tcp://[2001:db8:0:2::1]:1"))
        XCTAssertEqual(try key("tcp://127.0.0.2:1")?.description, "127.0.0.0/24")
        XCTAssertNil(try key("unix:/run/x.sock"))
    }

    func testNewOptionsMergeTableOverCommandLineOverFile() throws {
        var template = Array("/tmp/serverd-hardening-XXXXXX".utf8CString)
        let directory = String(cString: template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!)! })
        defer { unlink("\(directory)/s.toml"); rmdir(directory) }
        let path = "\(directory)/s.toml"
        let text = """
            request-timeout = 5
            min-rate = 10
            reply-rate-per-source = 3
            listen = ["echo@udp://127.0.0.1:0"]

            [[listener]]
            listen = "echo@tcp://127.0.0.1:0"
            reply-rate-per-source = 0
            source-prefix-v6 = 48
            """
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(text.utf8)))
        guard case .run(let command) = try ServerdCommand.parseCommandLine([
            "--config", path, "--min-rate", "20", "--reply-rate-per-source", "4", "--source-prefix-v4", "16",
        ]) else { return XCTFail("no command") }
        let listeners = try DaemonConfiguration.load(from: command).listeners
        XCTAssertEqual(listeners.map(\.settings.replyRatePerSource), [4, 0], "table over command line over file")
        XCTAssertEqual(listeners.map(\.settings.minRate), [20, 20])
        XCTAssertEqual(listeners.map(\.settings.requestTimeout), [5, 5])
        XCTAssertEqual(listeners.map(\.settings.sourcePrefixV4), [16, 16])
        XCTAssertEqual(listeners.map(\.settings.sourcePrefixV6), [64, 48])
    }
}
