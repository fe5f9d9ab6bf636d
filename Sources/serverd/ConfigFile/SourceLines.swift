/// The lines of a file's bytes, to quote what is written at a TOML position (a socket mode's `660` and `0o660` are
/// the same TOML integer but not the same mode).
struct SourceLines: Sendable {
    private let bytes: [UInt8]
    private let lineStarts: [Int]

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
        var starts = [0]
        for (offset, byte) in bytes.enumerated() where byte == 0x0A { starts.append(offset + 1) }
        lineStarts = starts
    }

    /// The text from `position` (1-based line, 1-based byte column) to the end of its line; empty for a position past
    /// the end of its line.
    func text(at position: TOMLPosition) -> Substring {
        guard position.line >= 1, position.line <= lineStarts.count, position.column >= 1 else { return "" }
        let lineStart = lineStarts[position.line - 1]
        let lineEnd = bytes[lineStart...].firstIndex(of: 0x0A) ?? bytes.count
        let start = lineStart + position.column - 1
        guard start < lineEnd else { return "" }
        return Substring(decoding: bytes[start..<lineEnd], as: UTF8.self)
    }
}
