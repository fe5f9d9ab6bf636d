import FamilyServer

/// What a `--config` file says, read with ``OptionTable``: the top level's options, its `listen` array, and each
/// `[[listener]]` table's `listen` and options.
///
/// The file is TOML (SPEC section 3, "Configuration file"). Every error is a configuration error (exit 78) that
/// names `FILE:LINE:COLUMN` and the key.
struct ConfigFile: Equatable, Sendable {
    /// One `listen` the file declares.
    struct Listen: Equatable, Sendable {
        /// `SERVICE@ADDRESS` as written.
        var text: String
        /// `FILE:LINE:COLUMN` of the string.
        var place: String
        /// The options of its `[[listener]]` table; none for the top level's `listen` array.
        var options = OptionLayer()
    }

    /// The file's path.
    var path: String
    /// The options of the top level: daemon-wide ones, and per-listener ones for every listener.
    var topLevel = OptionLayer()
    /// The listeners: the top-level `listen` array's, then the `[[listener]]` tables', in file order.
    var listeners: [Listen] = []

    /// Reads and checks the file at `path`.
    /// - Throws: ``DaemonError`` with status `.configuration`.
    static func read(_ path: String) throws(DaemonError) -> ConfigFile {
        try ConfigFile(path: path, bytes: TextFile.read(path))
    }

    /// Checks a file's content.
    /// - Throws: ``DaemonError`` with status `.configuration`: `FILE:LINE:COLUMN: …` for a syntax error, an unknown key,
    ///   a value of the wrong type or out of range.
    init(path: String, bytes: [UInt8]) throws(DaemonError) {
        self.path = path
        let document: TOMLTable
        do {
            document = try TOMLParser.parse(bytes)
        } catch {
            throw DaemonError(.configuration, "\(path):\(error)")
        }
        let reader = Reader(path: path, lines: SourceLines(bytes))
        try reader.refuseNUL(in: document)
        for entry in document.entries {
            switch entry.key {
            case "listen":
                guard case .array(let elements) = entry.node.value else {
                    throw reader.error(entry, "must be an array of \"SERVICE@ADDRESS\" strings, not "
                        + OptionKind.article(entry.node.value.typeName))
                }
                for element in elements {
                    guard case .string(let text) = element.value else {
                        throw reader.error(entry, "must be an array of \"SERVICE@ADDRESS\" strings, but holds "
                            + OptionKind.article(element.value.typeName))
                    }
                    listeners.append(Listen(text: text, place: reader.place(element.position)))
                }
            case "listener":
                guard case .array(let tables) = entry.node.value else {
                    throw reader.error(entry, "must be [[listener]] tables, not a single [listener] table or a value")
                }
                for table in tables {
                    guard case .table(let contents) = table.value else {
                        throw reader.error(entry, "must be [[listener]] tables")
                    }
                    listeners.append(try reader.listener(contents, header: table.position))
                }
            default:
                try reader.set(entry, in: &topLevel, inListener: false)
            }
        }
        try reader.checkAccountLists(topLevel)
    }

    /// Reads entries into layers, naming the file, the place and the key in errors.
    private struct Reader {
        let path: String
        let lines: SourceLines

        var directory: String { DirectoryHandle.split(path).directory }

        func place(_ position: TOMLPosition) -> String { "\(path):\(position)" }

        /// Refuses a string holding NUL (`"\\u0000"`, valid TOML): no path, name or argument can hold one, and the
        /// C calls that take them would stop there, at a shorter path.
        func refuseNUL(in table: TOMLTable) throws(DaemonError) {
            for entry in table.entries {
                if let position = Self.firstNUL(in: entry.node) {
                    throw DaemonError(
                        .configuration,
                        "\(place(position)): \(entry.key): a string contains a NUL character (\\u0000), which would cut "
                            + "it short")
                }
            }
        }

        private static func firstNUL(in node: TOMLNode) -> TOMLPosition? {
            switch node.value {
            case .string(let text): return text.utf8.contains(0) ? node.position : nil
            case .array(let elements):
                for element in elements { if let found = firstNUL(in: element) { return found } }
                return nil
            case .table(let table):
                for entry in table.entries { if let found = firstNUL(in: entry.node) { return found } }
                return nil
            default: return nil
            }
        }

