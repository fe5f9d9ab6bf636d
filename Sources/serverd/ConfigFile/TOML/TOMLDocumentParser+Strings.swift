extension TOMLDocumentParser {
    /// Reads a basic string after its opening quote (`"`) up to and including its closing quote(s), resolving
    /// escapes, and returns its UTF-8 bytes.
    /// - Parameters:
    ///   - multiline: Whether it is a `"""` string: then it may hold line breaks and line-ending backslashes, and
    ///     it ends at the first `"""`.
    ///   - start: The offset of the opening quote, for the "not closed" error.
    mutating func parseBasicString(multiline: Bool, start: Int) throws(TOMLError) -> [UInt8] {
        var result: [UInt8] = []
        while true {
            guard let byte = reader.peek() else {
                throw reader.error("the string that starts at \(reader.position(at: start)) is not closed")
            }
            switch byte {
            case UInt8(ascii: "\""):
                if !multiline {
                    reader.advance()
                    return result
                }
                if reader.starts(with: "\"\"\"") {
                    reader.advance(3)
                    return result
                }
                result.append(byte)
                reader.advance()
            case UInt8(ascii: "\\"):
                try parseEscape(multiline: multiline, into: &result)
            case _ where Self.isControl(byte, allowingNewline: multiline):
                throw reader.error("\(reader.describedNext) is not allowed in a string (write it as an escape)")
            default:
                result.append(byte)
                reader.advance()
            }
        }
    }

    /// Reads a `"""` string after its opening quotes, with the line break right after them dropped and up to two
    /// quotes right before the closing ones kept.
    mutating func parseMultilineBasicString(start: Int) throws(TOMLError) -> [UInt8] {
        if reader.peek() == UInt8(ascii: "\n") { reader.advance() }
        var result = try parseBasicString(multiline: true, start: start)
        appendExtraQuotes(UInt8(ascii: "\""), to: &result)
        return result
    }

    /// Reads a literal string after its opening `'` up to and including its closing `'`: no escapes, one line.
    mutating func parseLiteralString(start: Int) throws(TOMLError) -> [UInt8] {
        let contentStart = reader.offset
        while true {
            guard let byte = reader.peek() else {
                throw reader.error("the string that starts at \(reader.position(at: start)) is not closed")
            }
            if byte == UInt8(ascii: "'") {
                let content = Array(reader.bytes(from: contentStart))
                reader.advance()
                return content
            }
            if Self.isControl(byte, allowingNewline: false) {
                throw reader.error("\(reader.describedNext) is not allowed in a literal string")
            }
            reader.advance()
        }
    }

    /// Reads a `'''` string after its opening quotes: no escapes, up to the first `'''`, with the line break right
    /// after the opening quotes dropped and up to two quotes right before the closing ones kept.
    mutating func parseMultilineLiteralString(start: Int) throws(TOMLError) -> [UInt8] {
        if reader.peek() == UInt8(ascii: "\n") { reader.advance() }
        let contentStart = reader.offset
        while !reader.starts(with: "'''") {
            guard let byte = reader.peek() else {
                throw reader.error("the string that starts at \(reader.position(at: start)) is not closed")
            }
            if Self.isControl(byte, allowingNewline: true) {
                throw reader.error("\(reader.describedNext) is not allowed in a literal string")
            }
            reader.advance()
        }
        var result = Array(reader.bytes(from: contentStart))
        reader.advance(3)
        appendExtraQuotes(UInt8(ascii: "'"), to: &result)
        return result
    }

    /// After the closing `"""` or `'''` of a multi-line string: one or two more quotes belong to the string.
    private mutating func appendExtraQuotes(_ quote: UInt8, to result: inout [UInt8]) {
        for _ in 0..<2 where reader.peek() == quote {
            result.append(quote)
            reader.advance()
        }
    }

    /// Reads an escape sequence at the read offset (a backslash) and appends what it stands for.
    private mutating func parseEscape(multiline: Bool, into result: inout [UInt8]) throws(TOMLError) {
        let start = reader.offset
        let code = reader.peek(1)
        reader.advance(2)
        switch code {
        case UInt8(ascii: "b")?: result.append(0x08)
        case UInt8(ascii: "t")?: result.append(0x09)
        case UInt8(ascii: "n")?: result.append(0x0A)
        case UInt8(ascii: "f")?: result.append(0x0C)
        case UInt8(ascii: "r")?: result.append(0x0D)
        case UInt8(ascii: "\"")?: result.append(UInt8(ascii: "\""))
        case UInt8(ascii: "\\")?: result.append(UInt8(ascii: "\\"))
        case UInt8(ascii: "u")?: try parseUnicodeEscape(digits: 4, start: start, into: &result)
        case UInt8(ascii: "U")?: try parseUnicodeEscape(digits: 8, start: start, into: &result)
        case let byte? where multiline && (byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\n")):
            // A line-ending backslash: it, the rest of its line (only whitespace) and the whitespace and line
            // breaks that follow are dropped.
            if byte != UInt8(ascii: "\n") {
                reader.skipWhitespace()
                guard let next = reader.peek() else { return }
                guard next == UInt8(ascii: "\n") else {
                    throw reader.error("only whitespace may follow a line-ending backslash, found \(reader.describedNext)", at: reader.offset)
                }
                reader.advance()
            }
            while let next = reader.peek(),
                next == UInt8(ascii: " ") || next == UInt8(ascii: "\t") || next == UInt8(ascii: "\n")
            {
                reader.advance()
            }
        default:
            throw reader.error("invalid escape sequence in a string (TOML has \\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX \\UXXXXXXXX)", at: start)
        }
    }

    /// Reads the `digits` hexadecimal digits of a `\u` or `\U` escape and appends the character in UTF-8.
    private mutating func parseUnicodeEscape(digits: Int, start: Int, into result: inout [UInt8]) throws(TOMLError) {
        var value: UInt32 = 0
        for _ in 0..<digits {
            guard let byte = reader.peek(), let digit = Self.hexDigitValue(byte) else {
                throw reader.error("a \\u escape needs 4 hexadecimal digits, a \\U escape 8", at: start)
            }
            // At most 8 digits of 4 bits: fits in UInt32.
            value = value << 4 | UInt32(digit)
            reader.advance()
        }
        guard let scalar = Unicode.Scalar(value) else {
            throw reader.error("the escape stands for \(TOMLKeyPart.unicodeName(value)), which is not a Unicode scalar value", at: start)
        }
        result.append(contentsOf: scalar.utf8)
    }

    /// The value of a hexadecimal digit (either case), or `nil`.
    static func hexDigitValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
