#!/usr/bin/env python3
"""serverd fault suite (issue 7): faults, floods and hostile input against the real binary.

    python3 Stress/stress.py --serverd .build/debug/serverd            # the whole suite (make test-stress)
    python3 Stress/stress.py --serverd … --only 'churn|sighup'         # some faults (regex on the name)
    python3 Stress/stress.py --serverd … --list                        # the faults and their models

Every fault runs against a serverd this script starts (loopback and Unix sockets only, in a
temporary directory of its own), in each processing model where it applies, while well-behaved
clients keep checking that everyone else is still served correctly. After the fault the daemon
must still be alive and its descriptors, threads and children must come back to what they were
before (memory within a small allowance). Only processes this script started are ever signalled,
by PID: its serverd instances, their children (checked to be theirs), and its own helpers.

Counts and times are bounded; the whole suite takes about two to three minutes on two cores.
The output gives one line per fault and model, the figures (connections churned, faults
injected, …) and a last line "N passed, N failed" (known bugs that are reported and not fixed
show as XFAIL and fail only if they start passing). Python 3 standard library only.
"""
import argparse
import errno
import os
import random
import re
import resource
import select
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STAMP_REPLY = re.compile(rb"^\[[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d \d{4}\] ")
NOBODY = 65534
# Clients that run as nobody need an interpreter nobody can reach (pyenv's lives under /root).
NOBODY_PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
ALL_MODELS = ["threading", "forking", "serial"]


class Failure(Exception):
    """A fault's check failed."""


class Skip(Exception):
    """The fault cannot run here (e.g. not root)."""


def check(condition, message):
    if not condition:
        raise Failure(message)


