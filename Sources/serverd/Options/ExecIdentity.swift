import Glibc

/// Who a listener's exec children run as and within which limits (the `[[listener]]` keys `user`, `group`, `chroot`,
/// `chdir`, `umask`, `env` and `rlimit-*`), resolved when the configuration is read: names are looked up then, never
/// in the child, which may only make async-signal-safe calls. The child applies it before `exec`: limits, `chroot`,
/// `chdir`, groups, gid, uid, umask (s6-softlimit, s6-applyuidgid and xinetd's `user` and `rlimit_*` are the models).
struct ExecIdentity: Equatable, Sendable {
    /// A user to run as: its uid, its primary gid and every group it belongs to (getgrouplist), as `initgroups` would.
    struct Account: Equatable, Sendable {
        var name: String
        var uid: UInt32
        var gid: UInt32
        var groups: [UInt32]
    }

    /// A resource limit set to `value` (soft and hard).
    struct Limit: Equatable, Sendable {
        var resource: Int32
        var value: UInt64
    }

    /// `user`: run as this user.
    var account: Account?
    /// `group`: run with this gid (instead of the user's primary group; alone, the only group).
    var group: UInt32?
    /// `chroot`: the root directory of the child.
    var root: String?
    /// `chdir`: its working directory (after `chroot`, inside it; `/` when only `chroot` is given).
    var directory: String?
    /// `umask`: its file mode creation mask.
    var umask: UInt32?
    /// `env`: `NAME=value` sets a variable, `-NAME` removes one, in this order, after serverd's own.
    var environment: [String] = []
    /// `rlimit-*`: resource limits.
    var limits: [Limit] = []

    /// Whether the child runs as serverd does.
    var isInherited: Bool { self == ExecIdentity() }

    /// The uid, gid and supplementary groups to switch to, or `nil` to keep serverd's.
    var credentials: (uid: UInt32?, gid: UInt32, groups: [UInt32])? {
        switch (account, group) {
        case (nil, nil): return nil
        case (let account?, let group): return (account.uid, group ?? account.gid, account.groups)
        case (nil, let group?): return (nil, group, [group])
        }
    }

    /// `environment` with the `env` entries applied.
    func applyingEnvironment(to environment: [String]) -> [String] {
        var result = environment
        for entry in self.environment {
            if entry.hasPrefix("-") {
                let name = entry.dropFirst() + "="
                result.removeAll { $0.hasPrefix(name) }
            } else if let equals = entry.firstIndex(of: "=") {
                let name = entry[...equals]
                result.removeAll { $0.hasPrefix(name) }
                result.append(entry)
            }
        }
        return result
    }

    /// The user `text` names (a name or a uid) with its groups, for `user`.
    static func account(_ text: String) throws(OptionValueError) -> Account {
        let uid = try AccountID.resolve(text, kind: .user)
        let name: String
        let gid: UInt32
        if let entry = AccountID.user(named: text) {
            (name, gid) = (text, entry.gid)
        } else if let entry = AccountID.user(id: uid) {
            (name, gid) = (entry.name, entry.gid)
        } else {
            throw OptionValueError("uid \(uid) has no user entry (its primary group is needed)")
        }
        return Account(name: name, uid: uid, gid: gid, groups: groups(of: name, gid: gid))
    }

    /// Every group `name` belongs to, `gid` first (getgrouplist).
    private static func groups(of name: String, gid: UInt32) -> [UInt32] {
        var count: Int32 = 64
        while true {
            var groups = [gid_t](repeating: 0, count: Int(count))
            var found = count
            if getgrouplist(name, gid, &groups, &found) >= 0 {
                return Array(groups.prefix(Int(found)))
            }
            guard found > count, found <= 65536 else { return [gid] }
            count = found
        }
    }

    /// One `env` entry: `NAME=value` or `-NAME`, NAME being letters, digits and `_`, not starting with a digit.
    static func environmentEntry(_ text: String) throws(OptionValueError) -> String {
        let name = text.hasPrefix("-") ? text.dropFirst() : text.prefix { $0 != "=" }
        let valid = !name.isEmpty && !(name.first?.isNumber ?? true)
            && name.allSatisfy { $0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber)) }
        guard valid, text.hasPrefix("-") || text.contains("=") else {
            throw OptionValueError("'\(text)' is neither NAME=value nor -NAME")
        }
        return text
    }
}
