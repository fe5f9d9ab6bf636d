/// The comma-separated lists of the command line (`--allow 10.0.0.0/8,::1`, `--allow-uid 1000,1001`).
enum ListSyntax {
    /// Splits a list into its entries.
    /// - Parameter text: Entries separated by commas, with no spaces and no empty entry.
    /// - Throws: ``OptionValueError`` when the list or one of its entries is empty.
    static func entries(of text: String) throws(OptionValueError) -> [String] {
        let entries = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard !entries.contains(where: \.isEmpty) else {
            throw OptionValueError("'\(text)' has an empty entry (expected a comma-separated list)")
        }
        return entries
    }
}
