import FamilyServer
import Glibc

/// What a binary upgrade (SIGUSR2) starts again: the binary at serverd's own path, with its original arguments, in
/// the directory it was started in. Recorded when serverd starts: once `dpkg -i` replaced the file, `/proc/self/exe`
/// reads `/usr/sbin/serverd (deleted)`, and `--daemon` changed the working directory to `/` (relative paths of the
/// command line are taken from the original one).
struct ProgramImage: Sendable {
    /// The absolute path of the running binary when serverd started.
    let path: String
    /// The arguments after the program name.
    let arguments: [String]
    /// The working directory serverd started in.
    let directory: String

    /// Records the running binary's path (`/proc/self/exe`), `arguments` and `directory`.
    static func record(arguments: [String], directory: String) -> ProgramImage {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        let path = count > 0
            ? String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            : CommandLine.arguments.first ?? "serverd"
        return ProgramImage(path: path, arguments: arguments, directory: directory)
    }

    /// Why the binary at ``path`` must not be started, or `nil` when it may: it, or a directory on its way, can be
    /// replaced by someone other than root and serverd's own user (owned by another uid, or writable by group or
    /// others; a directory with the sticky bit, like `/tmp`, protects the names in it). A local user who could
    /// replace the file would have their program started with serverd's privileges and listening sockets.
    func untrustedReason() -> String? {
        var current = path
        var isFile = true
        while true {
            var info = stat()
            guard lstat(current, &info) == 0 else {
                let code = errno
                return "\(current): lstat: \(String(cString: strerror(code))) (errno \(code))"
            }
            let owner = info.st_uid
            if owner != 0 && owner != geteuid() {
                return "\(current) is owned by uid \(owner), neither root nor serverd's uid \(geteuid())"
            }
            let sticky = !isFile && info.st_mode & S_ISVTX != 0
            if !sticky && info.st_mode & (S_IWGRP | S_IWOTH) != 0 && !(info.st_mode & S_IWOTH == 0 && info.st_gid == 0) {
                let mode = String(info.st_mode & 0o7777, radix: 8)
                return "\(current) is writable by group or others (mode \(mode)), who could replace the binary"
            }
            if current == "/" { return nil }
            current = DirectoryHandle.split(current).directory
            isFile = false
        }
    }

    /// `argv` of the new process.
    var argv: [String] { [path] + arguments }
}
