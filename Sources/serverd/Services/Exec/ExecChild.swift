import CShims
import FamilyServer
import Glibc

/// A program serverd started and has not reaped yet: the leader of a process group of its own (in ``ExecProcessGroups``
/// from before it runs the program), the read end of its stderr pipe, where the kernel has CLONE_PIDFD a descriptor
/// that becomes readable when it exits, and the spawn's record, which says once it has been reaped whether it ran the
/// program at all. The ``ExecSupervisor`` takes it from there: relays its stderr, reaps it, frees the record.
struct ExecChild: Sendable {
    /// The spawn's record (`cshims_spawn_record`), owned by the child until it has been reaped.
    struct Record: @unchecked Sendable {
        // @unchecked: the child writes it before it execs or exits; serverd reads it only once the child is reaped.
        let pointer: OpaquePointer
    }

    /// How long a connection that was already accepted waits for descriptors (EMFILE, ENFILE)
    /// to start its program, before it is given up: a shortage that outlasts the burst of
    /// connections that caused it is not waited out.
    static let descriptorPatience = 5.0

    let pid: pid_t
    /// The read end of the child's stderr pipe, non-blocking and close-on-exec.
    let standardError: Int32
    /// A pidfd of the child, -1 without one (the supervisor then looks with waitpid).
    let exitNotice: Int32
    /// What the child reports back.
    let record: Record

    /// Once reaped: 0 if the child ran the program, else the errno that stopped it (it then exited 127).
    var failure: Int32 { cshims_spawn_failure(record.pointer) }

    /// Once reaped: the slot of ``ExecProcessGroups`` that listed its process group, -1 if none.
    var groupSlot: Int32 { cshims_spawn_group_slot(record.pointer) }

    /// Started `detached`, once reaped: the pid of the grandchild that runs the program, `nil` if none was forked.
    var detachedPID: pid_t? {
        let pid = cshims_spawn_detached_pid(record.pointer)
        return pid > 0 ? pid : nil
    }

    /// Frees the record, once the child has been reaped and nothing reads it any more.
    func freeRecord() {
        cshims_spawn_record_free(record.pointer)
    }

    /// Starts `program` (searched in PATH) with `descriptors` as its descriptors 0, 1, 3, … and a pipe to serverd as
    /// descriptor 2 (`descriptors[2]` is ignored and replaced by it). Where `listenPIDSlot` is the index of a
    /// `LISTEN_PID=` entry among the child's own variables (counted from ``ChildEnvironment/ownStart``), the child
    /// writes its own pid there.
    ///
    /// A shortage of descriptors is waited out for up to ``descriptorPatience`` seconds as long as
    /// ``DescriptorWaiters`` says that waiting can help, given `connectionsInFlight` (`waiting` is told when the wait
    /// begins; `pause` is how the wait passes its time): the connection is accepted already, and is not to be lost to a
    /// passing burst.
    ///
    /// `detached`: the program runs in a grandchild outside ``ExecProcessGroups``, whose parent becomes the service
    /// manager (or the nearest subreaper) once this child exited, which it does as soon as the program runs
    /// (``detachedPID``; ``failure`` says why it did not).
    static func start(
        _ program: [String], environment: ChildEnvironment, descriptors: [Int32], identity: ExecIdentity,
        groups: ExecProcessGroups, listenPIDSlot: Int? = nil, detached: Bool = false, connectionsInFlight: () -> Int,
        waiting: (SocketError) -> Void, pause: (Double) -> Void
    ) throws(SocketError) -> ExecChild {
        guard let table = groups.table else { throw SocketError("mmap", errno: groups.creationErrno) }
        let deadline = MonotonicClock.seconds() + descriptorPatience
        var wait = 0.001
        var ticket: UInt64?
        defer { if let ticket { DescriptorWaiters.leave(ticket) } }
        while true {
            do {
                return try attempt(program, environment, descriptors, identity, table, listenPIDSlot, detached)
            } catch {
                let shortage = error.errno == EMFILE || error.errno == ENFILE
                guard shortage, MonotonicClock.seconds() < deadline else { throw error }
                let waiter = ticket ?? DescriptorWaiters.join()
                ticket = waiter
                guard DescriptorWaiters.mayWait(waiter, connectionsInFlight: connectionsInFlight()) else { throw error }
                if wait == 0.001 { waiting(error) }
                pause(wait)
                wait = min(wait * 2, 0.05)
            }
        }
    }

