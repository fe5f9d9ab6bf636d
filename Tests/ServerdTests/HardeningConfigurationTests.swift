import FamilyServer
import Foundation
import Glibc
import XCTest

@testable import serverd

/// Issue 11, items 7 to 9 inside the configuration code: a large listen array is read in linear time with each
/// entry's own place, a NUL cannot cut a string short, CIDR blocks of either family cover IPv4-mapped peers, the new
/// options merge like the others, and peers map to source keys.
final class HardeningConfigurationTests: XCTestCase {
    /// A `listen` array of `count` entries, two per line, with strings that contain quotes and brackets and comments
    /// in between; with the `LINE:COLUMN` of each entry's string.
    private func largeListenArray(_ count: Int) -> (text: String, places: [String], texts: [String]) {
        var text = "model = \"threading\"\nlisten = [\n"
        var places: [String] = []
        var texts: [String] = []
        var line = 3
        var column = 1
        for index in 0..<count {
            let entry: String
            if index % 3 == 0 {
                entry = "'echo@unix:/run/s[\(index)]'"
                texts.append("echo@unix:/run/s[\(index)]")
            } else {
                entry = "\"echo@unix:/run/\\\"s\\\"\(index)\""
                texts.append("echo@unix:/run/\"s\"\(index)")
            }
            places.append("\(line):\(column)")
            let separator = index % 2 == 0 ? ", " : ",  # ] \" a comment\n"
            text += entry + separator
            if index % 2 == 1 {
                line += 1
                column = 1
            } else {
                column += entry.utf8.count + separator.utf8.count
            }
        }
        return (text + "]\n", places, texts)
    }

    /// The fastest of `runs` readings of a file's bytes, in seconds.
    private func fastestRead(_ bytes: [UInt8], runs: Int) throws -> Double {
        var best = Double.infinity
        for _ in 0..<runs {
            let start = ContinuousClock.now
            let file = try ConfigFile(path: "/etc/serverd.toml", bytes: bytes)
            let elapsed = ContinuousClock.now - start
            XCTAssertGreaterThan(file.listeners.count, 0)
            best = min(best, elapsed.seconds)
        }
        return best
    }

    /// Was testListenArrayIsLocatedInOnePass (TOMLScanner, which counted the bytes it pulled, is gone): the parser
    /// reports places itself, and reading a listen array takes time linear in its length. Before the one-pass
    /// scanner, 20,000 entries took minutes (n²/2 line scans).
    func testLargeListenArrayIsReadInLinearTime() throws {
        let small = Array(largeListenArray(10_000).text.utf8)
        let large = Array(largeListenArray(100_000).text.utf8)
        let smallTime = try fastestRead(small, runs: 3)
        let largeTime = try fastestRead(large, runs: 2)
        XCTAssertLessThan(largeTime, 30, "100,000 entries read in \(largeTime) s")
        // Ten times the entries: about ten times the time when linear, a hundred times when quadratic.
        XCTAssertLessThan(largeTime, max(smallTime, 0.01) * 35, "10,000 entries: \(smallTime) s, 100,000: \(largeTime) s")
    }

    /// Every listener of a large array names its own place (now `FILE:LINE:COLUMN`, was `FILE:LINE`), also with
    /// several entries on one line, quotes, brackets and comments in between.
    func testLargeListenArrayNamesEachEntrysPlace() throws {
        let (text, places, texts) = largeListenArray(100_000)
        let file = try ConfigFile(path: "/etc/serverd.toml", bytes: Array(text.utf8))
        XCTAssertEqual(file.listeners.count, 100_000)
        XCTAssertEqual(file.listeners.map(\.text), texts)
        let found = file.listeners.map(\.place)
        let expected = places.map { "/etc/serverd.toml:\($0)" }
        XCTAssertEqual(found.count, expected.count)
        let wrong = zip(found, expected).enumerated().first { $0.element.0 != $0.element.1 }
        XCTAssertNil(wrong, "entry \(wrong?.offset ?? 0): \(wrong?.element.0 ?? "") instead of \(wrong?.element.1 ?? "")")
    }

