@testable import FamilyServer
import XCTest

/// The reactor's deadline heap: entries come out earliest first, and only once due.
final class EventDeadlinesTests: XCTestCase {
    func testEntriesComeOutEarliestFirstOnceDue() {
        var deadlines = EventDeadlines()
        let dues: [Double] = [5, 1, 4, 1.5, 3, 2, 9, 0.5, 7, 6]
        for (token, due) in dues.enumerated() { deadlines.insert(due: due, token: UInt64(token)) }
        XCTAssertEqual(deadlines.earliest, 0.5)
        XCTAssertNil(deadlines.popDue(now: 0.4), "nothing is due before the earliest")
        var taken: [Double] = []
        while let entry = deadlines.popDue(now: 4.5) { taken.append(entry.due) }
        XCTAssertEqual(taken, [0.5, 1, 1.5, 2, 3, 4])
        XCTAssertEqual(deadlines.count, 4)
        XCTAssertEqual(deadlines.earliest, 5)
        while let entry = deadlines.popDue(now: 100) { taken.append(entry.due) }
        XCTAssertEqual(taken, dues.sorted())
        XCTAssertNil(deadlines.earliest)
    }

    func testTokensTravelWithTheirDue() {
        var deadlines = EventDeadlines()
        deadlines.insert(due: 2, token: 20)
        deadlines.insert(due: 1, token: 10)
        deadlines.insert(due: 1, token: 11)
        let first = deadlines.popDue(now: 1)
        let second = deadlines.popDue(now: 1)
        XCTAssertEqual(Set([first?.token, second?.token]), [10, 11])
        XCTAssertNil(deadlines.popDue(now: 1.5))
        XCTAssertEqual(deadlines.popDue(now: 2)?.token, 20)
    }
}
