import CShims
import Glibc

/// Why the sockets systemd passed (socket activation, `LISTEN_FDS`) could not be adopted.
///
/// Every case names what is at fault — the environment variable and its value, or the descriptor
/// and its `LISTEN_FDNAMES` entry — so that a daemon can print ``description`` as its one line
/// of error and exit. ``errno`` gives the value for an `ERRNO=` notification.
public enum SocketActivationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `LISTEN_PID` is set but is not a process ID.
    case invalidListenPID(String)
    /// `LISTEN_FDS` is not a positive number.
    case invalidListenFDs(String)
    /// `LISTEN_FDNAMES` has a different number of `:`-separated names than `LISTEN_FDS` says.
    case nameCountMismatch(names: Int, descriptors: Int, value: String)
    /// A descriptor in 3 … 3+LISTEN_FDS−1 is not open.
    case notOpen(fd: Int32, name: String)
    /// A descriptor is open but is not a socket (a file, a pipe, …).
    case notASocket(fd: Int32, name: String)
    /// A socket of a type FamilyServer does not serve (neither stream nor datagram, e.g. SEQPACKET).
    case unsupportedSocketType(fd: Int32, name: String, type: Int32)
    /// A system call on a descriptor failed for another reason.
    case descriptorFailed(fd: Int32, name: String, SocketError)
    /// `sd_listen_fds_with_names` failed in a way none of the cases above explains.
    case systemdFailed(SocketError)

    /// The errno that best describes the failure: the failing call's own, EBADF for a closed
    /// descriptor, ENOTSOCK for a non-socket, EINVAL for malformed variables.
    public var errno: Int32 {
        switch self {
        case .invalidListenPID, .invalidListenFDs, .nameCountMismatch: return EINVAL
        case .notOpen: return EBADF
        case .notASocket: return ENOTSOCK
        case .unsupportedSocketType: return ESOCKTNOSUPPORT
        case .descriptorFailed(_, _, let error), .systemdFailed(let error): return error.errno
        }
    }

    /// The inherited descriptor at fault, if the error concerns one.
    public var fileDescriptor: Int32? {
        switch self {
        case .notOpen(let fd, _), .notASocket(let fd, _), .unsupportedSocketType(let fd, _, _),
            .descriptorFailed(let fd, _, _):
            return fd
        case .invalidListenPID, .invalidListenFDs, .nameCountMismatch, .systemdFailed:
            return nil
        }
    }

    /// One line naming the variable or descriptor at fault, e.g.
    /// `fd 4: not a socket (LISTEN_FDNAMES entry 'x')`.
    public var description: String {
        switch self {
        case .invalidListenPID(let value):
            return "LISTEN_PID is not a process ID: '\(value)'"
        case .invalidListenFDs(let value):
            return "LISTEN_FDS is not a positive number: '\(value)'"
        case .nameCountMismatch(let names, let descriptors, let value):
            let nameWord = names == 1 ? "name" : "names"
            let fdWord = descriptors == 1 ? "descriptor" : "descriptors"
            return "LISTEN_FDNAMES has \(names) \(nameWord) for \(descriptors) \(fdWord) (LISTEN_FDNAMES='\(value)')"
        case .notOpen(let fd, let name):
            return "fd \(fd): not open (LISTEN_FDNAMES entry '\(name)')"
        case .notASocket(let fd, let name):
            return "fd \(fd): not a socket (LISTEN_FDNAMES entry '\(name)')"
        case .unsupportedSocketType(let fd, let name, let type):
            return "fd \(fd): \(Self.typeName(type)) sockets are not supported, only stream and datagram (LISTEN_FDNAMES entry '\(name)')"
        case .descriptorFailed(let fd, let name, let error):
            return "fd \(fd): \(error.syscall): \(error.reason) (errno \(error.errno)) (LISTEN_FDNAMES entry '\(name)')"
        case .systemdFailed(let error):
            return "socket activation: \(error)"
        }
    }

    private static func typeName(_ type: Int32) -> String {
        switch type {
        case cshims_sock_seqpacket: return "SOCK_SEQPACKET"
        case cshims_sock_raw: return "SOCK_RAW"
        case cshims_sock_rdm: return "SOCK_RDM"
        default: return "type \(type)"
        }
    }
}
