/// One key of a table and its value.
struct TOMLEntry: Equatable, Sendable {
    /// The key, unquoted and with escapes resolved (one part of a dotted key).
    var key: String
    /// Where the key is written; for a key that several headers or dotted keys name, the first of them.
    var keyPosition: TOMLPosition
    /// The value and where it starts.
    var node: TOMLNode
}
