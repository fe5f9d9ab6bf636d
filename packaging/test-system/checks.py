#!/usr/bin/python3
"""System checks of the serverd Debian package, run inside a throw-away container
booted with systemd as PID 1 (packaging/test-system.sh starts it).

    checks.py DEB UPGRADE_DEB [TOOLCHAIN]

Installs DEB, then checks socket activation for every socket kind, the exec
service under the hardened unit, reload, the watchdog, a draining stop, an
upgrade to UPGRADE_DEB, removal and purge. From the restart to the upgrade,
clients of every socket kind keep a continuous load on serverd (LoadGenerator):
no connection may be refused or reset (a SIGKILL may reset the connections the
killed process had accepted; they are counted apart), and unanswered datagrams
are counted. Prints one PASS or FAIL line per check and exits 1 if any check
failed. Every wait is bounded.
"""

import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time

SERVICE = "serverd.service"
SOCKETS = ["serverd.socket", "serverd-echo.socket"]
UNITS = [SERVICE] + SOCKETS
PORT = 21568
EXEC_PORT = 21570
CONFFILE = "/etc/serverd/serverd.toml"
ECHO_SOCK = "/run/serverd/echo.sock"
ECHO_DGRAM = "/run/serverd/echo.dgram"
STAMP_RE = re.compile(r"^\[[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d \d{4}\] (.*)\n$")
IO_TIMEOUT = 15          # seconds for one client exchange (includes a service start)
EXPOSURE_LIMIT = 1.5

results = []


class CheckFailed(Exception):
    pass


def log(msg):
    print(f"  .. {msg}", flush=True)