def wait_until(predicate, timeout, interval=0.05):
    """Polls `predicate` until it returns a true value or `timeout` passes; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# Figures

class Figures:
    def __init__(self):
        self.lock = threading.Lock()
        self.values = {}

    def add(self, name, amount=1):
        with self.lock:
            self.values[name] = self.values.get(name, 0) + amount

    def set_max(self, name, value):
        with self.lock:
            self.values[name] = max(self.values.get(name, value), value)

    def get(self, name):
        return self.values.get(name, 0)


FIGURES = Figures()


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
        self.stopping.set()
        self.join(30)
        FIGURES.add("well-behaved exchanges during faults", self.ok)
        check(not self.errors, "well-behaved clients failed %d times, first: %s" % (len(self.errors), self.errors[:1]))
        check(self.ok >= minimum, "only %d well-behaved exchanges succeeded during the fault" % self.ok)
        return {"probe exchanges": self.ok, "probe worst latency s": round(self.worst, 3)}


# ---------------------------------------------------------------------------------------------
# The daemon under test

class Serverd:
    """One serverd started by this script. Logs go to a file in the fault's directory."""
    counter = 0

    def __init__(self, context, args, nofile=None, env=None, expect_listening=None, umask=None):
        Serverd.counter += 1
        self.context = context
        self.log_path = os.path.join(context.directory, "serverd-%d.log" % Serverd.counter)
        environment = {k: v for k, v in os.environ.items()
                       if not k.startswith(("LISTEN_", "WATCHDOG_")) and k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM")}
        environment["XDG_RUNTIME_DIR"] = context.directory
        environment.pop("RUNTIME_DIRECTORY", None)
        environment.update(env or {})

        def limit():
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
            if umask is not None:
                os.umask(umask)

        self.log_file = open(self.log_path, "wb")
        self.args = args
        self.process = subprocess.Popen(
            [context.binary] + args, stdin=subprocess.DEVNULL, stdout=self.log_file, stderr=self.log_file,
            cwd=context.directory, env=environment, preexec_fn=limit)
        context.started.append(self)
        self.listening = []
        if expect_listening:
            self.wait_listening(expect_listening)

    @property
    def pid(self):
        return self.process.pid

    def log(self):
        with open(self.log_path, "rb") as log:
            return log.read().decode("utf-8", "replace")

    def wait_listening(self, count, timeout=30):
        def found():
            lines = re.findall(r"listening on (\S+)", self.log())
            return lines if len(lines) >= count else None
        lines = wait_until(found, timeout)
        if not lines:
            raise Failure("serverd did not report %d listeners (exit %s); log:\n%s" % (
                count, self.process.poll(), self.log()[-3000:]))
        self.listening = lines
        return lines

    def address(self, service_prefix):
        """The address of the first `listening on` line whose SERVICE@ADDRESS starts with the prefix."""
        for line in self.listening:
            if line.startswith(service_prefix):
                return line.split("@", 1)[1]
        raise Failure("no listener %s in %s" % (service_prefix, self.listening))

    def alive(self):
        return self.process.poll() is None

    def require_alive(self):
        check(self.alive(), "serverd exited with status %s; log tail:\n%s" % (self.process.poll(), self.log()[-3000:]))

    def _proc(self, name):
        return "/proc/%d/%s" % (self.pid, name)

    def fds(self):
        return len(os.listdir(self._proc("fd")))

    def threads(self):
        return len(os.listdir(self._proc("task")))

    def children(self):
        pids = set()
        for task in os.listdir(self._proc("task")):
            try:
                with open(self._proc("task/%s/children" % task)) as f:
                    pids.update(int(p) for p in f.read().split())
            except OSError:
                pass
        return pids

    def rss_kb(self):
        with open(self._proc("status")) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def cpu_seconds(self):
        with open(self._proc("stat")) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def status_field(self, name):
        with open(self._proc("status")) as f:
            for line in f:
                if line.startswith(name + ":"):
                    return line.split(":", 1)[1].split()
        return []

    def resources(self):
        return {"fds": self.fds(), "threads": self.threads(), "children": len(self.children()), "rss_kb": self.rss_kb()}

    def signal(self, number):
        if self.alive():
            os.kill(self.pid, number)

    def kill_child(self, pid, number):
        """Signals one of this serverd's own children (checked by its parent PID)."""
        with open("/proc/%d/stat" % pid) as f:
            parent = int(f.read().rsplit(")", 1)[1].split()[1])
        check(parent == self.pid, "pid %d is not a child of serverd %d" % (pid, self.pid))
        os.kill(pid, number)

    def stop(self, timeout=30):
        """SIGTERM, then waits; returns the exit status."""
        self.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise Failure("serverd did not stop within %d s of SIGTERM" % timeout)

    def kill(self):
        if self.alive():
            self.process.kill()
            self.process.wait()
        self.log_file.close()

    def settle(self, baseline, timeout=20, rss_allowance_kb=None, what="after the fault", thread_slack=None):
        """Waits until descriptors, threads and children are back to `baseline`; checks memory.

        Threads: the threading model parks a finished worker for 10 s in case another request
        comes, so a full return to the baseline takes that long. Faults that check it exactly
        (churn, sighup, emfile) wait; the others pass `thread_slack` and accept that many parked
        threads above the baseline (their exit is what churn checks)."""
        slack = thread_slack or 0

        def back():
            now = self.resources()
            return now if (now["fds"] <= baseline["fds"] and now["threads"] <= baseline["threads"] + slack
                           and now["children"] <= baseline["children"]) else None
        settled = wait_until(back, timeout, 0.1)
        now = self.resources()
        check(settled, "%s, resources did not come back within %d s: before %s, now %s" % (what, timeout, baseline, now))
        if rss_allowance_kb is not None:
            check(now["rss_kb"] <= baseline["rss_kb"] + rss_allowance_kb,
                  "%s, RSS grew from %d to %d KiB (allowance %d)" % (what, baseline["rss_kb"], now["rss_kb"], rss_allowance_kb))
        zombies = wait_until(lambda: not [p for p in self.children() if process_state(p) == "Z"], 3)
        check(zombies, "unreaped children %s" % [p for p in self.children() if process_state(p) == "Z"])
        return now


def process_state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


class Context:
    def __init__(self, binary, directory, model, churn):
        self.binary = binary
        self.directory = directory
        self.model = model
        self.churn = churn
        self.started = []

    def path(self, name):
        return os.path.join(self.directory, name)

    def write(self, name, text):
        path = self.path(name)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.rename(path + ".tmp", path)
        return path

    def serverd(self, args, **kwargs):
        return Serverd(self, ["--model", self.model] + args, **kwargs)

    def cleanup(self):
        for daemon in self.started:
            daemon.kill()


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


def as_user(uid, gid):
    def demote():
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    return demote


# ---------------------------------------------------------------------------------------------
# Faults

FAULTS = []


def fault(name, models, description):
    def register(function):
        FAULTS.append((name, models, description, function))
        return function
    return register


@fault("emfile", ["threading"],
       "RLIMIT_NOFILE 64 and 3x more clients than descriptors on stamp, Unix echo and exec listeners: "
       "accept backs off (CPU stays low, no crash, listeners kept), an exec connection accepted without "
       "descriptors for its child waits for them (logged, at most 5 s) instead of being dropped, and every "
       "listener serves again at once when the clients leave: an exec client that connects right then, "
       "among the backlog's dead exec connections and their burst of children, is served. (Threading "
       "only: in the forking and serial models the daemon itself holds at most one connection at a time.)")
def fault_emfile(ctx):
    unix_path = ctx.path("echo.sock")
    daemon = ctx.serverd(["--listen", "stamp@tcp://127.0.0.1:0", "--listen", "echo@unix:" + unix_path,
                          "--listen", "exec@tcp://127.0.0.1:0", "--idle-timeout", "60", "--", "/bin/cat"],
                         nofile=64, expect_listening=3)
    stamp, echo, execute = daemon.address("stamp@"), daemon.address("echo@"), daemon.address("exec@")
    base = baseline_of(daemon, stamp)
    held = []
    try:
        for i in range(70):
            for address in (stamp, echo):
                held.append(connect(address))
        for i in range(50):
            held.append(connect(execute))
        FIGURES.add("connections held under descriptor exhaustion", len(held))
        # Exhausted: the daemon must neither spin nor die.
        wait_until(lambda: "pausing accept" in daemon.log(), 10)
        check("pausing accept" in daemon.log(), "no EMFILE back-off logged: %s" % daemon.log()[-2000:])
        before = daemon.cpu_seconds()
        time.sleep(3)
        cpu = (daemon.cpu_seconds() - before) / 3
        daemon.require_alive()
        check(cpu < 0.25, "serverd used %.0f%% of a CPU while out of descriptors (busy loop)" % (cpu * 100))
        fds_exhausted = daemon.fds()
        # Each pause is 100 ms; the warning comes once, then at most every 10 s per listener.
        pauses = daemon.log().count("pausing accept")
        check(pauses <= 6, "%d accept-pause warnings in about 4 s: the log floods" % pauses)
        FIGURES.add("faults injected")
        # A client arriving now waits in the backlog …
        waiting = connect(stamp)
        waiting.sendall(b"patient\n")
    finally:
        for sock in held:
            sock.close()
    # An exec client arriving at once lands among the backlog's dead exec connections, whose
    # burst of children takes the descriptors just freed: it waits for one and is served.
    with connect(execute) as sock:
        sock.sendall(b"cat works\n")
        sock.shutdown(socket.SHUT_WR)
        check(receive_all(sock) == b"cat works\n", "exec listener does not serve after exhaustion")
    # … and the waiting client is served once descriptors free up; so is everyone else.
    waiting.settimeout(15)
    reply = receive_line(waiting)
    waiting.close()
    check(reply.endswith(b"] patient\n"), "waiting client got %r" % reply)
    for address, exchange in ((stamp, stamp_exchange), (echo, echo_exchange)):
        with connect(address) as sock:
            exchange(sock, b"after exhaustion\n" if exchange is echo_exchange else b"after exhaustion")
    log = daemon.log()
    waits = log.count("out of descriptors for")
    given_up = len(re.findall(r"error: exec@.*Too many open files", log))
    daemon.settle(base, timeout=20)
    daemon.require_alive()
    return {"fds limit": 64, "fds at exhaustion": fds_exhausted, "cpu while exhausted %": round(cpu * 100, 1),
            "accept-pause warnings logged": pauses, "exec waits for descriptors logged": waits,
            "exec connections given up": given_up}


def churn(ctx, daemon, addresses, total, concurrency):
    """`total` connections, each opened, used for one exchange and closed, `concurrency` at a time."""
    errors = []
    counter = {"next": 0}
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                number = counter["next"]
                counter["next"] += 1
            if number >= total or errors:
                return
            address = addresses[number % len(addresses)]
            try:
                with connect(address) as sock:
                    if address.startswith("unix:") or number % 4 == 0:
                        stamp_exchange(sock, b"churn %d" % number)
                    else:
                        sock.sendall(b"churn %d\n" % number)
                        sock.shutdown(socket.SHUT_WR)
                        reply = receive_all(sock)
                        check(reply.endswith(b"] churn %d\n" % number), "churn reply %r" % reply[:80])
            except Exception as error:  # noqa: BLE001
                errors.append("%s: %s" % (type(error).__name__, error))

    workers = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.monotonic() - started
    check(not errors, "churn failed %d times, first: %s" % (len(errors), errors[:1]))
    FIGURES.add("connections churned", total)
    return elapsed


@fault("churn", ALL_MODELS,
       "10,000 connections (half TCP, half Unix) opened, used and closed by 8 clients at once: "
       "afterwards no growth in descriptors, threads, children, and memory growth under 40 bytes "
       "per connection over a second 10,000 after a warm-up")
def fault_churn(ctx):
    daemon = ctx.serverd(["--listen", "stamp@tcp://127.0.0.1:0", "--listen", "stamp@unix:" + ctx.path("s.sock")],
                         expect_listening=2)
    addresses = [daemon.address("stamp@tcp"), daemon.address("stamp@unix")]
    total = ctx.churn
    base = baseline_of(daemon, addresses[0])
    # Round 1 warms the allocator and the thread pool; round 2 is measured against its end.
    churn(ctx, daemon, addresses, 2000, 8)
    after_warm = daemon.settle(base, timeout=20, what="after the warm-up churn")
    elapsed = churn(ctx, daemon, addresses, total, 8)
    daemon.require_alive()
    peak = daemon.resources()
    after = daemon.settle(base, timeout=20, what="after the churn")
    growth = after["rss_kb"] - after_warm["rss_kb"]
    check(growth * 1024 < 40 * total + 2 * 1024 * 1024,
          "RSS grew %d KiB over %d connections after the warm-up" % (growth, total))
    return {"connections": total, "per second": int(total / elapsed), "fds before/after": "%d/%d" % (base["fds"], after["fds"]),
            "threads before/peak/after": "%d/%d/%d" % (base["threads"], peak["threads"], after["threads"]),
            "children after": after["children"], "RSS growth KiB": growth}


@fault("trickle", ["threading", "forking"],
       "500 clients trickling one byte a second to stamp for 10 s (each must still get its two "
       "replies) while well-behaved clients are served without delay. (Not serial: there one "
       "connection is served at a time by design, so a slow client holds up the rest until "
       "--idle-timeout.)")
def fault_trickle(ctx):
    daemon = ctx.serverd(["--listen", "stamp@tcp://127.0.0.1:0", "--listen", "echo@unix:" + ctx.path("e.sock"),
                          "--idle-timeout", "5"], expect_listening=2)
    stamp, echo = daemon.address("stamp@"), daemon.address("echo@")
    base = baseline_of(daemon, stamp)
    count = 500
    tricklers = [connect(stamp) for _ in range(count)]
    prober = Prober(stamp, echo, max_latency=2.0)
    prober.start()
    lines = [b"t%03d" % i for i in range(count)]
    try:
        for second in range(10):
            started = time.monotonic()
            for i, sock in enumerate(tricklers):
                line = lines[i] + b"\n"
                sock.sendall(line[second % 5:second % 5 + 1])
            time.sleep(max(0, 1 - (time.monotonic() - started)))
        FIGURES.add("slow clients", count)
        FIGURES.add("faults injected", count)
        for i, sock in enumerate(tricklers):
            sock.settimeout(10)
            for n in range(2):
                try:
                    reply = receive_line(sock)
                except Failure as error:
                    raise Failure("trickler %d, reply %d: %s" % (i, n + 1, error))
                check(reply.endswith(b"] " + lines[i] + b"\n"), "trickler %d got %r" % (i, reply))
        figures = prober.finish(minimum=20)
    finally:
        prober.stopping.set()
        for sock in tricklers:
            sock.close()
    daemon.require_alive()
    daemon.settle(base, timeout=20, thread_slack=count + 32)
    figures.update({"tricklers": count, "bytes each": 10})
    return figures


@fault("never-read", ["threading", "forking"],
       "20 clients send 8 MiB to echo and 50,000 lines to stamp without ever reading the replies: "
       "each ends at the idle timeout (2 s) while others are served. (Not serial, as for trickle.)")
def fault_never_read(ctx):
    daemon = ctx.serverd(["--listen", "stamp@tcp://127.0.0.1:0", "--listen", "echo@tcp://127.0.0.1:0",
                          "--idle-timeout", "2"], expect_listening=2)
    stamp, echo = daemon.address("stamp@"), daemon.address("echo@")
    base = baseline_of(daemon, stamp)
    prober = Prober(stamp, max_latency=2.0)
    prober.start()
    sockets = []
    try:
        for i in range(20):
            sock = connect(echo if i % 2 else stamp)
            sock.setblocking(False)
            sockets.append(sock)
        payload_echo = os.urandom(1 << 20)
        payload_stamp = b"never read me\n" * 5000
        deadline = time.monotonic() + 4
        sent = [0] * len(sockets)
        while time.monotonic() < deadline:
            for i, sock in enumerate(sockets):
                limit = 8 << 20 if i % 2 else 10 * len(payload_stamp)
                if sent[i] < limit:
                    try:
                        sent[i] += sock.send(payload_echo if i % 2 else payload_stamp)
                    except (BlockingIOError, InterruptedError):
                        pass
                    except (BrokenPipeError, ConnectionResetError):
                        sent[i] = limit
            time.sleep(0.01)
        FIGURES.add("faults injected", len(sockets))
        # The server gave up on each of them at its idle timeout: its side is gone.
        # (in the forking model the connections live in the workers, which end with them)
        ended = wait_until(lambda: daemon.fds() <= base["fds"] and daemon.log().count("idle for") >= len(sockets), 15)
        check(ended, "the never-reading connections were not all closed: %d fds (baseline %d), %d idle closes logged"
              % (daemon.fds(), base["fds"], daemon.log().count("idle for")))
        figures = prober.finish(minimum=10)
    finally:
        prober.stopping.set()
        for sock in sockets:
            abortive_close(sock)
    idle_lines = daemon.log().count("idle for")
    daemon.require_alive()
    daemon.settle(base, thread_slack=32)
    figures.update({"clients": len(sockets), "MiB pushed": round(sum(sent) / 1048576, 1), "idle closes logged": idle_lines})
    return figures


@fault("reset", ALL_MODELS,
       "100 clients reset (RST) the connection in the middle of a long echo or stamp reply: each "
       "ends only its own connection, quietly")
def fault_reset(ctx):
    daemon = ctx.serverd(["--listen", "stamp@tcp://127.0.0.1:0", "--listen", "echo@unix:" + ctx.path("e.sock"),
                          "--listen", "echo@tcp://127.0.0.1:0"], expect_listening=3)
    stamp = daemon.address("stamp@")
    echoes = [line.split("@", 1)[1] for line in daemon.listening if line.startswith("echo@")]
    base = baseline_of(daemon, stamp)
    prober = Prober(stamp, echoes[0], max_latency=3.0 if ctx.model != "serial" else 10.0)
    prober.start()
    payload = os.urandom(1 << 20)
    try:
        for i in range(100):
            address = [stamp, echoes[0], echoes[1]][i % 3]
            sock = connect(address)
            push(sock, (b"line to stamp\n" * 20000) if address == stamp else payload, 0.2)
            sock.recv(1024)  # the reply has begun …
            abortive_close(sock)  # … and the client resets in the middle of it
        FIGURES.add("faults injected", 100)
        figures = prober.finish(minimum=3)
    finally:
        prober.stopping.set()
    daemon.require_alive()
    daemon.settle(base, thread_slack=32)
    log = daemon.log()
    errors = [line for line in log.splitlines() if line.startswith("error:")]
    check(not errors, "resets were logged as errors: %s" % errors[:3])
    figures["resets"] = 100
    return figures


@fault("half-close", ALL_MODELS,
       "clients that shut down their sending side (stamp, echo, discard, daytime): every reply "
       "arrives in full, then the server closes")
def fault_half_close(ctx):
    daemon = ctx.serverd(["--listen", "stamp@tcp://127.0.0.1:0", "--listen", "echo@unix:" + ctx.path("e.sock"),
                          "--listen", "discard@tcp://127.0.0.1:0", "--listen", "daytime@unix:@stress-day-%d" % os.getpid()],
                         expect_listening=4)
    stamp, echo = daemon.address("stamp@"), daemon.address("echo@")
    discard, daytime = daemon.address("discard@"), daemon.address("daytime@")
    base = baseline_of(daemon, stamp)
    for i in range(50):
        with connect(stamp) as sock:
            sock.sendall(b"one\r\ntwo %d\nthree-no-lf" % i)
            sock.shutdown(socket.SHUT_WR)
            replies = receive_all(sock).split(b"\n")
            check(len(replies) == 4 and replies[0].endswith(b"] one") and replies[1].endswith(b"] two %d" % i)
                  and replies[2].endswith(b"] three-no-lf") and replies[3] == b"", "half-closed stamp got %r" % replies)
        data = os.urandom(200000)
        with connect(echo) as sock:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            check(receive_all(sock) == data, "half-closed echo lost bytes")
        with connect(discard) as sock:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            check(receive_all(sock) == b"", "discard answered")
        with connect(daytime) as sock:
            sock.shutdown(socket.SHUT_WR)
            reply = receive_all(sock)
            check(re.match(rb"^[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d \d{4}\r\n$", reply), "daytime %r" % reply)
    FIGURES.add("faults injected", 200)
    daemon.require_alive()
    daemon.settle(base, thread_slack=32)
    return {"half-closed connections": 200}


@fault("garbage", ALL_MODELS,
       "binary garbage (NULs, 0xff, CRs, no LFs) on every stream service and 2,000 random datagrams: "
       "stamp answers each line byte for byte, nothing else is affected")
def fault_garbage(ctx):
    daemon = ctx.serverd(["--listen", "stamp@tcp://127.0.0.1:0", "--listen", "echo@tcp://127.0.0.1:0",
                          "--listen", "discard@unix:" + ctx.path("d.sock"), "--listen", "daytime@tcp://127.0.0.1:0",
                          "--listen", "echo@udp://127.0.0.1:0", "--listen", "stamp@unixgram:" + ctx.path("g.sock"),
                          "--max-line", "4096"], expect_listening=6)
    stamp, echo = daemon.address("stamp@tcp"), daemon.address("echo@tcp")
    others = [daemon.address("discard@"), daemon.address("daytime@")]
    base = baseline_of(daemon, stamp)
    prober = Prober(stamp, echo, max_latency=3.0 if ctx.model != "serial" else 10.0)
    prober.start()
    rng = random.Random(7)
    try:
        for i in range(60):
            garbage = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 30000)))
            with connect(stamp) as sock:
                sock.sendall(garbage)
                sock.shutdown(socket.SHUT_WR)
                reply = receive_all(sock)
            expected = expected_stamp_lines(garbage, 4096)
            got = [STAMP_REPLY.sub(b"", line, 1) for line in reply.split(b"\n")[:-1]]
            check(got == expected[: len(got)] and len(got) == len(expected),
                  "stamp reply to garbage %d differs: %d lines, expected %d" % (i, len(got), len(expected)))
            with connect(echo) as sock:
                echo_exchange(sock, garbage)
            for address in others:
                with connect(address) as sock:
                    try:
                        sock.sendall(garbage)
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # daytime may have answered and closed already
        udp = parse_address(daemon.address("echo@udp"))
        gram = parse_address(daemon.address("stamp@unixgram"))
        with socket.socket(udp[0], socket.SOCK_DGRAM) as client:
            client.settimeout(5)
            for i in range(1000):
                # (at least one byte: by design the library sends no reply when nothing was written)
                payload = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 1500)))
                client.sendto(payload, udp[2])
                data, _ = client.recvfrom(65536)
                check(data == payload, "UDP echo differs")
        client_path = ctx.path("gram-client.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as client:
            client.bind(client_path)
            client.settimeout(5)
            for i in range(1000):
                payload = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 1500)))
                client.sendto(payload, gram[2])
                data = client.recv(65536)
                check(STAMP_REPLY.match(data) and data.endswith(b"] " + payload.rstrip(b"\r\n")), "unixgram stamp differs")
        FIGURES.add("faults injected", 60 * 4 + 2000)
        figures = prober.finish(minimum=3)
    finally:
        prober.stopping.set()
    daemon.require_alive()
    daemon.settle(base, thread_slack=32)
    figures.update({"garbage streams": 240, "garbage datagrams": 2000})
    return figures


