#!/usr/bin/python3
"""A wait-mode program for the serverd tests (stdlib only): serves the socket serverd hands it on
descriptor 3, as an inetd `wait` service or a systemd `Accept=no` service would.

    wait_program.py dgram|stream|forever [--idle SECONDS] [--ignore-term]

dgram    answers each datagram on fd 3 with a report, until no datagram came for --idle seconds
stream   accepts connections on fd 3; reads one line from each, answers with a report line and
         closes it; exits once no connection came for --idle seconds
forever  holds the socket and never exits by itself (--ignore-term: not even on SIGTERM)

A report is one JSON object: the program's pid, LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES and PROTO
(None when unset), its open descriptors, whether 0 and 1 are the very socket of 3, whether 3 was
blocking when the program started, and the payload it answers.
"""

import fcntl
import json
import os
import signal
import socket
import sys
import time


# Python's socket timeouts make descriptor 3 non-blocking: what serverd passed is read first.
BLOCKING_AT_START = not (fcntl.fcntl(3, fcntl.F_GETFL) & os.O_NONBLOCK)


def report(payload, connection=None):
    fds = sorted(int(name) for name in os.listdir("/proc/self/fd"))
    # listdir's own descriptor is closed again by now; only what stays open counts, and not the
    # connection the program accepted itself.
    fds = [fd for fd in fds if fd_is_open(fd) and fd != connection]
    same = [os.fstat(fd).st_ino == os.fstat(3).st_ino and os.fstat(fd).st_dev == os.fstat(3).st_dev for fd in (0, 1)]
    return json.dumps({
        "pid": os.getpid(),
        "listen_pid": os.environ.get("LISTEN_PID"),
        "listen_fds": os.environ.get("LISTEN_FDS"),
        "listen_fdnames": os.environ.get("LISTEN_FDNAMES"),
        "proto": os.environ.get("PROTO"),
        "fds": fds,
        "stdio_is_socket": all(same),
        "blocking": BLOCKING_AT_START,
        "payload": payload,
    })


def fd_is_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def main():
    mode = sys.argv[1]
    idle = 1.0
    if "--idle" in sys.argv:
        idle = float(sys.argv[sys.argv.index("--idle") + 1])
    if mode == "forever":
        if "--ignore-term" in sys.argv:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("holding the socket", file=sys.stderr, flush=True)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            time.sleep(1)
        return
    kind = socket.SOCK_DGRAM if mode == "dgram" else socket.SOCK_STREAM
    with socket.socket(fileno=3) as sock:
        assert sock.type == kind, sock.type
        sock.settimeout(idle)
        print("serving", file=sys.stderr, flush=True)
        while True:
            try:
                if mode == "dgram":
                    data, peer = sock.recvfrom(65536)
                    sock.sendto(report(data.decode(errors="replace")).encode(), peer)
                else:
                    conn, _ = sock.accept()
                    with conn:
                        conn.settimeout(5)
                        line = conn.makefile("rb").readline()
                        conn.sendall(report(line.decode(errors="replace").rstrip("\n"), conn.fileno()).encode() + b"\n")
            except socket.timeout:
                return


if __name__ == "__main__":
    main()
