/// The statements of a TOML document: key/value pairs, `[table]` and `[[array]]` headers, comments, and keys.
///
/// Its extensions read values (`+Values`), strings (`+Strings`), numbers (`+Numbers`) and dates (`+DateTimes`).
/// Each follows the grammar of TOML 1.0 in the order Python's `tomllib` tries it, so that both read any input the
/// same way.
struct TOMLDocumentParser {
    /// The document and the read offset.
    var reader: TOMLReader
    /// The tables so far.
    var builder: TOMLTableBuilder
    /// The table that key/value lines go into: the root, or the last header's.
    var section = TOMLTableBuilder.root

    /// A parser at the start of `reader`'s document.
    init(_ reader: TOMLReader) {
        self.reader = reader
        builder = TOMLTableBuilder(position: TOMLPosition(line: 1, column: 1))
    }

    /// Reads the whole document.
    mutating func parseDocument() throws(TOMLError) -> TOMLTable {
        while true {
            reader.skipWhitespace()
            guard let byte = reader.peek() else { break }
            if byte == UInt8(ascii: "\n") {
                reader.advance()
                continue
            }
            var statement = "a comment"
            if TOMLKeyPart.isBareKeyByte(byte) || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "'") {
                statement = "a key/value pair"
                let key = try parseKey()
                let value = try parseKeyValueRest(key, depth: builder.depth(of: section) + key.count)
                try builder.insert(value, at: key, in: section)
                reader.skipWhitespace()
            } else if byte == UInt8(ascii: "[") {
                statement = "a table header"
                try parseHeader()
                reader.skipWhitespace()
            } else if byte != UInt8(ascii: "#") {
                throw reader.error("expected a key, a [table] header or a comment, found \(reader.describedNext)")
            }
            try skipComment()
            guard let next = reader.peek() else { break }
            guard next == UInt8(ascii: "\n") else {
                throw reader.error("expected the end of the line after \(statement), found \(reader.describedNext)")
            }
            reader.advance()
        }
        return builder.table()
    }

    // MARK: Headers

    /// Reads a `[table]` or `[[array]]` header and makes its table the current section.
    private mutating func parseHeader() throws(TOMLError) {
        let start = reader.position
        let isArray = reader.peek(1) == UInt8(ascii: "[")
        reader.advance(isArray ? 2 : 1)
        reader.skipWhitespace()
        let key = try parseKey()
        if isArray {
            section = try builder.appendTable(to: key, header: start)
            guard reader.starts(with: "]]") else {
                throw reader.error("expected ']]' to close the header [[\(TOMLKeyPart.dotted(key))]], found \(reader.describedNext)")
            }
            reader.advance(2)
        } else {
            section = try builder.defineTable(key, header: start)
            guard reader.peek() == UInt8(ascii: "]") else {
                throw reader.error("expected ']' to close the header [\(TOMLKeyPart.dotted(key))], found \(reader.describedNext)")
            }
            reader.advance()
        }
    }

    // MARK: Keys

    /// Reads a key (`a`, `a.b`, `"a b".'c'`), and the whitespace after it.
    mutating func parseKey() throws(TOMLError) -> [TOMLKeyPart] {
        var parts = [try parseKeyPart()]
        reader.skipWhitespace()
        while reader.peek() == UInt8(ascii: ".") {
            reader.advance()
            reader.skipWhitespace()
            parts.append(try parseKeyPart())
            reader.skipWhitespace()
        }
        return parts
    }

    /// Reads one part of a key: bare, basic-quoted or literal-quoted.
    private mutating func parseKeyPart() throws(TOMLError) -> TOMLKeyPart {
        let start = reader.offset
        let position = reader.position
        switch reader.peek() {
        case let byte? where TOMLKeyPart.isBareKeyByte(byte):
            while let next = reader.peek(), TOMLKeyPart.isBareKeyByte(next) {
                reader.advance()
            }
            return TOMLKeyPart(bytes: Array(reader.bytes(from: start)), position: position)
        case UInt8(ascii: "\"")?:
            reader.advance()
            return TOMLKeyPart(bytes: try parseBasicString(multiline: false, start: start), position: position)
        case UInt8(ascii: "'")?:
            reader.advance()
            return TOMLKeyPart(bytes: try parseLiteralString(start: start), position: position)
        default:
            throw reader.error("expected a key (bare, \"quoted\" or 'quoted'), found \(reader.describedNext)")
        }
    }

    /// Reads `= value` after `key`, the whitespace around `=` included.
    /// - Parameter depth: The level the value has if it is an array or inline table.
    mutating func parseKeyValueRest(_ key: [TOMLKeyPart], depth: Int) throws(TOMLError) -> TOMLNode {
        guard reader.peek() == UInt8(ascii: "=") else {
            throw reader.error("expected '=' after the key '\(TOMLKeyPart.dotted(key))', found \(reader.describedNext)")
        }
        reader.advance()
        reader.skipWhitespace()
        return try parseValue(depth: depth)
    }

    // MARK: Comments

    /// Skips a comment, if one starts at the read offset, up to (not including) the end of its line.
    /// - Throws: ``TOMLError`` at a control character other than tab inside it.
    mutating func skipComment() throws(TOMLError) {
        guard reader.peek() == UInt8(ascii: "#") else { return }
        reader.advance()
        while let byte = reader.peek(), byte != UInt8(ascii: "\n") {
            if Self.isControl(byte, allowingNewline: false) {
                throw reader.error("\(reader.describedNext) is not allowed in a comment")
            }
            reader.advance()
        }
    }

    /// Whether `byte` is a control character that TOML forbids in comments and strings: U+0000…U+001F but tab,
    /// and U+007F; line feed only if `allowingNewline` is false.
    static func isControl(_ byte: UInt8, allowingNewline: Bool) -> Bool {
        if byte == UInt8(ascii: "\t") { return false }
        if byte == UInt8(ascii: "\n") { return !allowingNewline }
        return byte < 0x20 || byte == 0x7F
    }
}
