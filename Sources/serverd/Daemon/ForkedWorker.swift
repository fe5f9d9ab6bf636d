import CShims
import Glibc

/// What the forking model's worker processes need beyond the library's `ForkingModel`, which
/// closes only the listener that forked the worker: a daemon has several.
enum ForkedWorker {
    /// Call in a forked worker only: closes every listening socket it inherited from the daemon (listening
    /// stream sockets and unconnected datagram sockets), never removing a socket file, and the
    /// ``ExecSupervisor``'s descriptors (exec children's stderr pipes and pidfds). Without
    /// this a worker keeps every listener of the daemon open, so that after a stop, or a reload
    /// that removed a listener, the port still takes connections that nobody will serve.
    /// The connection the worker serves, a connected stream socket, is left alone.
    static func closeInheritedListeners() {
        for fd in OpenDescriptors.aboveStandardStreams() ?? [] where isListener(fd) {
            close(fd)
        }
        ExecSupervisor.shared.closeInheritedDescriptors()
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
}