def expected_stamp_lines(data, max_line):
    """What stamp owes a client that sent `data` and closed: one reply per line (LF-terminated,
    or the rest at the end), one CR before the LF dropped, up to the first line over max-line."""
    lines = []
    pieces = data.split(b"\n")
    for index, piece in enumerate(pieces):
        if index == len(pieces) - 1 and not piece:
            break
        if len(piece) > max_line:
            break
        lines.append(piece[:-1] if piece.endswith(b"\r") else piece)
    return lines


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


@fault("max-line", ALL_MODELS,
       "lines at and over --max-line 1024 (a CR counts): exactly 1024 bytes is served; 1025 bytes, "
       "and 20 clients each sending 4 MiB without a LF, have their connection closed after about "
       "1 KiB is read, without the daemon buffering the rest")
def fault_max_line(ctx):
    daemon = ctx.serverd(["--listen", "stamp@tcp://127.0.0.1:0", "--listen", "stamp@unix:" + ctx.path("s.sock"),
                          "--max-line", "1024"], expect_listening=2)
    stamp = daemon.address("stamp@tcp")
    base = baseline_of(daemon, stamp)
    with connect(stamp) as sock:
        stamp_exchange(sock, b"a" * 1024)
        sock.sendall(b"b" * 1023 + b"\r\n")  # 1024 bytes before the LF, the CR included: served, CR dropped
        reply = receive_line(sock)
        check(STAMP_REPLY.match(reply) and reply.endswith(b"] " + b"b" * 1023 + b"\n"), "1023 bytes + CR: %r" % reply[-40:])
    with connect(stamp) as sock:
        sock.sendall(b"c" * 1024 + b"\r\n")
        check(closed_by_peer(sock, 5), "a 1025-byte line (CR included) did not close the connection")
    prober = Prober(stamp, max_latency=3.0 if ctx.model != "serial" else 10.0)
    prober.start()
    try:
        peak_rss = daemon.rss_kb()
        closed = 0
        for i in range(20):
            sock = connect(daemon.listening[i % 2].split("@", 1)[1])
            sock.setblocking(False)
            pushed = 0
            deadline = time.monotonic() + 5
            ended = False
            while time.monotonic() < deadline and pushed < (4 << 20):
                try:
                    pushed += sock.send(b"z" * 65536)
                except (BlockingIOError, InterruptedError):
                    time.sleep(0.005)
                except (BrokenPipeError, ConnectionResetError):
                    ended = True
                    break
            sock.setblocking(True)
            if ended or closed_by_peer(sock, 5):
                closed += 1
            peak_rss = max(peak_rss, daemon.rss_kb())
            sock.close()
        check(closed == 20, "only %d of 20 over-long lines closed their connection" % closed)
        FIGURES.add("faults injected", 21)
        figures = prober.finish(minimum=3)
    finally:
        prober.stopping.set()
    warnings = daemon.log().count("line longer than 1024 bytes")
    check(warnings >= 21, "over-long lines logged %d times, expected 21" % warnings)
    daemon.require_alive()
    daemon.settle(base, thread_slack=32)
    growth = peak_rss - base["rss_kb"]
    check(growth < 16 * 1024, "RSS grew %d KiB while clients sent 80 MiB of one line" % growth)
    figures.update({"over-long lines": 21, "peak RSS growth KiB": growth})
    return figures


