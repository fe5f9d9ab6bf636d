extension TOMLDocumentParser {
    /// Reads a value of any type.
    ///
    /// The order of the attempts is `tomllib`'s: strings, booleans, arrays, inline tables, dates and times, numbers,
    /// then `inf` and `nan`. A date, time or number is the longest prefix that has the form, as a regular
    /// expression would match it; what follows must then be a separator, or the caller reports it.
    /// - Parameter depth: The level the value has if it is an array or inline table.
    mutating func parseValue(depth: Int) throws(TOMLError) -> TOMLNode {
        let start = reader.offset
        let position = reader.position
        func node(_ value: TOMLValue) -> TOMLNode { TOMLNode(value: value, position: position) }

        switch reader.peek() {
        case UInt8(ascii: "\"")?:
            if reader.starts(with: "\"\"\"") {
                reader.advance(3)
                return node(.string(String(decoding: try parseMultilineBasicString(start: start), as: UTF8.self)))
            }
            reader.advance()
            return node(.string(String(decoding: try parseBasicString(multiline: false, start: start), as: UTF8.self)))
        case UInt8(ascii: "'")?:
            if reader.starts(with: "'''") {
                reader.advance(3)
                return node(.string(String(decoding: try parseMultilineLiteralString(start: start), as: UTF8.self)))
            }
            reader.advance()
            return node(.string(String(decoding: try parseLiteralString(start: start), as: UTF8.self)))
        case UInt8(ascii: "[")?:
            return node(.array(try parseArray(depth: depth)))
        case UInt8(ascii: "{")?:
            return node(.table(try parseInlineTable(depth: depth)))
        default:
            break
        }
        if reader.starts(with: "true") {
            reader.advance(4)
            return node(.boolean(true))
        }
        if reader.starts(with: "false") {
            reader.advance(5)
            return node(.boolean(false))
        }
        if let dateTime = try parseDateTime() {
            return node(.dateTime(dateTime))
        }
        if let number = try parseNumber() {
            return node(number)
        }
        for (text, value) in Self.specialFloats where reader.starts(with: text) {
            reader.advance(text.utf8CodeUnitCount)
            return node(.float(value))
        }
        throw reader.error("expected a value (string, number, boolean, date, array or inline table), found \(reader.describedNext)")
    }

    /// The spellings of infinity and NaN, longest first.
    private static let specialFloats: [(StaticString, Double)] = [
        ("+inf", .infinity), ("-inf", -.infinity), ("+nan", .nan), ("-nan", -.nan), ("inf", .infinity), ("nan", .nan),
    ]

    // MARK: Arrays

    /// Reads `[value, …]`, which may span lines and hold comments and a trailing comma.
    /// - Parameter depth: The array's level.
    private mutating func parseArray(depth: Int) throws(TOMLError) -> [TOMLNode] {
        guard depth <= TOMLTableBuilder.maximumDepth else {
            throw reader.error("tables and arrays nest more than \(TOMLTableBuilder.maximumDepth) levels deep")
        }
        let start = reader.offset
        reader.advance()
        var elements: [TOMLNode] = []
        try skipArrayWhitespace()
        if reader.peek() == UInt8(ascii: "]") {
            reader.advance()
            return elements
        }
        while true {
            elements.append(try parseValue(depth: depth + 1))
            try skipArrayWhitespace()
            switch reader.peek() {
            case UInt8(ascii: "]")?:
                reader.advance()
                return elements
            case UInt8(ascii: ",")?:
                reader.advance()
            case nil:
                throw reader.error("the array that starts at \(reader.position(at: start)) is not closed with ']'")
            default:
                throw reader.error("expected ',' or ']' after an array element, found \(reader.describedNext)")
            }
            try skipArrayWhitespace()
            if reader.peek() == UInt8(ascii: "]") {
                reader.advance()
                return elements
            }
        }
    }

    /// Skips whitespace, line breaks and comments between array elements.
    private mutating func skipArrayWhitespace() throws(TOMLError) {
        while true {
            let before = reader.offset
            while let byte = reader.peek(),
                byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\n")
            {
                reader.advance()
            }
            try skipComment()
            if reader.offset == before { return }
        }
    }

    // MARK: Inline tables

    /// Reads `{key = value, …}`, on one line, without a trailing comma.
    /// - Parameter depth: The table's level.
    private mutating func parseInlineTable(depth: Int) throws(TOMLError) -> TOMLTable {
        guard depth <= TOMLTableBuilder.maximumDepth else {
            throw reader.error("tables and arrays nest more than \(TOMLTableBuilder.maximumDepth) levels deep")
        }
        var table = TOMLTableBuilder(position: reader.position, depth: depth)
        reader.advance()
        reader.skipWhitespace()
        if reader.peek() == UInt8(ascii: "}") {
            reader.advance()
            return table.table()
        }
        while true {
            let key = try parseKey()
            let value = try parseKeyValueRest(key, depth: depth + key.count)
            try table.insert(value, at: key, in: TOMLTableBuilder.root)
            reader.skipWhitespace()
            switch reader.peek() {
            case UInt8(ascii: "}")?:
                reader.advance()
                return table.table()
            case UInt8(ascii: ",")?:
                reader.advance()
                reader.skipWhitespace()
            default:
                throw reader.error("expected ',' or '}' after a value in an inline table (which must fit on one line), found \(reader.describedNext)")
            }
        }
    }
}
