import TOMLKit

/// Reads serverd's options out of one table of a configuration file, the top level or one `[[listener]]`, and
/// names the file, the line and the key in every error (`serverd.toml:4: max-connections: 0 is out of range …`).
struct ConfigurationTableReader {
    /// The table read.
    let table: TOMLTable
    /// The configuration file's path, as given to `--config`.
    let path: String
    /// Where the file's keys are written.
    let locator: TOMLKeyLocator
    /// Which table of the file this is.
    let section: TOMLKeyLocator.Section

    // MARK: - Places and errors

    /// `FILE:LINE` of a key, else of the table's `[[listener]]` header, else `FILE`.
    func place(of key: String) -> String {
        if let line = locator.entry(key, in: section)?.line ?? headerLine {
            return "\(path):\(line)"
        }
        return path
    }

    /// `FILE:LINE` of each of these access rules.
    func places(of rules: [AccessRule]) -> [AccessRule: String] {
        Dictionary(uniqueKeysWithValues: rules.map { ($0, place(of: $0.rawValue)) })
    }

    /// The line of this table's `[[listener]]` header; `nil` for the top level.
    var headerLine: Int? {
        guard case .listener(let index) = section else { return nil }
        return locator.headerLine(ofListener: index)
    }

    /// The error for a bad value: `FILE:LINE: KEY: REASON`.
    func invalid(_ key: ConfigurationKey, _ reason: String) -> DaemonError {
        DaemonError(.configuration, "\(place(of: key.rawValue)): \(key.rawValue): \(reason)")
    }

    /// Refuses keys serverd does not know, and daemon-wide keys in a `[[listener]]` table. When several are wrong,
    /// names the one written first.
    /// - Throws: ``DaemonError`` `FILE:LINE: unknown key 'KEY'`.
    func checkKeys() throws(DaemonError) {
        let isListener = section != .top
        let refused = table.keys.filter { key in
            guard let known = ConfigurationKey(rawValue: key) else { return true }
            return isListener && !known.isListenerKey
        }
        let lineOf = { (key: String) in locator.entry(key, in: section)?.line ?? Int.max }
        guard let first = refused.min(by: { (lineOf($0), $0) < (lineOf($1), $1) }) else { return }
        let message: String
        if ConfigurationKey(rawValue: first) != nil {
            message = "'\(first)' applies to the whole daemon: set it at the top level, not in [[listener]]"
        } else {
            message = "unknown key '\(first)'" + (isListener ? " in [[listener]]" : "")
        }
        throw DaemonError(.configuration, "\(place(of: first)): \(message)")
    }

    // MARK: - Values

    /// An integer within its documented range (`max-connections = 64`).
    func integer(_ key: ConfigurationKey, in range: ClosedRange<Int>) throws(DaemonError) -> Int? {
        guard let value = table[key.rawValue] else { return nil }
        guard let integer = value.int else { throw wrongType(key, value, expected: "an integer") }
        return try check(key) { () throws(OptionValueError) in try OptionValue.integer(integer, in: range) }
    }

    /// A number of seconds, an integer or a decimal number (`idle-timeout = 2.5`), within ``OptionRange/seconds``.
    func seconds(_ key: ConfigurationKey) throws(DaemonError) -> Double? {
        guard let value = table[key.rawValue] else { return nil }
        guard let number = value.double ?? value.int.map(Double.init) else {
            throw wrongType(key, value, expected: "a number of seconds")
        }
        return try check(key) { () throws(OptionValueError) in try OptionValue.seconds(number) }
    }

    /// A boolean (`daemon = true`).
    func boolean(_ key: ConfigurationKey) throws(DaemonError) -> Bool? {
        guard let value = table[key.rawValue] else { return nil }
        guard let boolean = value.bool else { throw wrongType(key, value, expected: "true or false") }
        return boolean
    }

