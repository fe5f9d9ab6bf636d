/// A place in a TOML document, 1-based line and column.
///
/// The column counts bytes of UTF-8 from the start of the line, not characters: the first byte of a line is column
/// 1, and a character that takes several bytes advances the column by that many. A carriage return before a line
/// feed belongs to the line it ends.
struct TOMLPosition: Equatable, Sendable, CustomStringConvertible {
    /// The line, from 1.
    var line: Int
    /// The byte in the line, from 1.
    var column: Int

    /// `LINE:COLUMN`, as in `3:14`.
    var description: String { "\(line):\(column)" }
}
