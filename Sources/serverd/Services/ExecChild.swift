import CShims
import FamilyServer
import Glibc

/// Why an exec child did not start.
enum ExecStartFailure: Error {
    /// A descriptor serverd needs (the stderr pipe) could not be made: the system call and errno.
    case descriptors(SocketError)
    /// The fork, the process group or the exec failed (the program is missing, …): errno.
    case program(Int32)
}

/// One exec child, from its start to its reaping: the leader of a process group of its own (in
/// ``ExecProcessGroups`` from before it runs the program), the read end of its stderr pipe, and
/// where the kernel has pidfd_open(2), a descriptor that becomes readable when it exits.
struct ExecChild: ~Copyable {
    /// How long a connection that was already accepted waits for descriptors (EMFILE, ENFILE)
    /// to start its program, before it is given up: a shortage that outlasts the burst of
    /// connections that caused it is not waited out.
    static let descriptorPatience = 5.0
    /// The most bytes read from stderr once the child has exited: what it wrote just before, but
    /// not a background process's endless output.
    static let drainLimit = 1 << 20

    let pid: pid_t
    private let standardError: Int32
    private let exitNotice: Int32
    private let groups: ExecProcessGroups

    private init(pid: pid_t, standardError: Int32, exitNotice: Int32, groups: ExecProcessGroups) {
        self.pid = pid
        self.standardError = standardError
        self.exitNotice = exitNotice
        self.groups = groups
    }

    /// Starts `program` with the connection on stdin and stdout. A shortage of descriptors is
    /// waited out for up to ``descriptorPatience`` seconds as long as ``DescriptorWaiters`` says
    /// that waiting can help, given `connectionsInFlight` (`waiting` is told when the wait begins):
    /// the connection is accepted already, and is not to be lost to a passing burst.
    static func start(
        _ program: [String], environment: [String], connection: Int32, groups: ExecProcessGroups,
        connectionsInFlight: () -> Int, waiting: (SocketError) -> Void
    ) throws(ExecStartFailure) -> ExecChild {
        guard let table = groups.table else { throw .descriptors(SocketError("mmap", errno: groups.creationErrno)) }
        let deadline = monotonicSeconds() + descriptorPatience
        var pause: useconds_t = 1_000
        var ticket: UInt64?
        defer { if let ticket { DescriptorWaiters.leave(ticket) } }
        while true {
            do {
                return try attempt(program, environment: environment, connection: connection, table: table, groups: groups)
            } catch {
                guard let shortage = shortage(error), monotonicSeconds() < deadline else { throw error }
                let waiter = ticket ?? DescriptorWaiters.join()
                ticket = waiter
                guard DescriptorWaiters.mayWait(waiter, connectionsInFlight: connectionsInFlight()) else { throw error }
                if pause == 1_000 { waiting(shortage) }
                usleep(pause)
                pause = min(pause * 2, 50_000)
            }
        }
    }

    /// The failure as a system call error if it is a shortage of descriptors (EMFILE, ENFILE).
    private static func shortage(_ failure: ExecStartFailure) -> SocketError? {
        let error: SocketError
        switch failure {
        case .descriptors(let failed): error = failed
        case .program(let code): error = SocketError("spawn", errno: code)
        }
        return error.errno == EMFILE || error.errno == ENFILE ? error : nil
    }

    private static func attempt(
        _ program: [String], environment: [String], connection: Int32, table: OpaquePointer, groups: ExecProcessGroups
    ) throws(ExecStartFailure) -> ExecChild {
        var errorPipe: [Int32] = [-1, -1]
        guard cshims_stderr_pipe(&errorPipe) == 0 else { throw .descriptors(SocketError("pipe", errno: errno)) }
        let (pid, spawnErrno) = withCStrings(program) { argv in
            withCStrings(environment) { envp in
                let pid = cshims_spawn(argv[0], argv, envp, connection, errorPipe[1], table)
                return (pid, cshims_errno())
            }
        }
        close(errorPipe[1])
        guard pid > 0 else {
            close(errorPipe[0])
            throw .program(spawnErrno)
        }
        // Without a pidfd (an old kernel, or no descriptor left) the relay looks with waitid.
        return ExecChild(pid: pid, standardError: errorPipe[0], exitNotice: cshims_pidfd_open(pid), groups: groups)
    }

    /// Feeds what the child writes to stderr through `relay` to `emit`, until stderr ends or the
    /// child has exited. Then only what is readable at once is taken: a background process that
    /// holds stderr open holds up neither the connection nor the daemon's stop.
    func relayStandardError(_ relay: inout StandardErrorRelay, emit: (StandardErrorRelay.Line) -> Void) {
        var chunk = [UInt8](repeating: 0, count: 65536)
        var descriptors = [pollfd(fd: standardError, events: Int16(POLLIN), revents: 0),
                           pollfd(fd: exitNotice, events: Int16(POLLIN), revents: 0)]
        while true {
            if poll(&descriptors, 2, exitNotice >= 0 ? -1 : 50) < 0 && errno != EINTR { break }
            if readOnce(&chunk, into: &relay, emit: emit) == 0 { break }
            let exited = exitNotice >= 0 ? descriptors[1].revents != 0 : cshims_child_has_exited(pid) != 0
            if exited {
                var taken = 0
                while taken < Self.drainLimit {
                    let got = readOnce(&chunk, into: &relay, emit: emit)
                    if got <= 0 { break }
                    taken += got
                }
                break
            }
        }
        relay.finish(emit: emit)
    }

    /// Reads stderr once without blocking: the byte count, 0 at its end (or on an error), -1 when
    /// nothing is there yet.
    private func readOnce(
        _ chunk: inout [UInt8], into relay: inout StandardErrorRelay, emit: (StandardErrorRelay.Line) -> Void
    ) -> Int {
        var got: Int
        repeat {
            got = chunk.withUnsafeMutableBytes { read(standardError, $0.baseAddress, $0.count) }
        } while got < 0 && errno == EINTR
        if got < 0 { return errno == EAGAIN || errno == EWOULDBLOCK ? -1 : 0 }
        if got > 0 {
            chunk.withUnsafeBytes { relay.append(UnsafeRawBufferPointer(rebasing: $0[0..<got]), emit: emit) }
        }
        return got
    }

    /// Closes the stderr pipe, reaps the child (waiting for it if it is still running) and
    /// forgets its group unless members live on; returns the wait status.
    consuming func wait() -> Int32 {
        close(standardError)
        if exitNotice >= 0 { close(exitNotice) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        groups.release(pid)
        return status
    }
}

/// Calls `body` with `strings` as a NULL-terminated C array.
private func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
    var pointers = strings.map { strdup($0) }
    pointers.append(nil)
    defer { pointers.forEach { free($0) } }
    return body(pointers)
}