    /// A string that `parse` checks and converts (`model = "forking"`, `pidfile = "/run/serverd.pid"`).
    func string<Value>(
        _ key: ConfigurationKey, _ parse: (String) throws(OptionValueError) -> Value
    ) throws(DaemonError) -> Value? {
        guard let value = table[key.rawValue] else { return nil }
        guard let text = value.string else { throw wrongType(key, value, expected: "a string") }
        return try check(key) { () throws(OptionValueError) in try parse(text) }
    }

    /// A file path, made absolute: a relative one is relative to the configuration file's directory.
    func path(_ key: ConfigurationKey) throws(DaemonError) -> String? {
        let directory = OptionValue.directory(of: path)
        return try string(key) { (text) throws(OptionValueError) in
            try OptionValue.absolutePath(text, relativeTo: directory)
        }
    }

    /// A socket mode: a string of octal digits (`"0660"`), a TOML octal integer (`0o660`), or a decimal integer whose
    /// digits are read as octal (`660`), the way chmod reads them.
    func socketMode(_ key: ConfigurationKey) throws(DaemonError) -> UInt32? {
        guard let value = table[key.rawValue] else { return nil }
        if let text = value.string {
            return try check(key) { () throws(OptionValueError) in try OptionValue.socketMode(text) }
        }
        guard let integer = value.int else { throw wrongType(key, value, expected: "an octal mode like \"0660\"") }
        let written = locator.entry(key.rawValue, in: section)?.valueText ?? ""
        let prefixed = ["0o", "0x", "0b"].contains(where: { written.hasPrefix($0) })
        return try check(key) { () throws(OptionValueError) in
            try OptionValue.socketMode(integer, writtenInDecimal: !prefixed)
        }
    }

    /// An array of user or group IDs, each a number or a name (`allow-uid = [1000, "www-data"]`).
    ///
    /// An empty array serves no peer by itself, so it is refused unless the table gives the other kind beside it
    /// (`allow-uid = []` with `allow-gid = ["adm"]` serves group adm only).
    func accountIDs(_ key: ConfigurationKey, kind: AccountID.Kind) throws(DaemonError) -> [UInt32]? {
        let expected = "an array of \(kind.idName)s or \(kind.accountName) names"
        let ids = try array(key, expected: expected) { (element) throws(OptionValueError) -> UInt32? in
            if let number = element.int {
                return try AccountID.resolve(number, kind: kind)
            }
            return try element.string.map { (text) throws(OptionValueError) in
                try AccountID.resolve(text, kind: kind)
            }
        }
        let other: ConfigurationKey = key == .allowUID ? .allowGID : .allowUID
        if ids?.isEmpty == true && (table[other.rawValue]?.array?.isEmpty ?? true) {
            throw invalid(
                key,
                "an empty list would serve no peer; list the \(kind.idName)s to serve, or leave \(key.rawValue) out "
                    + "to serve every peer")
        }
        return ids
    }

    /// An array of CIDR blocks (`allow = ["127.0.0.0/8", "::1"]`). An empty `allow` would serve no source and is
    /// refused; an empty `deny` denies no source.
    func cidrBlocks(_ key: ConfigurationKey) throws(DaemonError) -> [CIDRBlock]? {
        let blocks = try array(key, expected: "an array of CIDR blocks like \"127.0.0.0/8\"") {
            (element) throws(OptionValueError) -> CIDRBlock? in
            try element.string.map { (text) throws(OptionValueError) in try CIDRBlock(parsing: text) }
        }
        if key == .allow && blocks?.isEmpty == true {
            throw invalid(
                key,
                "an empty list would serve no source; list the blocks to serve, or leave allow out to serve every "
                    + "source not denied")
        }
        return blocks
    }

    /// A program and its arguments (`exec = ["/usr/bin/env", "-i"]`).
    func program(_ key: ConfigurationKey) throws(DaemonError) -> [String]? {
        let expected = "an array holding a program and its arguments, like [\"/usr/bin/env\"]"
        let words = try array(key, expected: expected) { (element) throws(OptionValueError) -> String? in
            element.string
        }
        if let words, words.first?.isEmpty ?? true {
            throw invalid(key, "must name a program: expected \(expected)")
        }
        return words
    }