    /// Was testNULEscapesAreFoundOnlyInBasicStrings (TOMLKeyLocator.firstNULEscape is gone): a NUL written as
    /// `\u0000` in a basic string would cut a path, a name or an argument short where it reaches the C library, so
    /// the configuration refuses it (exit 78) naming the file, the line and the key; a literal string's `\u0000`,
    /// an escaped backslash and a comment hold no NUL.
    func testNULInStringsIsRefusedNamingFileLineAndKey() throws {
        var template = Array("/tmp/serverd-nul-XXXXXX".utf8CString)
        let directory = String(cString: template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!)! })
        let path = "\(directory)/s.toml"
        defer { unlink(path); rmdir(directory) }
        /// The error of a start with this file (reading it and building the desired state), or `nil`.
        func error(_ text: String) -> DaemonError? {
            XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(text.utf8)))
            var invocation = Invocation(workingDirectory: directory)
            invocation.configFile = path
            do {
                _ = try DesiredState.build(invocation, implicitListeners: { _ throws(DaemonError) in [] })
                return nil
            } catch {
                return error
            }
        }
        // The line of the key, or (was) of the NUL in a multi-line string or array.
        let cases: [(text: String, lines: Set<Int>, key: String)] = [
            ("model = \"serial\"\npidfile = \"/tmp/a\\u0000b\"\n", [2], "pidfile"),
            ("log-file = \"\"\"\nx\n\\U00000000\"\"\"\n", [1, 3], "log-file"),
            ("user = \"nobody\\u0000\"\n", [1], "user"),
            ("allow-uid = [\"root\\u0000x\"]\nlisten = [\"echo@unix:@nul\"]\n", [1], "allow-uid"),
            ("exec = [\n\"/bin/cat\",\n\"\\u0000\"]\nlisten = [\"exec@unix:@nul\"]\n", [1, 3], "exec"),
            ("listen = [\n\"echo@unix:/tmp/a\\u0000b\"]\n", [1, 2], "listen"),
            ("[[listener]]\nlisten = \"echo@unix:/tmp/a\\u0000b\"\n", [2], "listen"),
        ]
        // Without the check, `allow-uid = ["root\u0000x"]` admits uid 0: getpwnam_r sees "root".
        for (text, lines, key) in cases {
            guard let error = error(text) else {
                XCTFail("a NUL in \(key) is accepted: \(text.debugDescription)")
                continue
            }
            XCTAssertEqual(error.status, .configuration, error.message)
            let line = error.message.dropFirst(path.count + 1).prefix { $0.isNumber }
            XCTAssertTrue(
                error.message.hasPrefix("\(path):") && lines.contains(Int(line) ?? 0), "\(error.message) names line \(lines)")
            XCTAssertTrue(error.message.contains(key), "\(error.message) names \(key)")
            XCTAssertTrue(error.message.contains("NUL"), "\(error.message) says NUL")
        }
        for text in [
            "pidfile = '/tmp/x\\u0000'\n", "pidfile = \"/tmp/x\\\\u0000\"\n", "# \"\\u0000\"\npidfile = \"/tmp/\\u0001\"\n",
        ] {
            XCTAssertNil(error(text), "\(text.debugDescription) holds no NUL")
        }
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
        // ListenerSettings is now ListenerPolicy; its source-prefix-v6 comes from the table (default 64).
        var settings = ListenerPolicy(service: .echo, values: OptionTable.resolve(.listener, layers: []))
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
        guard case .run(let invocation) = try CommandLineParser.parse([
            "--config", path, "--min-rate", "20", "--reply-rate-per-source", "4", "--source-prefix-v4", "16",
        ], workingDirectory: directory) else { return XCTFail("no invocation") }
        let listeners = try DesiredState.build(invocation, implicitListeners: { _ throws(DaemonError) in [] }).listeners
        XCTAssertEqual(listeners.map(\.policy.replyRatePerSource), [4, 0], "table over command line over file")
        XCTAssertEqual(listeners.map(\.policy.minRate), [20, 20])
        XCTAssertEqual(listeners.map(\.policy.requestTimeout), [.seconds(5), .seconds(5)])
        XCTAssertEqual(listeners.map(\.policy.sourcePrefixV4), [16, 16])
        XCTAssertEqual(listeners.map(\.policy.sourcePrefixV6), [64, 48])
    }
}