def exec_config(ctx, extra=""):
    """A configuration file with one exec listener per behaviour."""
    return ctx.write("exec.toml", """
listen = ["stamp@tcp://127.0.0.1:0"]
[[listener]]
listen = "exec@tcp://127.0.0.1:0"
exec = ["/bin/sh", "-c", "kill -SEGV $$"]
[[listener]]
listen = "exec@unix:%s"
exec = ["/nonexistent/serverd-stress-missing"]
[[listener]]
listen = "exec@unix:%s"
exec = ["/bin/sh", "-c", "echo started; read line; echo \\"got $line\\""]
[[listener]]
listen = "exec@unix:%s"
exec = ["/bin/sh", "-c", "ls /proc/$$/fd"]
%s""" % (ctx.path("missing.sock"), ctx.path("slow.sock"), ctx.path("fds.sock"), extra))


@fault("failing-handlers", ["threading", "forking"],
       "exec children that crash (SIGSEGV), a missing exec program, exec children killed from "
       "outside, and (forking) workers killed by SIGKILL and SIGSEGV: each is logged and reaped, "
       "and the daemon serves on")
def fault_failing_handlers(ctx):
    daemon = ctx.serverd(["--config", exec_config(ctx)], expect_listening=5)
    stamp = daemon.address("stamp@")
    crash = daemon.address("exec@tcp")
    missing, slow = "unix:" + ctx.path("missing.sock"), "unix:" + ctx.path("slow.sock")
    base = baseline_of(daemon, stamp)
    prober = Prober(stamp, max_latency=3.0)
    prober.start()
    injected = 0
    try:
        for i in range(30):
            with connect(crash) as sock:
                check(receive_all(sock) == b"", "crashing child wrote something")
            with connect(missing) as sock:
                check(receive_all(sock) == b"", "missing program wrote something")
            injected += 2
        # exec children killed from outside while they wait for input
        victims = []
        for i in range(10):
            sock = connect(slow)
            check(receive_line(sock) == b"started\n", "exec child did not start")
            victims.append(sock)
        descendants = set()
        for child in daemon.children():
            descendants.add(child)
            try:
                with open("/proc/%d/task/%d/children" % (child, child)) as f:
                    descendants.update(int(p) for p in f.read().split())
            except OSError:
                pass
        shells = [pid for pid in descendants if read_cmdline(pid)[:1] == ["/bin/sh"]]
        check(len(shells) == 10, "expected 10 exec children, found %s" % shells)
        for pid in shells:
            parent = parent_of(pid)
            check(parent == daemon.pid or parent in daemon.children(), "pid %d is not serverd's" % pid)
            os.kill(pid, signal.SIGTERM)
        for sock in victims:
            check(closed_by_peer(sock, 5), "connection of a killed exec child stayed open")
            sock.close()
        injected += 10
        worker_kills = 0
        if ctx.model == "forking":
            for number in (signal.SIGKILL, signal.SIGSEGV, signal.SIGKILL, signal.SIGABRT):
                sock = connect(stamp)
                stamp_exchange(sock, b"before the kill")
                # The worker that holds the server's end of this very connection (not a prober's).
                inode = server_side_inode(sock)
                victims = [pid for pid in daemon.children() if holds_socket(pid, inode)]
                check(len(victims) == 1, "no single worker holds connection inode %s: %s" % (inode, victims))
                daemon.kill_child(victims[0], number)
                check(closed_by_peer(sock, 5), "connection of a killed worker stayed open")
                sock.close()
                worker_kills += 1
            injected += worker_kills
        FIGURES.add("faults injected", injected)
        figures = prober.finish(minimum=5)
    finally:
        prober.stopping.set()
    daemon.require_alive()
    daemon.settle(base, thread_slack=32)
    log = daemon.log()
    check(len(re.findall(r"killed by signal 11", log)) >= 30, "crashing exec children not logged")
    check(log.count("cannot run /nonexistent/serverd-stress-missing") >= 30, "missing program not logged")
    check(len(re.findall(r"killed by signal 15", log)) >= 10, "killed exec children not logged")
    if ctx.model == "forking":
        check(len(re.findall(r"worker process \d+ killed by signal (9|11|6)", log)) >= worker_kills,
              "killed workers not logged")
    figures.update({"handler faults": injected, "workers killed": worker_kills})
    return figures


