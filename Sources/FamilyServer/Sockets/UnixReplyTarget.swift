import CShims
import Glibc

/// The socket a reply to a Unix datagram may go to: the very socket that sent the request, or
/// none.
///
/// A reply sent with `sendto(path)` resolves the path again at send time, so a sender can swap
/// its bound path for a symlink to another socket (journald's, a notify socket, any root
/// service's) between its request and the reply, and a daemon running as root would then deliver
/// bytes there with root's credentials. ``resolve(sender:credentials:from:)`` therefore checks, with
/// the credentials the kernel attached to the request (SO_PASSCRED):
///
/// - a filesystem sender: the path is walked from `/`, or for a relative path from the sender's
///   working directory (`/proc/PID/cwd`, the PID from the credentials), one component at a time with
///   `O_PATH|O_NOFOLLOW`, and a symlink is followed only where the sender could not have placed
///   it: only a symlink owned by root in a directory that only root may write to (`/var/run` →
///   `/run`); the last component is a socket, not a symlink, owned by the sender's uid. The reply
///   then goes through `/proc/self/fd/N` of that very inode (spelt `/proc/PID/fd/N`, see
///   `OwnDescriptorPath`), so nothing can be swapped after the check. A sender seen before is
///   known by its absolute path (`SenderSocketFiles`): while the path still leads to the socket
///   file verified then, and that file is still a socket of the sender's uid, the reply goes to it
///   without a new walk.
/// - an abstract sender: the name is still held by a datagram socket of the sender's uid (asked
///   of the kernel through NETLINK_SOCK_DIAG). Where the kernel cannot be asked — a sandbox
///   without netlink sockets, or a socket inherited from another network namespace (systemd's
///   `PrivateNetwork=`) — the reply is sent only by a process without root's uid, whose reply
///   carries no more authority than the sender's own datagrams; as root it is dropped.
///
/// The rules hold for a root sender too: its request names a socket, not a licence to reach
/// whatever its path resolves to later. A sender that changed its uid after binding gets no reply.
///
/// A datagram without credentials was queued before the server asked for them (a socket-activated
/// server adopts a socket whose first datagrams were sent before it started; a socket unit with
/// `PassCredentials=yes` avoids it). Its sender is checked on structure alone: an absolute path
/// under the symlink rules whose last component is a socket, or an abstract name some socket
/// still holds; the owner cannot be compared.
public final class UnixReplyTarget {
    /// Where to send the reply: `/proc/self/fd/N` for a filesystem sender, the name itself for an
    /// abstract one.
    public let address: SocketAddress
    /// The sender's socket file, held open until the reply is sent.
    private let pinned: SenderSocketFile?

    private init(address: SocketAddress, pinned: SenderSocketFile?) {
        self.address = address
        self.pinned = pinned
    }

    /// Checks that a reply to `sender` reaches the socket that sent the request.
    /// - Parameters:
    ///   - sender: The request's source address (a Unix path or abstract name).
    ///   - credentials: The SCM_CREDENTIALS that came with the request.
    ///   - socket: The socket the reply will be sent from.
    /// - Throws: ``ReplyRefusal`` saying why the reply must be dropped.
    public static func resolve(
        sender: SocketAddress, credentials: PeerCredentials?, from socket: Socket
    ) throws(ReplyRefusal) -> UnixReplyTarget {
        try resolve(sender: sender, credentials: credentials, from: socket, batch: nil)
    }

    /// Where a reply to a datagram from `sender` goes: an inet sender's address; for a Unix sender, the checked socket
    /// it sent from (the returned target, to keep until the reply was sent, see
    /// ``resolve(sender:credentials:from:batch:)``); `nil` for an unnamed sender, which cannot be answered.
    /// - Throws: ``ReplyRefusal`` saying why a reply to a Unix sender must be dropped.
    static func destination(
        ofReplyTo sender: SocketAddress, credentials: PeerCredentials?, from socket: Socket, batch: DatagramReplyBatch?
    ) throws(ReplyRefusal) -> (address: SocketAddress, target: UnixReplyTarget?)? {
        switch sender.endpoint {
        case .unnamed:
            return nil
        case .inet:
            return (sender, nil)
        case .unixPath, .unixAbstract:
            let target = try resolve(sender: sender, credentials: credentials, from: socket, batch: batch)
            return (target.address, target)
        }
    }

