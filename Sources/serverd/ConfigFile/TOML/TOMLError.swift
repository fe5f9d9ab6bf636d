/// Why a TOML document was refused: where, and what is wrong there.
///
/// The parser stops at the first error, so there is one per document.
struct TOMLError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Where the problem is (see ``TOMLPosition`` for how columns count).
    var position: TOMLPosition
    /// What is wrong, in words, without the position; it quotes input only after escaping control characters.
    var message: String

    /// `LINE:COLUMN: message`, as in `3:14: expected '=' after the key 'port'`.
    var description: String { "\(position): \(message)" }
}