    /// An array of strings, as written (`listen = ["echo@tcp://127.0.0.1:7"]`).
    func strings(_ key: ConfigurationKey) throws(DaemonError) -> [String]? {
        try array(key, expected: "an array of strings") { (element) throws(OptionValueError) -> String? in
            element.string
        }
    }

    /// The options of ``ListenerOverrides`` this table sets.
    func listenerOverrides() throws(DaemonError) -> ListenerOverrides {
        ListenerOverrides(
            exec: try program(.exec),
            socketMode: try socketMode(.socketMode),
            allowUIDs: try accountIDs(.allowUID, kind: .user),
            allowGIDs: try accountIDs(.allowGID, kind: .group),
            allow: try cidrBlocks(.allow),
            deny: try cidrBlocks(.deny),
            maxConnections: try integer(.maxConnections, in: OptionRange.maxConnections),
            maxPerSource: try integer(.maxPerSource, in: OptionRange.maxPerSource),
            idleTimeout: try seconds(.idleTimeout),
            maxLine: try integer(.maxLine, in: OptionRange.maxLine),
            requestTimeout: try seconds(.requestTimeout),
            minRate: try integer(.minRate, in: OptionRange.minRate),
            sourcePrefixV4: try integer(.sourcePrefixV4, in: OptionRange.sourcePrefixV4),
            sourcePrefixV6: try integer(.sourcePrefixV6, in: OptionRange.sourcePrefixV6),
            replyRatePerSource: try integer(.replyRatePerSource, in: OptionRange.replyRatePerSource)
        )
    }

    /// The options of ``DaemonOverrides`` this table sets.
    func daemonOverrides() throws(DaemonError) -> DaemonOverrides {
        DaemonOverrides(
            model: try string(.model, OptionValue.model),
            drainTimeout: try seconds(.drainTimeout),
            daemonize: try boolean(.daemon),
            pidfile: try path(.pidfile),
            user: try string(.user, OptionValue.nonEmpty),
            group: try string(.group, OptionValue.nonEmpty),
            logLevel: try string(.logLevel, OptionValue.logLevel),
            logFile: try path(.logFile)
        )
    }

    // MARK: - Helpers

    /// An array whose elements `convert` turns into values; `convert` returns `nil` for an element of the wrong type.
    private func array<Element>(
        _ key: ConfigurationKey, expected: String,
        _ convert: (any TOMLValueConvertible) throws(OptionValueError) -> Element?
    ) throws(DaemonError) -> [Element]? {
        guard let value = table[key.rawValue] else { return nil }
        guard let array = value.array else { throw wrongType(key, value, expected: expected) }
        var elements: [Element] = []
        for (index, item) in array.enumerated() {
            let converted = try check(key) { () throws(OptionValueError) in try convert(item) }
            guard let converted else {
                throw invalid(key, "must be \(expected), but element \(index + 1) is \(typeName(item.type))")
            }
            elements.append(converted)
        }
        return elements
    }

    /// Runs a check, turning its ``OptionValueError`` into a ``DaemonError`` that names the key.
    private func check<Value>(
        _ key: ConfigurationKey, _ body: () throws(OptionValueError) -> Value
    ) throws(DaemonError) -> Value {
        do throws(OptionValueError) {
            return try body()
        } catch {
            throw invalid(key, error.reason)
        }
    }

    /// The error for a value of the wrong TOML type: `max-line: must be an integer, not a string`.
    private func wrongType(
        _ key: ConfigurationKey, _ value: any TOMLValueConvertible, expected: String
    ) -> DaemonError {
        invalid(key, "must be \(expected), not \(typeName(value.type))")
    }

    /// A TOML type with its article, for messages: `an integer`, `a string`.
    private func typeName(_ type: TOMLType) -> String {
        switch type {
        case .table: return "a table"
        case .array: return "an array"
        case .string: return "a string"
        case .int: return "an integer"
        case .double: return "a decimal number"
        case .bool: return "a boolean"
        case .date: return "a date"
        case .time: return "a time"
        case .dateTime: return "a date-time"
        }
    }
}