    /// ``resolve(sender:credentials:from:)`` for a reply that waits in `batch`: a sender checked
    /// for an earlier reply of the same batch, with the same uid, is not checked again — an
    /// abstract name the kernel showed held by that uid, a socket file found still at its path
    /// (the batch is sent within microseconds, the window the check and the `sendto` of a single
    /// reply leave open as well; see SECURITY.md). The sender answered last takes its target as it
    /// is, without a lookup: a client with several datagrams outstanding sends most of a batch.
    static func resolve(
        sender: SocketAddress, credentials: PeerCredentials?, from socket: Socket, batch: DatagramReplyBatch?
    ) throws(ReplyRefusal) -> UnixReplyTarget {
        guard let batch, let uid = credentials?.uid, namesOneSocketForEveryProcess(sender) else {
            return try resolveAnew(sender: sender, credentials: credentials, from: socket)
        }
        let key = DatagramReplyBatch.CheckedSender(sender: sender, uid: uid)
        if let last = batch.lastCheckedUnixSender, last.sender == key { return last.target }
        let target: UnixReplyTarget
        if let checked = batch.checkedUnixSenders[key] {
            target = checked
        } else {
            target = try resolveAnew(sender: sender, credentials: credentials, from: socket)
            batch.checkedUnixSenders[key] = target
        }
        batch.lastCheckedUnixSender = (key, target)
        return target
    }

    /// Whether `sender` names the same socket for every process (of one uid) that sends from it: an absolute path or
    /// an abstract name does, a relative path depends on the sender's working directory.
    private static func namesOneSocketForEveryProcess(_ sender: SocketAddress) -> Bool {
        switch sender.endpoint {
        case .unixPath(let path): path.hasPrefix("/")
        case .unixAbstract: true
        case .inet, .unnamed: false
        }
    }

    /// ``resolve(sender:credentials:from:)`` without the batch's earlier verdicts.
    private static func resolveAnew(
        sender: SocketAddress, credentials: PeerCredentials?, from socket: Socket
    ) throws(ReplyRefusal) -> UnixReplyTarget {
        switch sender.endpoint {
        case .unixPath(let path):
            // A sender seen before is known by its absolute path; a relative one depends on its working directory.
            let known = path.hasPrefix("/") ? credentials.flatMap { SenderSocketFiles.lookup(path, uid: $0.uid) } : nil
            let file: SenderSocketFile
            if let known {
                file = known
            } else {
                file = SenderSocketFile(descriptor: try openSenderSocket(path, credentials: credentials))
                if path.hasPrefix("/") && credentials != nil { SenderSocketFiles.remember(file, for: path) }
            }
            let target = SocketAddress(sender.transport, .unixPath(OwnDescriptorPath.of(file.descriptor)))
            return UnixReplyTarget(address: target, pinned: file)
        case .unixAbstract(let name):
            try checkAbstractOwner(name, transport: sender.transport, credentials: credentials, via: socket)
            return UnixReplyTarget(address: sender, pinned: nil)
        case .inet, .unnamed:
            throw ReplyRefusal("\(sender) is not a Unix socket name")
        }
    }

    /// Lets go of what the checks keep between replies (sender socket files, the sock_diag
    /// socket) once unused for `seconds`: a server calls it from its service actions, so that no
    /// descriptor outlives a burst of replies for long.
    public static func releaseIdle(after seconds: Double = 2) {
        SenderSocketFiles.releaseIdle(after: seconds)
        cshims_unix_diag_close_idle(seconds)
    }

    // MARK: - Filesystem senders