@fault("handler-throws", ["threading", "serial"],
       "a library handler that throws: with exactly one descriptor to spare (prlimit), every exec "
       "connection's pipe() fails with EMFILE inside the handler; each is logged and closed, 20 "
       "times over, and the daemon goes on serving stamp. (A forked worker closes the daemon's "
       "listeners first, so there the spawn fails instead: logged as 'cannot run'.)")
def fault_handler_throws(ctx):
    args = ["--listen", "stamp@tcp://127.0.0.1:0", "--listen", "exec@tcp://127.0.0.1:0", "--", "/bin/cat"]
    daemon = ctx.serverd(args, expect_listening=2)
    stamp, execute = daemon.address("stamp@"), daemon.address("exec@")
    baseline_of(daemon, stamp)
    # Exactly one descriptor to spare (prlimit on the running daemon): accept takes it, so the
    # exec handler's pipe() fails inside the handler.
    spare = daemon.fds() + 1
    resource.prlimit(daemon.pid, resource.RLIMIT_NOFILE, (spare, spare))
    for i in range(20):
        with connect(execute) as sock:
            sock.sendall(b"never echoed\n")
            check(closed_by_peer(sock, 10), "exec connection %d was not closed after its handler failed" % i)
        with connect(stamp) as sock:
            stamp_exchange(sock, b"still serving %d" % i)
    FIGURES.add("faults injected", 20)
    log = daemon.log()
    thrown = len(re.findall(r"error: exec@tcp://127\.0\.0\.1:0: connection from .*: pipe", log))
    check(thrown == 20, "%d of 20 handler errors logged: %s" % (thrown, log[-1500:]))
    daemon.require_alive()
    return {"descriptor limit": spare, "handler errors logged": thrown}


def read_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return [part.decode("utf-8", "replace") for part in f.read().split(b"\0") if part]
    except OSError:
        return []


