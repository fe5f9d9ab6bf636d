import FamilyServer
import Glibc
import Logging

/// The files serverd itself owns besides what each listener removes on close: the `--pidfile`,
/// the private runtime directory of the default Unix socket, and, with `--user`, the privileged
/// cleanup helper that removes at exit what the unprivileged daemon no longer can.
///
/// Lifecycle: ``acquire()`` first (before anything is bound), ``handOver(_:user:)`` right before
/// privileges are dropped, ``ready()`` once every listener serves, ``release()`` at exit or
/// after a failed start.
final class DaemonFiles {
    private let pidfile: Pidfile?
    private let implicitListeners: ImplicitListeners
    private var runtimeDirectory: PrivateRuntimeDirectory? { implicitListeners.privateDirectory }
    private let logger: Logger
    private var cleanup: PrivilegedCleanup?
    /// The pidfile is the old process's until it exits (a binary upgrade started this one).
    private var pidfilePending = false

    init(pidfile: String?, implicitListeners: ImplicitListeners, logger: Logger) {
        self.pidfile = pidfile.map(Pidfile.init(path:))
        self.implicitListeners = implicitListeners
        self.logger = logger
    }

    /// Takes the pidfile (refusing to start if a live process holds it) without writing it.
    func acquire() throws(DaemonError) {
        if let warning = runtimeDirectory?.warning { logger.warning("\(warning)") }
        try pidfile?.acquire()
    }

    /// With `--user`: starts the privileged cleanup helper for the files created so far (the
    /// listeners' socket files, the pidfile, the private runtime directory), and leaves the
    /// listeners' socket files to it should the unprivileged daemon fail to remove them.
    func handOver(_ listeners: [Listener], user: String?) throws(DaemonError) {
        guard user != nil else { return }
        var entries = PrivilegedCleanup.Entries()
        for listener in listeners where !listener.inherited {
            guard let file = listener.server.createdSocketFile else { continue }
            entries.add(file)
            listener.server.socketFileRemovalDelegated = true
        }
        if let pidfile, let directory = pidfile.heldDirectory, let identity = pidfile.identity {
            entries.addPidfile(in: directory, name: pidfile.fileName, identity: identity)
        }
        if let runtimeDirectory, runtimeDirectory.created {
            entries.addDirectory(in: runtimeDirectory.parent, name: runtimeDirectory.name, identity: runtimeDirectory.identity)
        }
        guard !entries.isEmpty else { return }
        cleanup = try PrivilegedCleanup.start(entries)
    }

    /// Writes the pid, now that serverd serves.
    func ready() throws(DaemonError) {
        try pidfile?.writePID()
    }

    /// A binary upgrade started this process: the old process holds the pidfile until it exits, having written this
    /// process's pid in it; ``takePidfileIfPending()`` takes it over then.
    func awaitPidfileFromPredecessor() {
        if let warning = runtimeDirectory?.warning { logger.warning("\(warning)") }
        pidfilePending = pidfile != nil
    }

    /// After a binary upgrade, once the old process let go of the pidfile: locks it (it names this process already).
    /// Called from the control loop; quiet while the old process still holds it.
    func takePidfileIfPending() {
        guard pidfilePending, let pidfile else { return }
        do {
            try pidfile.acquire()
            try pidfile.writePID()
            pidfilePending = false
        } catch where error.status == .unavailable {
            return
        } catch {
            pidfilePending = false
            logger.warning("after the binary upgrade: \(error.message)")
        }
    }

    /// A binary upgrade: writes the new process's pid in the pidfile, which this process still holds.
    func handOverPidfile(to pid: pid_t) throws(DaemonError) {
        try pidfile?.writePID(pid)
    }

    /// Removes the pidfile and the private runtime directory (listeners must be closed already),
    /// then lets the cleanup helper remove what this process could not, and waits for it.
    ///
    /// After a binary upgrade (`handedOver`) nothing is removed: the pidfile names the new process, which serves the
    /// socket files in the runtime directory; the pidfile is only unlocked.
    func release(handedOver: Bool = false) {
        guard !handedOver else {
            pidfile?.relinquish()
            cleanup?.finish()
            cleanup = nil
            return
        }
        // A stop soon after a binary upgrade: the old process may have let go of the pidfile since the last look.
        takePidfileIfPending()
        do {
            try pidfile?.remove()
        } catch {
            report(error, "the pidfile")
        }
        do {
            try runtimeDirectory?.removeIfCreated()
        } catch where error.errno != ENOTEMPTY {
            report(error, "the default Unix socket directory")
        } catch {}
        cleanup?.finish()
        cleanup = nil
    }

    /// Logs a failed removal, unless the privileged helper is there to do it.
    private func report(_ error: SocketError, _ what: String) {
        let expected = cleanup != nil && (error.errno == EACCES || error.errno == EPERM)
        logger.log(level: expected ? .debug : .warning, "cannot remove \(what): \(error)")
    }
}
