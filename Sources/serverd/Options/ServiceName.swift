/// The services serverd can run on a listener (SPEC section 3, "Services").
enum ServiceName: String, CaseIterable, Equatable, Sendable {
    /// RFC 862: every byte back.
    case echo
    /// RFC 863: read and drop.
    case discard
    /// RFC 867: one line with the local time, then close.
    case daytime
    /// Each line back, prefixed with the local time.
    case stamp
    /// Runs the configured program per connection.
    case exec

    /// The known names as prose, for error messages: `echo, discard, daytime, stamp or exec`.
    static var knownNames: String {
        let names = allCases.map(\.rawValue)
        return names.dropLast().joined(separator: ", ") + " or " + names[names.count - 1]
    }
}