def parent_of(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


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


def holds_socket(pid, inode):
    target = "socket:[%d]" % inode
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == target:
                    return True
            except OSError:
                pass
    except OSError:
        pass
    return False


class Load:
    """Persistent and short connections doing checked stamp exchanges until stopped; counts
    exchanges and collects every failure (a dropped connection is one)."""

    def __init__(self, addresses, persistent=8, short=4):
        self.addresses = addresses
        self.stopping = threading.Event()
        self.errors = []
        self.exchanges = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.persistent, args=(i,), daemon=True) for i in range(persistent)]
        self.threads += [threading.Thread(target=self.short, args=(i,), daemon=True) for i in range(short)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def count(self):
        with self.lock:
            self.exchanges += 1

    def persistent(self, index):
        try:
            with connect(self.addresses[index % len(self.addresses)]) as sock:
                number = 0
                while not self.stopping.is_set():
                    number += 1
                    stamp_exchange(sock, b"persistent %d.%d" % (index, number))
                    self.count()
                    time.sleep(0.002)
        except Exception as error:  # noqa: BLE001
            self.errors.append("persistent %d: %s: %s" % (index, type(error).__name__, error))

    def short(self, index):
        number = 0
        while not self.stopping.is_set():
            number += 1
            try:
                with connect(self.addresses[(index + number) % len(self.addresses)]) as sock:
                    stamp_exchange(sock, b"short %d.%d" % (index, number))
                self.count()
            except Exception as error:  # noqa: BLE001
                self.errors.append("short %d: %s: %s" % (index, type(error).__name__, error))
                return
            time.sleep(0.005)

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(30)
        FIGURES.add("exchanges under load", self.exchanges)
        check(not self.errors, "%d clients failed under load, first: %s" % (len(self.errors), self.errors[:2]))
        return self.exchanges


SIGHUP_CONFIG = """model = "%s"
listen = ["stamp@tcp://127.0.0.1:0", "stamp@unix:%s"]
%s"""


@fault("sighup", ["threading", "forking"],
       "100 SIGHUPs 30 ms apart while 12 clients exchange lines (every 10th reload adds or removes "
       "a listener): no dropped connection or failed exchange, the unchanged listeners keep their "
       "sockets, no descriptor leaks")
def fault_sighup(ctx):
    unix_path = ctx.path("s.sock")
    config = ctx.write("serverd.toml", SIGHUP_CONFIG % (ctx.model, unix_path, ""))
    daemon = Serverd(ctx, ["--config", config], expect_listening=2)
    addresses = [daemon.address("stamp@tcp"), daemon.address("stamp@unix")]
    base = baseline_of(daemon, addresses[0])
    load = Load(addresses).start()
    extra = False
    rss_before = daemon.rss_kb()
    for i in range(100):
        if i % 10 == 9:
            extra = not extra
            ctx.write("serverd.toml", SIGHUP_CONFIG % (
                ctx.model, unix_path, '[[listener]]\nlisten = "daytime@tcp://127.0.0.1:0"\n' if extra else ""))
        daemon.signal(signal.SIGHUP)
        time.sleep(0.03)
    if extra:
        ctx.write("serverd.toml", SIGHUP_CONFIG % (ctx.model, unix_path, ""))
        daemon.signal(signal.SIGHUP)
    wait_until(lambda: daemon.log().count("received SIGHUP") >= 100, 5)
    time.sleep(0.5)
    exchanges = load.stop()
    FIGURES.add("faults injected", 100)
    FIGURES.add("SIGHUPs sent", 100)
    daemon.require_alive()
    log = daemon.log()
    reloads = log.count("received SIGHUP")
    check(reloads >= 90, "only %d of 100 SIGHUPs led to a reload" % reloads)
    check("reload failed" not in log and "cannot start" not in log, "a reload failed: %s" % log[-2000:])
    check(daemon.log().count("listening on stamp@") == 2, "an unchanged listener was restarted")
    for address in addresses:
        with connect(address) as sock:
            stamp_exchange(sock, b"after the reloads")
    after = daemon.settle(base, timeout=20, what="after 100 reloads")
    return {"SIGHUPs": 100, "reloads logged": reloads, "exchanges during reloads": exchanges,
            "listener toggles": 10, "fds before/after": "%d/%d" % (base["fds"], after["fds"]),
            "RSS growth over the reloads KiB": after["rss_kb"] - rss_before}


@fault("sighup-malformed-config", ["threading", "forking"],
       "SIGHUPs with configurations that once made toml++ abort the daemon (`[)x]`, `[` then a line "
       "feed, `m=[}`, found by fuzz-config) while clients keep a connection: each reload fails and is "
       "logged, the running configuration and the connection stay, and a good reload works after")
def fault_sighup_malformed_config(ctx):
    good = 'listen = ["stamp@tcp://127.0.0.1:0"]\n'
    config = ctx.write("serverd.toml", good)
    daemon = ctx.serverd(["--config", config], expect_listening=1)
    stamp = daemon.address("stamp@")
    with connect(stamp) as sock:
        stamp_exchange(sock, b"before")
        for number, text in enumerate(["[)x]\n", "[\n[[listener]]\n", "m=[}\n", good + "[)x]\n"]):
            ctx.write("serverd.toml", text)
            daemon.signal(signal.SIGHUP)
            failed = wait_until(lambda: daemon.log().count("reload failed") > number or not daemon.alive(), 10)
            daemon.require_alive()
            check(failed, "malformed reload %r was not reported" % text)
            stamp_exchange(sock, b"after malformed reload %d" % number)
            FIGURES.add("faults injected")
        ctx.write("serverd.toml", good + '[[listener]]\nlisten = "daytime@tcp://127.0.0.1:0"\n')
        daemon.signal(signal.SIGHUP)
        check(wait_until(lambda: "listening on daytime@" in daemon.log(), 10), "a good reload after the bad ones did not apply")
        stamp_exchange(sock, b"after the good reload")
    return {"malformed reloads": 4}


@fault("sigterm", ALL_MODELS,
       "SIGTERM while clients are mid-conversation and exec children are working: the listeners "
       "close at once, every in-flight exchange completes, serverd exits 0 within --drain-timeout")
def fault_sigterm(ctx):
    slow_path = ctx.path("slow.sock")
    config = ctx.write("drain.toml", """
listen = ["stamp@tcp://127.0.0.1:0", "stamp@unix:%s"]
[[listener]]
listen = "exec@unix:%s"
exec = ["/bin/sh", "-c", "read line; sleep 1; echo \\"done $line\\""]
""" % (ctx.path("s.sock"), slow_path))
    daemon = ctx.serverd(["--config", config, "--drain-timeout", "6"], expect_listening=3)
    stamp = daemon.address("stamp@tcp")
    in_flight = 1 if ctx.model == "serial" else 30
    conversations = []
    for i in range(in_flight):
        sock = connect(daemon.listening[i % 2].split("@", 1)[1], timeout=15)
        stamp_exchange(sock, b"first %d" % i)
        conversations.append(sock)
    workers = []
    if ctx.model != "serial":
        for i in range(5):
            sock = connect("unix:" + slow_path, timeout=15)
            sock.sendall(b"job %d\n" % i)
            workers.append(sock)
    time.sleep(0.2)
    stopped_at = time.monotonic()
    daemon.signal(signal.SIGTERM)
    FIGURES.add("faults injected")
    # The listeners close at once: new clients are refused.
    refused = wait_until(lambda: refuses(stamp), 3)
    check(refused, "the TCP listener still accepts after SIGTERM")
    for i, sock in enumerate(conversations):
        stamp_exchange(sock, b"second %d, after SIGTERM" % i)
        sock.close()
    for i, sock in enumerate(workers):
        check(receive_all(sock) == b"done job %d\n" % i, "exec reply lost in the drain")
        sock.close()
    try:
        status = daemon.process.wait(10)
    except subprocess.TimeoutExpired:
        raise Failure("serverd still running 10 s after SIGTERM and after every client left")
    drained = time.monotonic() - stopped_at
    check(status == 0, "exit status %s after SIGTERM" % status)
    check(drained < 6, "drain took %.1f s, over the 6 s drain timeout" % drained)
    check(not os.path.exists(ctx.path("s.sock")), "Unix socket file left behind")
    FIGURES.add("in-flight exchanges completed during drains", len(conversations) + len(workers))
    return {"in-flight connections": len(conversations) + len(workers), "stop took s": round(drained, 2)}


def refuses(address):
    try:
        with connect(address, timeout=1):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


# --- Security ---------------------------------------------------------------------------------

def require_root():
    if os.geteuid() != 0:
        raise Skip("needs root (to run clients as nobody and to drop privileges)")


def nobody_client(script, *arguments, timeout=30):
    """Runs a small Python client as nobody:nogroup; returns its stdout lines."""
    result = subprocess.run([NOBODY_PYTHON, "-c", script] + [str(a) for a in arguments], preexec_fn=as_user(NOBODY, NOBODY),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, cwd="/")
    if result.returncode != 0:
        raise Failure("client as nobody failed: %s" % result.stderr.decode()[-1000:])
    return result.stdout.decode().split()


SPIN_CONNECT = r"""
import socket, sys, time
path, seconds = sys.argv[1], float(sys.argv[2])
deadline = time.monotonic() + seconds
attempts = connected = served = 0
while time.monotonic() < deadline:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(path)
        connected += 1
        s.sendall(b"x\n")
        if s.recv(100):
            served += 1
    except OSError:
        pass
    attempts += 1
    s.close()
print(attempts, connected, served)
"""


@fault("unix-mode-race", ["threading"],
       "a client running as nobody spins on connect-send-receive while serverd starts under umask 0: "
       "with --socket-mode 0600 (5 starts) it never connects, not even for an instant; with 0666 and "
       "--allow-uid 0 (3 starts) it connects but is never served, from the first connection on; "
       "control: with 0666 alone it is served")
def fault_unix_mode_race(ctx):
    require_root()
    os.chmod(ctx.directory, 0o755)
    attempts = 0
    runs = [(["--socket-mode", "0600"], "none")] * 5 + [(["--socket-mode", "0666", "--allow-uid", "0"], "unserved")] * 3
    runs += [(["--socket-mode", "0666"], "served")]
    for options, expected in runs:
        path = ctx.path("race.sock")
        spinner = subprocess.Popen([NOBODY_PYTHON, "-c", SPIN_CONNECT, path, "1.5"], preexec_fn=as_user(NOBODY, NOBODY),
                                   stdout=subprocess.PIPE, cwd="/")
        time.sleep(0.1)
        daemon = ctx.serverd(["--listen", "stamp@unix:" + path] + options, expect_listening=1, umask=0)
        out, _ = spinner.communicate(timeout=20)
        tries, connected, served = (int(x) for x in out.split())
        attempts += tries
        if expected == "none":
            check(connected == 0, "nobody connected %d times to a socket created with mode 0600" % connected)
            check(stat.S_IMODE(os.stat(path).st_mode) == 0o600, "socket mode is not 0600")
        elif expected == "unserved":
            check(connected > 0 and served == 0, "with --allow-uid 0, nobody connected %d and was served %d times" % (connected, served))
        else:
            check(served > 0, "control: nobody was not served on a 0666 socket")
        check(daemon.stop() == 0, "serverd did not stop cleanly")
    FIGURES.add("faults injected", len(runs))
    return {"connect attempts as nobody": attempts, "daemon starts": len(runs)}


PEER_CLIENT = r"""
import socket, sys, errno
address, kind = sys.argv[1], sys.argv[2]
if kind == "stream":
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(address)
    print("connected")
    sys.stdout.flush()
    s.sendall(b"hello from nobody\n")
    sys.stdin.readline()          # the harness resumes serverd here
    s.settimeout(10)
    # serverd shuts its side down, then closes: a recv may see the EOF of the shutdown first;
    # the close of a socket with unread bytes then leaves ECONNRESET for the next recv.
    outcome = "eof"
    try:
        for attempt in range(3):
            data = s.recv(100)
            if data:
                outcome = "data"
                break
            __import__("time").sleep(0.2)
    except ConnectionResetError:
        outcome = "reset"
    print(outcome)
else:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0stress-nobody-%d" % __import__("os").getpid())
    s.settimeout(2)
    s.sendto(b"hello", address)
    try:
        s.recv(100)
        print("reply")
    except socket.timeout:
        print("dropped")
"""


@fault("peer-credentials", ["threading", "forking"],
       "--allow-uid 0 on Unix stream and datagram listeners (mode 0666): a nobody client that "
       "connects and sends at once while serverd is stopped (SIGSTOP) is closed with its bytes "
       "unread (ECONNRESET, never a reply); its datagrams are dropped; root is served")
def fault_peer_credentials(ctx):
    require_root()
    os.chmod(ctx.directory, 0o755)
    stream_path, gram_path = ctx.path("s.sock"), ctx.path("g.sock")
    daemon = ctx.serverd(["--listen", "stamp@unix:" + stream_path, "--listen", "echo@unixgram:" + gram_path,
                          "--socket-mode", "0666", "--allow-uid", "0"], expect_listening=2)
    outcomes = []
    for attempt in range(5):
        daemon.signal(signal.SIGSTOP)
        try:
            client = subprocess.Popen([NOBODY_PYTHON, "-c", PEER_CLIENT, stream_path, "stream"], preexec_fn=as_user(NOBODY, NOBODY),
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd="/")
            check(client.stdout.readline().strip() == b"connected", "nobody could not connect")
            time.sleep(0.1)  # its bytes are in the socket before serverd runs again
        finally:
            daemon.signal(signal.SIGCONT)
        client.stdin.write(b"go\n")
        client.stdin.flush()
        outcome = client.stdout.readline().strip().decode()
        client.wait(10)
        outcomes.append(outcome)
        check(outcome == "reset", "a refused peer's connection ended with '%s', not a reset (bytes read?)" % outcome)
    dropped = nobody_client(PEER_CLIENT, gram_path, "datagram")
    check(dropped == ["dropped"], "a refused peer's datagram was answered")
    with connect("unix:" + stream_path) as sock:
        stamp_exchange(sock, b"root is allowed")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind("\0stress-root-%d" % os.getpid())
        s.settimeout(5)
        s.sendto(b"root datagram", gram_path)
        check(s.recv(100) == b"root datagram", "root's datagram not echoed")
    log = daemon.log()
    check(log.count("uid and gid not allowed") >= 6, "refusals not logged")
    FIGURES.add("faults injected", 6)
    daemon.require_alive()
    return {"refused connections (reset, unread)": len(outcomes), "dropped datagrams": 1}


@fault("privileges", ["threading", "forking"],
       "--user nobody --group nogroup after binding a TCP and a Unix listener: every uid and gid "
       "(real, effective, saved, filesystem) is 65534, supplementary groups only 65534, no "
       "capability left (root cannot be regained), exec children run as nobody, and it serves")
def fault_privileges(ctx):
    require_root()
    os.chmod(ctx.directory, 0o755)
    config = ctx.write("priv.toml", """
user = "nobody"
group = "nogroup"
listen = ["stamp@tcp://127.0.0.1:0", "stamp@unix:%s"]
[[listener]]
listen = "exec@tcp://127.0.0.1:0"
exec = ["/usr/bin/id"]
""" % ctx.path("s.sock"))
    daemon = ctx.serverd(["--config", config, "--socket-mode", "0666"], expect_listening=3)
    check(daemon.status_field("Uid") == ["65534"] * 4, "Uid: %s" % daemon.status_field("Uid"))
    check(daemon.status_field("Gid") == ["65534"] * 4, "Gid: %s" % daemon.status_field("Gid"))
    check(daemon.status_field("Groups") in (["65534"], []), "Groups: %s" % daemon.status_field("Groups"))
    for field in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        check(int(daemon.status_field(field)[0], 16) == 0, "%s: %s" % (field, daemon.status_field(field)))
    for line in daemon.listening[:2]:
        with connect(line.split("@", 1)[1]) as sock:
            stamp_exchange(sock, b"as nobody")
    with connect(daemon.address("exec@")) as sock:
        identity = receive_all(sock)
    check(identity.startswith(b"uid=65534(nobody) gid=65534(nogroup)"), "exec child runs as %r" % identity)
    check(daemon.stop() == 0, "serverd did not stop cleanly as nobody")
    return {"uid/gid": "65534/65534", "capabilities": 0}


@fault("exec-descriptors", ["threading", "forking"],
       "40 exec children started while 40 other connections are open on other listeners: each "
       "child has exactly descriptors 0, 1 and 2 (its connection twice and the log pipe)")
def fault_exec_descriptors(ctx):
    daemon = ctx.serverd(["--config", exec_config(ctx)], expect_listening=5)
    stamp = daemon.address("stamp@")
    others = [connect(stamp) for _ in range(40)]
    results = []
    errors = []

    def run_child():
        try:
            with connect("unix:" + ctx.path("fds.sock")) as sock:
                results.append(sorted(int(x) for x in receive_all(sock).split()))
        except Exception as error:  # noqa: BLE001
            errors.append(str(error))

    threads = [threading.Thread(target=run_child) for _ in range(40)]
    for t in threads:
        t.start()
    for i, sock in enumerate(others):
        stamp_exchange(sock, b"busy %d" % i)
    for t in threads:
        t.join(30)
    for sock in others:
        sock.close()
    check(not errors, "exec children failed: %s" % errors[:2])
    bad = [r for r in results if r != [0, 1, 2]]
    check(len(results) == 40 and not bad, "exec children had other descriptors open: %s" % bad[:3])
    FIGURES.add("exec children checked for descriptors", len(results))
    return {"children checked": len(results)}


@fault("socket-path-hazards", ["threading"],
       "a symlink (to a file, a directory, nowhere), a regular file, a FIFO or a directory at the "
       "socket path, with and without --socket-mode: serverd refuses (exit 69), follows and deletes "
       "nothing; a file moved over its socket while it runs is left alone at stop; a stale socket "
       "is replaced")
def fault_socket_path_hazards(ctx):
    victim = ctx.path("victim.txt")
    with open(victim, "w") as f:
        f.write("precious\n")
    victim_dir = ctx.path("victim-dir")
    os.mkdir(victim_dir)
    cases = 0
    for kind in ("symlink-file", "symlink-dir", "symlink-dangling", "file", "fifo", "directory"):
        for mode in ([], ["--socket-mode", "0600"]):
            path = ctx.path("hazard.sock")
            if kind == "symlink-file":
                os.symlink(victim, path)
            elif kind == "symlink-dir":
                os.symlink(victim_dir, path)
            elif kind == "symlink-dangling":
                os.symlink(ctx.path("nowhere/at/all"), path)
            elif kind == "file":
                with open(path, "w") as f:
                    f.write("not a socket\n")
            elif kind == "fifo":
                os.mkfifo(path)
            else:
                os.mkdir(path)
            before = os.lstat(path)
            target = os.readlink(path) if kind.startswith("symlink") else None
            daemon = ctx.serverd(["--listen", "echo@unix:" + path] + mode)
            status = daemon.process.wait(20)
            check(status == 69, "%s at the socket path: exit %s, expected 69; log: %s" % (kind, status, daemon.log()[-500:]))
            check(daemon.log().rstrip().splitlines()[-1].startswith("serverd: "), "no 'serverd: ' error line")
            after = os.lstat(path)
            check((after.st_ino, after.st_mode) == (before.st_ino, before.st_mode), "%s at the socket path was changed" % kind)
            if target is not None:
                check(os.readlink(path) == target, "symlink retargeted")
            check(open(victim).read() == "precious\n" and stat.S_IMODE(os.stat(victim).st_mode) == 0o644, "victim file changed")
            check(os.listdir(victim_dir) == [], "something was created in the symlinked directory")
            leftovers = [n for n in os.listdir(ctx.directory) if n.startswith("hazard.sock.")]
            check(not leftovers, "temporary socket files left behind: %s" % leftovers)
            if kind == "directory":
                os.rmdir(path)
            else:
                os.unlink(path)
            cases += 1
    # A regular file moved over the socket while serverd runs is not removed at stop.
    path = ctx.path("moved.sock")
    daemon = ctx.serverd(["--listen", "echo@unix:" + path], expect_listening=1)
    replacement = ctx.path("replacement")
    with open(replacement, "w") as f:
        f.write("mine\n")
    os.rename(replacement, path)
    check(daemon.stop() == 0, "serverd did not stop cleanly")
    check(os.path.isfile(path) and open(path).read() == "mine\n", "serverd removed a file that replaced its socket")
    # A stale socket (nothing listening) is replaced.
    stale = ctx.path("stale.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(stale)
    s.close()
    daemon = ctx.serverd(["--listen", "echo@unix:" + stale], expect_listening=1)
    with connect("unix:" + stale) as sock:
        echo_exchange(sock, b"stale replaced\n")
    check(daemon.stop() == 0, "serverd did not stop cleanly")
    FIGURES.add("faults injected", cases + 2)
    return {"hazards refused": cases, "replaced-file and stale-socket cases": 2}


# ---------------------------------------------------------------------------------------------
# Runner

# Faults that fail through a bug that is reported and not fixed yet: name -> reason. They show as
# XFAIL (and fail the run as XPASS once they pass, so that the entry gets removed). None now.
KNOWN_BUGS = {}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serverd", required=True, help="the serverd binary to test")
    parser.add_argument("--only", help="run only faults whose name matches this regex")
    parser.add_argument("--models", default=",".join(ALL_MODELS), help="comma-separated processing models")
    parser.add_argument("--churn", type=int, default=10000, help="connections per churn (default 10,000)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories (logs)")
    parser.add_argument("--list", action="store_true", help="list the faults and exit")
    args = parser.parse_args()
    if args.list:
        for name, models, description, _ in FAULTS:
            print("%-24s %-28s %s" % (name, ",".join(models), description))
        return 0
    binary = os.path.abspath(args.serverd)
    if not os.access(binary, os.X_OK):
        print("no serverd binary at %s" % binary)
        return 2
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    wanted_models = args.models.split(",")
    passed = failed = skipped = 0
    results = []
    suite_started = time.monotonic()
    root = tempfile.mkdtemp(prefix="serverd-stress.")
    os.chmod(root, 0o755)
    for name, models, description, function in FAULTS:
        if args.only and not re.search(args.only, name):
            continue
        for model in models:
            if model not in wanted_models:
                continue
            directory = tempfile.mkdtemp(prefix="%s-%s." % (name, model), dir=root)
            ctx = Context(binary, directory, model, args.churn)
            started = time.monotonic()
            label = "%s [%s]" % (name, model)
            known = KNOWN_BUGS.get(name)
            try:
                figures = function(ctx)
                elapsed = time.monotonic() - started
                if known:
                    failed += 1
                    print("XPASS %-34s %5.1fs  known bug now passes: remove it from KNOWN_BUGS (%s)" % (label, elapsed, known))
                else:
                    passed += 1
                    print("PASS  %-34s %5.1fs  %s" % (label, elapsed, format_figures(figures)))
            except Skip as reason:
                skipped += 1
                print("SKIP  %-34s        %s" % (label, reason))
            except Exception as error:  # noqa: BLE001
                elapsed = time.monotonic() - started
                if known:
                    passed += 1
                    print("XFAIL %-34s %5.1fs  known bug: %s (%s)" % (label, elapsed, known, str(error).splitlines()[0][:200]))
                else:
                    failed += 1
                    print("FAIL  %-34s %5.1fs  %s" % (label, elapsed, error))
                    if not isinstance(error, Failure):
                        traceback.print_exc()
                    print("      logs: %s" % directory)
                    args.keep = True
            finally:
                ctx.cleanup()
            sys.stdout.flush()
    total = time.monotonic() - suite_started
    print()
    print("figures:")
    for key in sorted(FIGURES.values):
        print("  %-48s %s" % (key, FIGURES.values[key]))
    print("  %-48s %.0f" % ("suite seconds", total))
    if not args.keep:
        subprocess.call(["rm", "-rf", root])
    else:
        print("logs kept in %s" % root)
    print("%d passed, %d failed%s" % (passed, failed, (", %d skipped" % skipped) if skipped else ""))
    return 1 if failed else 0


def format_figures(figures):
    return ", ".join("%s %s" % (k, v) for k, v in (figures or {}).items())


if __name__ == "__main__":
    sys.exit(main())
