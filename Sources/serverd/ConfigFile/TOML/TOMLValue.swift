/// A TOML value of any of the types TOML 1.0 knows.
indirect enum TOMLValue: Equatable, Sendable {
    /// Any of the four string kinds, escapes resolved.
    case string(String)
    /// A decimal, hexadecimal, octal or binary integer; TOML integers are 64-bit.
    case integer(Int64)
    /// A float, including `inf` and `nan` (`nan` is not equal to itself).
    case float(Double)
    /// `true` or `false`.
    case boolean(Bool)
    /// Any of the four date and time kinds.
    case dateTime(TOMLDateTime)
    /// An array: either written as `[…]` or made of `[[…]]` tables (then every element is a table).
    case array([TOMLNode])
    /// A table: a `[…]` or `[[…]]` section, an inline table `{…}`, or one made by a dotted key.
    case table(TOMLTable)

    /// "string", "integer", "float", "boolean", "date-time", "array", "table" — for error messages.
    var typeName: String {
        switch self {
        case .string: "string"
        case .integer: "integer"
        case .float: "float"
        case .boolean: "boolean"
        case .dateTime: "date-time"
        case .array: "array"
        case .table: "table"
        }
    }
}
