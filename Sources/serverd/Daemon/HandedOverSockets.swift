import FamilyServer
import Glibc
import Logging
import Synchronization

/// The listening sockets the serverd before this one bound itself and passed down at a binary upgrade (SIGUSR2),
/// each under the name of its listener's identity (``ListenerIdentity/handOverName``), with the locked `PATH.lock` of
/// a Unix socket file. A listener that the configuration still declares takes its socket (and the socket file with
/// its lock) before anything is bound, so the address is never free nor the path missing; the rest are closed once
/// the listeners are open, and their socket files removed when this process stops.
final class HandedOverSockets: Sendable {
    /// The fd name prefix of serverd's own listeners (names begin with it, systemd's never should).
    static let namePrefix = "serverd+"

    private struct Held {
        var sockets: [InheritedSocket]
        var lockDescriptors: [Int32: Int32]
        /// Socket files of passed sockets that no listener took, removed at stop.
        var leftoverFiles: [UnixSocketFile] = []
    }

    private let held: Mutex<Held>
    /// The name of every socket passed down, taken or not.
    private let passedNames: Set<String>

    init(_ sockets: [InheritedSocket], lockDescriptors: [Int32: Int32] = [:]) {
        held = Mutex(Held(sockets: sockets, lockDescriptors: lockDescriptors))
        passedNames = Set(sockets.map(\.name))
    }

    /// Whether nothing was passed down.
    var isEmpty: Bool { held.withLock { $0.sockets.isEmpty } }

    /// Takes the socket passed under `name`, with its lock file's descriptor for a Unix socket file.
    func take(_ name: String) -> (socket: InheritedSocket, lockDescriptor: Int32?)? {
        held.withLock { held in
            guard let index = held.sockets.firstIndex(where: { $0.name == name }) else { return nil }
            let socket = held.sockets.remove(at: index)
            return (socket, held.lockDescriptors.removeValue(forKey: socket.fileDescriptor))
        }
    }

    /// Whether a socket was passed under `name` (and so an `fd:N` of that name is the old process's descriptor
    /// number, not this one's).
    func passed(_ name: String) -> Bool { passedNames.contains(name) }

    /// Closes the passed sockets no listener took. Their socket files stay until this process stops
    /// (``removeLeftoverFiles(logger:)``): the old process may still have been serving them a moment ago.
    /// - Returns: The names of the sockets closed (to be removed from systemd's fd store).
    @discardableResult
    func closeUnclaimed(logger: Logger) -> [String] {
        let (sockets, locks) = held.withLock { held in
            defer {
                held.sockets = []
                held.lockDescriptors = [:]
            }
            return (held.sockets, held.lockDescriptors)
        }
        var files: [UnixSocketFile] = []
        for passed in sockets {
            logger.notice("closing \(passed.localAddress) (passed down, no longer declared)")
            if let path = passed.localAddress.path {
                let lock = locks[passed.fileDescriptor]
                do {
                    files.append(try UnixSocketFile.adopt(passed.socket, path: path, lockDescriptor: lock))
                } catch {
                    if let lock { close(lock) }
                    logger.warning("\(path): the socket file passed down is left alone: \(error)")
                }
            }
            passed.socket.close()
        }
        held.withLock { $0.leftoverFiles += files }
        return sockets.map(\.name)
    }

    /// Removes the socket files of passed sockets no listener took (at any stop, a hand-over included: no socket
    /// serves them any more).
    func removeLeftoverFiles(logger: Logger) {
        let files = held.withLock { held in
            defer { held.leftoverFiles = [] }
            return held.leftoverFiles
        }
        for file in files {
            do {
                try file.remove()
            } catch {
                logger.warning("\(file.path): cannot remove the socket file: \(error)")
            }
        }
    }
}
