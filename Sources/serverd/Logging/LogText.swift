import Logging

/// The escaping that keeps every log line one line, whatever bytes a peer put into it.
enum LogText {
    /// `line` with each control character but the tab (U+0000–U+001F, U+007F) written as `\xNN`.
    static func escapingControls(_ line: String) -> String {
        // In UTF-8 the bytes of these characters occur only as those characters, never inside another one's
        // encoding, so a scan of the bytes finds exactly what a scan of the scalars would.
        guard line.utf8.contains(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F }) else { return line }
        var escaped = ""
        for scalar in line.unicodeScalars {
            if isControl(scalar) {
                let hex = String(scalar.value, radix: 16)
                escaped += "\\x" + (hex.count < 2 ? "0" : "") + hex
            } else {
                escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }

    /// A JSON string literal (RFC 8259): quotes and backslashes escaped, every control character as `\uNNNN` (a
    /// line feed as `\n`), so that the literal never spans lines.
    static func jsonString(_ text: String) -> String {
        var literal = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": literal += "\\\""
            case "\\": literal += "\\\\"
            case "\n": literal += "\\n"
            case "\t": literal += "\\t"
            case "\r": literal += "\\r"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                let hex = String(scalar.value, radix: 16)
                literal += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: literal.unicodeScalars.append(scalar)
            }
        }
        return literal + "\""
    }

    /// A metadata value as JSON: integers, ``LogNumber``s and finite floating-point numbers as numbers, lists as
    /// arrays, dictionaries as objects, anything else as a string.
    static func jsonValue(_ value: Logger.MetadataValue) -> String {
        switch value {
        case .string(let text): return jsonString(text)
        case .stringConvertible(let convertible):
            switch convertible {
            case let number as any BinaryInteger: return "\(number)"
            case let number as LogNumber: return number.description
            case let number as Double where number.isFinite: return "\(number)"
            default: return jsonString(convertible.description)
            }
        case .array(let values): return "[" + values.map(jsonValue).joined(separator: ",") + "]"
        case .dictionary(let entries):
            let members = entries.sorted { $0.key < $1.key }.map { jsonString($0.key) + ":" + jsonValue($0.value) }
            return "{" + members.joined(separator: ",") + "}"
        }
    }

    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        (scalar.value < 0x20 && scalar != "\t") || scalar.value == 0x7F
    }
}
