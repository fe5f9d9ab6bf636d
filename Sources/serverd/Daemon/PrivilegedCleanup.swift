import CShims
import FamilyServer
import Glibc

/// The helper that removes, at exit, the files a `--user` daemon created while it was root: its
/// Unix socket files with their lock files, its pidfile, its private runtime directory. Once
/// privileges are dropped the daemon can no longer unlink them in directories only root may write.
///
/// Forked just before `Privileges.drop`, while no serve thread runs yet, the helper keeps root,
/// closes every other descriptor (it holds no socket and no lock), keeps only the directory
/// descriptors of exactly the files created so far, ignores the stop signals, and blocks reading
/// a pipe. When the pipe ends (the daemon exits, or crashes) or a byte arrives (the daemon's
/// clean exit), it removes each file only if its name still stands for the same inode, and a
/// socket or lock file only after taking that lock itself (so never the files of another instance
/// that took over the path), then exits. Its list is fixed at fork time: a compromised daemon
/// cannot make it remove anything else.
final class PrivilegedCleanup {
    private let pid: pid_t
    private var pipe: Int32

    /// What is to be removed, in order: sockets (and their lock files) before the pidfile,
    /// directories last (each only if empty by then).
    struct Entries {
        fileprivate var entries: [cshims_cleanup_entry] = []
        fileprivate var names: [UnsafeMutablePointer<CChar>] = []

        /// A socket file and its lock file (`flock`).
        mutating func add(_ file: UnixSocketFile) {
            entries.append(cshims_cleanup_entry(
                lock_kind: CSHIMS_CLEANUP_FLOCK, lock: describe(file.directory, file.lockName, file.lockIdentity),
                has_guarded: 1, guarded: describe(file.directory, file.name, file.identity)))
        }

        /// The pidfile, locked with `fcntl`.
        mutating func addPidfile(in directory: DirectoryHandle, name: String, identity: FileIdentity) {
            entries.append(cshims_cleanup_entry(
                lock_kind: CSHIMS_CLEANUP_POSIX_LOCK, lock: describe(directory, name, identity),
                has_guarded: 0, guarded: cshims_cleanup_file()))
        }

        /// A directory, removed if empty.
        mutating func addDirectory(in directory: DirectoryHandle, name: String, identity: FileIdentity) {
            entries.append(cshims_cleanup_entry(
                lock_kind: CSHIMS_CLEANUP_NO_LOCK, lock: cshims_cleanup_file(),
                has_guarded: 1, guarded: describe(directory, name, identity)))
        }

        var isEmpty: Bool { entries.isEmpty }

        private mutating func describe(_ directory: DirectoryHandle, _ name: String, _ identity: FileIdentity) -> cshims_cleanup_file {
            let copy = strdup(name)!
            names.append(copy)
            return cshims_cleanup_file(
                directory: directory.fileDescriptor, name: copy, device: dev_t(identity.device),
                inode: ino_t(identity.inode), type: identity.type)
        }

        fileprivate func free() {
            for name in names { Glibc.free(name) }
        }
    }

    private init(pid: pid_t, pipe: Int32) {
        self.pid = pid
        self.pipe = pipe
    }

    /// Forks the helper for `entries`.
    /// - Throws: ``DaemonError`` (71) for `pipe2` or `fork`.
    static func start(_ entries: Entries) throws(DaemonError) -> PrivilegedCleanup {
        defer { entries.free() }
        var pipe: Int32 = -1
        let pid = entries.entries.withUnsafeBufferPointer { cshims_cleanup_start($0.baseAddress, Int32($0.count), &pipe) }
        guard pid > 0 else {
            let code = errno
            throw DaemonError(.osError, "--user: cannot start the privileged cleanup helper: fork: \(String(cString: strerror(code)))", errno: code)
        }
        return PrivilegedCleanup(pid: pid, pipe: pipe)
    }

    /// Lets the helper remove what is left and waits for it, so that the files are gone when
    /// serverd has exited. Call once the daemon has released its locks (closed its listeners and
    /// its pidfile). Later calls do nothing.
    func finish() {
        guard pipe >= 0 else { return }
        var byte: UInt8 = 1
        _ = write(pipe, &byte, 1)
        close(pipe)
        pipe = -1
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }
}
