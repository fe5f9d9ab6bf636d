import FamilyServer
import Glibc

/// `--pidfile`: opened and locked when serverd starts (before it binds anything, and before
/// `--user` drops privileges), written through the held descriptor once serverd is ready, removed
/// at exit. A pidfile that a live process holds makes serverd refuse to start, naming that process.
///
/// The file is opened relative to a descriptor of its directory with `O_NOFOLLOW` and without
/// `O_TRUNC`: a symlink at the path (a local user's, in a directory it can write) is refused, never
/// followed, and nothing is truncated or written before the lock is held. Only a plain file with
/// one link, owned by serverd's uid, is taken. At exit it is removed only while its name still
/// stands for the file serverd holds (device and inode, no path that can be a symlink).
final class Pidfile {
    /// The path as configured.
    let path: String
    private let name: String
    private var directory: DirectoryHandle?
    private var descriptor: Int32 = -1
    /// The file held, once ``acquire()`` succeeded.
    private(set) var identity: FileIdentity?

    init(path: String) {
        self.path = path
        name = DirectoryHandle.split(path).name
    }

    /// The directory holding the pidfile, while it is held.
    var heldDirectory: DirectoryHandle? { descriptor >= 0 ? directory : nil }
    /// The pidfile's name in ``heldDirectory``.
    var fileName: String { name }

    /// Opens or creates the pidfile (mode 0644) and takes its lock (`fcntl` F_SETLK), writing nothing.
    /// - Throws: ``DaemonError``: 69 if a live process holds it (its lock, or its pid in the file);
    ///   77 for a symlink, a file that is not a plain one or that another uid owns; 71 or 77 when a
    ///   call fails.
    func acquire() throws(DaemonError) {
        let directory: DirectoryHandle
        do {
            directory = try DirectoryHandle(path: DirectoryHandle.split(path).directory)
        } catch {
            throw DaemonError(.cannotServe(errno: error.errno), "--pidfile \(path): \(error)", errno: error.errno)
        }
        for _ in 0..<100 {
            let fd = try open(in: directory)
            var info = stat()
            fstat(fd, &info)
            guard info.st_mode & S_IFMT == S_IFREG, info.st_nlink == 1, info.st_uid == geteuid() else {
                close(fd)
                throw DaemonError(.noPermission, "--pidfile \(path): not a plain file with one link owned by uid \(geteuid()) (owner \(info.st_uid), \(info.st_nlink) links); left alone", errno: EPERM)
            }
            var lock = flock()
            lock.l_type = Int16(F_WRLCK)
            lock.l_whence = Int16(SEEK_SET)
            if fcntl(fd, F_SETLK, &lock) != 0 {
                let code = errno
                var holder = flock()
                holder.l_type = Int16(F_WRLCK)
                holder.l_whence = Int16(SEEK_SET)
                let pid = fcntl(fd, F_GETLK, &holder) == 0 && holder.l_type != Int16(F_UNLCK) ? holder.l_pid : Self.pid(in: fd)
                close(fd)
                guard code == EAGAIN || code == EACCES else {
                    throw DaemonError(.osError, "--pidfile \(path): fcntl(F_SETLK): \(String(cString: strerror(code)))", errno: code)
                }
                throw DaemonError(.unavailable, "--pidfile \(path): held by running process \(pid.map(String.init) ?? "(unknown pid)")", errno: EEXIST)
            }
            // A holder that removed the file between our open and our lock: take the new one.
            guard directory.names(name, FileIdentity(info)) else {
                close(fd)
                continue
            }
            if let pid = Self.pid(in: fd), pid > 0, pid != getpid(), kill(pid, 0) == 0 || errno == EPERM {
                close(fd)
                throw DaemonError(.unavailable, "--pidfile \(path): held by running process \(pid)", errno: EEXIST)
            }
            self.directory = directory
            descriptor = fd
            identity = FileIdentity(info)
            return
        }
        throw DaemonError(.osError, "--pidfile \(path): replaced again and again while being locked", errno: EAGAIN)
    }

    private func open(in directory: DirectoryHandle) throws(DaemonError) -> Int32 {
        let flags = O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK
        let fd = openat(directory.fileDescriptor, name, flags, 0o644)
        guard fd < 0 else { return fd }
        let code = errno
        if code == ELOOP {
            throw DaemonError(.noPermission, "--pidfile \(path): open: a symbolic link; not followed, left alone", errno: code)
        }
        throw DaemonError(.cannotServe(errno: code), "--pidfile \(path): open: \(String(cString: strerror(code)))", errno: code)
    }

    /// The pid written in the open pidfile `fd`, if any.
    private static func pid(in fd: Int32) -> pid_t? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        return pid_t(String(decoding: buffer.prefix(max(0, count)), as: UTF8.self).trimmingWhitespace())
    }

    /// Writes `pid` (ours, or at a binary upgrade the new process's) through the held descriptor: once serverd is
    /// ready, possibly after privileges were dropped. The digits are written over the old content first
    /// (`pwrite`), then the file is cut to their length (`ftruncate`): a reader never finds it empty.
    func writePID(_ pid: pid_t = getpid()) throws(DaemonError) {
        guard descriptor >= 0 else { return }
        let text = Array("\(pid)\n".utf8)
        let fd = descriptor
        let written = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        guard written == text.count else { throw failure("pwrite") }
        guard ftruncate(descriptor, off_t(text.count)) == 0 else { throw failure("ftruncate") }
    }

    /// Whether the pidfile is held.
    var isHeld: Bool { descriptor >= 0 }

    private func failure(_ call: String) -> DaemonError {
        let code = errno
        return DaemonError(.osError, "--pidfile \(path): \(call): \(String(cString: strerror(code)))", errno: code)
    }

    /// Removes the pidfile if its name still stands for the file held, then unlocks and closes it.
    /// Does nothing unless ``acquire()`` succeeded.
    /// - Throws: ``SocketError`` for `unlinkat` (EACCES once `--user` dropped privileges in a
    ///   directory only root may write: the privileged cleanup helper removes it then).
    func remove() throws(SocketError) {
        guard descriptor >= 0, let directory, let identity else { return }
        defer {
            close(descriptor)
            descriptor = -1
            directory.close()
        }
        try directory.remove(name, ifStill: identity)
    }

    /// Unlocks and closes the pidfile without removing it: after a binary upgrade it names the new process, which
    /// takes it over.
    func relinquish() {
        guard descriptor >= 0 else { return }
        close(descriptor)
        descriptor = -1
        directory?.close()
    }
}

extension String {
    /// The string without leading and trailing spaces, tabs and newlines.
    func trimmingWhitespace() -> String {
        let bytes = Array(utf8)
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }
        guard let first = bytes.firstIndex(where: { !isSpace($0) }), let last = bytes.lastIndex(where: { !isSpace($0) })
        else { return "" }
        return String(decoding: bytes[first...last], as: UTF8.self)
    }
}
