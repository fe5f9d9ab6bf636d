/// A value with the position of its first character.
///
/// For a table that a `[table]` header defines, and for each table of an array of tables, the position is that of
/// the header's first `[`; for a table that only a dotted key or a longer header implies, it is that of the key.
struct TOMLNode: Equatable, Sendable {
    /// The value.
    var value: TOMLValue
    /// Where it starts.
    var position: TOMLPosition
}
