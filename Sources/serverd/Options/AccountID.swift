import Glibc

/// The numeric user and group IDs that `--allow-uid` and `--allow-gid` list, given as numbers or names.
///
/// A name is resolved once, when the configuration is loaded, through the system's user and group databases
/// (`getpwnam_r`, `getgrnam_r`), so a later change in those databases takes effect at the next reload.
enum AccountID {
    /// Whether an ID names a user or a group.
    enum Kind: Sendable {
        /// A user: `uid`, resolved with `getpwnam_r`.
        case user
        /// A group: `gid`, resolved with `getgrnam_r`.
        case group

        /// The word for a numeric ID of this kind, for messages.
        var idName: String { self == .user ? "uid" : "gid" }

        /// The word for an account of this kind, for messages.
        var accountName: String { self == .user ? "user" : "group" }
    }

    /// Resolves one ID.
    /// - Parameters:
    ///   - text: A decimal number from 0 to 4294967294, or a user or group name.
    ///   - kind: Whether it is a user or a group.
    /// - Returns: The numeric ID.
    /// - Throws: ``OptionValueError`` when the text is neither a valid number nor a known name.
    static func resolve(_ text: String, kind: Kind) throws(OptionValueError) -> UInt32 {
        if let first = text.first, first.isASCII, first.isNumber {
            // (uid_t)-1 means "no change" to the kernel and never identifies a peer.
            guard let id = UInt32(text), id != UInt32.max else {
                throw OptionValueError("'\(text)' is not a valid \(kind.idName)")
            }
            return id
        }
        guard !text.isEmpty, let id = lookUp(text, kind: kind) else {
            throw OptionValueError("'\(text)' is not a \(kind.idName) nor a known \(kind.accountName) name")
        }
        return id
    }

    /// Resolves a numeric ID.
    /// - Parameters:
    ///   - value: The ID as given in a TOML integer.
    ///   - kind: Whether it is a user or a group.
    /// - Throws: ``OptionValueError`` when the number is outside 0…4294967294.
    static func resolve(_ value: Int, kind: Kind) throws(OptionValueError) -> UInt32 {
        guard let id = UInt32(exactly: value), id != UInt32.max else {
            throw OptionValueError("\(value) is not a valid \(kind.idName)")
        }
        return id
    }

    /// Resolves a comma-separated list, as the command line gives it (`1000,1001,www-data`).
    /// - Throws: ``OptionValueError`` when an entry is empty or cannot be resolved.
    static func resolveList(_ text: String, kind: Kind) throws(OptionValueError) -> [UInt32] {
        var ids: [UInt32] = []
        for entry in try ListSyntax.entries(of: text) {
            ids.append(try resolve(entry, kind: kind))
        }
        return ids
    }

    /// The ID of a user or group name, or `nil` when the database has no such entry.
    private static func lookUp(_ name: String, kind: Kind) -> UInt32? {
        kind == .user ? user(named: name)?.uid : group(named: name)
    }

    /// A user's uid and primary gid (`getpwnam_r`), or `nil` when the database has no such user.
    static func user(named name: String) -> (uid: UInt32, gid: UInt32)? {
        withEntryBuffer { storage in
            var entry = passwd()
            var result: UnsafeMutablePointer<passwd>?
            let status = getpwnam_r(name, &entry, storage.baseAddress!, storage.count, &result)
            return (status, result.map { ($0.pointee.pw_uid, $0.pointee.pw_gid) })
        }
    }

    /// A user's name and primary gid by uid (`getpwuid_r`), or `nil` when the database has no such user.
    static func user(id: UInt32) -> (name: String, gid: UInt32)? {
        withEntryBuffer { storage in
            var entry = passwd()
            var result: UnsafeMutablePointer<passwd>?
            let status = getpwuid_r(id, &entry, storage.baseAddress!, storage.count, &result)
            return (status, result.map { (String(cString: $0.pointee.pw_name), $0.pointee.pw_gid) })
        }
    }

    /// A group's gid (`getgrnam_r`), or `nil` when the database has no such group.
    static func group(named name: String) -> UInt32? {
        withEntryBuffer { storage in
            var entry = Glibc.group()
            var result: UnsafeMutablePointer<group>?
            let status = getgrnam_r(name, &entry, storage.baseAddress!, storage.count, &result)
            return (status, result.map { $0.pointee.gr_gid })
        }
    }

    /// Runs a `get*nam_r` lookup with a buffer that grows while the call says ERANGE, up to 1 MiB.
    private static func withEntryBuffer<Found>(
        _ lookUp: (UnsafeMutableBufferPointer<CChar>) -> (status: Int32, found: Found?)
    ) -> Found? {
        var bufferSize = 1024
        while bufferSize <= 1 << 20 {
            var buffer = [CChar](repeating: 0, count: bufferSize)
            let (status, found) = buffer.withUnsafeMutableBufferPointer { lookUp($0) }
            guard status == ERANGE else { return found }
            bufferSize *= 4
        }
        return nil
    }
}
