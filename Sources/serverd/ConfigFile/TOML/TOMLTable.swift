/// A TOML table: keys and their values, in document order.
struct TOMLTable: Equatable, Sendable {
    /// Entries in the order their keys first appear.
    var entries: [TOMLEntry]

    /// Creates a table of `entries`; keys are expected to be distinct.
    init(entries: [TOMLEntry] = []) {
        self.entries = entries
    }

    /// The entry whose key is `key`, or `nil`.
    ///
    /// Keys are compared by their UTF-8 bytes, as TOML compares them: a precomposed `é` and an `e` followed by a
    /// combining accent are different keys, although Swift's `==` on `String` finds them equal.
    subscript(key: String) -> TOMLEntry? {
        entries.first { $0.key.utf8.elementsEqual(key.utf8) }
    }
}
