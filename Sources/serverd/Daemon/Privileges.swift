import Glibc

/// `--user` and `--group`: drop to an unprivileged account once every socket is bound.
enum Privileges {
    /// Switches group (supplementary groups cleared) then user, and checks that root cannot be
    /// regained.
    static func drop(user: String?, group: String?) throws(DaemonError) {
        guard user != nil || group != nil else { return }
        var gid: gid_t?
        var uid: uid_t?
        if let user {
            guard let account = AccountID.user(named: user) else {
                throw DaemonError(.configuration, "--user \(user): no such user")
            }
            uid = account.uid
            gid = account.gid
        }
        if let group {
            guard let found = AccountID.group(named: group) else {
                throw DaemonError(.configuration, "--group \(group): no such group")
            }
            gid = found
        }
        if let gid {
            var groups = [gid]
            guard setgroups(1, &groups) == 0 else { throw failure("setgroups", user ?? group!) }
            guard setgid(gid) == 0 else { throw failure("setgid(\(gid))", group ?? user!) }
        }
        if let uid {
            guard setuid(uid) == 0 else { throw failure("setuid(\(uid))", user!) }
            if uid != 0 && (setuid(0) == 0 || seteuid(0) == 0) {
                throw DaemonError(.noPermission, "--user \(user!): root could be regained after setuid", errno: EPERM)
            }
        }
    }

    private static func failure(_ call: String, _ name: String) -> DaemonError {
        let code = errno
        return DaemonError(.cannotServe(errno: code), "dropping privileges to \(name): \(call): \(String(cString: strerror(code)))", errno: code)
    }
}
