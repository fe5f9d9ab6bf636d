import Glibc

/// Cuts the bytes an exec child writes to stderr into log lines, in time and memory linear in
/// what the child writes: each byte is searched for a newline once, consumed lines only move an
/// offset, and the buffer is compacted only once the consumed part is at least as large as the
/// rest (so that compaction moves each byte at most once). A line longer than
/// ``maximumLineLength`` bytes is cut into pieces of that length, each marked as cut, so that a
/// child writing gigabytes without a newline costs at most one piece of memory.
struct StandardErrorRelay {
    /// One line for the log: the text without its newline, and whether it is a piece of a longer
    /// line (its rest follows in the next ``Line``).
    struct Line: Equatable {
        var text: String
        var isCut: Bool
    }

    /// The longest line logged as one; longer ones are cut.
    let maximumLineLength: Int
    private var buffer: [UInt8] = []
    /// Where the next line begins in `buffer`: everything before it is consumed.
    private var start = 0
    /// How far `buffer` has been searched for a newline.
    private var searched = 0
    /// Bytes searched for a newline so far (each byte once): the relay's work, for the tests.
    private(set) var bytesSearched = 0
    /// Bytes moved by compaction so far (at most the bytes written): the rest of its work.
    private(set) var bytesMoved = 0

    init(maximumLineLength: Int = 4096) {
        precondition(maximumLineLength > 0)
        self.maximumLineLength = maximumLineLength
    }

    /// The bytes held now, consumed ones not yet compacted away included: after each
    /// ``append(_:emit:)``, less than twice ``maximumLineLength`` (plus the capacity that the
    /// largest chunk appended left behind).
    var heldBytes: Int { buffer.count }

    /// Takes the next bytes the child wrote; calls `emit` for each line they complete.
    mutating func append(_ bytes: UnsafeRawBufferPointer, emit: (Line) -> Void) {
        buffer.append(contentsOf: bytes)
        while let line = nextLine() { emit(line) }
        compactIfWorthwhile()
    }

    /// The child closed stderr (or is gone): emits what is left of an unfinished line.
    mutating func finish(emit: (Line) -> Void) {
        if start < buffer.count {
            emit(Line(text: text(start..<buffer.count), isCut: false))
        }
        buffer.removeAll()
        start = 0
        searched = 0
    }

    /// The next complete line, or the next piece of an over-long one; nil until more bytes come.
    private mutating func nextLine() -> Line? {
        let limit = min(buffer.count, start + maximumLineLength + 1)
        if searched < limit {
            let found = buffer.withUnsafeBytes { raw -> Int? in
                let base = raw.baseAddress!
                guard let hit = memchr(base + searched, 0x0A, limit - searched) else { return nil }
                return base.distance(to: UnsafeRawPointer(hit))
            }
            bytesSearched += (found.map { $0 + 1 } ?? limit) - searched
            if let newline = found {
                let line = Line(text: text(start..<newline), isCut: false)
                start = newline + 1
                searched = start
                return line
            }
            searched = limit
        }
        guard buffer.count - start > maximumLineLength else { return nil }
        let line = Line(text: text(start..<start + maximumLineLength), isCut: true)
        start += maximumLineLength
        return line
    }

    private func text(_ range: Range<Int>) -> String {
        String(decoding: buffer[range], as: UTF8.self)
    }

    private mutating func compactIfWorthwhile() {
        guard start > 0, start >= buffer.count - start else { return }
        bytesMoved += buffer.count - start
        buffer.removeSubrange(0..<start)
        searched -= start
        start = 0
    }
}
