import CShims
import Glibc

/// What the forking model's worker processes need beyond the library's `ForkingModel`, which
/// closes only the listener that forked the worker: a daemon has several.
enum ForkedWorker {
    /// Call in a forked worker only: closes every listening socket it inherited from the daemon (listening
    /// stream sockets and unconnected datagram sockets), never removing a socket file. Without
    /// this a worker keeps every listener of the daemon open, so that after a stop, or a reload
    /// that removed a listener, the port still takes connections that nobody will serve.
    /// The connection the worker serves, a connected stream socket, is left alone.
    static func closeInheritedListeners() {
        for fd in OpenDescriptors.aboveStandardStreams() ?? [] where isListener(fd) {
            close(fd)
        }
    }

    private static func isListener(_ fd: Int32) -> Bool {
        switch OpenDescriptors.socketType(fd) {
        case Int32(SOCK_STREAM.rawValue), cshims_sock_seqpacket:
            return OpenDescriptors.isListening(fd)
        case Int32(SOCK_DGRAM.rawValue):
            // A datagram listener is bound and unconnected; a connected one (syslog's) is kept.
            var storage = sockaddr_storage()
            var size = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let peer = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &size) }
            }
            return peer != 0 && errno == ENOTCONN
        default:
            return false
        }
    }

    /// From the daemon, when a drain is cut short: ends a worker and the programs it runs (an exec
    /// child holds the connection too, so killing the worker alone would leave it open). The
    /// worker is stopped first so that it cannot start another child while its children are
    /// listed; the SIGTERM it then gets takes effect when it continues.
    static func terminate(_ worker: pid_t) {
        guard kill(worker, SIGSTOP) == 0 else { return }
        for child in children(of: worker) {
            kill(child, SIGTERM)
            kill(child, SIGCONT)
        }
        kill(worker, SIGTERM)
        kill(worker, SIGCONT)
    }

    /// The children of every thread of `pid` (reliable while it is stopped).
    private static func children(of pid: pid_t) -> [pid_t] {
        var result: [pid_t] = []
        for task in ProcFiles.numericEntries(of: "/proc/\(pid)/task") ?? [] {
            guard let bytes = ProcFiles.read("/proc/\(pid)/task/\(task)/children") else { continue }
            result += String(decoding: bytes, as: UTF8.self).split(separator: " ").compactMap { pid_t($0) }
        }
        return result
    }
}
