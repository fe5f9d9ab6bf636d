import CShims
import Glibc
import Synchronization

private let sysClose = Glibc.close
private let sysBind = Glibc.bind
private let sysListen = Glibc.listen
private let sysConnect = Glibc.connect
private let sysShutdown = Glibc.shutdown

/// An owning socket descriptor: created close-on-exec, closed exactly once, every failure a
/// ``SocketError`` that names the call and the errno.
///
/// Reads and writes retry on EINTR; ``sendAll(_:)-(UnsafeRawBufferPointer)`` finishes partial writes. Closing is atomic, so
/// ``close()`` from one thread while another is blocked in a call on the socket is safe (the blocked
/// call then fails with EBADF or returns as the kernel decides).
public final class Socket: Sendable, CustomStringConvertible {
    private let descriptor: Atomic<Int32>
    /// The address family: `AF_INET`, `AF_INET6` or `AF_UNIX`.
    public let family: Int32
    /// Stream or datagram.
    public let transport: SocketAddress.Transport

    /// Creates a new socket (close-on-exec).
    /// - Throws: ``SocketError`` for `socket`.
    public init(family: Int32, transport: SocketAddress.Transport) throws(SocketError) {
        let type = transport.socketType | Int32(SOCK_CLOEXEC.rawValue)
        let fd = try syscall("socket") { Glibc.socket(family, type, 0) }
        self.descriptor = Atomic(fd)
        self.family = family
        self.transport = transport
    }

    /// Takes ownership of an open socket descriptor (inherited or passed in), reading its family and
    /// type from the kernel and setting close-on-exec.
    /// - Throws: ``SocketError`` when `fd` is closed (EBADF) or not a socket (ENOTSOCK), or its
    ///   type is neither stream nor datagram (ESOCKTNOSUPPORT).
    public init(adopting fd: Int32) throws(SocketError) {
        let subject = "fd \(fd)"
        let family = try Socket.intOption(fd, SOL_SOCKET, SO_DOMAIN, subject: subject)
        let type = try Socket.intOption(fd, SOL_SOCKET, SO_TYPE, subject: subject)
        switch type {
        case Int32(SOCK_STREAM.rawValue): transport = .stream
        case Int32(SOCK_DGRAM.rawValue): transport = .datagram
        default: throw SocketError("getsockopt(SO_TYPE)", errno: ESOCKTNOSUPPORT, subject: subject)
        }
        _ = try syscall("fcntl(F_SETFD)", subject: subject) { fcntl(fd, F_SETFD, FD_CLOEXEC) }
        self.descriptor = Atomic(fd)
        self.family = family
    }

    /// Wraps a descriptor this process just created (e.g. by `accept4`), already close-on-exec.
    init(owning fd: Int32, family: Int32, transport: SocketAddress.Transport) {
        self.descriptor = Atomic(fd)
        self.family = family
        self.transport = transport
    }

    deinit { close() }

    /// The descriptor, or -1 once closed.
    public var fileDescriptor: Int32 { descriptor.load(ordering: .acquiring) }

    /// Whether ``close()`` has been called.
    public var isClosed: Bool { fileDescriptor < 0 }

    /// `fd N`, the descriptor, for messages (`fd -1` once closed).
    public var description: String { "fd \(fileDescriptor)" }

    /// Closes the descriptor; later calls do nothing.
    public func close() {
        let fd = descriptor.exchange(-1, ordering: .acquiringAndReleasing)
        if fd >= 0 { _ = sysClose(fd) }
    }

    /// Gives up ownership: returns the descriptor and leaves this socket closed without closing it.
    public func takeDescriptor() -> Int32 {
        descriptor.exchange(-1, ordering: .acquiringAndReleasing)
    }

    // MARK: - Setup

