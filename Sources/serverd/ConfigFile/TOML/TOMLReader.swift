/// The parser's view of a document: its bytes, a read offset, and how to turn an offset into a line and column.
///
/// Every read goes through ``peek(_:)``, which answers `nil` past the end, so no input can move a read out of
/// range. Line breaks are normalized on creation, as Python's `tomllib` does: every CR LF becomes LF (a lone CR
/// stays, and is refused wherever it appears, being a control character).
struct TOMLReader {
    /// The document, CR LF pairs replaced by LF.
    let bytes: [UInt8]
    /// The offset of the next byte to read, from 0 to `bytes.count`.
    private(set) var offset = 0
    /// The offset at which each line starts; line 1 at 0.
    private let lineStarts: [Int]

    /// A reader at the start of `document` (well-formed UTF-8, see ``TOMLUTF8Validator``).
    init(_ document: [UInt8]) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(document.count)
        var lineStarts = [0]
        var index = 0
        while index < document.count {
            let byte = document[index]
            index += 1
            if byte == UInt8(ascii: "\r"), index < document.count, document[index] == UInt8(ascii: "\n") {
                continue
            }
            bytes.append(byte)
            if byte == UInt8(ascii: "\n") {
                lineStarts.append(bytes.count)
            }
        }
        self.bytes = bytes
        self.lineStarts = lineStarts
    }

    /// The byte `ahead` bytes past the read offset, or `nil` past the end.
    func peek(_ ahead: Int = 0) -> UInt8? {
        let index = offset + ahead
        return index >= 0 && index < bytes.count ? bytes[index] : nil
    }

    /// Whether the unread bytes start with `prefix` (ASCII).
    func starts(with prefix: StaticString) -> Bool {
        var ahead = 0
        for byte in UnsafeBufferPointer(start: prefix.utf8Start, count: prefix.utf8CodeUnitCount) {
            guard peek(ahead) == byte else { return false }
            ahead += 1
        }
        return true
    }

    /// Moves the read offset `count` bytes on, at most to the end.
    mutating func advance(_ count: Int = 1) {
        offset = min(offset + max(count, 0), bytes.count)
    }

    /// Moves the read offset back to `earlier`, an offset read before.
    mutating func rewind(to earlier: Int) {
        offset = min(max(earlier, 0), bytes.count)
    }

    /// Skips spaces and tabs, TOML's whitespace.
    mutating func skipWhitespace() {
        while let byte = peek(), byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") {
            offset += 1
        }
    }

    /// The bytes from `start` to the read offset.
    func bytes(from start: Int) -> ArraySlice<UInt8> {
        let lower = min(max(start, 0), offset)
        return bytes[lower..<offset]
    }

    /// The position of the next byte to read.
    var position: TOMLPosition { position(at: offset) }

    /// The line and column of the byte at `offset` (the end of the document counts as a byte after the last).
    func position(at offset: Int) -> TOMLPosition {
        // The last line start at or before `offset`, by binary search; lineStarts[0] is 0.
        var low = 0
        var high = lineStarts.count - 1
        while low < high {
            let middle = (low + high + 1) / 2
            if lineStarts[middle] <= offset {
                low = middle
            } else {
                high = middle - 1
            }
        }
        return TOMLPosition(line: low + 1, column: offset - lineStarts[low] + 1)
    }

    /// An error at `offset`, by default the read offset.
    func error(_ message: String, at offset: Int? = nil) -> TOMLError {
        TOMLError(position: position(at: offset ?? self.offset), message: message)
    }

    /// How to name the byte at the read offset in an error message: `end of document`, `end of line`, or the
    /// character quoted (control characters as `U+XXXX`).
    var describedNext: String {
        guard let byte = peek() else { return "end of document" }
        if byte == UInt8(ascii: "\n") { return "end of line" }
        if byte < 0x20 || byte == 0x7F { return "control character \(TOMLKeyPart.unicodeName(UInt32(byte)))" }
        if byte < 0x80 { return "'\(Character(Unicode.Scalar(byte)))'" }
        // The whole character: validation guarantees a well-formed sequence.
        var end = offset + 1
        while end < bytes.count, bytes[end] & 0xC0 == 0x80 { end += 1 }
        return "'\(String(decoding: bytes[offset..<end], as: UTF8.self))'"
    }
}
