import Glibc

/// The checks every option value goes through, shared by the command line (which gives text) and the configuration
/// file (which gives TOML integers, numbers and strings), so that both accept and refuse the same values; see
/// ``OptionKind``.
enum ValueSyntax {
    /// The largest socket mode, `0o7777` (permission bits plus setuid, setgid and sticky).
    static let maximumSocketMode: UInt32 = 0o7777

    /// Parses a decimal integer and checks it against its documented range.
    /// - Parameters:
    ///   - text: The number as written (`64`, `+64`, `-1`).
    ///   - range: The values the option accepts (see ``OptionRange``).
    /// - Throws: ``OptionValueError`` when the text is not an integer, or the integer is outside `range` (also one
    ///   too large for an `Int`).
    static func integer(_ text: String, in range: ClosedRange<Int>) throws(OptionValueError) -> Int {
        let digits = text.first == "-" || text.first == "+" ? text.dropFirst() : Substring(text)
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw OptionValueError("'\(text)' is not a valid integer")
        }
        guard let value = Int(text) else {
            throw OptionValueError("\(text) is out of range (must be from \(OptionRange.text(range)))")
        }
        return try integer(value, in: range)
    }

    /// Checks an integer against its documented range.
    /// - Throws: ``OptionValueError`` naming the value and the range when it is outside.
    static func integer(_ value: Int, in range: ClosedRange<Int>) throws(OptionValueError) -> Int {
        guard range.contains(value) else {
            throw OptionValueError("\(value) is out of range (must be from \(OptionRange.text(range)))")
        }
        return value
    }

    /// Parses a number of seconds, decimals allowed (`2.5`).
    /// - Throws: ``OptionValueError`` when the text is not a number or the number is outside ``OptionRange/seconds``.
    static func duration(_ text: String) throws(OptionValueError) -> Duration {
        guard let value = Double(text), value.isFinite else {
            throw OptionValueError("'\(text)' is not a number of seconds")
        }
        return try duration(value)
    }

    /// Checks a number of seconds against ``OptionRange/seconds`` (0 means "none" for the timeouts that allow it).
    /// - Throws: ``OptionValueError`` when the number is negative, not finite or larger than a day.
    static func duration(_ value: Double) throws(OptionValueError) -> Duration {
        guard value.isFinite, OptionRange.seconds.contains(value) else {
            throw OptionValueError(
                "\(display(value)) is out of range (must be from \(OptionRange.secondsText) seconds)")
        }
        return .milliseconds(Int64((value * 1000).rounded()))
    }

    /// A number of seconds as a person writes it: `0`, `2.5`, `-1`.
    static func display(_ value: Double) -> String {
        value.rounded() == value && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }

    /// Parses a socket mode written in octal digits, as chmod takes it: `0660`, `660` or `0o660`.
    /// - Throws: ``OptionValueError`` when the text has a non-octal digit or exceeds ``maximumSocketMode``.
    static func socketMode(_ text: String) throws(OptionValueError) -> UInt32 {
        let digits = text.hasPrefix("0o") ? text.dropFirst(2) : Substring(text)
        guard !digits.isEmpty, digits.allSatisfy({ "01234567".contains($0) }),
            let mode = UInt32(digits, radix: 8), mode <= maximumSocketMode
        else {
            throw OptionValueError("'\(text)' is not an octal file mode from 0 to 7777 (like 0660)")
        }
        return mode
    }

    /// Checks a socket mode given as a TOML integer.
    /// - Parameters:
    ///   - value: The integer's value.
    ///   - writtenInDecimal: Whether the integer was written without a `0o`, `0x` or `0b` prefix. Then its decimal
    ///     digits are read as octal digits (`660` means `0o660`, as chmod reads it); otherwise the value is the mode.
    /// - Throws: ``OptionValueError`` when the mode is invalid.
    static func socketMode(_ value: Int, writtenInDecimal: Bool) throws(OptionValueError) -> UInt32 {
        if writtenInDecimal {
            return try socketMode(String(value))
        }
        guard let mode = UInt32(exactly: value), mode <= maximumSocketMode else {
            throw OptionValueError("0o\(String(value, radix: 8)) is not a file mode from 0 to 0o7777")
        }
        return mode
    }

    /// Parses a comma-separated list of CIDR blocks (`127.0.0.0/8,::1`).
    /// - Throws: ``OptionValueError`` when an entry is empty or not a CIDR block.
    static func cidrBlocks(_ text: String) throws(OptionValueError) -> [CIDRBlock] {
        var blocks: [CIDRBlock] = []
        for entry in try ListSyntax.entries(of: text) {
            blocks.append(try CIDRBlock(parsing: entry))
        }
        return blocks
    }

    /// Parses a processing model name.
    /// - Throws: ``OptionValueError`` listing the valid names.
    static func model(_ text: String) throws(OptionValueError) -> ModelName {
        try choice(text, of: ModelName.self)
    }

    /// Parses a log level name.
    /// - Throws: ``OptionValueError`` listing the valid names.
    static func logLevel(_ text: String) throws(OptionValueError) -> LogLevelName {
        try choice(text, of: LogLevelName.self)
    }

    /// Parses a log format name.
    /// - Throws: ``OptionValueError`` listing the valid names.
    static func logFormat(_ text: String) throws(OptionValueError) -> LogFormatName {
        try choice(text, of: LogFormatName.self)
    }

    /// Parses `on` or `off`.
    /// - Throws: ``OptionValueError`` naming both.
    static func onOff(_ text: String) throws(OptionValueError) -> Bool {
        switch text {
        case "on": return true
        case "off": return false
        default: throw OptionValueError("must be on or off, not \(text)")
        }
    }

    /// Makes a path absolute, so that it still names the same file after `--daemon` changed the working directory to
    /// `/` (a reload reads `--config` again, and the pidfile is removed on exit).
    /// - Parameters:
    ///   - text: The path as written.
    ///   - base: The absolute directory a relative path is relative to.
    /// - Throws: ``OptionValueError`` for an empty path.
    static func absolutePath(_ text: String, relativeTo base: String) throws(OptionValueError) -> String {
        let path = try nonEmpty(text)
        if path.hasPrefix("/") {
            return path
        }
        return base.hasSuffix("/") ? base + path : base + "/" + path
    }

    /// Makes a command-line path absolute, relative to the working directory.
    /// - Throws: ``OptionValueError`` for an empty path, or a relative one when the working directory is unknown.
    static func absolutePath(_ text: String) throws(OptionValueError) -> String {
        guard !text.hasPrefix("/") else { return text }
        guard let pointer = getcwd(nil, 0) else {
            throw OptionValueError("'\(text)' is relative and the working directory is unknown")
        }
        defer { free(pointer) }
        return try absolutePath(text, relativeTo: String(cString: pointer))
    }

    /// Checks that a path or name is not empty.
    /// - Throws: ``OptionValueError`` for the empty string.
    static func nonEmpty(_ text: String) throws(OptionValueError) -> String {
        guard !text.isEmpty else {
            throw OptionValueError("must not be empty")
        }
        return text
    }

    /// The case of `Choice` whose raw value is `text`.
    private static func choice<Choice: RawRepresentable & CaseIterable>(
        _ text: String, of type: Choice.Type
    ) throws(OptionValueError) -> Choice where Choice.RawValue == String {
        guard let value = Choice(rawValue: text) else {
            let names = Choice.allCases.map(\.rawValue).joined(separator: ", ")
            throw OptionValueError("'\(text)' is not one of \(names)")
        }
        return value
    }
}
