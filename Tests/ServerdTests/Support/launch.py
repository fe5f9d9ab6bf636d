#!/usr/bin/python3
"""Socket-activation launcher for the serverd tests (stdlib only).

systemd-socket-activate rejects port 0 and execs only after a first connection; this launcher
binds its sockets at once (port 0 is fine), places them on descriptors 3, 4, ..., sets
LISTEN_PID (its own PID, which the exec keeps), LISTEN_FDS and LISTEN_FDNAMES, and execs the
program in place.

    launch.py [OPTIONS] NAME=SPEC ... -- PROGRAM ARGS...

SPEC is one of
    tcp:HOST          listening TCP socket on HOST, port 0 (HOST may be an IPv6 address)
    udp:HOST          UDP socket on HOST, port 0
    unix:PATH         listening Unix stream socket (PATH starting with @: abstract)
    unixgram:PATH     Unix datagram socket (@: abstract)
    seqpacket:PATH    listening Unix SOCK_SEQPACKET socket
    file:PATH         a regular file opened read-only (not a socket)
    closed            nothing: the descriptor is left closed
NAME goes into LISTEN_FDNAMES.

OPTIONS
    --report=PATH        before the exec, write one line per descriptor: `FD NAME ADDRESS`
                         with the bound address in serverd's canonical form (or `-`)
    --fds=VALUE          LISTEN_FDS verbatim instead of the number of specs
    --fdnames=VALUE      LISTEN_FDNAMES verbatim instead of the names joined with `:`
    --no-fdnames         leave LISTEN_FDNAMES unset
    --listen-pid=VALUE   LISTEN_PID verbatim instead of this process's PID
    --watchdog-pid-self  WATCHDOG_PID = this process's PID (serverd's, after the exec)
Without any NAME=SPEC (and no --fds), no LISTEN_* variable is set.

Pitfall (reference note, section 4): dup2(fd, fd) keeps close-on-exec set. Every socket is
first moved to a high descriptor, then placed on 3+i with inheritable=True.
"""

import os
import socket
import sys

HIGH_BASE = 200


def canonical(family, kind, address):
    if family == socket.AF_UNIX:
        scheme = "unix" if kind == socket.SOCK_STREAM else "unixgram"
        if kind == socket.SOCK_SEQPACKET:
            scheme = "seqpacket"
        if isinstance(address, bytes):
            if address.startswith(b"\0"):
                return scheme + ":@" + address[1:].decode()
            return scheme + ":" + address.decode()
        return scheme + ":" + address
    scheme = "tcp" if kind == socket.SOCK_STREAM else "udp"
    host, port = address[0], address[1]
    if family == socket.AF_INET6:
        host = "[" + host + "]"
    return "%s://%s:%d" % (scheme, host, port)


def unix_address(path):
    return "\0" + path[1:] if path.startswith("@") else path


def open_spec(spec):
    """Returns (descriptor or None, canonical address or '-')."""
    kind, _, rest = spec.partition(":")
    if kind == "closed":
        return None, "-"
    if kind == "file":
        return os.open(rest, os.O_RDONLY), "-"
    if kind in ("tcp", "udp"):
        family = socket.AF_INET6 if ":" in rest else socket.AF_INET
        stype = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
        s = socket.socket(family, stype)
        s.bind((rest, 0))
    elif kind in ("unix", "unixgram", "seqpacket"):
        stype = {"unix": socket.SOCK_STREAM, "unixgram": socket.SOCK_DGRAM,
                 "seqpacket": socket.SOCK_SEQPACKET}[kind]
        family = socket.AF_UNIX
        s = socket.socket(family, stype)
        s.bind(unix_address(rest))
    else:
        sys.exit("launch.py: unknown spec %r" % spec)
    if stype in (socket.SOCK_STREAM, socket.SOCK_SEQPACKET):
        s.listen(64)
    address = canonical(family, stype, s.getsockname())
    return s.detach(), address


def main(argv):
    if "--" not in argv:
        sys.exit("usage: launch.py [OPTIONS] NAME=SPEC ... -- PROGRAM ARGS...")
    split = argv.index("--")
    own, program = argv[:split], argv[split + 1:]
    options = {}
    specs = []
    for word in own:
        if word.startswith("--"):
            key, _, value = word[2:].partition("=")
            options[key] = value
        else:
            name, _, spec = word.partition("=")
            specs.append((name, spec))

    opened = [open_spec(spec) for _, spec in specs]
    # Move every descriptor out of the way first (to HIGH_BASE+i, close-on-exec) ...
    for i, (fd, _) in enumerate(opened):
        if fd is not None:
            os.dup2(fd, HIGH_BASE + i, inheritable=False)
            os.close(fd)
    # ... then place each on 3+i, inheritable; "closed" leaves 3+i closed.
    for i, (fd, _) in enumerate(opened):
        target = 3 + i
        if fd is None:
            try:
                os.close(target)
            except OSError:
                pass
            continue
        os.dup2(HIGH_BASE + i, target, inheritable=True)
        os.close(HIGH_BASE + i)

    env = dict(os.environ)
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        env.pop(name, None)
    if specs or "fds" in options:  # systemd never sets LISTEN_FDS=0 (sd_listen_fds rejects it)
        env["LISTEN_PID"] = options.get("listen-pid", str(os.getpid()))
        env["LISTEN_FDS"] = options.get("fds", str(len(specs)))
        if "no-fdnames" not in options:
            env["LISTEN_FDNAMES"] = options.get("fdnames", ":".join(name for name, _ in specs))
    if "watchdog-pid-self" in options:
        env["WATCHDOG_PID"] = str(os.getpid())

    if "report" in options:
        with open(options["report"] + ".tmp", "w") as report:
            for i, ((name, _), (_, address)) in enumerate(zip(specs, opened)):
                report.write("%d %s %s\n" % (3 + i, name, address))
        os.rename(options["report"] + ".tmp", options["report"])

    os.execve(program[0], program, env)


if __name__ == "__main__":
    main(sys.argv[1:])
