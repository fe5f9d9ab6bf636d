/// serverd's TOML 1.0 parser: pure Swift, standard library only, value types only.
///
/// It accepts and refuses what Python's `tomllib` does (checked by `TOMLParserTests` against it), with two
/// deliberate exceptions that TOML 1.0 asks for and `tomllib` does not enforce: an integer must fit in 64 bits, and
/// tables and arrays may nest at most ``TOMLTableBuilder/maximumDepth`` (100) levels deep.
///
/// It never traps on input: every read is bounds-checked (``TOMLReader``), integer arithmetic reports overflow,
/// and recursion is bounded by the depth limit.
enum TOMLParser {
    /// Parses a whole document.
    /// - Parameter bytes: The document, UTF-8 (a byte order mark is refused, as by `tomllib`).
    /// - Returns: The root table.
    /// - Throws: ``TOMLError`` at the first problem: ill-formed UTF-8, a control character where TOML forbids it,
    ///   a syntax error, a key or table defined twice, an integer beyond 64 bits, an invalid date, or nesting
    ///   deeper than 100 levels.
    static func parse(_ bytes: [UInt8]) throws(TOMLError) -> TOMLTable {
        try TOMLUTF8Validator.validate(bytes)
        var parser = TOMLDocumentParser(TOMLReader(bytes))
        return try parser.parseDocument()
    }
}
