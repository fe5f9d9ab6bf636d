/// A single forward pass over TOML text that knows where strings and comments are: it reports where each string
/// starts, where a basic string holds a NUL escape (`\u0000`, `\U00000000`), and the brackets outside strings.
///
/// It runs only on text TOMLKit has already parsed, so it need not diagnose anything. It reads each byte once, in
/// order, through the sequence's iterator, which keeps every use of it linear in the text.
enum TOMLScanner {
    /// What the scan meets.
    enum Event: Equatable {
        /// A string (basic, literal, single- or multi-line) starts on this 1-based line.
        case stringStart(line: Int)
        /// A basic string holds U+0000, written as an escape, on this line.
        case nulEscape(line: Int)
        /// `[` (`true`) or `]` (`false`) outside strings and comments.
        case bracket(opening: Bool)
    }

    /// Scans `bytes`, calling `visit` for each event until it returns `false` or the bytes end.
    /// - Parameters:
    ///   - bytes: UTF-8 TOML text, from a point outside any string and comment.
    ///   - firstLine: The line number of the first byte.
    static func scan<Bytes: Sequence<UInt8>>(_ bytes: Bytes, firstLine: Int, _ visit: (Event) -> Bool) {
        var reader = Reader(iterator: bytes.makeIterator(), line: firstLine)
        while let byte = reader.next() {
            switch byte {
            case UInt8(ascii: "#"):
                while let next = reader.next(), next != UInt8(ascii: "\n") {}
            case UInt8(ascii: "["), UInt8(ascii: "]"):
                guard visit(.bracket(opening: byte == UInt8(ascii: "["))) else { return }
            case UInt8(ascii: "\""), UInt8(ascii: "'"):
                guard visit(.stringStart(line: reader.line)) else { return }
                guard skipString(quote: byte, &reader, visit) else { return }
            default:
                break
            }
        }
    }

    /// Reads a string whose first quote was just read, through its closing quotes; `false` when `visit` said stop.
    private static func skipString<Iterator>(
        quote: UInt8, _ reader: inout Reader<Iterator>, _ visit: (Event) -> Bool
    ) -> Bool {
        var multiLine = false
        if reader.peek() == quote {
            _ = reader.next()
            guard reader.peek() == quote else { return true }  // "" or '': an empty string
            _ = reader.next()
            multiLine = true
        }
        while let byte = reader.next() {
            if byte == UInt8(ascii: "\\") && quote == UInt8(ascii: "\"") {
                if readEscapeIsNUL(&reader), !visit(.nulEscape(line: reader.line)) { return false }
            } else if byte == quote {
                guard multiLine else { return true }
                var run = 1
                while reader.peek() == quote {
                    _ = reader.next()
                    run += 1
                }
                if run >= 3 { return true }  // up to two more quotes belong to the string
            } else if byte == UInt8(ascii: "\n") && !multiLine {
                return true  // unterminated: only in text TOMLKit refused, which is never scanned
            }
        }
        return true
    }

    /// Reads the rest of an escape after its backslash; whether it is `u0000` or `U00000000`.
    private static func readEscapeIsNUL<Iterator>(_ reader: inout Reader<Iterator>) -> Bool {
        guard let kind = reader.next() else { return false }
        let digits = kind == UInt8(ascii: "u") ? 4 : kind == UInt8(ascii: "U") ? 8 : 0
        guard digits > 0 else { return false }
        var allZero = true
        for _ in 0..<digits {
            guard let digit = reader.next() else { return false }
            allZero = allZero && digit == UInt8(ascii: "0")
        }
        return allZero
    }

    /// The bytes with one byte of look-ahead and the current line.
    private struct Reader<Iterator: IteratorProtocol<UInt8>> {
        var iterator: Iterator
        var line: Int
        var peeked: UInt8?

        init(iterator: Iterator, line: Int) {
            self.iterator = iterator
            self.line = line
        }

        /// The next byte, counting lines.
        mutating func next() -> UInt8? {
            let byte: UInt8?
            if let peeked {
                byte = peeked
                self.peeked = nil
            } else {
                byte = iterator.next()
            }
            if byte == UInt8(ascii: "\n") { line += 1 }
            return byte
        }

        /// The next byte, left to be read.
        mutating func peek() -> UInt8? {
            if peeked == nil { peeked = iterator.next() }
            return peeked
        }
    }
}
