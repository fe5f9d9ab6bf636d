import Glibc

/// Which of some process groups still have a running member, read from /proc.
///
/// `kill(-pgid, 0)` cannot tell: it succeeds for a group of zombies, and a killed background
/// process whose parent is gone stays a zombie for as long as nobody reaps it (a container's
/// init may never do). Only members in serverd's own session count: exec children keep that
/// session, so a group id that was freed and then taken by an unrelated process elsewhere is
/// never signalled.
///
/// Nor is one taken in the same session (serverd in the foreground shares its terminal's session,
/// under a test runner its session with other tests): a group id is the pid of the process that
/// made the group, and the kernel does not hand that pid out again while the group has a member.
/// So a listed group whose leader serverd has reaped, but whose pid is in use again, is no longer
/// the exec child's group: only groups whose leader is still serverd's running child (`running`)
/// or whose leader's pid is free count. When /proc cannot be read (descriptors exhausted), every
/// group counts as live: a group is never spared for want of a look.
enum LiveProcessGroups {
    /// The groups among `groups` with at least one member that is not a zombie, in serverd's session, that are still
    /// the groups of serverd's exec children: led by one of `running`, or by a pid no process holds.
    static func among(_ groups: Set<pid_t>, running: Set<pid_t>) -> Set<pid_t> {
        guard !groups.isEmpty else { return [] }
        guard let processes = ProcFiles.numericEntries(of: "/proc") else { return groups }
        let taken = Set(processes)
        let groups = groups.filter { running.contains($0) || !taken.contains($0) }
        let session = getsid(0)
        var live: Set<pid_t> = []
        for pid in processes {
            guard let member = stat(of: pid) else {
                if errno != ENOENT && errno != ESRCH { return groups }
                continue
            }
            if groups.contains(member.group) && member.session == session && member.state != "Z" && member.state != "X" {
                live.insert(member.group)
            }
        }
        return live
    }

    /// State, process group and session of `pid` from /proc/PID/stat (fields 3, 5 and 6); nil
    /// with errno ENOENT or ESRCH when the process is gone, another errno when it cannot be read.
    private static func stat(of pid: pid_t) -> (state: Character, group: pid_t, session: pid_t)? {
        guard let bytes = ProcFiles.read("/proc/\(pid)/stat", limit: 1024) else { return nil }
        let count = bytes.count
        guard count > 0 else {
            errno = ESRCH
            return nil
        }
        // The command name (field 2) is in parentheses and may itself contain ") ".
        guard let close = bytes[0..<count].lastIndex(of: UInt8(ascii: ")")) else {
            errno = ESRCH
            return nil
        }
        let fields = bytes[(close + 1)..<count].split(separator: UInt8(ascii: " "))
        guard fields.count > 3, let state = fields[0].first,
            let group = pid_t(String(decoding: fields[2], as: UTF8.self)),
            let session = pid_t(String(decoding: fields[3], as: UTF8.self))
        else {
            errno = ESRCH
            return nil
        }
        return (Character(UnicodeScalar(state)), group, session)
    }
}
