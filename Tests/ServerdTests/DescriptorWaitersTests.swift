import XCTest

@testable import serverd

/// Who waits for descriptors and who gives up: waiting goes on while a connection that is not
/// waiting is in flight; in a standoff the longest waiting gives up first, one at a time.
final class DescriptorWaitersTests: XCTestCase {
    func testLoneWaiterGivesUpAtOnce() {
        let only = DescriptorWaiters.join()
        defer { DescriptorWaiters.leave(only) }
        XCTAssertFalse(DescriptorWaiters.mayWait(only, connectionsInFlight: 1))
    }

    func testWaitersWaitWhileAnotherConnectionMakesProgress() {
        let first = DescriptorWaiters.join(), second = DescriptorWaiters.join()
        defer { [first, second].forEach(DescriptorWaiters.leave) }
        XCTAssertTrue(DescriptorWaiters.mayWait(first, connectionsInFlight: 3))
        XCTAssertTrue(DescriptorWaiters.mayWait(second, connectionsInFlight: 3))
    }

    func testInAStandoffTheLongestWaitingGivesUpFirstThenTheNext() {
        let first = DescriptorWaiters.join(), second = DescriptorWaiters.join(), third = DescriptorWaiters.join()
        defer { [second, third].forEach(DescriptorWaiters.leave) }
        XCTAssertFalse(DescriptorWaiters.mayWait(first, connectionsInFlight: 3))
        XCTAssertTrue(DescriptorWaiters.mayWait(second, connectionsInFlight: 3))
        XCTAssertTrue(DescriptorWaiters.mayWait(third, connectionsInFlight: 3))
        DescriptorWaiters.leave(first)
        XCTAssertFalse(DescriptorWaiters.mayWait(second, connectionsInFlight: 2))
        XCTAssertTrue(DescriptorWaiters.mayWait(third, connectionsInFlight: 2))
    }
}
