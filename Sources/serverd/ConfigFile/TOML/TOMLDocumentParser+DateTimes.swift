extension TOMLDocumentParser {
    /// Reads the longest prefix at the read offset that is a date, a date and time, or a time, or returns `nil`
    /// with nothing read.
    ///
    /// The forms, as `tomllib`'s `RE_DATETIME` and `RE_LOCALTIME` have them: `YYYY-MM-DD`, optionally followed by
    /// `T`, `t` or a space and a time, optionally followed by `Z`, `z` or `±HH:MM`; or a time alone. A time is
    /// `HH:MM:SS` (hours 00…23, minutes and seconds 00…59) with an optional fraction (`.` and digits, of which the
    /// first six count). A separator or offset without a valid time or offset after it is not part of the value.
    /// - Throws: ``TOMLError`` for a date that does not exist (`2023-02-29`, year 0).
    mutating func parseDateTime() throws(TOMLError) -> TOMLDateTime? {
        let start = reader.offset
        if let date = matchDate() {
            guard date.year >= 1, date.day <= Self.daysIn(month: date.month, year: date.year) else {
                throw reader.error("\(date.text) is not a valid date", at: start)
            }
            let afterDate = reader.offset
            if let separator = reader.peek(),
                separator == UInt8(ascii: "T") || separator == UInt8(ascii: "t") || separator == UInt8(ascii: " ")
            {
                reader.advance()
                if let time = matchTime() {
                    if let offset = matchOffset() {
                        return TOMLDateTime(kind: .offsetDateTime, text: date.text + "T" + time + offset)
                    }
                    return TOMLDateTime(kind: .localDateTime, text: date.text + "T" + time)
                }
                reader.rewind(to: afterDate)
            }
            return TOMLDateTime(kind: .localDate, text: date.text)
        }
        if let time = matchTime() {
            return TOMLDateTime(kind: .localTime, text: time)
        }
        return nil
    }

    /// `YYYY-MM-DD` with month 01…12 and day 01…31, read; or `nil`, nothing read.
    private mutating func matchDate() -> (year: Int, month: Int, day: Int, text: String)? {
        let start = reader.offset
        guard let year = digits(4), literal(UInt8(ascii: "-")),
            let month = twoDigits(first: 0...1, range: 1...12), literal(UInt8(ascii: "-")),
            let day = twoDigits(first: 0...3, range: 1...31)
        else {
            reader.rewind(to: start)
            return nil
        }
        return (year, month, day, String(decoding: reader.bytes(from: start), as: UTF8.self))
    }

    /// `HH:MM:SS` with an optional fraction, read and in canonical form; or `nil`, nothing read.
    private mutating func matchTime() -> String? {
        let start = reader.offset
        guard twoDigits(first: 0...2, range: 0...23) != nil, literal(UInt8(ascii: ":")),
            twoDigits(first: 0...5, range: 0...59) != nil, literal(UInt8(ascii: ":")),
            twoDigits(first: 0...5, range: 0...59) != nil
        else {
            reader.rewind(to: start)
            return nil
        }
        var text = String(decoding: reader.bytes(from: start), as: UTF8.self)
        guard reader.peek() == UInt8(ascii: "."), let first = reader.peek(1), Self.isDigit(first) else { return text }
        reader.advance()
        var fraction: [UInt8] = []
        while let digit = reader.peek(), Self.isDigit(digit) {
            if fraction.count < 6 { fraction.append(digit) }
            reader.advance()
        }
        while fraction.last == UInt8(ascii: "0") { fraction.removeLast() }
        if !fraction.isEmpty {
            text += "." + String(decoding: fraction, as: UTF8.self)
        }
        return text
    }

    /// `Z`, `z` or `±HH:MM` (hours 00…23, minutes 00…59), read and in canonical form; or `nil`, nothing read.
    private mutating func matchOffset() -> String? {
        let start = reader.offset
        if let zone = reader.peek(), zone == UInt8(ascii: "Z") || zone == UInt8(ascii: "z") {
            reader.advance()
            return "Z"
        }
        guard let sign = reader.peek(), sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") else { return nil }
        reader.advance()
        guard let hours = twoDigits(first: 0...2, range: 0...23), literal(UInt8(ascii: ":")),
            let minutes = twoDigits(first: 0...5, range: 0...59)
        else {
            reader.rewind(to: start)
            return nil
        }
        if hours == 0 && minutes == 0 { return "Z" }
        return String(decoding: reader.bytes(from: start), as: UTF8.self)
    }

    /// `count` decimal digits as a number, read; or `nil` (possibly with some read: callers rewind).
    private mutating func digits(_ count: Int) -> Int? {
        var value = 0
        for _ in 0..<count {
            guard let byte = reader.peek(), Self.isDigit(byte) else { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
            reader.advance()
        }
        return value
    }

    /// Two decimal digits whose first is in `first` and whose value is in `range`, read; or `nil`.
    private mutating func twoDigits(first: ClosedRange<Int>, range: ClosedRange<Int>) -> Int? {
        guard let high = reader.peek(), Self.isDigit(high), first.contains(Int(high - UInt8(ascii: "0"))),
            let value = digits(2), range.contains(value)
        else { return nil }
        return value
    }

    /// Reads `byte` if it is next.
    private mutating func literal(_ byte: UInt8) -> Bool {
        guard reader.peek() == byte else { return false }
        reader.advance()
        return true
    }

    private static func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    /// The days of `month` (1…12) in `year`, in the proleptic Gregorian calendar.
    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }
}