    /// Binds to `address`. The corresponding C function is `bind`.
    /// - Throws: ``SocketError``; for a Unix path or name of more than 107 bytes ENAMETOOLONG, for
    ///   a path with a NUL byte EINVAL, before any system call.
    public func bind(to address: SocketAddress) throws(SocketError) {
        try Socket.checkUnixName(address, call: "bind")
        let fd = fileDescriptor
        _ = try address.withSockAddr { (sa, len) throws(SocketError) in
            try syscall("bind", subject: address.description) { sysBind(fd, sa, len) }
        }
    }

    /// Marks a stream socket as accepting connections. The corresponding C function is `listen`.
    public func listen(backlog: Int32) throws(SocketError) {
        let fd = fileDescriptor
        _ = try syscall("listen", subject: description) { sysListen(fd, backlog) }
    }

    /// Connects to `address`. The corresponding C function is `connect`.
    public func connect(to address: SocketAddress) throws(SocketError) {
        try Socket.checkUnixName(address, call: "connect")
        let fd = fileDescriptor
        _ = try address.withSockAddr { (sa, len) throws(SocketError) in
            try syscall("connect", subject: address.description) { sysConnect(fd, sa, len) }
        }
    }

    /// Accepts one connection, close-on-exec, in blocking mode whatever the listener's mode.
    /// - Returns: the connection and the peer's address, or `nil` when none is pending on a
    ///   non-blocking listener.
    public func accept() throws(SocketError) -> (Socket, SocketAddress)? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let fd = fileDescriptor
        let accepted = try withUnsafeMutablePointer(to: &storage) { (pointer) throws(SocketError) -> Int32? in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { (sa) throws(SocketError) -> Int32? in
                try nonBlockingSyscall("accept4", subject: description) {
                    cshims_accept4(fd, sa, &length, Int32(SOCK_CLOEXEC.rawValue))
                }
            }
        }
        guard let accepted else { return nil }
        let peer = SocketAddress(storage: storage, length: length, transport: transport)
            ?? SocketAddress(transport, .unnamed)
        return (Socket(owning: accepted, family: family, transport: transport), peer)
    }

    /// Refuses a Unix address that a `sockaddr_un` cannot hold as given: a path or abstract name
    /// of more than 107 bytes (ENAMETOOLONG, "too long") or a path with a NUL byte, which the
    /// kernel would read cut at the NUL (EINVAL). The parser refuses both; this catches an address
    /// built from its parts, which would otherwise trap in the sockaddr encoder or bind a
    /// truncated name.
    static func checkUnixName(_ address: SocketAddress, call: String) throws(SocketError) {
        let bytes: Int
        let what: String
        switch address.endpoint {
        case .unixPath(let path):
            guard !path.utf8.contains(0) else {
                throw SocketError(call, errno: EINVAL, subject: "\(address) (the path contains a NUL byte)")
            }
            bytes = path.utf8.count
            what = "path"
        case .unixAbstract(let name):
            bytes = name.count
            what = "abstract name"
        case .inet, .unnamed:
            return
        }
        guard bytes <= SocketAddress.maxUnixPathBytes else {
            throw SocketError(call, errno: ENAMETOOLONG, subject:
                "\(address) (\(what) too long: \(bytes) bytes, at most \(SocketAddress.maxUnixPathBytes) fit in a Unix socket address)")
        }
    }

    /// Shuts down one or both directions (`SHUT_RD`, `SHUT_WR`, `SHUT_RDWR`).
    public func shutdown(_ how: Int32) throws(SocketError) {
        let fd = fileDescriptor
        _ = try syscall("shutdown", subject: description) { sysShutdown(fd, how) }
    }

    // MARK: - Data

    /// Receives up to `buffer.count` bytes. Returns 0 at end of stream.
    /// - Throws: ``SocketError``; a receive timeout shows as EAGAIN.
    public func receive(into buffer: UnsafeMutableRawBufferPointer) throws(SocketError) -> Int {
        let fd = fileDescriptor
        return try syscall("recv", subject: description) { Glibc.recv(fd, buffer.baseAddress, buffer.count, 0) }
    }

    /// Sends as much of `bytes` as the kernel takes at once; returns the count sent.
    public func send(_ bytes: UnsafeRawBufferPointer) throws(SocketError) -> Int {
        let fd = fileDescriptor
        return try syscall("send", subject: description) {
            Glibc.send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
        }
    }

    /// Sends all of `bytes`, continuing after partial writes and EINTR.
    /// - Throws: ``SocketError``; a peer that left shows as EPIPE or ECONNRESET, never SIGPIPE.
    public func sendAll(_ bytes: UnsafeRawBufferPointer) throws(SocketError) {
        var offset = 0
        while offset < bytes.count {
            offset += try send(UnsafeRawBufferPointer(rebasing: bytes[offset...]))
        }
    }

    /// Sends all of `bytes`.
    public func sendAll(_ bytes: [UInt8]) throws(SocketError) {
        try bytes.withUnsafeBytes { raw in Result { () throws(SocketError) in try sendAll(raw) } }.get()
    }

    /// Receives one datagram of at most `maxSize` bytes with its sender's address.
    /// - Returns: `nil` when none is pending on a non-blocking socket.
    public func receiveDatagram(maxSize: Int) throws(SocketError) -> (bytes: [UInt8], sender: SocketAddress)? {
        guard let (bytes, sender, _) = try receiveDatagramWithCredentials(maxSize: maxSize) else { return nil }
        return (bytes, sender)
    }

    /// Receives one datagram together with the sender's SCM_CREDENTIALS, which arrive once
    /// ``enablePassCredentials()`` was called on a Unix datagram socket.
    /// - Returns: `nil` when none is pending on a non-blocking socket.
    public func receiveDatagramWithCredentials(maxSize: Int) throws(SocketError)
        -> (bytes: [UInt8], sender: SocketAddress, credentials: PeerCredentials?)?
    {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        var cred = cshims_peercred()
        var hasCred: Int32 = 0
        var failure: SocketError?
        var wouldBlock = false
        let fd = fileDescriptor
        let subject = description
        // Uninitialised capacity: zeroing a 64 KiB buffer per datagram was a sixth of UDP echo's CPU.
        let bytes = [UInt8](unsafeUninitializedCapacity: maxSize) { buffer, initialized in
            let received = withUnsafeMutablePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                    Result { () throws(SocketError) -> Int? in
                        try nonBlockingSyscall("recvmsg", subject: subject) {
                            cshims_recv_with_cred(fd, buffer.baseAddress, buffer.count, Int32(MSG_TRUNC), sa, &length, &cred, &hasCred)
                        }
                    }
                }
            }
            switch received {
            case .success(let count?): initialized = min(count, maxSize)
            case .success(nil): wouldBlock = true; initialized = 0
            case .failure(let error): failure = error; initialized = 0
            }
        }
        if let failure { throw failure }
        if wouldBlock { return nil }
        let sender = SocketAddress(storage: storage, length: length, transport: transport)
            ?? SocketAddress(transport, .unnamed)
        let credentials = hasCred != 0 ? PeerCredentials(pid: cred.pid, uid: cred.uid, gid: cred.gid) : nil
        return (bytes, sender, credentials)
    }

    /// Sends one datagram to `address`.
    public func sendDatagram(_ bytes: [UInt8], to address: SocketAddress) throws(SocketError) {
        try Socket.checkUnixName(address, call: "sendto")
        let fd = fileDescriptor
        _ = try bytes.withUnsafeBytes { raw in
            Result { () throws(SocketError) -> Int in
                try address.withSockAddr { (sa, len) throws(SocketError) -> Int in
                    try syscall("sendto", subject: address.description) {
                        Glibc.sendto(fd, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL), sa, len)
                    }
                }
            }
        }.get()
    }

    // MARK: - Options and names

    /// Sets an integer socket option. The corresponding C function is `setsockopt`.
    public func setOption(level: Int32, name: Int32, value: Int32, label: String) throws(SocketError) {
        var value = value
        let fd = fileDescriptor
        _ = try syscall("setsockopt(\(label))", subject: description) {
            setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    /// Reads an integer socket option. The corresponding C function is `getsockopt`.
    public func intOption(level: Int32, name: Int32) throws(SocketError) -> Int32 {
        try Socket.intOption(fileDescriptor, level, name, subject: description)
    }

    private static func intOption(_ fd: Int32, _ level: Int32, _ name: Int32, subject: String) throws(SocketError) -> Int32 {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        _ = try syscall("getsockopt", subject: subject) { getsockopt(fd, level, name, &value, &length) }
        return value
    }

    /// Whether this is a listening stream socket (SO_ACCEPTCONN).
    public var isListening: Bool {
        ((try? intOption(level: SOL_SOCKET, name: SO_ACCEPTCONN)) ?? 0) != 0
    }

    /// Sets how long a blocking receive and send may wait before failing with EAGAIN; `nil` waits forever.
    public func setTimeouts(receive: Double?, send: Double?) throws(SocketError) {
        try setTimeout(SO_RCVTIMEO, receive, label: "SO_RCVTIMEO")
        try setTimeout(SO_SNDTIMEO, send, label: "SO_SNDTIMEO")
    }

    /// Sets the receive timeout (SO_RCVTIMEO) alone; `nil` or 0 waits forever.
    public func setReceiveTimeout(_ seconds: Double?) throws(SocketError) {
        try setTimeout(SO_RCVTIMEO, seconds, label: "SO_RCVTIMEO")
    }

    private func setTimeout(_ option: Int32, _ seconds: Double?, label: String) throws(SocketError) {
        let seconds = max(0, seconds ?? 0)
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - seconds.rounded(.down)) * 1_000_000))
        if tv.tv_sec == 0 && tv.tv_usec == 0 && seconds > 0 { tv.tv_usec = 1 }
        let fd = fileDescriptor
        _ = try syscall("setsockopt(\(label))", subject: description) {
            setsockopt(fd, SOL_SOCKET, option, &tv, socklen_t(MemoryLayout<timeval>.size))
        }
    }

    /// Switches O_NONBLOCK on or off.
    public func setNonBlocking(_ on: Bool) throws(SocketError) {
        let fd = fileDescriptor
        let flags = try syscall("fcntl(F_GETFL)", subject: description) { fcntl(fd, F_GETFL) }
        let wanted = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK
        if wanted != flags {
            _ = try syscall("fcntl(F_SETFL)", subject: description) { fcntl(fd, F_SETFL, wanted) }
        }
    }

    /// Asks the kernel to attach SCM_CREDENTIALS to every datagram received (SO_PASSCRED).
    public func enablePassCredentials() throws(SocketError) {
        try setOption(level: SOL_SOCKET, name: SO_PASSCRED, value: 1, label: "SO_PASSCRED")
    }

    /// The address this socket is bound to. The corresponding C function is `getsockname`.
    public func localAddress() throws(SocketError) -> SocketAddress {
        try name("getsockname", Glibc.getsockname)
    }

    /// The address of the connected peer. The corresponding C function is `getpeername`.
    public func peerAddress() throws(SocketError) -> SocketAddress {
        try name("getpeername", Glibc.getpeername)
    }

    private func name(
        _ call: String, _ function: (Int32, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> Int32
    ) throws(SocketError) -> SocketAddress {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let fd = fileDescriptor
        _ = try withUnsafeMutablePointer(to: &storage) { (pointer) throws(SocketError) -> Int32 in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { (sa) throws(SocketError) -> Int32 in
                try syscall(call, subject: description) { function(fd, sa, &length) }
            }
        }
        return SocketAddress(storage: storage, length: length, transport: transport) ?? SocketAddress(transport, .unnamed)
    }

    /// The credentials of the process at the other end of a connected Unix stream socket (SO_PEERCRED).
    public func peerCredentials() throws(SocketError) -> PeerCredentials {
        var cred = cshims_peercred()
        let fd = fileDescriptor
        _ = try syscall("getsockopt(SO_PEERCRED)", subject: description) { cshims_getpeercred(fd, &cred) }
        return PeerCredentials(pid: cred.pid, uid: cred.uid, gid: cred.gid)
    }
}
