/// Checks that a document is well-formed UTF-8 before the parser reads it, and says where it is not.
///
/// Well-formed means what the Unicode standard (table 3-7) and Python's strict decoder accept: no stray
/// continuation bytes, no truncated sequences, no overlong forms, no surrogates (U+D800…U+DFFF) and nothing above
/// U+10FFFF.
enum TOMLUTF8Validator {
    /// Throws at the first byte of the first ill-formed sequence in `bytes`.
    /// - Throws: ``TOMLError`` "invalid UTF-8 …" with the position of that byte.
    static func validate(_ bytes: [UInt8]) throws(TOMLError) {
        var index = 0
        var line = 1
        var lineStart = 0
        while index < bytes.count {
            let lead = bytes[index]
            if lead < 0x80 {
                if lead == UInt8(ascii: "\n") {
                    line += 1
                    lineStart = index + 1
                }
                index += 1
                continue
            }
            let length = sequenceLength(bytes, at: index)
            guard length > 0 else {
                let hex = String(lead, radix: 16, uppercase: true)
                throw TOMLError(
                    position: TOMLPosition(line: line, column: index - lineStart + 1),
                    message: "invalid UTF-8: the byte 0x\(hex) does not start a well-formed sequence"
                )
            }
            index += length
        }
    }

    /// The length of the well-formed sequence that starts at `index` (a byte of 0x80 or more), or 0.
    private static func sequenceLength(_ bytes: [UInt8], at index: Int) -> Int {
        /// The byte `offset` after the lead if it lies in `range`.
        func continuation(_ offset: Int, _ range: ClosedRange<UInt8> = 0x80...0xBF) -> Bool {
            let position = index + offset
            return position < bytes.count && range.contains(bytes[position])
        }
        switch bytes[index] {
        case 0xC2...0xDF:
            return continuation(1) ? 2 : 0
        case 0xE0:
            return continuation(1, 0xA0...0xBF) && continuation(2) ? 3 : 0
        case 0xE1...0xEC, 0xEE...0xEF:
            return continuation(1) && continuation(2) ? 3 : 0
        case 0xED:
            return continuation(1, 0x80...0x9F) && continuation(2) ? 3 : 0
        case 0xF0:
            return continuation(1, 0x90...0xBF) && continuation(2) && continuation(3) ? 4 : 0
        case 0xF1...0xF3:
            return continuation(1) && continuation(2) && continuation(3) ? 4 : 0
        case 0xF4:
            return continuation(1, 0x80...0x8F) && continuation(2) && continuation(3) ? 4 : 0
        default:
            return 0
        }
    }
}
