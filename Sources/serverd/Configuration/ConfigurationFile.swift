import TOMLKit

/// What a `--config` file says, checked but not yet merged with the command line.
///
/// The file is TOML (SPEC section 3, "Configuration file"): the top level takes every long option by its name,
/// `listen` (an array of `SERVICE@ADDRESS` strings) and `exec` (a program and its arguments); each `[[listener]]`
/// table declares one listener with `listen` (one string) and its own per-listener options.
struct ConfigurationFile: Sendable {
    /// One listener the file declares.
    struct Listener: Sendable {
        /// What to serve where.
        var spec: ListenSpec
        /// The options its `[[listener]]` table sets; none for the top-level `listen` array.
        var overrides: ListenerOverrides
        /// `FILE:LINE` where it is declared.
        var origin: String
        /// `FILE:LINE` of each access rule its `[[listener]]` table writes.
        var rulePlaces: [AccessRule: String] = [:]
    }

    /// The path, as given to `--config`.
    var path: String
    /// The daemon-wide options of the top level.
    var daemonOptions: DaemonOverrides
    /// The per-listener options of the top level, the fallback of every listener.
    var listenerOptions: ListenerOverrides
    /// The listeners: the top-level `listen` array's, then the `[[listener]]` tables', in file order.
    var listeners: [Listener]
    /// `FILE:LINE` of each access rule the top level writes.
    var rulePlaces: [AccessRule: String]

    /// Reads and checks a configuration file.
    /// - Parameter path: The file's path.
    /// - Throws: ``DaemonError`` with status `.configuration`: `PATH: cannot open: REASON` when the file cannot be
    ///   read, and otherwise as ``init(path:text:)``.
    init(path: String) throws(DaemonError) {
        try self.init(path: path, text: TextFile.read(path))
    }

    /// Checks a configuration file's text.
    /// - Parameters:
    ///   - path: The file's path, for messages.
    ///   - text: The file's content.
    /// - Throws: ``DaemonError`` with status `.configuration`: `PATH:LINE: …` for a syntax error, an unknown key, a
    ///   value of the wrong type or out of range, or a malformed or unknown `SERVICE@ADDRESS`.
    init(path: String, text: String) throws(DaemonError) {
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            let position = error.source.begin
            throw DaemonError(
                .configuration, "\(path):\(position.line): \(error.description) (column \(position.column))")
        } catch {
            throw DaemonError(.configuration, "\(path): \(error)")
        }
        let locator = TOMLKeyLocator(text: text)
        if let (line, key) = locator.firstNULEscape() {
            // TOMLKit hands strings over as C strings: "/tmp/a\u0000b" would arrive as "/tmp/a".
            throw DaemonError(
                .configuration,
                "\(path):\(line): \(key.map { "\($0): " } ?? "")a string contains a NUL character (\\u0000), which "
                    + "would cut it short")
        }
        let top = ConfigurationTableReader(table: table, path: path, locator: locator, section: .top)
        try top.checkKeys()
        self.path = path
        daemonOptions = try top.daemonOverrides()
        listenerOptions = try top.listenerOverrides()
        rulePlaces = top.places(of: listenerOptions.accessRules)
        listeners = []

        let listenLine = locator.entry(ConfigurationKey.listen.rawValue, in: .top)?.line
        let elementLines = locator.elementLines(of: ConfigurationKey.listen.rawValue, in: .top)
        for (index, text) in (try top.strings(.listen) ?? []).enumerated() {
            // A multi-line array puts each string on its own line; name it, else the `listen =` line.
            let line = elementLines.indices.contains(index) ? elementLines[index] : listenLine
            let origin = line.map { "\(path):\($0)" } ?? path
            let spec = try ConfigurationFile.spec(text, origin: origin)
            listeners.append(Listener(spec: spec, overrides: ListenerOverrides(), origin: origin))
        }
        for table in try ConfigurationFile.listenerTables(of: top) {
            listeners.append(try ConfigurationFile.listener(table))
        }
    }

    /// The readers of the `[[listener]]` tables, in file order.
    private static func listenerTables(
        of top: ConfigurationTableReader
    ) throws(DaemonError) -> [ConfigurationTableReader] {
        guard let value = top.table[ConfigurationKey.listener.rawValue] else { return [] }
        let expected = "[[listener]] tables"
        guard let array = value.array else {
            throw top.invalid(.listener, "must be \(expected), not a single [listener] table or a value")
        }
        var readers: [ConfigurationTableReader] = []
        for (index, element) in array.enumerated() {
            guard let table = element.table else {
                throw top.invalid(.listener, "must be \(expected)")
            }
            readers.append(
                ConfigurationTableReader(table: table, path: top.path, locator: top.locator, section: .listener(index)))
        }
        return readers
    }

    /// The listener a `[[listener]]` table declares.
    private static func listener(_ reader: ConfigurationTableReader) throws(DaemonError) -> Listener {
        try reader.checkKeys()
        let origin = reader.place(of: ConfigurationKey.listen.rawValue)
        guard let text = try reader.string(.listen, { (text) throws(OptionValueError) in text }) else {
            throw DaemonError(
                .configuration, "\(origin): [[listener]] needs a listen = \"SERVICE@ADDRESS\" key")
        }
        let spec = try spec(text, origin: origin)
        let overrides = try reader.listenerOverrides()
        if overrides.exec != nil && spec.service != .exec {
            throw reader.invalid(.exec, "'\(spec.text)' is no exec listener, so it runs no program")
        }
        return Listener(
            spec: spec, overrides: overrides, origin: origin, rulePlaces: reader.places(of: overrides.accessRules))
    }

    /// Parses a `SERVICE@ADDRESS` of the file.
    /// - Throws: ``DaemonError`` `FILE:LINE: listen 'TEXT': REASON`.
    private static func spec(_ text: String, origin: String) throws(DaemonError) -> ListenSpec {
        do throws(OptionValueError) {
            return try ListenSpec(parsing: text)
        } catch {
            throw DaemonError(.configuration, "\(origin): listen '\(text)': \(error.reason)")
        }
    }
}
