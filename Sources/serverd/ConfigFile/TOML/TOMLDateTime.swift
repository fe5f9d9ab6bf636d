/// A TOML date, time or date and time, kept as canonical RFC 3339 text.
///
/// The canonical text writes the date as `YYYY-MM-DD`, the separator as `T`, the time as `HH:MM:SS`, a fraction
/// of a second to at most six digits (microseconds; further digits are dropped, trailing zeros removed, and the
/// fraction left out when it is zero) and an offset as `Z` when it is zero (`z`, `+00:00`, `-00:00`) or else
/// `+HH:MM`/`-HH:MM`. So `1979-05-27 07:32:00.9990000-00:00` reads as `1979-05-27T07:32:00.999Z`.
struct TOMLDateTime: Equatable, Sendable {
    /// Which of TOML's four kinds it is.
    enum Kind: String, Equatable, Sendable {
        /// A date, a time and an offset from UTC: `1979-05-27T07:32:00Z`.
        case offsetDateTime
        /// A date and a time without an offset: `1979-05-27T07:32:00`.
        case localDateTime
        /// A date alone: `1979-05-27`.
        case localDate
        /// A time alone: `07:32:00`.
        case localTime
    }

    /// The kind.
    var kind: Kind
    /// The canonical text.
    var text: String
}