def run(cmd, timeout=60, ok=True, **kw):
    """Runs cmd; raises CheckFailed if it fails (when ok) or times out."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL, **kw)
    except subprocess.TimeoutExpired:
        raise CheckFailed(f"{' '.join(cmd)}: no exit within {timeout} s")
    if ok and p.returncode != 0:
        raise CheckFailed(f"{' '.join(cmd)}: exit {p.returncode}: {(p.stderr or p.stdout).strip()}")
    return p


def prop(unit, name):
    return run(["systemctl", "show", "-p", name, "--value", unit], timeout=15).stdout.strip()


def wait_for(what, predicate, timeout):
    """Polls predicate (systemd offers no event to block on here) until it holds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise CheckFailed(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def expect(cond, msg):
    if not cond:
        raise CheckFailed(msg)


def check(name, fn, *args):
    try:
        detail = fn(*args)
    except CheckFailed as e:
        results.append((name, False))
        print(f"FAIL {name}: {e}", flush=True)
        return False
    except Exception as e:  # a broken check is a failed check, never a crash
        results.append((name, False))
        print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
        return False
    results.append((name, True))
    print(f"PASS {name}" + (f": {detail}" if detail else ""), flush=True)
    return True


# --- clients -------------------------------------------------------------------------------------

def recv_line(sock):
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            raise CheckFailed(f"connection closed after {data!r}")
        data += chunk
    return data.decode()


def expect_stamp(reply, line):
    m = STAMP_RE.match(reply)
    expect(m and m.group(1) == line, f"stamp reply {reply!r} is not '[date] {line}'")


class StampConnection:
    """A TCP connection to the stamp service that stays open between exchanges."""

    def __init__(self, family=socket.AF_INET, host="127.0.0.1"):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(IO_TIMEOUT)
        self.sock.connect((host, PORT))

    def exchange(self, line):
        self.sock.sendall(line.encode() + b"\n")
        reply = recv_line(self.sock)
        expect_stamp(reply, line)
        return reply

    def close(self):
        self.sock.close()


def client_tcp(family, host):
    c = StampConnection(family, host)
    try:
        return c.exchange(f"hello over tcp {host}").strip()
    finally:
        c.close()


def client_udp(family, host):
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(IO_TIMEOUT)
        payload = f"hello over udp {host}".encode()
        s.sendto(payload, (host, PORT))
        data, _ = s.recvfrom(65536)
        expect(data == payload, f"echo reply {data!r} != {payload!r}")
        return data.decode()


def read_to_end(sock):
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk


def client_unix_stream():
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(IO_TIMEOUT)
        s.connect(ECHO_SOCK)
        payload = b"hello over a unix stream\nsecond line\n"
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        data = read_to_end(s)
        expect(data == payload, f"echo reply {data!r} != {payload!r}")
        return repr(data.decode())


def client_unix_dgram():
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.settimeout(IO_TIMEOUT)
        s.bind("")  # autobind in the abstract namespace, so the reply has somewhere to go
        payload = b"hello over a unix datagram"
        s.sendto(payload, ECHO_DGRAM)
        data = s.recv(65536)
        expect(data == payload, f"echo reply {data!r} != {payload!r}")
        return data.decode()


KINDS = [
    ("tcp4 127.0.0.1 (stamp)", lambda: client_tcp(socket.AF_INET, "127.0.0.1")),
    ("tcp6 [::1] (stamp)", lambda: client_tcp(socket.AF_INET6, "::1")),
    ("udp4 127.0.0.1 (echo)", lambda: client_udp(socket.AF_INET, "127.0.0.1")),
    ("udp6 [::1] (echo)", lambda: client_udp(socket.AF_INET6, "::1")),
    ("unix stream /run/serverd/echo.sock (echo)", client_unix_stream),
    ("unix datagram /run/serverd/echo.dgram (echo)", client_unix_dgram),
]


class LoadGenerator:
    """Clients of every socket kind doing round trips in threads until stopped (at most MAX_ROUNDS each), counting
    each outcome per phase: ok, refused (ECONNREFUSED, or ENOENT for a Unix socket file that is gone), reset
    (ECONNRESET, EPIPE, or a connection closed before the reply), timeout (a stream reply that did not come within
    IO_TIMEOUT), and unanswered datagrams (no reply within 1 s; the datagram is sent again, up to 10 times, and
    counted lost only then). Also the longest round trip, which shows the pause a client saw."""

    MAX_ROUNDS = 200000

    def __init__(self, port=PORT, echo_sock=ECHO_SOCK, echo_dgram=ECHO_DGRAM, tcp_service="stamp"):
        self.port, self.echo_sock, self.echo_dgram, self.tcp_service = port, echo_sock, echo_dgram, tcp_service
        self.lock = threading.Lock()
        self.phase = "start"
        self.counts = {}
        self.longest = 0.0
        self.stopping = threading.Event()
        self.running = threading.Event()  # cleared while paused
        self.running.set()
        self.idle = threading.Semaphore(0)
        self.threads = [threading.Thread(target=self.loop, args=(name, fn), daemon=True)
                        for name, fn in (("tcp4", self.tcp), ("tcp6", self.tcp6), ("udp4", self.udp),
                                         ("udp6", self.udp6), ("unix", self.unix), ("unixgram", self.unixgram))]

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            if t.is_alive():
                t.join(IO_TIMEOUT + 15)

    def pause(self):
        """Until resume(): the clients finish their round trip and wait (a check that needs serverd stopped and not
        started again by a client, since the sockets activate it)."""
        if not self.threads[0].is_alive():
            return
        self.running.clear()
        for _ in self.threads:
            self.idle.acquire(timeout=IO_TIMEOUT + 15)

    def resume(self):
        self.running.set()

    def served_on(self, what, rounds=200):
        """Waits until `rounds` more round trips went well: serving goes on after `what`."""
        before = self.total("ok")
        wait_for(f"load after {what}", lambda: self.total("ok") >= before + rounds, 30)

    def enter(self, phase):
        with self.lock:
            self.phase = phase

    def record(self, kind, outcome, took=0.0):
        with self.lock:
            key = (self.phase, kind, outcome)
            self.counts[key] = self.counts.get(key, 0) + 1
            if outcome == "ok":
                self.longest = max(self.longest, took)

    def total(self, outcome, phases=None):
        with self.lock:
            return sum(n for (p, _, o), n in self.counts.items() if o == outcome and (phases is None or p in phases))

    def summary(self):
        with self.lock:
            by = {}
            for (phase, kind, outcome), n in sorted(self.counts.items()):
                by.setdefault(phase, []).append(f"{kind} {outcome} {n}")
            return "; ".join(f"{p}: " + ", ".join(v) for p, v in by.items()) + f"; longest round trip {self.longest:.2f} s"

    def loop(self, kind, fn):
        for _ in range(self.MAX_ROUNDS):
            if self.stopping.is_set():
                return
            if not self.running.is_set():
                self.idle.release()
                while not self.running.wait(0.1):
                    if self.stopping.is_set():
                        return
            t0 = time.monotonic()
            try:
                outcome = fn()
            except (ConnectionRefusedError, FileNotFoundError):
                outcome = "refused"
            except (ConnectionResetError, BrokenPipeError, CheckFailed):
                outcome = "reset"
            except socket.timeout:
                outcome = "timeout"
            except OSError as e:
                outcome = f"error {e.errno}"
            self.record(kind, outcome, time.monotonic() - t0)
            time.sleep(0.005)

    def tcp(self, family=socket.AF_INET, host="127.0.0.1"):
        if self.tcp_service == "stamp":
            c = StampConnection(family, host)
            try:
                c.exchange("load")
            finally:
                c.close()
            return "ok"
        return self.stream_echo(family, (host, self.port))

    def tcp6(self):
        return self.tcp(socket.AF_INET6, "::1")

    def unix(self):
        return self.stream_echo(socket.AF_UNIX, self.echo_sock)

    def stream_echo(self, family, target):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(IO_TIMEOUT)
            s.connect(target)
            s.sendall(b"load\n")
            s.shutdown(socket.SHUT_WR)
            return "ok" if read_to_end(s) == b"load\n" else "reset"

    def datagram(self, family, target, bind):
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            if bind is not None:
                s.bind(bind)
            s.settimeout(1)
            payload = f"load {time.monotonic()}".encode()
            for attempt in range(10):
                if attempt:
                    self.record("dgram-retry", "sent again")
                s.sendto(payload, target)
                try:
                    while True:
                        data = s.recv(65536)
                        if data == payload:
                            return "ok"
                except socket.timeout:
                    continue
            return "unanswered"

    def udp(self):
        return self.datagram(socket.AF_INET, ("127.0.0.1", self.port), None)

    def udp6(self):
        return self.datagram(socket.AF_INET6, ("::1", self.port), None)

    def unixgram(self):
        return self.datagram(socket.AF_UNIX, self.echo_dgram, "")

    def check(self):
        """Stops the clients; fails on a refused connection, a reset outside the kills, or an error."""
        self.enter("after")
        self.stop()
        summary = self.summary()
        log(summary)
        # A SIGKILL, and the watchdog's SIGABRT, end the connections the process had accepted.
        outside_kill = [p for p in {k[0] for k in self.counts} if p not in ("kill -9", "watchdog")]
        expect(self.total("refused") == 0, f"refused connections: {summary}")
        expect(self.total("reset", outside_kill) == 0, f"resets: {summary}")
        errors = [k for k in self.counts if k[2].startswith("error") or k[2] == "timeout"]
        expect(not errors, f"errors: {summary}")
        return (f"{self.total('ok')} round trips, none refused, {self.total('reset')} reset (by the kills), "
                f"{self.total('unanswered')} datagrams unanswered after 10 sends, "
                f"{self.total('sent again')} sent again; longest round trip {self.longest:.2f} s")


LOAD = LoadGenerator()


# --- helpers on the service ------------------------------------------------------------------------

def stop_service():
    run(["systemctl", "stop", SERVICE], timeout=40)
    run(["systemctl", "reset-failed", SERVICE], timeout=15, ok=False)  # also resets the start limit
    expect(prop(SERVICE, "ActiveState") == "inactive", f"{SERVICE} did not stop")


def wait_active():
    """serverd may serve a first client before systemd has processed its READY=1."""
    wait_for(f"{SERVICE} active", lambda: prop(SERVICE, "ActiveState") == "active", 10)


def ensure_running():
    """Starts the service the way users do: with a connection."""
    if prop(SERVICE, "ActiveState") != "active":
        client_tcp(socket.AF_INET, "127.0.0.1")
    wait_active()
    return int(prop(SERVICE, "MainPID"))


def now_for_journal():
    return time.strftime("%Y-%m-%d %H:%M:%S")


# --- checks ------------------------------------------------------------------------------------------

def c_install(deb):
    run(["dpkg", "-i", deb], timeout=120,
        env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    status = run(["dpkg-query", "-W", "-f", "${Status} ${Version}", "serverd"]).stdout
    expect(status.startswith("install ok installed"), f"dpkg status: {status}")
    return status


def c_only_sockets_started():
    for unit in SOCKETS:
        expect(prop(unit, "ActiveState") == "active", f"{unit} is not active")
        expect(prop(unit, "UnitFileState") == "enabled", f"{unit} is not enabled")
    expect(prop(SERVICE, "ActiveState") == "inactive",
           f"{SERVICE} is {prop(SERVICE, 'ActiveState')}, not inactive: install must start only the sockets")
    for path in (ECHO_SOCK, ECHO_DGRAM):
        expect(stat.S_ISSOCK(os.stat(path).st_mode), f"{path} is not a socket")
    return "serverd.socket and serverd-echo.socket listening, serverd.service inactive"


def c_no_swift(toolchain):
    ldd = run(["ldd", "/usr/sbin/serverd"]).stdout
    expect("swift" not in ldd.lower(), f"ldd shows a Swift library:\n{ldd}")
    expect("not found" not in ldd, f"ldd: missing library:\n{ldd}")
    if toolchain:
        expect(not os.path.isdir(toolchain) or not os.listdir(toolchain),
               f"the Swift toolchain {toolchain} is visible in the container")
    version = run(["/usr/sbin/serverd", "--version"], timeout=15).stdout.strip()
    libs = sorted(re.findall(r"^\s*(\S+\.so[.\d]*)", ldd, re.M))
    where = f" with {toolchain} hidden" if toolchain else ""
    return f"serverd --version{where}: {version}; needs {' '.join(libs)}"


def c_verify():
    paths = [f"/lib/systemd/system/{u}" for u in UNITS]
    p = run(["systemd-analyze", "verify"] + paths, timeout=60, ok=False)
    expect(p.returncode == 0 and p.stderr.strip() == "",
           f"exit {p.returncode}, stderr: {p.stderr.strip()!r}")
    return "exit 0, empty stderr"


def c_security():
    p = run(["systemd-analyze", "security", "--offline=yes", f"/lib/systemd/system/{SERVICE}"],
            timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", p.stdout)
    expect(m, f"no exposure level in:\n{p.stdout[-500:]}")
    level = float(m.group(1))
    expect(level <= EXPOSURE_LIMIT, f"exposure {level} > {EXPOSURE_LIMIT}")
    return f"{m.group(1)} {m.group(2)}"


def c_first_connection(client):
    stop_service()
    before = int(prop(SERVICE, "ExecMainStartTimestampMonotonic") or 0)
    reply = client()
    wait_active()
    started = int(prop(SERVICE, "ExecMainStartTimestampMonotonic") or 0)
    expect(started > before, "the connection did not start the service")
    return f"service started by it, reply {reply!r}"


def c_exec():
    """The exec service under the hardened unit, set up as README.Debian says."""
    shutil.copy(CONFFILE, "/run/serverd-test.toml.orig")
    shutil.copy("/usr/share/doc/serverd/examples/serverd-exec.socket", "/etc/systemd/system/")
    try:
        with open(CONFFILE, "a") as f:
            f.write('\nexec = ["/usr/bin/env"]\n')
        stop_service()
        run(["systemctl", "daemon-reload"])
        run(["systemctl", "enable", "--now", "serverd-exec.socket"], timeout=30)
        with socket.create_connection(("127.0.0.1", EXEC_PORT), timeout=IO_TIMEOUT) as s:
            s.shutdown(socket.SHUT_WR)
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        env = dict(line.split("=", 1) for line in out.decode().splitlines() if "=" in line)
        expect(env.get("PROTO") == "TCP", f"no PROTO=TCP in the child's environment: {out!r}")
        expect(env.get("TCPREMOTEIP") == "127.0.0.1" and env.get("TCPLOCALPORT") == str(EXEC_PORT),
               f"UCSPI variables wrong: {env}")
        leaked = [k for k in env if k.startswith(("LISTEN_", "WATCHDOG_")) or k == "NOTIFY_SOCKET"]
        expect(not leaked, f"the child inherited {leaked}")
        return f"/usr/bin/env ran per connection: PROTO={env['PROTO']} TCPREMOTEPORT={env.get('TCPREMOTEPORT')}"
    finally:
        run(["systemctl", "stop", SERVICE], timeout=40, ok=False)
        run(["systemctl", "disable", "--now", "serverd-exec.socket"], timeout=30, ok=False)
        os.remove("/etc/systemd/system/serverd-exec.socket")
        shutil.move("/run/serverd-test.toml.orig", CONFFILE)
        run(["systemctl", "daemon-reload"], ok=False)
        run(["systemctl", "reset-failed", SERVICE], ok=False)


def c_config_error():
    """A bad conffile makes serverd exit 78, which is not retried; README.Debian's recovery works."""
    stop_service()
    restarts = int(prop(SERVICE, "NRestarts"))
    shutil.copy(CONFFILE, "/run/serverd-test.toml.orig")
    try:
        with open(CONFFILE, "a") as f:
            f.write('\nmodel = "no-such-model"\n')
        p = run(["systemctl", "start", SERVICE], timeout=30, ok=False)
        expect(p.returncode != 0, "serverd started with a bad configuration")
        expect(prop(SERVICE, "ActiveState") == "failed", f"{SERVICE} is {prop(SERVICE, 'ActiveState')}")
        status = prop(SERVICE, "ExecMainStatus")
        expect(status == "78", f"serverd exited with {status}, not 78")
        time.sleep(1)  # RestartSec= is 100 ms: a restart would show by now
        expect(int(prop(SERVICE, "NRestarts")) == restarts and prop(SERVICE, "ActiveState") == "failed",
               "the configuration error was retried")
    finally:
        shutil.move("/run/serverd-test.toml.orig", CONFFILE)
    run(["systemctl", "reset-failed", "serverd*"])
    run(["systemctl", "start"] + SOCKETS, timeout=30)
    client_tcp(socket.AF_INET, "127.0.0.1")
    wait_active()
    return "exit 78, no restart; served again after the fix and reset-failed"


def c_reload():
    pid = ensure_running()
    c = StampConnection()
    try:
        c.exchange("before reload")
        run(["systemctl", "reload", SERVICE], timeout=30)
        c.exchange("after reload")
    finally:
        c.close()
    client_tcp(socket.AF_INET, "127.0.0.1")
    wait_active()  # RELOADING=1 may reach systemd after ExecReload= ended; READY=1 follows
    expect(int(prop(SERVICE, "MainPID")) == pid, "serverd was restarted instead of reloaded")
    return f"open connection served before and after, same PID {pid}"


def c_watchdog():
    dropin = "/run/systemd/system/serverd.service.d"
    os.makedirs(dropin, exist_ok=True)
    conf = os.path.join(dropin, "50-test-watchdog.conf")
    with open(conf, "w") as f:
        f.write("[Service]\nWatchdogSec=2s\n")
    try:
        run(["systemctl", "daemon-reload"])
        LOAD.pause()  # the stop must not be undone by a client at once
        stop_service()
        pid = ensure_running()
        LOAD.resume()
        restarts = int(prop(SERVICE, "NRestarts"))
        time.sleep(5)  # 2.5 watchdog periods: the keep-alives must hold it up
        expect(int(prop(SERVICE, "MainPID")) == pid and prop(SERVICE, "ActiveState") == "active",
               "serverd did not survive 5 s with WatchdogSec=2s: no WATCHDOG=1 keep-alives?")
        since = now_for_journal()
        os.kill(pid, 19)  # SIGSTOP
        t0 = time.monotonic()
        wait_for("a new serverd after the watchdog timeout",
                 lambda: prop(SERVICE, "ActiveState") == "active"
                 and prop(SERVICE, "MainPID") not in ("0", str(pid)), 45)
        elapsed = time.monotonic() - t0
        expect(int(prop(SERVICE, "NRestarts")) == restarts + 1, "NRestarts did not grow by one")
        expect("Watchdog timeout" in run(["journalctl", "--no-pager", "--since", since, "-u", SERVICE],
                                         ok=False).stdout, "no 'Watchdog timeout' in the journal")
        client_tcp(socket.AF_INET, "127.0.0.1")
        return (f"with a WatchdogSec=2s drop-in, frozen PID {pid} replaced by "
                f"{prop(SERVICE, 'MainPID')} after {elapsed:.1f} s")
    finally:
        LOAD.pause()
        os.remove(conf)
        os.rmdir(dropin)
        run(["systemctl", "daemon-reload"], ok=False)
        run(["systemctl", "stop", SERVICE], timeout=40, ok=False)
        run(["systemctl", "reset-failed", SERVICE], ok=False)
        LOAD.resume()


def c_stop_drains():
    ensure_running()
    c = StampConnection()
    try:
        c.exchange("before stop")
        run(["systemctl", "stop", "--no-block", SERVICE], timeout=15)
        wait_for(f"{SERVICE} deactivating", lambda: prop(SERVICE, "ActiveState") == "deactivating", 5)
        c.exchange("while stopping")
        time.sleep(1)  # still draining: the connection is kept, not cut
        c.exchange("still stopping")
        expect(prop(SERVICE, "ActiveState") == "deactivating", "serverd did not wait for the connection")
    finally:
        c.close()
    t0 = time.monotonic()
    wait_for(f"{SERVICE} inactive", lambda: prop(SERVICE, "ActiveState") in ("inactive", "failed"), 15)
    elapsed = time.monotonic() - t0
    result, status = prop(SERVICE, "Result"), prop(SERVICE, "ExecMainStatus")
    expect(result == "success" and status == "0", f"stop ended with Result={result} status={status}")
    expect(elapsed < 5, f"serverd took {elapsed:.1f} s to exit after the last connection closed")
    return f"in-flight connection served during the stop; exit 0 {elapsed:.1f} s after it closed"


def c_load_start():
    ensure_running()
    LOAD.start()
    wait_for("load round trips", lambda: LOAD.total("ok") >= 200, 30)
    return f"{LOAD.total('ok')} round trips so far"


def c_restart_under_load():
    LOAD.enter("systemctl restart")
    pid = ensure_running()
    run(["systemctl", "restart", SERVICE], timeout=60)
    wait_active()
    expect(int(prop(SERVICE, "MainPID")) != pid, "serverd was not restarted")
    LOAD.served_on("the restart")
    return f"PID {pid} -> {prop(SERVICE, 'MainPID')}"


def c_kill9_under_load():
    LOAD.enter("kill -9")
    pid = ensure_running()
    restarts = int(prop(SERVICE, "NRestarts"))
    os.kill(pid, 9)
    wait_for("a new serverd after SIGKILL", lambda: prop(SERVICE, "ActiveState") == "active"
             and prop(SERVICE, "MainPID") not in ("0", str(pid)), 30)
    expect(int(prop(SERVICE, "NRestarts")) == restarts + 1, "NRestarts did not grow by one (Restart=on-failure)")
    LOAD.served_on("the SIGKILL")
    return f"PID {pid} killed, {prop(SERVICE, 'MainPID')} serves"


def c_sigusr2_under_load():
    """SIGUSR2 under systemd: the new process becomes the main one (MAINPID=) and the unit stays active."""
    LOAD.enter("SIGUSR2")
    pid = ensure_running()
    since = now_for_journal()
    restarts = int(prop(SERVICE, "NRestarts"))
    run(["systemctl", "kill", "-s", "USR2", "--kill-whom=main", SERVICE])
    wait_for("a new main PID after SIGUSR2", lambda: prop(SERVICE, "MainPID") not in ("0", str(pid)), 40)
    wait_for(f"PID {pid} gone", lambda: not os.path.exists(f"/proc/{pid}"), 30)
    expect(prop(SERVICE, "ActiveState") == "active", f"{SERVICE} is {prop(SERVICE, 'ActiveState')}")
    expect(int(prop(SERVICE, "NRestarts")) == restarts, "systemd restarted serverd instead")
    journal = run(["journalctl", "--no-pager", "-o", "cat", "--since", since, "-u", SERVICE], ok=False).stdout
    expect("serves now" in journal, f"no hand-over in the journal: {journal[-2000:]}")
    # systemd must take the new process as its own child (serverd detaches it) and hear it only once it is main.
    refused = [l for l in journal.splitlines()
               if "reception only permitted for main PID" in l or "not our child" in l or "failed" in l]
    expect(not refused, f"journal: {refused}")
    LOAD.served_on("SIGUSR2")
    return f"PID {pid} -> {prop(SERVICE, 'MainPID')} without a restart"


def c_reload_changed_config_under_load():
    LOAD.enter("reload with a changed configuration")
    pid = ensure_running()
    shutil.copy(CONFFILE, "/run/serverd-test.toml.orig")
    try:
        with open(CONFFILE, "a") as f:
            f.write("\nidle-timeout = 299\n")
        run(["systemctl", "reload", SERVICE], timeout=30)
        wait_active()
        expect(int(prop(SERVICE, "MainPID")) == pid, "serverd was restarted instead of reloaded")
    finally:
        shutil.move("/run/serverd-test.toml.orig", CONFFILE)
    run(["systemctl", "reload", SERVICE], timeout=30)
    wait_active()
    LOAD.served_on("the reload")
    return f"same PID {pid}"


def c_load_stop():
    return LOAD.check()


FDSTORE_SERVICE = "serverd-fdstore.service"
FDSTORE_PORT = 21571


FDSTORE_DROPIN = f"/run/systemd/system/{FDSTORE_SERVICE}.d"
FDSTORE_CONFIG = "/run/serverd-fdstore-test.toml"
FDSTORE_SOCKET = "/run/serverd-fdstore/echo.sock"
FDSTORE_LOAD = LoadGenerator(FDSTORE_PORT, FDSTORE_SOCKET, "/run/serverd-fdstore/echo-dgram.sock", "echo")
FDSTORE_STATE = {}


def fdstore_config(idle_timeout):
    """The test's configuration of the fd-store unit: the example unit's listeners, in a file a reload re-reads."""
    with open(FDSTORE_CONFIG, "w") as f:
        f.write(f"""listen = ["echo@tcp://127.0.0.1:{FDSTORE_PORT}", "echo@tcp://[::1]:{FDSTORE_PORT}",
          "echo@udp://127.0.0.1:{FDSTORE_PORT}", "echo@udp://[::1]:{FDSTORE_PORT}",
          "echo@unix:{FDSTORE_SOCKET}", "echo@unixgram:/run/serverd-fdstore/echo-dgram.sock"]
idle-timeout = {idle_timeout}
""")
    os.chmod(FDSTORE_CONFIG, 0o644)


def fdstore_pid():
    return int(prop(FDSTORE_SERVICE, "MainPID"))


def fdstore_replaced(phase, pid, timeout=45):
    wait_for(f"a new main PID after {phase}", lambda: prop(FDSTORE_SERVICE, "ActiveState") == "active"
             and prop(FDSTORE_SERVICE, "MainPID") not in ("0", str(pid)), timeout)
    FDSTORE_LOAD.served_on(phase)
    return f"{phase}: {pid} -> {fdstore_pid()}"


def c_fd_store_unit():
    """The example unit that binds its own sockets and keeps them in the fd store (here with its listeners in a
    configuration file and WatchdogSec=2s, by a drop-in), under load on every socket kind: a restart, a SIGKILL, a
    watchdog timeout, a reload with a changed configuration and a SIGUSR2 refuse no connection, and the ports and
    the socket file stay. The unit and its load stay up for the package upgrade (c_fd_store_after_dpkg)."""
    shutil.copy(f"/usr/share/doc/serverd/examples/{FDSTORE_SERVICE}", "/etc/systemd/system/")
    os.makedirs(FDSTORE_DROPIN, exist_ok=True)
    with open(os.path.join(FDSTORE_DROPIN, "50-test.conf"), "w") as f:
        f.write(f"[Service]\nWatchdogSec=2s\nExecStart=\nExecStart=/usr/sbin/serverd --fd-store --config {FDSTORE_CONFIG}\n")
    fdstore_config(300)
    run(["systemctl", "daemon-reload"])
    run(["systemctl", "start", FDSTORE_SERVICE], timeout=30)
    FDSTORE_LOAD.start()
    wait_for("load round trips", lambda: FDSTORE_LOAD.total("ok") >= 200, 30)
    FDSTORE_STATE["inode"] = os.stat(FDSTORE_SOCKET).st_ino
    steps = []

    FDSTORE_LOAD.enter("systemctl restart")
    pid = fdstore_pid()
    run(["systemctl", "restart", FDSTORE_SERVICE], timeout=60)
    steps.append(fdstore_replaced("systemctl restart", pid))

    FDSTORE_LOAD.enter("kill -9")
    pid = fdstore_pid()
    os.kill(pid, 9)
    steps.append(fdstore_replaced("kill -9", pid))

    FDSTORE_LOAD.enter("watchdog")
    pid = fdstore_pid()
    since = now_for_journal()
    os.kill(pid, 19)  # SIGSTOP: no more WATCHDOG=1
    steps.append(fdstore_replaced("watchdog", pid, timeout=60))
    expect("Watchdog timeout" in run(["journalctl", "--no-pager", "--since", since, "-u", FDSTORE_SERVICE],
                                     ok=False).stdout, "no 'Watchdog timeout' in the journal")

    FDSTORE_LOAD.enter("reload with a changed configuration")
    pid = fdstore_pid()
    since = now_for_journal()
    fdstore_config(299)
    run(["systemctl", "reload", FDSTORE_SERVICE], timeout=30)
    wait_for("the reload logged", lambda: "reloaded: 6 kept" in run(
        ["journalctl", "--no-pager", "-o", "cat", "--since", since, "-u", FDSTORE_SERVICE], ok=False).stdout, 20)
    expect(fdstore_pid() == pid, "serverd was restarted instead of reloaded")
    FDSTORE_LOAD.served_on("the reload")
    steps.append(f"reload: same PID {pid}")

    FDSTORE_LOAD.enter("SIGUSR2")
    pid = fdstore_pid()
    run(["systemctl", "kill", "-s", "USR2", "--kill-whom=main", FDSTORE_SERVICE])
    steps.append(fdstore_replaced("SIGUSR2", pid))

    expect(os.stat(FDSTORE_SOCKET).st_ino == FDSTORE_STATE["inode"], "the Unix socket file was replaced")
    journal = run(["journalctl", "--no-pager", "-o", "cat", "-u", FDSTORE_SERVICE], ok=False).stdout
    expect("binding it anew" not in journal, "a stored socket was not taken over")
    FDSTORE_LOAD.enter("dpkg -i")
    return ", ".join(steps)


def c_fd_store_after_dpkg():
    """After dpkg -i of the newer package (the fd-store unit is no unit of the package, so dpkg leaves it running on
    the replaced binary), SIGUSR2 starts the new binary with the same sockets; then the load's totals."""
    pid = fdstore_pid()
    expect(os.readlink(f"/proc/{pid}/exe").endswith("(deleted)"), "dpkg -i did not replace the running binary")
    FDSTORE_LOAD.enter("SIGUSR2 to the new binary")
    run(["systemctl", "kill", "-s", "USR2", "--kill-whom=main", FDSTORE_SERVICE])
    step = fdstore_replaced("SIGUSR2 to the new binary", pid)
    exe = os.readlink(f"/proc/{fdstore_pid()}/exe")
    expect(exe == "/usr/sbin/serverd", f"the new process runs {exe}")
    expect(os.stat(FDSTORE_SOCKET).st_ino == FDSTORE_STATE["inode"], "the Unix socket file was replaced")
    return step + "; " + FDSTORE_LOAD.check()


def c_fd_store_cleanup():
    FDSTORE_LOAD.stop()
    run(["systemctl", "stop", FDSTORE_SERVICE], timeout=40, ok=False)
    # systemd 252 removes a preserved RuntimeDirectory= of a DynamicUser= unit at the stop but leaves its
    # symlink (/run/serverd-fdstore -> private/serverd-fdstore) dangling; the unit's comment says so.
    if os.path.islink("/run/serverd-fdstore") and not os.path.exists("/run/serverd-fdstore"):
        log("systemd left the dangling symlink /run/serverd-fdstore; removed")
        os.remove("/run/serverd-fdstore")
    for path in (f"/etc/systemd/system/{FDSTORE_SERVICE}", os.path.join(FDSTORE_DROPIN, "50-test.conf"),
                 FDSTORE_CONFIG):
        if os.path.exists(path):
            os.remove(path)
    if os.path.isdir(FDSTORE_DROPIN):
        os.rmdir(FDSTORE_DROPIN)
    run(["systemctl", "daemon-reload"], ok=False)
    run(["systemctl", "reset-failed", FDSTORE_SERVICE], ok=False)
    return "stopped and removed"


def c_upgrade(deb):
    pid = ensure_running()
    sockets_up = {u: prop(u, "ActiveEnterTimestampMonotonic") for u in SOCKETS}
    since = now_for_journal()
    run(["dpkg", "-i", deb], timeout=120, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    version = run(["dpkg-query", "-W", "-f", "${Version}", "serverd"]).stdout
    expect(version.endswith("+systemtest1"), f"installed version is {version}")
    for unit in UNITS:
        expect(prop(unit, "ActiveState") == "active", f"{unit} not active after the upgrade")
        expect(run(["systemctl", "is-failed", "--quiet", unit], ok=False).returncode != 0,
               f"{unit} failed")
    for unit, t in sockets_up.items():
        expect(prop(unit, "ActiveEnterTimestampMonotonic") == t,
               f"{unit} was restarted: its clients saw refused connections")
    new_pid = int(prop(SERVICE, "MainPID"))
    expect(new_pid != pid, "serverd was not restarted by the upgrade")
    journal = run(["journalctl", "--no-pager", "-o", "cat", "--since", since,
                   "-u", SERVICE, "-u", SOCKETS[0], "-u", SOCKETS[1]], ok=False).stdout
    # systemd's own "Failed to kill control group …, ignoring" (the container's cgroup file system refusing a
    # cgroup.kill it then does by hand) is no failure of the upgrade.
    errors = [l for l in journal.splitlines() if re.search(r"[Ff]ailed|refusing|[Ee]rror", l)
              and not re.search(r"Failed to kill control group .*, ignoring", l)]
    expect(not errors, f"journal during the upgrade: {errors}")
    for name, client in KINDS:
        client()
    return f"{version}: serverd PID {pid} -> {new_pid}, sockets kept open, every socket kind served"


def listeners_on(port):
    """The sockets on `port`, but TIME-WAIT ones: those are the kernel's remnants of connections the load just
    closed (they last a minute), owned by no process."""
    out = run(["ss", "-H", "-a", "-n", "-t", "-u", f"sport = :{port}"], ok=False).stdout
    return [l for l in out.splitlines() if l.strip() and "TIME-WAIT" not in l.split()[:2]]


# A name of serverd's: "serverd" not preceded by a letter or digit (serverd.service, serverd-echo.socket,
# serverd.8.gz, deb-systemd-helper's "...serverd.socket"), not s6's s6-ipcserverd.html.
SERVERD_NAME = re.compile(r"(^|[^A-Za-z0-9])serverd")


def serverd_paths():
    """Every path whose name is serverd's where a package or systemd could leave one."""
    found = []
    for top in ("/etc", "/lib/systemd", "/usr/lib/systemd", "/usr/sbin", "/usr/share", "/var/lib/systemd",
                "/run"):
        for dirpath, dirnames, filenames in os.walk(top):
            found += [os.path.join(dirpath, n) for n in dirnames + filenames if SERVERD_NAME.search(n)]
    return sorted(p for p in found if not p.startswith("/run/serverd-test"))


# What dpkg -r keeps on purpose until the purge: the conffile, and the enable links with
# deb-systemd-helper's record of them, so that a reinstall keeps the admin's choice.
KEPT_UNTIL_PURGE = re.compile(r"^(/etc/serverd(/serverd\.toml)?"
                              r"|/etc/systemd/system/sockets\.target\.wants/serverd(-echo)?\.socket"
                              r"|/var/lib/systemd/deb-systemd-helper-enabled/.*serverd.*)$")


def c_remove():
    run(["dpkg", "-r", "serverd"], timeout=120)
    for unit in UNITS:
        expect(prop(unit, "ActiveState") == "inactive", f"{unit} still active")
        expect(prop(unit, "LoadState") == "not-found", f"{unit} still loaded")
    expect(not listeners_on(PORT), f"sockets left on port {PORT}: {listeners_on(PORT)}")
    expect(run(["pgrep", "-x", "serverd"], ok=False).returncode != 0, "a serverd process is left")
    left = serverd_paths()
    unexpected = [p for p in left if not KEPT_UNTIL_PURGE.match(p)]
    expect(not unexpected, f"left behind: {unexpected}")
    expect(os.path.exists(CONFFILE), f"{CONFFILE} removed before the purge")
    return (f"units stopped and gone, no socket, no /run/serverd, no binary; kept until purge: "
            f"{len(left)} paths (conffile, enable links, deb-systemd-helper state)")


def c_purge():
    run(["dpkg", "-P", "serverd"], timeout=120)
    expect(run(["dpkg-query", "-W", "serverd"], ok=False).returncode != 0, "dpkg still knows serverd")
    left = serverd_paths()
    expect(not left, f"left behind: {left}")
    expect(not listeners_on(PORT), f"sockets left on port {PORT}")
    return "no file, unit link or socket left"


def main():
    deb, upgrade_deb = sys.argv[1], sys.argv[2]
    toolchain = sys.argv[3] if len(sys.argv) > 3 else ""
    if not check("install: dpkg -i", c_install, deb):
        return 1
    check("install starts only the sockets", c_only_sockets_started)
    check("installed binary needs no Swift", c_no_swift, toolchain)
    check("systemd-analyze verify", c_verify)
    check(f"systemd-analyze security --offline=yes <= {EXPOSURE_LIMIT}", c_security)
    for name, client in KINDS:
        check(f"first connection starts serverd and is served: {name}", c_first_connection, client)
    check("exec service runs children under the hardened unit", c_exec)
    check("a configuration error stops serverd without retries", c_config_error)
    load = check("continuous load starts", c_load_start)
    check("systemctl restart under load", c_restart_under_load)
    check("kill -9 under load: Restart=on-failure", c_kill9_under_load)
    check("SIGUSR2 binary upgrade under load: MAINPID follows", c_sigusr2_under_load)
    check("systemctl reload with a changed configuration under load", c_reload_changed_config_under_load)
    LOAD.enter("reload")
    check("systemctl reload keeps an open connection working", c_reload)
    LOAD.enter("watchdog")
    check("watchdog restarts a serverd frozen with SIGSTOP", c_watchdog)
    LOAD.pause()  # the check waits for the service to be inactive, which a client would activate again
    check("systemctl stop lets an in-flight connection finish", c_stop_drains)
    LOAD.resume()
    fdstore = check("--fd-store unit under load: restart, kill -9, watchdog, reload with a changed configuration, "
                    "SIGUSR2", c_fd_store_unit)
    LOAD.enter("dpkg -i")
    check("upgrade to a newer build restarts cleanly", c_upgrade, upgrade_deb)
    if load:
        check("no refused connection, no reset under load", c_load_stop)
    if fdstore:
        check("--fd-store unit after dpkg -i: SIGUSR2 to the new binary; nothing refused under load",
              c_fd_store_after_dpkg)
    check("--fd-store unit stopped and removed", c_fd_store_cleanup)
    check("remove: dpkg -r", c_remove)
    check("purge: dpkg -P", c_purge)
    failed = [n for n, ok in results if not ok]
    print(f"{len(results) - len(failed)} of {len(results)} checks passed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