    /// Walks `path` and returns an `O_PATH` descriptor of the sender's socket file.
    private static func openSenderSocket(_ path: String, credentials: PeerCredentials?) throws(ReplyRefusal) -> Int32 {
        let components = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard let last = components.last, last != ".", last != ".." else {
            throw ReplyRefusal("'\(path)' does not name a socket file")
        }
        // A relative path was bound relative to the sender's working directory, not ours.
        let start: String
        if path.hasPrefix("/") {
            start = "/"
        } else if let credentials {
            start = "/proc/\(credentials.pid)/cwd"
        } else {
            throw ReplyRefusal("'\(path)' is relative and the datagram carries no credentials to find the sender's directory")
        }
        var directory = try openPath(AT_FDCWD, start, flags: O_DIRECTORY, path: path)
        defer { close(directory) }
        for component in components.dropLast() {
            let next = try openPath(directory, component, flags: O_NOFOLLOW, path: path)
            var info = stat()
            fstat(next, &info)
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                close(directory)
                directory = next
            case S_IFLNK:
                defer { close(next) }
                var parent = stat()
                fstat(directory, &parent)
                guard onlyRootControls(directory: parent, link: info) else {
                    throw ReplyRefusal("'\(path)': '\(component)' is a symlink that someone other than root could have placed")
                }
                let followed = try openPath(directory, component, flags: O_DIRECTORY, path: path)
                close(directory)
                directory = followed
            default:
                close(next)
                throw ReplyRefusal("'\(path)': '\(component)' is not a directory")
            }
        }
        let socketFile = try openPath(directory, last, flags: O_NOFOLLOW, path: path)
        var info = stat()
        fstat(socketFile, &info)
        let type = info.st_mode & S_IFMT
        guard type == S_IFSOCK else {
            close(socketFile)
            throw ReplyRefusal("'\(path)' is \(type == S_IFLNK ? "a symlink" : "not a socket") now")
        }
        if let credentials, info.st_uid != credentials.uid {
            close(socketFile)
            throw ReplyRefusal("'\(path)' belongs to uid \(info.st_uid), not to the sender (uid \(credentials.uid))")
        }
        return socketFile
    }

    /// Whether only root can have placed `link`: root owns it and the directory holding it, and
    /// nobody else may write to that directory (a group or others write bit counts even with the
    /// sticky bit, which lets others add entries of their own).
    private static func onlyRootControls(directory: stat, link: stat) -> Bool {
        link.st_uid == 0 && directory.st_uid == 0 && directory.st_mode & (S_IWGRP | S_IWOTH) == 0
    }

    /// `openat(directory, name, O_PATH | O_CLOEXEC | flags)`.
    private static func openPath(_ directory: Int32, _ name: String, flags: Int32, path: String) throws(ReplyRefusal) -> Int32 {
        let fd = openat(directory, name, cshims_o_path | O_CLOEXEC | flags)
        guard fd >= 0 else {
            let code = errno
            throw ReplyRefusal("'\(path)': openat('\(name)'): \(String(cString: strerror(code)))", errno: code)
        }
        return fd
    }

    // MARK: - Abstract senders

    /// The inode of the socket that last held each abstract name: asking the kernel for that one
    /// socket is one exact request, where finding a name's holder means listing every Unix socket.
    /// A hint only (a stale one costs the full listing); bounded, forgotten wholesale when full.
    private static let abstractHolders = ConditionLock<[[UInt8]: UInt32]>([:])

    private static func checkAbstractOwner(
        _ name: [UInt8], transport: SocketAddress.Transport, credentials: PeerCredentials?, via socket: Socket
    ) throws(ReplyRefusal) {
        var owner: UInt32 = 0
        var inode = abstractHolders.withLock { $0[name] ?? 0 }
        let found = name.withUnsafeBufferPointer { bytes in
            cshims_unix_abstract_owner(socket.fileDescriptor, bytes.baseAddress, bytes.count, transport.socketType, &owner, &inode)
        }
        if found == 0 {
            abstractHolders.withLock { holders in
                if holders.count >= 1024 && holders[name] == nil { holders.removeAll(keepingCapacity: true) }
                holders[name] = inode
            }
        }
        let shown = String(decoding: name, as: UTF8.self)
        guard found == 0 else {
            let code = errno
            switch code {
            case ENOENT:
                throw ReplyRefusal("no socket holds the abstract name @\(shown) any more", errno: code)
            case EXDEV, EAFNOSUPPORT, EPERM, EACCES, EOPNOTSUPP:
                // Unverifiable here; a reply without root's uid is no better than the sender's own datagrams.
                guard geteuid() == 0 else { return }
                throw ReplyRefusal("cannot tell who holds @\(shown) (\(String(cString: strerror(code)))), and serverd runs as root", errno: code)
            default:
                throw ReplyRefusal("cannot tell who holds @\(shown): sock_diag: \(String(cString: strerror(code)))", errno: code)
            }
        }
        if let credentials, owner != credentials.uid {
            throw ReplyRefusal("@\(shown) is held by uid \(owner) now, not by the sender (uid \(credentials.uid))")
        }
    }
}

/// Why a reply was dropped instead of sent: it could have reached another socket than the one
/// that sent the request.
public struct ReplyRefusal: Error, CustomStringConvertible, Sendable {
    /// What the check found.
    public let reason: String
    /// The errno of a failed call behind the refusal, if any.
    public let errno: Int32?

    /// Creates a refusal.
    public init(_ reason: String, errno: Int32? = nil) {
        self.reason = reason
        self.errno = errno
    }

    /// `reply dropped: ` and the reason.
    public var description: String { "reply dropped: \(reason)" }
}
