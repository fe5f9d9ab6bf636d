/// Finds the lines that keys sit on in a TOML document, since TOMLKit reports a position only for syntax errors.
///
/// A line-based scan, enough for serverd's flat files: it knows the top level and the `[[listener]]` tables, skips
/// the lines of multi-line strings, and records the first place each key is written. It runs only on text TOMLKit
/// has already parsed, and its answers only place messages and tell how a `socket-mode` integer was written.
struct TOMLKeyLocator {
    /// The part of the document a key belongs to.
    enum Section: Hashable, Sendable {
        /// The top level, before any table header.
        case top
        /// The `[[listener]]` table with this index, counted from 0.
        case listener(Int)
    }

    /// Where a key is written.
    struct Entry: Equatable, Sendable {
        /// The 1-based line.
        var line: Int
        /// The text after `=` on that line, leading blanks removed (`0o660 # comment`); empty for a table header.
        var valueText: Substring
    }

    /// The document.
    private let text: String
    /// The document's lines, without their line feeds.
    private let lines: [Substring]
    /// The recorded keys, by section. A table header such as `[server]` is recorded as a key of the top level.
    private var entries: [Section: [String: Entry]] = [:]
    /// The line of each `[[listener]]` header, by index.
    private var listenerHeaderLines: [Int] = []

    /// Scans a document.
    /// - Parameter text: The TOML text.
    init(text: String) {
        self.text = text
        lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        var section: Section? = .top
        var openStringDelimiter: String?
        for (index, rawLine) in lines.enumerated() {
            let lineNumber = index + 1
            if let delimiter = openStringDelimiter {
                if TOMLKeyLocator.occurrences(of: delimiter, in: rawLine) % 2 == 1 {
                    openStringDelimiter = nil
                }
                continue
            }
            let line = rawLine.drop(while: { $0 == " " || $0 == "\t" })
            if line.hasPrefix("[") {
                let isArrayTable = line.hasPrefix("[[")
                let name = TOMLKeyLocator.headerName(line, isArrayTable: isArrayTable)
                record(name, in: .top, line: lineNumber, valueText: "")
                if isArrayTable && name == ConfigurationKey.listener.rawValue {
                    section = .listener(listenerHeaderLines.count)
                    listenerHeaderLines.append(lineNumber)
                } else {
                    section = nil
                }
                continue
            }
            guard let (key, valueText) = TOMLKeyLocator.keyAndValue(line) else { continue }
            if let section {
                record(key, in: section, line: lineNumber, valueText: valueText)
            }
            for delimiter in ["\"\"\"", "'''"] where TOMLKeyLocator.occurrences(of: delimiter, in: valueText) % 2 == 1 {
                openStringDelimiter = delimiter
            }
        }
    }

    /// Where a key is first written in a section, or `nil` if the scan did not find it.
    func entry(_ key: String, in section: Section) -> Entry? {
        entries[section]?[key]
    }

    /// The line of the `[[listener]]` header with this index, or `nil` if the scan did not find it.
    func headerLine(ofListener index: Int) -> Int? {
        listenerHeaderLines.indices.contains(index) ? listenerHeaderLines[index] : nil
    }

    /// The line each element of an array value starts on, in order: one pass over the array's text.
    /// - Returns: Empty when the key is not found or its value is no array.
    func elementLines(of key: String, in section: Section) -> [Int] {
        guard let entry = entry(key, in: section), entry.valueText.first == "[" else { return [] }
        var depth = 0
        var found: [Int] = []
        TOMLScanner.scan(text.utf8[entry.valueText.startIndex...], firstLine: entry.line) { event in
            switch event {
            case .bracket(let opening):
                depth += opening ? 1 : -1
                return depth > 0
            case .stringStart(let line):
                if depth == 1 { found.append(line) }
                return true
            case .nulEscape:
                return true
            }
        }
        return found
    }

    /// The first line with a NUL escape (`\u0000`) in a basic string, and the key last written at or before it
    /// (whose value holds the string, or the key itself); `nil` when no string holds NUL.
    func firstNULEscape() -> (line: Int, key: String?)? {
        var line: Int?
        TOMLScanner.scan(text.utf8, firstLine: 1) { event in
            guard case .nulEscape(let found) = event else { return true }
            line = found
            return false
        }
        guard let line else { return nil }
        let written = entries.values.flatMap { $0 }.filter { $0.value.line <= line }
        return (line, written.max(by: { $0.value.line < $1.value.line })?.key)
    }

    /// Records the first place of a key.
    private mutating func record(_ key: String, in section: Section, line: Int, valueText: Substring) {
        if entries[section, default: [:]][key] == nil {
            entries[section, default: [:]][key] = Entry(line: line, valueText: valueText)
        }
    }

    /// The first key of a `[name]` or `[[name]]` header (`a` for `[a.b]`), quotes removed.
    private static func headerName(_ line: Substring, isArrayTable: Bool) -> String {
        let inner = line.dropFirst(isArrayTable ? 2 : 1).drop(while: { $0 == " " || $0 == "\t" })
        return firstKey(of: inner)?.key ?? ""
    }

    /// The key and the value text of a `key = value` line, or `nil` when the line is no key-value pair. For a dotted
    /// key (`a.b = 1`) the key is its first part.
    private static func keyAndValue(_ line: Substring) -> (String, Substring)? {
        guard let (key, rest) = firstKey(of: line) else { return nil }
        var remainder = rest
        // Skip the rest of a dotted key up to the '='.
        if remainder.first == "." {
            guard let equals = remainder.firstIndex(of: "=") else { return nil }
            remainder = remainder[equals...]
        }
        remainder = remainder.drop(while: { $0 == " " || $0 == "\t" })
        guard remainder.first == "=" else { return nil }
        return (key, remainder.dropFirst().drop(while: { $0 == " " || $0 == "\t" }))
    }

    /// The bare (`max-line`) or quoted (`"max-line"`) key that `text` starts with, and the text after it.
    private static func firstKey(of text: Substring) -> (key: String, rest: Substring)? {
        if let quote = text.first, quote == "\"" || quote == "'" {
            let body = text.dropFirst()
            guard let close = body.firstIndex(of: quote) else { return nil }
            return (String(body[..<close]), body[body.index(after: close)...].drop(while: { $0 == " " || $0 == "\t" }))
        }
        let key = text.prefix(while: { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") })
        guard !key.isEmpty else { return nil }
        return (String(key), text[key.endIndex...].drop(while: { $0 == " " || $0 == "\t" }))
    }

    /// How many times `delimiter` occurs in `text`, without overlaps.
    private static func occurrences(of delimiter: String, in text: Substring) -> Int {
        var count = 0
        var rest = text
        while let range = rest.firstRange(of: delimiter) {
            count += 1
            rest = rest[range.upperBound...]
        }
        return count
    }
}
