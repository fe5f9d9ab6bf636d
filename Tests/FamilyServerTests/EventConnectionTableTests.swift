@testable import FamilyServer
import XCTest

/// The reactor's connection table: a token finds its connection until it is removed, and never the next occupant of
/// its slot; the reactor's own small tokens find nothing.
final class EventConnectionTableTests: XCTestCase {
    private final class Held {
        let name: String
        init(_ name: String) { self.name = name }
    }

    func testTokensFindTheirConnectionsUntilRemoved() {
        var table = EventConnectionTable<Held>()
        var tokens: [UInt64] = []
        let first = table.insert { tokens.append($0); return Held("first") }
        let second = table.insert { tokens.append($0); return Held("second") }
        XCTAssertEqual(Set(tokens).count, 2, "two connections, two tokens")
        XCTAssertTrue(tokens.allSatisfy { $0 >= 1 << 63 }, "connection tokens have the top bit")
        XCTAssertTrue(table[tokens[0]] === first)
        XCTAssertTrue(table[tokens[1]] === second)
        XCTAssertEqual(table.all.count, 2)

        XCTAssertTrue(table.remove(tokens[0]) === first)
        XCTAssertNil(table.remove(tokens[0]), "removed once only")
        XCTAssertNil(table[tokens[0]])
        XCTAssertEqual(table.all.count, 1)
        XCTAssertEqual(table.all.map(\.name), ["second"])
    }

    func testATokenOfAnEndedConnectionNeverFindsTheNextInItsSlot() {
        var table = EventConnectionTable<Held>()
        var ended: [UInt64] = []
        var token: UInt64 = 0
        for round in 0..<100 {
            _ = table.insert { token = $0; return Held("\(round)") }
            for old in ended {
                XCTAssertNil(table[old], "round \(round): a token of an ended connection")
                XCTAssertNil(table.remove(old), "round \(round): removing by a token of an ended connection")
            }
            XCTAssertEqual(table[token]?.name, "\(round)")
            XCTAssertNotNil(table.remove(token))
            ended.append(token)
        }
        XCTAssertEqual(table.all.count, 0)
        XCTAssertEqual(Set(ended).count, 100, "one slot, a new token each time")
    }

    func testTheReactorsOwnTokensFindNothing() {
        var table = EventConnectionTable<Held>()
        var token: UInt64 = 0
        _ = table.insert { token = $0; return Held("only") }
        for other: UInt64 in [0, 1, 2, token & ~(1 << 63), token + 1, token | 0xFFFF, UInt64.max] {
            XCTAssertNil(table[other], "token \(String(other, radix: 16))")
        }
        XCTAssertEqual(table[token]?.name, "only")
    }
}