    private static func attempt(
        _ program: [String], _ environment: ChildEnvironment, _ descriptors: [Int32], _ identity: ExecIdentity,
        _ table: OpaquePointer, _ listenPIDSlot: Int?, _ detached: Bool
    ) throws(SocketError) -> ExecChild {
        var errorPipe: [Int32] = [-1, -1]
        guard cshims_stderr_pipe(&errorPipe) == 0 else { throw SocketError("pipe", errno: errno) }
        var given = descriptors
        while given.count < 3 { given.append(-1) }
        given[2] = errorPipe[1]
        var pidfd: Int32 = -1
        var pid: pid_t = -1
        let resources = identity.limits.map(\.resource)
        let values = identity.limits.map { CUnsignedLongLong($0.value) }
        let credentials = identity.credentials
        let groupList = credentials?.groups ?? []
        let root = identity.root.map { strdup($0) }
        let directory = identity.directory.map { strdup($0) }
        defer {
            free(root ?? nil)
            free(directory ?? nil)
        }
        let shared = environment.shared.pointers
        let pidSlot = listenPIDSlot.map { shared.count + environment.ownStart + $0 }
        let (record, spawnErrno) = CStringArray.with(program) { argv in
            CStringArray.with(environment.own, after: shared) { envp in
                given.withUnsafeBufferPointer { fds in
                    resources.withUnsafeBufferPointer { resources in
                        values.withUnsafeBufferPointer { values in
                            groupList.withUnsafeBufferPointer { groupList in
                                var request = cshims_spawn_request(
                                    file: argv[0], argv: argv, envp: envp,
                                    listen_pid_index: pidSlot.map { Int32($0) } ?? -1, descriptors: fds.baseAddress,
                                    count: Int32(fds.count), groups: table, limit_resources: resources.baseAddress,
                                    limit_values: values.baseAddress, limit_count: Int32(resources.count),
                                    root: root ?? nil, directory: directory ?? nil,
                                    set_ids: credentials == nil ? 0 : 1, set_uid: credentials?.uid == nil ? 0 : 1,
                                    uid: credentials?.uid ?? 0, gid: credentials?.gid ?? 0,
                                    groups_list: groupList.baseAddress, group_count: Int32(groupList.count),
                                    umask: identity.umask.map { Int32($0) } ?? -1, detach: detached ? 1 : 0)
                                let record = cshims_spawn(&request, &pid, &pidfd)
                                return (record, cshims_errno())
                            }
                        }
                    }
                }
            }
        }
        close(errorPipe[1])
        guard let record else {
            close(errorPipe[0])
            throw SocketError("clone", errno: spawnErrno)
        }
        return ExecChild(pid: pid, standardError: errorPipe[0], exitNotice: pidfd, record: Record(pointer: record))
    }
}

/// NULL-terminated C string arrays for execve, valid for the duration of a call.
private enum CStringArray {
    /// Calls `body` with `shared` then `strings` as one NULL-terminated array of C strings. Only the copies of
    /// `strings` are freed.
    static func with<R>(
        _ strings: [String], after shared: [UnsafeMutablePointer<CChar>] = [],
        _ body: (UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> R
    ) -> R {
        var pointers: [UnsafeMutablePointer<CChar>?] = []
        pointers.reserveCapacity(shared.count + strings.count + 1)
        for pointer in shared { pointers.append(pointer) }
        for string in strings {
            let bytes = string.utf8CString
            let memory = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count)
            bytes.withUnsafeBufferPointer { memory.update(from: $0.baseAddress!, count: $0.count) }
            pointers.append(memory)
        }
        pointers.append(nil)
        defer { pointers[shared.count...].forEach { $0?.deallocate() } }
        return pointers.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
    }
}
