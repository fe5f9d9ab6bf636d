/// A name for a descriptor passed in `LISTEN_FDNAMES` (or stored in systemd's fd store with `FDNAME=`) that a
/// process derives from what the descriptor is, so that the process that receives it finds it again by name: a
/// binary upgrade passes every listener down, and the fd store gives them back at the next start.
///
/// systemd accepts at most 255 printable ASCII characters without `:` (its `fdname_is_valid`). ``encoding(_:prefix:)``
/// percent-encodes `%`, `:`, space and every byte outside printable ASCII of any text; a result longer than 255
/// characters keeps its first 238 characters and ends with `~` and the 16 hex digits of the text's 64-bit FNV-1a hash,
/// which keeps distinct texts apart in practice.
public enum FileDescriptorName {
    /// The longest name systemd accepts.
    public static let maximumLength = 255

    /// `prefix` followed by `text` encoded as a valid fd name (see the type's description). The prefix itself must be
    /// valid and short; it tells a process's own names from names given by others (a socket unit's
    /// `FileDescriptorName=`).
    public static func encoding(_ text: String, prefix: String) -> String {
        var encoded = prefix
        for byte in text.utf8 {
            if byte > 0x20 && byte < 0x7F && byte != UInt8(ascii: "%") && byte != UInt8(ascii: ":") {
                encoded.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                encoded += "%" + hex(UInt64(byte), digits: 2)
            }
        }
        guard encoded.utf8.count > maximumLength else { return encoded }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
        }
        return String(encoded.prefix(maximumLength - 17)) + "~" + hex(hash, digits: 16)
    }

    private static func hex(_ value: UInt64, digits: Int) -> String {
        let text = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }
}