        func error(_ entry: TOMLEntry, _ reason: String) -> DaemonError {
            DaemonError(.configuration, "\(place(entry.keyPosition)): \(entry.key): \(reason)")
        }

        /// Checks an option key and stores its value.
        func set(_ entry: TOMLEntry, in layer: inout OptionLayer, inListener: Bool) throws(DaemonError) {
            if !inListener, OptionTable.named(entry.key, inListener: true)?.scope == .execChild,
                OptionTable.named(entry.key) == nil
            {
                throw DaemonError(
                    .configuration,
                    "\(place(entry.keyPosition)): '\(entry.key)' sets one listener's exec children: set it in [[listener]], "
                        + "not at the top level")
            }
            guard let option = OptionTable.named(entry.key, inListener: inListener), option.isFileKey,
                option.scope != .listeners
            else {
                let keys = OptionTable.all.filter(\.isFileKey).map(\.name) + ["listener"]
                let hint = Suggestion.closest(to: entry.key, among: keys).flatMap { $0 == entry.key ? nil : $0 }
                    .map { " (did you mean '\($0)'?)" } ?? ""
                let table = inListener ? " in [[listener]]" : ""
                throw DaemonError(.configuration, "\(place(entry.keyPosition)): unknown key '\(entry.key)'\(table)\(hint)")
            }
            if inListener && option.scope == .daemon {
                throw DaemonError(
                    .configuration,
                    "\(place(entry.keyPosition)): '\(entry.key)' applies to the whole daemon: set it at the top level, "
                        + "not in [[listener]]")
            }
            do throws(OptionValueError) {
                let value = try option.kind.decode(
                    entry.node.value, written: lines.text(at: entry.node.position), relativeTo: directory)
                try Self.checkNotEmpty(option, value, entry.node.value)
                layer.set(option, value, place: place(entry.keyPosition))
            } catch {
                throw self.error(entry, error.reason)
            }
        }

        /// A `[[listener]]` table: its `listen` and its options.
        func listener(_ table: TOMLTable, header: TOMLPosition) throws(DaemonError) -> Listen {
            var listen: Listen?
            var options = OptionLayer()
            for entry in table.entries {
                if entry.key == "listen" {
                    guard case .string(let text) = entry.node.value else {
                        throw error(entry, "must be one \"SERVICE@ADDRESS\" string, not "
                            + OptionKind.article(entry.node.value.typeName))
                    }
                    listen = Listen(text: text, place: place(entry.node.position))
                } else {
                    try set(entry, in: &options, inListener: true)
                }
            }
            guard var listen else {
                throw DaemonError(.configuration, "\(place(header)): [[listener]] needs a listen = \"SERVICE@ADDRESS\" key")
            }
            try checkAccountLists(options)
            listen.options = options
            return listen
        }

        /// An empty `allow-uid` serves no peer by itself: refused unless the same table gives `allow-gid` ids beside
        /// it (`allow-uid = []` with `allow-gid = ["adm"]` serves group adm only); the same the other way round.
        func checkAccountLists(_ layer: OptionLayer) throws(DaemonError) {
            for (key, other, kind) in [("allow-uid", "allow-gid", AccountID.Kind.user), ("allow-gid", "allow-uid", .group)] {
                guard let entry = layer[key], entry.value.ids.isEmpty, layer[other]?.value.ids.isEmpty ?? true else {
                    continue
                }
                throw DaemonError(
                    .configuration,
                    "\(entry.place): \(key): an empty list would serve no peer; list the \(kind.idName)s to serve, or "
                        + "leave \(key) out to serve every peer")
            }
        }

        /// An empty `allow` serves no source and an empty uid and gid list no peer: refused, with what to write
        /// instead. (An empty `allow-uid` beside a non-empty `allow-gid` is fine, and checked with the listener.)
        private static func checkNotEmpty(_ option: Option, _ value: OptionValue, _ raw: TOMLValue) throws(OptionValueError) {
            guard option.name == "allow", case .blocks(let blocks) = value, blocks.isEmpty else { return }
            throw OptionValueError(
                "an empty list would serve no source; list the blocks to serve, or leave allow out to serve every "
                    + "source not denied")
        }
    }
}
