/// The tables of a document (or of one inline table) while it is being parsed, with TOML's rules on which key may
/// be defined where.
///
/// Tables live in a flat array and refer to each other by index, so that the parser can keep adding to any of them
/// without recursion and without reference types; ``table()`` turns the result into a ``TOMLTable`` tree. The
/// rules (TOML 1.0, "Table" and "Array of Tables"), as Python's `tomllib` applies them:
///
/// - a key is defined once; a `[table]` header defines its table once, and only if no dotted key, inline table or
///   array defined it;
/// - a table that a longer header only implied (`[a]` after `[a.b]`) may still get its own header;
/// - dotted keys may add to tables that they themselves created within the same section, and to tables a header
///   only implied, but not to tables with a header of their own; the tables they create cannot get a header later;
/// - `[[array]]` appends a table to an array of tables; a header or key that goes through such an array goes into
///   its last table; a static array (`[…]`) and an inline table (`{…}`) cannot be extended at all.
struct TOMLTableBuilder {
    /// How deep tables and arrays may nest: the root table is level 0, each table or array one level deeper than
    /// the table or array that holds it.
    static let maximumDepth = 100

    /// A table being built.
    private struct Table {
        var entries: [Entry] = []
        /// Entry index by key bytes.
        var index: [[UInt8]: Int] = [:]
        /// Its header's, or for an implied table, the key's that created it.
        var position: TOMLPosition
        /// Its level (0 for the root).
        var depth: Int
        /// Whether it has a header of its own or dotted keys of an earlier section created it: then no header may
        /// define it and no dotted key add to it.
        var isClosed = false
    }

    /// A key of a table being built.
    private struct Entry {
        var key: TOMLKeyPart
        var content: Content
    }

    /// What a key holds.
    private enum Content {
        /// A finished value: scalar, static array or inline table.
        case value(TOMLNode)
        /// A table that may still grow, by index.
        case table(Int)
        /// An array of tables, by index into `tableArrays`, and the position of its first header.
        case tableArray(Int, position: TOMLPosition)
    }

    /// All tables; index 0 is the root.
    private var tables: [Table]
    /// The tables (indices into `tables`) of each array of tables, never empty.
    private var tableArrays: [[Int]] = []
    /// Tables that dotted keys of the current section went through; closed when the next header starts.
    private var pending: [Int] = []

    /// A builder holding an empty root table at `position` and level `depth`.
    init(position: TOMLPosition, depth: Int = 0) {
        tables = [Table(position: position, depth: depth)]
    }

    /// The index of the root table.
    static let root = 0

    /// The level of table `table`.
    func depth(of table: Int) -> Int {
        tables[table].depth
    }

    // MARK: Headers

    /// Defines the table of a `[key]` header and returns its index (which key/value lines then go into).
    /// - Throws: ``TOMLError`` if the table is defined already or the key goes through a value, or too deep.
    mutating func defineTable(_ key: [TOMLKeyPart], header: TOMLPosition) throws(TOMLError) -> Int {
        closePending()
        guard let last = key.last else { throw TOMLError(position: header, message: "a table header needs a key") }
        let parent = try walk(to: key.dropLast())
        let name = TOMLKeyPart.dotted(key)
        guard let existing = tables[parent].index[last.bytes] else {
            let table = try addTable(named: last, in: parent, at: header)
            tables[table].isClosed = true
            return table
        }
        switch tables[parent].entries[existing].content {
        case .table(let table):
            guard !tables[table].isClosed else {
                throw TOMLError(position: last.position, message: "table '\(name)' is defined twice (first at \(tables[table].position))")
            }
            tables[table].isClosed = true
            tables[table].position = header
            return table
        case .tableArray(_, let position):
            throw TOMLError(position: last.position, message: "'\(name)' is an array of tables (at \(position)), it cannot also be a [table]")
        case .value(let node):
            throw TOMLError(position: last.position, message: "cannot define table '\(name)': it is already a\(article(node)) \(node.value.typeName) (at \(node.position))")
        }
    }

    /// Appends a table to the array of tables of a `[[key]]` header, creating the array if need be, and returns the
    /// new table's index.
    /// - Throws: ``TOMLError`` if the key holds anything but an array of tables or goes through a value, or too deep.
    mutating func appendTable(to key: [TOMLKeyPart], header: TOMLPosition) throws(TOMLError) -> Int {
        closePending()
        guard let last = key.last else { throw TOMLError(position: header, message: "a table header needs a key") }
        let parent = try walk(to: key.dropLast())
        let name = TOMLKeyPart.dotted(key)
        let depth = tables[parent].depth + 2
        guard depth <= Self.maximumDepth else { throw tooDeep(at: last.position) }
        guard let existing = tables[parent].index[last.bytes] else {
            let table = newTable(at: header, depth: depth, closed: false)
            tableArrays.append([table])
            add(Entry(key: last, content: .tableArray(tableArrays.count - 1, position: header)), to: parent)
            return table
        }
        switch tables[parent].entries[existing].content {
        case .tableArray(let array, _):
            let table = newTable(at: header, depth: depth, closed: false)
            tableArrays[array].append(table)
            return table
        case .table(let table):
            throw TOMLError(position: last.position, message: "cannot make '\(name)' an array of tables: it is already a table (at \(tables[table].position))")
        case .value(let node):
            throw TOMLError(position: last.position, message: "cannot make '\(name)' an array of tables: it is already a\(article(node)) \(node.value.typeName) (at \(node.position))")
        }
    }

