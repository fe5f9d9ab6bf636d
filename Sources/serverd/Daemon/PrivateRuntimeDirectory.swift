import FamilyServer
import Glibc

/// Where the embedded default Unix socket goes when the runtime directory is writable by group or
/// others (`/tmp`): never directly there, where any local user could put a file at the socket's
/// path first and keep serverd from starting, but in `serverd-UID` inside it, a directory that
/// only serverd's uid may enter (created mode 0700).
///
/// A `serverd-UID` that already exists is used only if it is a real directory (not a symlink)
/// owned by serverd's uid with mode 0700. Anything else there (a local user's squat) is left alone
/// and a fresh directory from `mkdtemp` (`serverd-UID.XXXXXX`) is used instead, with a warning
/// that names the squatted path: the default set still starts. A directory serverd created is
/// removed at exit if it is empty.
final class PrivateRuntimeDirectory {
    /// The directory holding it (`/tmp`).
    let parent: DirectoryHandle
    /// Its name in ``parent``.
    let name: String
    /// The directory itself.
    let identity: FileIdentity
    /// Whether serverd created it (and so removes it at exit).
    let created: Bool
    /// Why the usual `serverd-UID` was not used, to be logged once logging is set up.
    let warning: String?

    /// The directory's path.
    var path: String { parent.pathOf(name) }

    private init(parent: DirectoryHandle, name: String, identity: FileIdentity, created: Bool, warning: String?) {
        self.parent = parent
        self.name = name
        self.identity = identity
        self.created = created
        self.warning = warning
    }

    /// Whether `directory` is writable by group or others, so that the default socket must not
    /// live directly in it. A directory that cannot be examined is taken as it is (binding there
    /// reports the problem).
    static func isShared(_ directory: String) -> Bool {
        var info = stat()
        guard stat(directory, &info) == 0 else { return false }
        return info.st_mode & (S_IWGRP | S_IWOTH) != 0
    }

    /// The usual name inside a shared directory: `serverd-UID`.
    static func usualName() -> String { "serverd-\(geteuid())" }

    /// Uses or creates `serverd-UID` in `directory`, falling back to a fresh `mkdtemp` one.
    /// - Throws: ``DaemonError`` (71, or 77 for permission denied) naming the path.
    static func prepare(in directory: String) throws(DaemonError) -> PrivateRuntimeDirectory {
        let parent: DirectoryHandle
        do {
            parent = try DirectoryHandle(path: directory)
        } catch {
            throw DaemonError(.cannotServe(errno: error.errno), "default Unix socket directory: \(error)", errno: error.errno)
        }
        let name = usualName()
        let created = mkdirat(parent.fileDescriptor, name, 0o700) == 0
        if !created && errno != EEXIST {
            throw failure("mkdir", parent.pathOf(name))
        }
        switch examine(parent, name, created: created) {
        case .success(let identity):
            return PrivateRuntimeDirectory(parent: parent, name: name, identity: identity, created: created, warning: nil)
        case .failure(let problem):
            if created { throw problem }
            var template = Array("\(parent.pathOf(name)).XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else { throw failure("mkdtemp", parent.pathOf(name) + ".XXXXXX") }
            let fresh = DirectoryHandle.split(String(cString: made)).name
            let identity = try examine(parent, fresh, created: true).get()
            let warning = "\(problem.message); the default Unix socket goes to \(parent.pathOf(fresh)) instead"
            return PrivateRuntimeDirectory(parent: parent, name: fresh, identity: identity, created: true, warning: warning)
        }
    }

    /// Opens `name` without following a symlink and checks that it is a directory of serverd's
    /// uid with mode 0700 (setting that mode first on one serverd just created, whatever the umask).
    private static func examine(_ parent: DirectoryHandle, _ name: String, created: Bool) -> Result<FileIdentity, DaemonError> {
        let path = parent.pathOf(name)
        let fd = openat(parent.fileDescriptor, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            let what = code == ELOOP || code == ENOTDIR ? "is not a directory (a symlink or a file)" : "cannot be opened: \(String(cString: strerror(code)))"
            return .failure(DaemonError(.noPermission, "default Unix socket directory \(path) \(what)", errno: code))
        }
        defer { close(fd) }
        if created { fchmod(fd, 0o700) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return .failure(failure("fstat", path)) }
        guard info.st_uid == geteuid(), info.st_mode & 0o7777 == 0o700 else {
            let mode = String(info.st_mode & 0o7777, radix: 8)
            return .failure(DaemonError(
                .noPermission, "default Unix socket directory \(path) is not private (owner uid \(info.st_uid), mode 0\(mode); wanted uid \(geteuid()), 0700)",
                errno: EPERM))
        }
        return .success(FileIdentity(info))
    }

    private static func failure(_ call: String, _ path: String) -> DaemonError {
        let code = errno
        return DaemonError(.cannotServe(errno: code), "default Unix socket directory \(path): \(call): \(String(cString: strerror(code)))", errno: code)
    }

    /// Removes the directory if serverd created it, it is still the same one, and it is empty.
    /// - Throws: ``SocketError`` for `unlinkat` (ENOTEMPTY, or EPERM after `--user`).
    func removeIfCreated() throws(SocketError) {
        guard created else { return }
        try parent.remove(name, ifStill: identity)
    }
}
