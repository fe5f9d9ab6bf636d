import XCTest

@testable import serverd

/// The exec stderr relay's line cutting: lines, pieces of over-long lines, the unfinished rest,
/// and that its work and memory grow linearly with what a child writes (counted, not timed).
final class StandardErrorRelayTests: XCTestCase {
    private typealias Line = StandardErrorRelay.Line

    /// Feeds `chunks` and finishes; returns every line emitted.
    private func lines(_ chunks: [String], maximum: Int = 4096) -> [Line] {
        var relay = StandardErrorRelay(maximumLineLength: maximum)
        var result: [Line] = []
        for chunk in chunks {
            Array(chunk.utf8).withUnsafeBytes { relay.append($0) { result.append($0) } }
        }
        relay.finish { result.append($0) }
        return result
    }

    func testLinesAcrossChunks() {
        XCTAssertEqual(lines(["one\ntw", "o\n", "", "three\nfour"]), [
            Line(text: "one", isCut: false), Line(text: "two", isCut: false),
            Line(text: "three", isCut: false), Line(text: "four", isCut: false),
        ])
    }

    func testEmptyLinesAndNoTrailingRest() {
        XCTAssertEqual(lines(["\n\nx\n"]), [
            Line(text: "", isCut: false), Line(text: "", isCut: false), Line(text: "x", isCut: false),
        ])
    }

    func testLineOfExactlyTheMaximumIsNotCut() {
        XCTAssertEqual(lines(["abcd\nefgh", "\n"], maximum: 4), [
            Line(text: "abcd", isCut: false), Line(text: "efgh", isCut: false),
        ])
    }

    func testLongerLinesAreCutIntoMarkedPieces() {
        XCTAssertEqual(lines(["abcdefghij\nxy", "z"], maximum: 4), [
            Line(text: "abcd", isCut: true), Line(text: "efgh", isCut: true), Line(text: "ij", isCut: false),
            Line(text: "xyz", isCut: false),
        ])
        XCTAssertEqual(lines(["abcdefgh"], maximum: 4), [
            Line(text: "abcd", isCut: true), Line(text: "efgh", isCut: false),
        ], "the rest at the end is not marked: nothing follows it")
    }

    func testInvalidUTF8IsReplacedNotDropped() {
        var relay = StandardErrorRelay()
        var result: [Line] = []
        [UInt8]([0x61, 0xFF, 0x62, 0x0A]).withUnsafeBytes { relay.append($0) { result.append($0) } }
        XCTAssertEqual(result, [Line(text: "a\u{FFFD}b", isCut: false)])
    }

    /// Feeds `total` bytes of `byte` in 64 KiB chunks; returns the relay and the number of lines.
    private func feed(_ total: Int, of byte: UInt8, newlineEvery: Int? = nil) -> (StandardErrorRelay, Int, Int) {
        var relay = StandardErrorRelay()
        var chunk = [UInt8](repeating: byte, count: 65536)
        if let every = newlineEvery {
            for index in stride(from: every - 1, to: chunk.count, by: every) { chunk[index] = 0x0A }
        }
        var emitted = 0
        var mostHeld = 0
        var fed = 0
        while fed < total {
            let count = min(chunk.count, total - fed)
            chunk.withUnsafeBytes { relay.append(UnsafeRawBufferPointer(rebasing: $0[0..<count])) { _ in emitted += 1 } }
            mostHeld = max(mostHeld, relay.heldBytes)
            fed += count
        }
        return (relay, emitted, mostHeld)
    }

    /// 10 MB without a newline: every byte is searched once, compaction moves each byte at most
    /// once, the memory held stays within two lines and a chunk, and the line is cut in pieces.
    func testTenMegabytesWithoutNewlineCostLinearWorkAndBoundedMemory() {
        let total = 10 * 1024 * 1024
        let (relay, pieces, mostHeld) = feed(total, of: 0x61)
        XCTAssertLessThanOrEqual(relay.bytesSearched, total, "each byte searched at most once")
        XCTAssertLessThanOrEqual(relay.bytesMoved, total, "each byte moved at most once")
        XCTAssertLessThanOrEqual(mostHeld, 2 * relay.maximumLineLength + 65536)
        XCTAssertEqual(pieces, total / relay.maximumLineLength - 1, "all but the last piece are emitted as they fill")
    }

    /// Doubling the input doubles the work (the quadratic relay quadrupled it), with short lines too.
    func testWorkForTwiceTheBytesIsTwiceTheWork() {
        for newlineEvery in [nil, 100, 5000] as [Int?] {
            let (small, smallLines, _) = feed(4 * 1024 * 1024, of: 0x62, newlineEvery: newlineEvery)
            let (large, largeLines, _) = feed(8 * 1024 * 1024, of: 0x62, newlineEvery: newlineEvery)
            let smallWork = small.bytesSearched + small.bytesMoved
            let largeWork = large.bytesSearched + large.bytesMoved
            XCTAssertGreaterThan(smallWork, 0)
            XCTAssertLessThanOrEqual(Double(largeWork), 2.1 * Double(smallWork), "newline every \(newlineEvery.map(String.init) ?? "never")")
            XCTAssertLessThanOrEqual(largeWork, 2 * 8 * 1024 * 1024)
            XCTAssertGreaterThanOrEqual(largeLines, 2 * smallLines - 1)
        }
    }
}
