/// One entry of systemd-journald's native protocol (systemd's "Native Journal Protocol" document): the fields of a
/// datagram sent to `/run/systemd/journal/socket`.
///
/// Each field is `NAME=value` and a line feed; a value holding a line feed is sent in the binary form instead: the
/// name, a line feed, the value's length as a 64-bit little-endian integer, the value, a line feed. Names are upper
/// case letters, digits and underscores, not starting with an underscore (journald reserves those, and drops a field
/// whose name it does not accept).
struct JournalEntry: Sendable {
    /// The fields in order; a name may repeat.
    private(set) var fields: [(name: String, value: String)] = []

    /// Adds a field. A name that the protocol does not accept is made acceptable: letters upper-cased, any other
    /// character but a digit or underscore replaced by `_`, leading underscores and digits dropped, cut at 64
    /// characters.
    mutating func append(_ name: String, _ value: String) {
        fields.append((Self.fieldName(name), value))
    }

    /// The datagram's bytes.
    var datagram: [UInt8] {
        var bytes: [UInt8] = []
        for (name, value) in fields {
            bytes += Array(name.utf8)
            let text = Array(value.utf8)
            if text.contains(0x0A) {
                bytes.append(0x0A)
                var length = UInt64(text.count).littleEndian
                withUnsafeBytes(of: &length) { bytes += $0 }
            } else {
                bytes.append(UInt8(ascii: "="))
            }
            bytes += text
            bytes.append(0x0A)
        }
        return bytes
    }

    /// A name journald accepts for `name`.
    static func fieldName(_ name: String) -> String {
        var result = ""
        for scalar in name.unicodeScalars {
            switch scalar {
            case "A"..."Z", "0"..."9", "_": result.unicodeScalars.append(scalar)
            case "a"..."z": result.unicodeScalars.append(Unicode.Scalar(scalar.value - 32)!)
            default: result += "_"
            }
        }
        let start = result.firstIndex { $0 != "_" && !$0.isNumber } ?? result.endIndex
        let trimmed = String(result[start...].prefix(64))
        return trimmed.isEmpty ? "SERVERD_FIELD" : trimmed
    }
}