    /// The table that all but the last part of a header's key lead to, creating tables the key implies; through an
    /// array of tables, its last table.
    private mutating func walk(to prefix: ArraySlice<TOMLKeyPart>) throws(TOMLError) -> Int {
        var table = Self.root
        for (offset, part) in prefix.enumerated() {
            guard let existing = tables[table].index[part.bytes] else {
                table = try addTable(named: part, in: table, at: part.position)
                continue
            }
            switch tables[table].entries[existing].content {
            case .table(let child):
                table = child
            case .tableArray(let array, _):
                guard let lastElement = tableArrays[array].last else {
                    throw TOMLError(position: part.position, message: "internal error: empty array of tables")
                }
                table = lastElement
            case .value(let node):
                let name = TOMLKeyPart.dotted(prefix.prefix(offset + 1))
                throw TOMLError(position: part.position, message: "'\(name)' is a\(article(node)) \(node.value.typeName) (at \(node.position)), not a table")
            }
        }
        return table
    }

    // MARK: Key/value pairs

    /// Defines `key = node` in `table`, creating the tables a dotted key implies.
    /// - Parameters:
    ///   - node: The value.
    ///   - key: The key, one or more parts.
    ///   - table: The table of the current section, or of the inline table.
    /// - Throws: ``TOMLError`` if the key is defined already, goes through a value, an array of tables or a table
    ///   with a header of its own, or too deep.
    mutating func insert(_ node: TOMLNode, at key: [TOMLKeyPart], in table: Int) throws(TOMLError) {
        guard let last = key.last else { throw TOMLError(position: node.position, message: "a key/value pair needs a key") }
        var current = table
        for (offset, part) in key.dropLast().enumerated() {
            var name: String { TOMLKeyPart.dotted(key.prefix(offset + 1)) }
            guard let existing = tables[current].index[part.bytes] else {
                current = try addTable(named: part, in: current, at: part.position)
                pending.append(current)
                continue
            }
            switch tables[current].entries[existing].content {
            case .table(let child):
                guard !tables[child].isClosed else {
                    throw TOMLError(position: part.position, message: "cannot add to table '\(name)' with a dotted key: it is defined at \(tables[child].position)")
                }
                pending.append(child)
                current = child
            case .tableArray(_, let position):
                throw TOMLError(position: part.position, message: "cannot add to '\(name)' with a dotted key: it is an array of tables (at \(position))")
            case .value(let value):
                throw TOMLError(position: part.position, message: "cannot add to '\(name)' with a dotted key: it is a\(article(value)) \(value.value.typeName) (at \(value.position))")
            }
        }
        if let existing = tables[current].index[last.bytes] {
            let first = tables[current].entries[existing].key.position
            throw TOMLError(position: last.position, message: "key '\(TOMLKeyPart.dotted(key))' is defined twice (first at \(first))")
        }
        add(Entry(key: last, content: .value(node)), to: current)
    }

    /// Closes the tables that dotted keys of the section just ended went through (a header starts a new section).
    private mutating func closePending() {
        for table in pending {
            tables[table].isClosed = true
        }
        pending.removeAll()
    }

    // MARK: Storage

    /// Creates an implied table `part` in `parent` and returns its index.
    private mutating func addTable(named part: TOMLKeyPart, in parent: Int, at position: TOMLPosition) throws(TOMLError) -> Int {
        let depth = tables[parent].depth + 1
        guard depth <= Self.maximumDepth else { throw tooDeep(at: part.position) }
        let table = newTable(at: position, depth: depth, closed: false)
        add(Entry(key: part, content: .table(table)), to: parent)
        return table
    }

    private mutating func newTable(at position: TOMLPosition, depth: Int, closed: Bool) -> Int {
        tables.append(Table(position: position, depth: depth, isClosed: closed))
        return tables.count - 1
    }

    private mutating func add(_ entry: Entry, to table: Int) {
        tables[table].index[entry.key.bytes] = tables[table].entries.count
        tables[table].entries.append(entry)
    }

    private func tooDeep(at position: TOMLPosition) -> TOMLError {
        TOMLError(position: position, message: "tables and arrays nest more than \(Self.maximumDepth) levels deep")
    }

    private func article(_ node: TOMLNode) -> String {
        switch node.value {
        case .integer, .array: "n"
        default: ""
        }
    }

    // MARK: Result

    /// The root table with everything added to it.
    func table() -> TOMLTable {
        table(Self.root)
    }

    /// Table `index` as a value tree; recursion is bounded by ``maximumDepth``.
    private func table(_ index: Int) -> TOMLTable {
        TOMLTable(entries: tables[index].entries.map { entry in
            let node: TOMLNode
            switch entry.content {
            case .value(let value):
                node = value
            case .table(let child):
                node = TOMLNode(value: .table(table(child)), position: tables[child].position)
            case .tableArray(let elements, let position):
                let array = tableArrays[elements].map { TOMLNode(value: .table(table($0)), position: tables[$0].position) }
                node = TOMLNode(value: .array(array), position: position)
            }
            return TOMLEntry(key: entry.key.name, keyPosition: entry.key.position, node: node)
        })
    }
}
