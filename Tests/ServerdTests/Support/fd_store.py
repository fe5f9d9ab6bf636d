#!/usr/bin/python3
"""A service manager's fd store, as systemd keeps it, for the serverd tests (stdlib only).

    fd_store.py --log=PATH --starts=N -- PROGRAM ARGS...

Binds a notify socket (NOTIFY_SOCKET, a path beside the log), starts PROGRAM with it and starts
it again each time it exits, N starts in all (Restart=always, without a delay). Every start gets
the descriptors stored so far as LISTEN_FDS/LISTEN_FDNAMES, on 3, 4, ..., with LISTEN_PID its own
pid. Notifications are handled as systemd does: FDSTORE=1 with FDNAME= stores the descriptors that
came with the message (SCM_RIGHTS) under that name, a descriptor already stored (same device and
inode) is not stored twice; FDSTOREREMOVE=1 with FDNAME= drops every descriptor of that name.

The log gets one line per event, flushed at once:
    start N PID NAME,NAME,...     a start and the names passed to it
    ready PID                     READY=1
    store NAME                    a descriptor stored
    remove NAME                   FDSTOREREMOVE=1
    exit PID STATUS               the program exited (STATUS: exit code, or -SIGNAL)
The manager exits 0 after the last start's program exited.
"""

import array
import os
import select
import socket
import sys


def log(handle, line):
    handle.write(line + "\n")
    handle.flush()


def receive(notify, store, handle):
    data, ancillary, _, _ = notify.recvmsg(4096, socket.CMSG_SPACE(64 * 4))
    fds = []
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            received = array.array("i")
            received.frombytes(payload[: len(payload) - (len(payload) % 4)])
            fds.extend(received)
    fields = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
    name = fields.get("FDNAME", "stored")
    if fields.get("FDSTORE") == "1":
        for fd in fds:
            identity = (os.fstat(fd).st_dev, os.fstat(fd).st_ino)
            if any(identity == (os.fstat(kept).st_dev, os.fstat(kept).st_ino) for _, kept in store):
                os.close(fd)
                continue
            os.set_inheritable(fd, False)
            store.append((name, fd))
            log(handle, "store " + name)
        return None
    for fd in fds:
        os.close(fd)
    if fields.get("FDSTOREREMOVE") == "1":
        for entry in [entry for entry in store if entry[0] == name]:
            store.remove(entry)
            os.close(entry[1])
        log(handle, "remove " + name)
    if fields.get("READY") == "1":
        return "ready"
    return None


def start(program, store, notify_path):
    pid = os.fork()
    if pid != 0:
        return pid
    # Every stored descriptor out of the way first, then on 3, 4, ... (inheritable).
    high = [os.dup(fd) for _, fd in store]
    for i, fd in enumerate(high):
        os.dup2(fd, 3 + i, inheritable=True)
    env = dict(os.environ)
    env["NOTIFY_SOCKET"] = notify_path
    for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        env.pop(key, None)
    if store:
        env["LISTEN_PID"] = str(os.getpid())
        env["LISTEN_FDS"] = str(len(store))
        env["LISTEN_FDNAMES"] = ":".join(name for name, _ in store)
    os.closerange(3 + len(store), 1024)
    os.execve(program[0], program, env)


def main(argv):
    split = argv.index("--")
    options = dict(word[2:].split("=", 1) for word in argv[:split])
    program = argv[split + 1:]
    handle = open(options["log"], "a")
    notify_path = options["log"] + ".notify"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    store = []
    for number in range(1, int(options["starts"]) + 1):
        pid = start(program, store, notify_path)
        log(handle, "start %d %d %s" % (number, pid, ",".join(name for name, _ in store)))
        while True:
            readable, _, _ = select.select([notify], [], [], 0.05)
            if readable and receive(notify, store, handle) == "ready":
                log(handle, "ready %d" % pid)
            done, status = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                while select.select([notify], [], [], 0)[0]:
                    receive(notify, store, handle)
                code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
                log(handle, "exit %d %d" % (pid, code))
                break
    os.unlink(notify_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
