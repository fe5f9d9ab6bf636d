"""Clients: addresses, connections, checked stamp and echo exchanges, and the well-behaved
prober that keeps checking, during a fault, that everyone else is still served correctly."""
import re
import socket
import struct
import threading
import time

from .harness import FIGURES, STAMP_REPLY, Failure, check, wait_until

# ---------------------------------------------------------------------------------------------
# Addresses and clients

def parse_address(text):
    """(family, socket type, sockaddr) for serverd's textual address."""
    match = re.match(r"^(tcp|udp)://(\[([^\]]+)\]|([^:]+)):(\d+)$", text)
    if match:
        kind = socket.SOCK_STREAM if match.group(1) == "tcp" else socket.SOCK_DGRAM
        if match.group(3) is not None:
            return socket.AF_INET6, kind, (match.group(3), int(match.group(5)))
        return socket.AF_INET, kind, (match.group(4), int(match.group(5)))
    for scheme, kind in (("unixgram:", socket.SOCK_DGRAM), ("unix:", socket.SOCK_STREAM)):
        if text.startswith(scheme):
            path = text[len(scheme):]
            return socket.AF_UNIX, kind, ("\0" + path[1:]) if path.startswith("@") else path
    raise ValueError("unknown address " + text)


def connect(address, timeout=10.0):
    family, kind, sockaddr = parse_address(address)
    sock = socket.socket(family, kind)
    sock.settimeout(timeout)
    try:
        sock.connect(sockaddr)
    except BaseException:
        sock.close()
        raise
    return sock


def receive_line(sock, limit=1 << 20):
    """One line, up to and including its LF, leaving whatever follows in the socket (MSG_PEEK)."""
    data = bytearray()
    while not data.endswith(b"\n"):
        peeked = sock.recv(65536, socket.MSG_PEEK)
        if not peeked:
            raise Failure("connection closed after %d bytes, expected a line" % len(data))
        end = peeked.find(b"\n")
        data += sock.recv(len(peeked) if end < 0 else end + 1)
        if len(data) > limit:
            raise Failure("reply line longer than %d bytes" % limit)
    return bytes(data)


def receive_exactly(sock, count):
    data = bytearray()
    while len(data) < count:
        chunk = sock.recv(min(65536, count - len(data)))
        if not chunk:
            raise Failure("connection closed after %d of %d bytes" % (len(data), count))
        data += chunk
    return bytes(data)


def receive_all(sock):
    data = bytearray()
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return bytes(data)
        data += chunk


def stamp_exchange(sock, payload):
    """Sends one line to a stamp connection and checks the reply."""
    sock.sendall(payload + b"\n")
    reply = receive_line(sock)
    check(STAMP_REPLY.match(reply) and reply.endswith(b"] " + payload + b"\n"),
          "stamp reply %r for %r" % (reply[:80], payload[:40]))


def echo_exchange(sock, payload):
    sock.sendall(payload)
    reply = receive_exactly(sock, len(payload))
    check(reply == payload, "echo returned different bytes")


def closed_by_peer(sock, timeout):
    """Whether the server ends the connection within `timeout` (EOF or reset), reading what comes."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return False


def abortive_close(sock):
    """Closes with an RST (SO_LINGER 0)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class Prober(threading.Thread):
    """Well-behaved clients: new connections doing checked stamp (and echo) exchanges, without
    pause, for as long as a fault lasts. Any failure or an exchange slower than `max_latency`
    fails the fault."""

    def __init__(self, stamp, echo=None, max_latency=5.0, pause=0.02):
        super().__init__(daemon=True)
        self.stamp = stamp
        self.echo = echo
        self.max_latency = max_latency
        self.pause = pause
        self.stopping = threading.Event()
        self.ok = 0
        self.errors = []
        self.worst = 0.0

    def run(self):
        number = 0
        while not self.stopping.is_set():
            number += 1
            started = time.monotonic()
            try:
                with connect(self.stamp, timeout=self.max_latency) as sock:
                    stamp_exchange(sock, b"probe %d" % number)
                if self.echo:
                    with connect(self.echo, timeout=self.max_latency) as sock:
                        echo_exchange(sock, b"probe\x00\xff %d\n" % number)
                self.ok += 1
            except Exception as error:  # noqa: BLE001 - every failure is a finding
                self.errors.append("%s: %s" % (type(error).__name__, error))
            self.worst = max(self.worst, time.monotonic() - started)
            self.stopping.wait(self.pause)

    def finish(self, minimum=3):
        # A fault over sooner than `minimum` probes (exec children start fast since the spawn rewrite) is
        # probed on until there are that many, for at most 10 s: the daemon must be seen serving.
        deadline = time.monotonic() + 10
        while self.ok < minimum and not self.errors and self.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        self.stopping.set()
        self.join(30)
        FIGURES.add("well-behaved exchanges during faults", self.ok)
        check(not self.errors, "well-behaved clients failed %d times, first: %s" % (len(self.errors), self.errors[:1]))
        check(self.ok >= minimum, "only %d well-behaved exchanges succeeded during the fault" % self.ok)
        return {"probe exchanges": self.ok, "probe worst latency s": round(self.worst, 3)}


def warm_up(daemon, stamp, count=20):
    """A few ordinary exchanges, so that lazily created state exists before a baseline is taken."""
    for i in range(count):
        with connect(stamp) as sock:
            stamp_exchange(sock, b"warm-up %d" % i)


def baseline_of(daemon, stamp):
    """Resources once a few exchanges are done and their workers are gone (a forked worker is
    reaped on the serve loop's next pass, up to half a second later)."""
    warm_up(daemon, stamp)
    wait_until(lambda: not daemon.children(), 5)
    time.sleep(0.2)
    return daemon.resources()


def push(sock, data, seconds):
    """Sends as much of `data` as the peer takes within `seconds`, never blocking; returns the count."""
    sock.setblocking(False)
    sent = 0
    deadline = time.monotonic() + seconds
    try:
        while sent < len(data) and time.monotonic() < deadline:
            try:
                sent += sock.send(data[sent:sent + 65536])
            except (BlockingIOError, InterruptedError):
                time.sleep(0.002)
    except (BrokenPipeError, ConnectionResetError):
        pass
    sock.setblocking(True)
    return sent


def refuses(address):
    try:
        with connect(address, timeout=1):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def server_side_inode(sock):
    """The socket inode of the server's end of this IPv4 TCP client connection (/proc/net/tcp)."""
    def key(address):
        ip, port = address[:2]
        return "%08X:%04X" % (struct.unpack("<I", socket.inet_aton(ip))[0], port)
    local, remote = key(sock.getpeername()), key(sock.getsockname())
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[1] == local and fields[2] == remote:
                return int(fields[9])
    raise Failure("server end of %s not found in /proc/net/tcp" % (sock.getsockname(),))
