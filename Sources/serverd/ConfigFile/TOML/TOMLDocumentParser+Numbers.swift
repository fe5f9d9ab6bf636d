extension TOMLDocumentParser {
    /// Reads the longest prefix at the read offset that is an integer or a (finite-form) float, or returns `nil`
    /// with nothing read.
    ///
    /// The forms, as `tomllib`'s `RE_NUMBER` has them: `0x`, `0o` or `0b` followed by digits of the base;
    /// otherwise an optional sign, `0` or a decimal number without leading zeros, then optionally a fraction
    /// (`.` and digits) and an exponent (`e` or `E`, an optional sign, digits). A single `_` may stand between
    /// any two digits. With a fraction or an exponent it is a float.
    /// - Throws: ``TOMLError`` for an integer that does not fit in 64 bits.
    mutating func parseNumber() throws(TOMLError) -> TOMLValue? {
        let start = reader.offset
        if reader.peek() == UInt8(ascii: "0"), let radix = Self.radix(of: reader.peek(1)),
            let first = reader.peek(2), Self.digitValue(first, radix: radix) != nil
        {
            reader.advance(2)
            skipDigits(radix: radix)
            return .integer(try integer(from: start + 2, radix: radix, negative: false, start: start))
        }
        var negative = false
        if let sign = reader.peek(), sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") {
            negative = sign == UInt8(ascii: "-")
            reader.advance()
        }
        let digitsStart = reader.offset
        switch reader.peek() {
        case UInt8(ascii: "0")?:
            reader.advance()
        case let byte? where Self.digitValue(byte, radix: 10) != nil:
            skipDigits(radix: 10)
        default:
            reader.rewind(to: start)
            return nil
        }
        var isFloat = false
        if reader.peek() == UInt8(ascii: "."), let digit = reader.peek(1), Self.digitValue(digit, radix: 10) != nil {
            reader.advance()
            skipDigits(radix: 10)
            isFloat = true
        }
        if let marker = reader.peek(), marker == UInt8(ascii: "e") || marker == UInt8(ascii: "E") {
            var ahead = 1
            if let sign = reader.peek(1), sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { ahead = 2 }
            if let digit = reader.peek(ahead), Self.digitValue(digit, radix: 10) != nil {
                reader.advance(ahead)
                skipDigits(radix: 10)
                isFloat = true
            }
        }
        if isFloat {
            let text = String(decoding: reader.bytes(from: start).filter { $0 != UInt8(ascii: "_") }, as: UTF8.self)
            guard let value = Double(text) else {
                throw reader.error("'\(text)' is not a float", at: start)
            }
            return .float(value)
        }
        return .integer(try integer(from: digitsStart, radix: 10, negative: negative, start: start))
    }

    /// Skips a digit at the read offset (there must be one) and then `_`-separated digits of `radix`: a `_` only
    /// where a digit follows it.
    private mutating func skipDigits(radix: UInt64) {
        reader.advance()
        while true {
            if let byte = reader.peek(), Self.digitValue(byte, radix: radix) != nil {
                reader.advance()
            } else if reader.peek() == UInt8(ascii: "_"), let byte = reader.peek(1), Self.digitValue(byte, radix: radix) != nil {
                reader.advance(2)
            } else {
                return
            }
        }
    }

    /// The integer whose digits (and underscores) run from `digitsStart` to the read offset.
    /// - Throws: ``TOMLError`` at `start` if it is below -2⁶³ or above 2⁶³-1.
    private func integer(from digitsStart: Int, radix: UInt64, negative: Bool, start: Int) throws(TOMLError) -> Int64 {
        var magnitude: UInt64 = 0
        var overflow = false
        for byte in reader.bytes(from: digitsStart) {
            guard let digit = Self.digitValue(byte, radix: radix) else { continue }  // an underscore
            let (shifted, overflowed) = magnitude.multipliedReportingOverflow(by: radix)
            let (sum, carried) = shifted.addingReportingOverflow(digit)
            overflow = overflow || overflowed || carried
            magnitude = sum
        }
        let limit = negative ? UInt64(Int64.max) + 1 : UInt64(Int64.max)
        guard !overflow, magnitude <= limit else {
            let text = String(decoding: reader.bytes(from: start), as: UTF8.self)
            throw reader.error("the integer \(text) does not fit in 64 bits (-9223372036854775808…9223372036854775807)", at: start)
        }
        if negative {
            // 0 - magnitude, in two's complement: -2⁶³ included.
            return Int64(bitPattern: 0 &- magnitude)
        }
        return Int64(magnitude)
    }

    /// The radix a `0x`, `0o` or `0b` prefix names, by its letter.
    private static func radix(of letter: UInt8?) -> UInt64? {
        switch letter {
        case UInt8(ascii: "x")?: 16
        case UInt8(ascii: "o")?: 8
        case UInt8(ascii: "b")?: 2
        default: nil
        }
    }

    /// The value of `byte` as a digit of `radix` (2, 8, 10 or 16), or `nil`.
    private static func digitValue(_ byte: UInt8, radix: UInt64) -> UInt64? {
        guard let value = hexDigitValue(byte), UInt64(value) < radix else { return nil }
        return UInt64(value)
    }
}
