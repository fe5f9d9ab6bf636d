/// One part of a key as written (`a`, `"b c"`, `'d'` in `a."b c".'d'`), unquoted, and where it is written.
struct TOMLKeyPart: Equatable, Sendable {
    /// The key's UTF-8 bytes; keys are compared by these.
    var bytes: [UInt8]
    /// Where the part starts (its opening quote, if quoted).
    var position: TOMLPosition

    /// The key as a string.
    var name: String { String(decoding: bytes, as: UTF8.self) }

    /// The part as an error message writes it: bare if it could be written bare, else quoted, with control
    /// characters, quotes and backslashes escaped.
    var quoted: String {
        let bare = !bytes.isEmpty && bytes.allSatisfy(TOMLKeyPart.isBareKeyByte)
        if bare { return name }
        var text = "\""
        for scalar in name.unicodeScalars {
            switch scalar {
            case "\"": text += "\\\""
            case "\\": text += "\\\\"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                text += "\\u" + TOMLKeyPart.hex(scalar.value, digits: 4)
            default: text.unicodeScalars.append(scalar)
            }
        }
        return text + "\""
    }

    /// `a.b."c d"`: a dotted key as error messages write it.
    static func dotted(_ parts: some Collection<TOMLKeyPart>) -> String {
        parts.map(\.quoted).joined(separator: ".")
    }

    /// Whether `byte` may appear in a bare key: `A-Z a-z 0-9 _ -`.
    static func isBareKeyByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"):
            true
        default:
            false
        }
    }

    /// `U+0041`: a code point as messages name it.
    static func unicodeName(_ value: UInt32) -> String {
        "U+" + hex(value, digits: 4)
    }

    /// `value` in upper-case hexadecimal, padded with zeros to at least `digits` digits.
    static func hex(_ value: UInt32, digits: Int) -> String {
        let text = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(digits - text.count, 0)) + text
    }
}
