#!/usr/bin/env python3
"""serverd benchmark driver (issue 6).  Python 3 standard library only.

Starts each server, runs the workloads against it with Benchmarks/loadgen (one thread, epoll),
repeats every workload three times, prints a table of medians with min-max and the ratio of
serverd to each peer, and writes it to Benchmarks/RESULTS.md with the commit it was measured on.

    python3 Benchmarks/run.py                        # everything; what `make bench` runs
    python3 Benchmarks/run.py --smoke --serverd PATH --only serverd-threading
                                                     # the smoke run the tests use (~15 s)

    python3 Benchmarks/run.py --serverd NEW --serverd-baseline OLD --workloads e,h \
        --only serverd-threading,serverd-baseline-threading,epoll-c
                                                     # a second serverd binary as rows of its own

Servers (names for --only/--skip): serverd-threading, serverd-forking, serverd-prefork, serverd-serial,
serverd-event, serverd-event-1w, epoll-c, epoll-c-2t, swift-nio, py-threading, py-forking; with --serverd-baseline also
serverd-baseline-threading, serverd-baseline-forking, serverd-baseline-serial, serverd-baseline-event,
each run right after its serverd-<model>.
Workloads (names for --workloads), 64-byte lines, all on loopback or Unix sockets:

  a  TCP echo, 64 persistent connections, one line outstanding each      req/s
  b  one TCP connection, ping-pong: p50 and p99 round-trip latency        us
  c  connect + one line + close, 16 in flight                             conn/s
  d  Unix stream echo, 64 persistent connections                         req/s
  e  UDP echo, 32 datagrams outstanding                                   dgram/s
  f  1,000 idle TCP connections held: server PSS growth per connection   KiB/conn
  g  start-up: exec to first echo reply (Unix socket), median of 5        ms
  h  Unix datagram echo, 32 datagrams outstanding, twice: client socket   dgram/s
     autobound (abstract name) and bound to a filesystem path

Around every loadgen run the driver samples /proc/stat and the CPU time of the server (with its
descendants), the load generator and itself: the rest is other processes' CPU, reported per run
and flagged above 25 % of one CPU (speed is claimed only on a quiet host).

Every run is bounded in time (loadgen's --seconds plus a subprocess timeout) and in count.  The
driver only signals processes it started, by PID: the servers, their descendants (forking
models) and its loadgen runs.  With --smoke each workload runs once for half a second, f holds 50
connections, g starts the server once, nothing is written to RESULTS.md unless --results is
given, and the exit status is 1 when any workload failed (no timing is checked).
"""
import argparse
import datetime
import shlex
import json
import os
import platform
import re
import resource
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time

import chart

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# ---------------------------------------------------------------------------------------------
# Workloads and servers

# key, title, unit, higher_is_better
METRICS = [
    ("a", "(a) TCP echo, 64 persistent connections", "req/s", True),
    ("b50", "(b) one TCP connection, p50 latency", "us", False),
    ("b99", "(b) one TCP connection, p99 latency", "us", False),
    ("c", "(c) connect + one line + close, 16 in flight", "conn/s", True),
    ("d", "(d) Unix stream echo, 64 persistent connections", "req/s", True),
    ("e", "(e) UDP echo, 32 datagrams outstanding", "dgram/s", True),
    ("f", "(f) IDLE idle connections: server PSS growth per connection", "KiB/conn", False),
    ("g", "(g) start-up to first reply", "ms", False),
    ("h", "(h) Unix datagram echo, 32 datagrams outstanding, client autobound (abstract name)", "dgram/s", True),
    ("hp", "(h) Unix datagram echo, 32 datagrams outstanding, client bound to a filesystem path", "dgram/s", True),
]
METRIC = {m[0]: m for m in METRICS}
# Workload letters (--workloads) and the metrics each produces.
WORKLOADS = {"a": ["a"], "b": ["b50", "b99"], "c": ["c"], "d": ["d"], "e": ["e"], "f": ["f"],
             "g": ["g"], "h": ["h", "hp"]}
# Other processes' CPU above this share of one CPU during a run flags the run (not a quiet host).
BUSY_PCT = 25.0

SERVER_ORDER = ["serverd-threading", "serverd-baseline-threading", "serverd-forking",
                "serverd-baseline-forking", "serverd-prefork", "serverd-serial", "serverd-baseline-serial",
                "serverd-event", "serverd-baseline-event", "serverd-event-1w", "epoll-c", "epoll-c-2t", "swift-nio", "py-threading", "py-forking"]
# The serverd under test (--serverd): the ratio columns and the targets are about these rows.
SERVERD_MODELS = {"serverd-threading": "threading", "serverd-forking": "forking",
                  "serverd-prefork": "forking", "serverd-serial": "serial", "serverd-event": "event",
                  "serverd-event-1w": "event"}
# Options of a row beyond its model: serverd-prefork is the forking model with a pool of pre-forked workers,
# serverd-event-1w the event model with one reactor.
PREFORK_WORKERS = 16
ROW_OPTIONS = {"serverd-prefork": ["--prefork", str(PREFORK_WORKERS)], "serverd-event-1w": ["--workers", "1"]}
# The same models run from --serverd-baseline, a second serverd binary (say the previous main).
BASELINE_MODELS = {"serverd-baseline-threading": "threading", "serverd-baseline-forking": "forking",
                   "serverd-baseline-serial": "serial", "serverd-baseline-event": "event"}
ANY_SERVERD = {**SERVERD_MODELS, **BASELINE_MODELS}
# Servers started with a Unix datagram listener, for h.
UNIXGRAM = set(ANY_SERVERD) | {"epoll-c", "epoll-c-2t", "py-threading", "py-forking"}
DESCRIPTION = {
    "serverd-threading": "serverd --model threading, echo service",
    "serverd-forking": "serverd --model forking, echo service",
    "serverd-prefork": f"serverd --model forking --prefork {PREFORK_WORKERS} (a pool of pre-forked workers, each "
                       "serving connection after connection), echo service",
    "serverd-serial": "serverd --model serial, echo service (one connection at a time: a, d, f not run)",
    "serverd-event": "serverd --model event (a reactor per CPU, the --workers default; a connection stays on the "
                     "reactor that accepted it until that one is busy and a processor idle), echo service; datagram "
                     "listeners as in every model (their own thread, batches answered in place)",
    "serverd-event-1w": "serverd --model event --workers 1: one reactor, like the one-thread C server (on a 2-CPU "
                        "host the load generator needs the other CPU)",
    "serverd-baseline-threading": "the --serverd-baseline binary, --model threading, echo service",
    "serverd-baseline-forking": "the --serverd-baseline binary, --model forking, echo service",
    "serverd-baseline-serial": "the --serverd-baseline binary, --model serial, echo service (a, d, f not run)",
    "serverd-baseline-event": "the --serverd-baseline binary, --model event, echo service",
    "epoll-c": "C, one thread, epoll (Benchmarks/peers/epoll_echo.c): the limit",
    "epoll-c-2t": "the same C server with --threads 2: an epoll loop per core, SO_REUSEPORT TCP and UDP sockets, "
                  "Unix sockets shared with EPOLLEXCLUSIVE",
    "swift-nio": "SwiftNIO 2 NIOEchoServer, one event loop per core (Benchmarks/Sources/nio-echo); "
                 "h not run: this peer has no Unix datagram listener",
    "py-threading": "Python socketserver ThreadingTCPServer / ThreadingUnixStreamServer / ThreadingUDPServer / "
                    "ThreadingUnixDatagramServer, readline echo",
    "py-forking": "Python socketserver ForkingTCPServer / ForkingUnixStreamServer / ForkingUDPServer / "
                  "ForkingUnixDatagramServer, readline echo",
}
# The serial model serves one connection at a time: 64 persistent or 1,000 idle connections
# would measure one connection and a queue.  The SwiftNIO peer serves no Unix datagrams.
NOT_RUN = {"serverd-serial": {"a", "d", "f"}, "serverd-baseline-serial": {"a", "d", "f"},
           "swift-nio": {"h", "hp"}}
NOT_RUN_TEXT = {"swift-nio": "n/a (no Unix datagram server)"}

# (what, model, metric, comparison peer or None for an absolute bound, factor, sense)
# sense '>=': serverd >= factor * peer;  '<=': serverd <= factor * peer (or <= factor absolute)
TARGETS = [
    ("threading", "a", "swift-nio", 1.0, ">="),
    ("threading", "c", "swift-nio", 1.0, ">="),
    ("threading", "d", "swift-nio", 1.0, ">="),
    ("threading", "e", "swift-nio", 0.9, ">="),
    ("threading", "a", "epoll-c", 0.8, ">="),
    ("threading", "d", "epoll-c", 0.8, ">="),
    ("threading", "b50", "epoll-c", 1.2, "<="),
    ("threading", "f", None, 16.0, "<="),
    ("threading", "g", "swift-nio", 1.0, "<="),
    ("forking", "c", "py-forking", 5.0, ">="),
    ("prefork", "c", "py-forking", 5.0, ">="),
    ("forking", "f", None, 300.0, "<="),
] + [
    # Issue 13, the event model: with its default reactors and with one.
    (model, key, peer, factor, ">=")
    for model in ("event", "event-1w")
    for key, peer, factor in [("a", "swift-nio", 1.3)] + [(k, "epoll-c", 0.9) for k in ("a", "c", "d", "e", "h", "hp")]
] + [
    ("event", "f", None, 4.0, "<="),
    ("event", "g", "swift-nio", 1.0, "<="),
]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Processes: only those this driver started, by PID

def proc_table():
    """{pid: (ppid, starttime)} for every process."""
    table = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        table[int(d)] = (int(rest[1]), int(rest[19]))
    return table


def tree(root):
    """The root and all its descendants: [(pid, starttime)]."""
    table = proc_table()
    children = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        if p in table:
            out.append((p, table[p][1]))
        todo.extend(children.get(p, []))
    return out


def set_affinity(root, cpus):
    """Moves every thread of root and its descendants to cpus; False if that failed."""
    ok = True
    for pid, _ in tree(root):
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue
        for tid in tids:
            try:
                os.sched_setaffinity(tid, cpus)
            except OSError:
                ok = ok and not os.path.exists(f"/proc/{pid}/task/{tid}")
    return ok


def needed_libraries(path):
    """The DT_NEEDED entries of an ELF64 little-endian executable ([] when it is not one or cannot be read)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            return []
        shoff, = struct.unpack_from("<Q", data, 0x28)
        shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
        sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
        for sh in sections:
            if sh[1] != 6:  # SHT_DYNAMIC
                continue
            strtab = sections[sh[6]]  # sh_link: its string table
            names = []
            for off in range(sh[4], sh[4] + sh[5], 16):
                tag, val = struct.unpack_from("<qQ", data, off)
                if tag == 0:
                    break
                if tag == 1:  # DT_NEEDED
                    start = strtab[4] + val
                    names.append(data[start:data.index(b"\0", start)].decode())
            return names
    except (OSError, ValueError, IndexError, struct.error):
        return []
    return []


def swift_runtime_linking(path):
    """How a Swift binary links the Swift runtime: start-up (g) pays for loading and relocating libswiftCore.so and
    its companions when it is dynamic, so compare start-up only between binaries linked alike."""
    if any(n.startswith("libswiftCore") for n in needed_libraries(path)):
        return "Swift runtime linked dynamically (libswiftCore.so: build with --static-swift-stdlib to compare start-up)"
    return "Swift runtime linked statically"


def same_process(pid, starttime):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    rest = stat[stat.rfind(")") + 2:].split()
    return int(rest[19]) == starttime and rest[0] != "Z"


def tree_memory(root):
    """Memory summed over root and its descendants, in KiB: {"pss", "rss", "pss_anon", "pte",
    "procs"} from /proc/PID/smaps_rollup and status (pte: page tables, kernel memory)."""
    m = {"pss": 0, "rss": 0, "pss_anon": 0, "pte": 0, "procs": 0}
    keys = {"Pss:": "pss", "Rss:": "rss", "Pss_Anon:": "pss_anon"}
    for pid, _ in tree(root):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    k = keys.get(line.split(":", 1)[0] + ":")
                    if k:
                        m[k] += int(line.split()[1])
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmPTE:"):
                        m["pte"] += int(line.split()[1])
            m["procs"] += 1
        except OSError:
            pass
    return m


# ---------------------------------------------------------------------------------------------
# Is the host quiet?  CPU time of everything (/proc/stat) against that of the processes of the run

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def machine_cpu():
    """(busy, steal) clock ticks of all CPUs since boot, from /proc/stat's first line.  Busy is
    user + nice + system + irq + softirq (guest time is inside user); idle and iowait are not."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    v += [0] * (8 - len(v))
    return v[0] + v[1] + v[2] + v[5] + v[6], v[7]


def tree_cpu(root):
    """Clock ticks used by root and its descendants: utime + stime of each, plus cutime + cstime
    (children that already exited and were waited for), so a forking server's short-lived children
    count whether they are still there or not."""
    total = 0
    for pid, _ in tree(root):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        total += int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])
    return total


class CpuWatch:
    """Samples, around one load generator run, the machine's CPU time and that of the run's own
    processes: the server and its descendants, the driver (this process) and its waited-for
    children (the load generator, and for g the servers it starts).  What is left is other
    processes' CPU (and kernel work on their behalf), as a share of one CPU over the wall time."""

    def __init__(self, server_pid):
        self.server_pid = server_pid
        self.t0, self.m0, self.own0 = time.monotonic(), machine_cpu(), self.own()

    def own(self):
        t = os.times()
        ticks = (t.user + t.system + t.children_user + t.children_system) * CLK_TCK
        return ticks + (tree_cpu(self.server_pid) if self.server_pid else 0)

    def finish(self):
        """{"others_pct", "steal_pct", "own_pct", "wall_s", "load1"} or None."""
        m1, own1, wall = machine_cpu(), self.own(), time.monotonic() - self.t0
        if not self.m0 or not m1 or wall <= 0:
            return None
        busy, steal = m1[0] - self.m0[0], m1[1] - self.m0[1]
        own = own1 - self.own0
        pct = lambda ticks: 100.0 * ticks / CLK_TCK / wall
        return {"others_pct": round(max(0.0, pct(busy - own)), 1), "steal_pct": round(pct(steal), 1),
                "own_pct": round(pct(own), 1), "wall_s": round(wall, 3), "load1": loadavg1()}


def loadavg1():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class Server:
    """One running server: argv, its log file and the addresses read from it."""

    LISTEN_RE = re.compile(r"listening on echo@(tcp://(\S+):(\d+)|udp://(\S+):(\d+)|unix:(\S+))")

    def __init__(self, name, argv, logpath, unix_path, want, dgram_path=None):
        self.name, self.argv, self.logpath, self.unix_path = name, argv, logpath, unix_path
        self.dgram_path = dgram_path  # the Unix datagram socket, for h (None: not served)
        self.want = want  # which of tcp/unix/udp/unixgram must be announced
        self.proc = None
        self.tcp = self.udp = None

    def start(self, timeout=20.0):
        # The log is shared by the rounds: read only what this start adds to it.
        offset = os.path.getsize(self.logpath) if os.path.exists(self.logpath) else 0
        logf = open(self.logpath, "ab")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                     cwd=ROOT)
        logf.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.logpath, "rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
            for m in self.LISTEN_RE.finditer(text):
                if m.group(2):
                    self.tcp = f"{m.group(2)}:{m.group(3)}"
                elif m.group(4):
                    self.udp = f"{m.group(4)}:{m.group(5)}"
            have = {"tcp": self.tcp, "udp": self.udp,
                    "unix": self.unix_path if os.path.exists(self.unix_path) else None,
                    "unixgram": self.dgram_path if self.dgram_path and os.path.exists(self.dgram_path) else None}
            if all(have[k] for k in self.want):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        tail = open(self.logpath, "rb").read().decode(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"{self.name} did not start (exit {self.proc.returncode}); log tail:\n{tail}")

    def stop(self):
        if not self.proc or self.proc.returncode is not None:
            return
        family = tree(self.proc.pid)
        try:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=12)
        except subprocess.TimeoutExpired:
            log(f"  {self.name}: still running 12 s after SIGTERM, SIGKILL")
            self.proc.kill()
            self.proc.wait()
        # Descendants of a forking server that outlive it (they should not): wait, then SIGKILL.
        deadline = time.monotonic() + 3
        for pid, st in family[1:]:
            while same_process(pid, st) and time.monotonic() < deadline:
                time.sleep(0.02)
            if same_process(pid, st):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass


# ---------------------------------------------------------------------------------------------
# Builds of the C programs (the Makefile builds them too; this keeps the smoke self-contained)

def build_c(build_dir, programs=(("loadgen", "loadgen/loadgen.c"), ("epoll_echo", "peers/epoll_echo.c"))):
    """The C programs (name, source under Benchmarks/) into BUILD_DIR/bin, when missing or older than their source."""
    out = {}
    cc = os.environ.get("CC", "cc")
    for name, src in programs:
        src = os.path.join(HERE, src)
        dst = os.path.join(build_dir, "bin", name)
        out[name] = dst
        if os.path.exists(dst) and os.path.getmtime(dst) >= os.path.getmtime(src):
            continue
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        tmp = f"{dst}.tmp{os.getpid()}"
        subprocess.run([cc, "-O2", "-Wall", "-o", tmp, src], check=True)
        os.replace(tmp, dst)
    return out


# ---------------------------------------------------------------------------------------------
# Running the workloads

class Bench:
    def __init__(self, args, bins):
        self.args = args
        self.bins = bins
        self.results = {}  # server -> metric -> [values]
        self.notes = {}  # server -> [text]
        self.failures = []  # (server, metric, text)
        self.extra = {}  # server -> metric -> [values] (rss, stop time, rate of b, ...)
        self.counters = {}  # (server, template) -> [runs, total]
        self.tmp = tempfile.mkdtemp(prefix="serverd-bench-")
        self.logdir = os.path.join(args.build_dir, "logs")
        os.makedirs(self.logdir, exist_ok=True)
        self.running = []
        self.client_cpus = None
        self.rep = 0
        self.quiet = []  # one entry per load generator run: server, metric, rep, others_pct, ...
        self.serverd_extra = {}  # binary -> options added automatically (see serverd_argv)

    # -- servers --
    def serverd_argv(self, name):
        """The serverd binary of that row, its model and options: --serverd-args for both
        binaries, then --serverd-new-args or --serverd-baseline-args, then what main() found the
        binary needs (--reply-rate-per-source 0 where it has that option)."""
        a = self.args
        binary, own = (a.serverd, a.serverd_new_args) if name in SERVERD_MODELS else \
            (a.serverd_baseline, a.serverd_baseline_args)
        return ([binary, "--model", ANY_SERVERD[name]] + ROW_OPTIONS.get(name, []) + shlex.split(a.serverd_args) +
                shlex.split(own) +
                self.serverd_extra.get(binary, []))

    def argv(self, name, unix_path, dgram_path=None):
        tcp, udp = "127.0.0.1:0", "127.0.0.1:0"
        if name in ANY_SERVERD:
            return (self.serverd_argv(name) +
                    ["--listen", f"echo@tcp://{tcp}", "--listen", f"echo@unix:{unix_path}",
                     "--listen", f"echo@udp://{udp}"] +
                    (["--listen", f"echo@unixgram:{dgram_path}"] if dgram_path else []))
        streams = ["--tcp", tcp, "--unix", unix_path, "--udp", udp] + (["--unixgram", dgram_path] if dgram_path else [])
        if name == "epoll-c":
            return [self.bins["epoll_echo"]] + streams
        if name == "epoll-c-2t":
            return [self.bins["epoll_echo"], "--threads", "2"] + streams
        if name == "swift-nio":
            return [self.args.nio] + streams
        if name in ("py-threading", "py-forking"):
            return [sys.executable, os.path.join(HERE, "peers", "py_servers.py"),
                    "--model", name.split("-")[1]] + streams
        raise KeyError(name)

    def start(self, name, tag):
        unix_path = os.path.join(self.tmp, f"{name}.sock")
        if os.path.exists(unix_path):
            os.unlink(unix_path)
        logpath = os.path.join(self.logdir, f"{name}.log")
        with open(logpath, "ab") as f:
            f.write(f"==== {tag} {datetime.datetime.now().isoformat()} ====\n".encode())
        dgram_path = None
        if name in UNIXGRAM and self.wants("h"):
            dgram_path = os.path.join(self.tmp, f"{name}-dgram.sock")
            if os.path.exists(dgram_path):
                os.unlink(dgram_path)
        want = ["tcp", "unix", "udp"] + (["unixgram"] if dgram_path else [])
        s = Server(name, self.argv(name, unix_path, dgram_path), logpath, unix_path, want, dgram_path)
        self.running.append(s)
        s.start()
        return s

    def stop(self, s):
        s.stop()
        if s in self.running:
            self.running.remove(s)

    def stop_all(self):
        for s in list(self.running):
            self.stop(s)

    # -- recording --
    def record(self, server, metric, value):
        self.results.setdefault(server, {}).setdefault(metric, []).append(value)

    def record_extra(self, server, key, value):
        self.extra.setdefault(server, {}).setdefault(key, []).append(value)

    def note(self, server, text):
        lst = self.notes.setdefault(server, [])
        if text not in lst:
            lst.append(text)

    def count(self, server, template, n):
        """A note that adds up over the runs: template has {runs} and {total}."""
        c = self.counters.setdefault((server, template), [0, 0])
        c[0] += 1
        c[1] += n

    def fail(self, server, metric, text):
        self.failures.append((server, metric, text))
        log(f"  FAILED {server} {metric}: {text}")

    # -- loadgen --
    def loadgen(self, mode, *opts, timeout_extra=30.0, cpus=None, watch=None):
        """One load generator run.  watch=(server name, metric, server PID or None) samples the
        host's CPU around it (see CpuWatch) and records what other processes used."""
        a = self.args
        argv = [self.bins["loadgen"], mode, "--seconds", str(a.seconds), "--warmup", str(a.warmup)] + list(opts)
        pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        cw = CpuWatch(watch[2]) if watch else None
        try:
            p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=pin,
                               timeout=a.seconds + a.warmup + timeout_extra)
        except subprocess.TimeoutExpired:
            return None, "loadgen timed out"
        finally:
            if cw:
                self.host_check(watch[0], watch[1], cw.finish())
        line = p.stdout.decode().strip().splitlines()
        if not line:
            return None, f"loadgen printed nothing (exit {p.returncode}): {p.stderr.decode().strip()}"
        return json.loads(line[-1]), None

    def host_check(self, server, metric, q):
        # Under a quarter of a second is too few clock ticks (100 a second per CPU) to judge.
        if not q or q["wall_s"] < 0.25:
            return
        q.update(server=server, metric=metric, rep=self.rep)
        self.quiet.append(q)
        if q["others_pct"] > BUSY_PCT and not self.args.smoke:
            log(f"  {server} {metric}: NOT QUIET: other processes used {q['others_pct']:.0f} % of a CPU "
                f"during the run (load average {q['load1']})")

    def rate_run(self, server, metric, mode, *opts, pid=None):
        watch = (server, metric, pid)
        r, err = self.loadgen(mode, *opts, cpus=self.client_cpus, watch=watch)
        if self.args.smoke and not err and r.get("ops", 0) == 0 and not r.get("errors"):
            # Nothing answered yet and nothing failed: a busy machine, or a slow debug build.
            # The smoke checks that the suite works, not how fast, so give it one longer try.
            log(f"  {server} {metric}: no reply in {self.args.seconds:g} s, trying once more for 5 s")
            if self.quiet and (self.quiet[-1]["server"], self.quiet[-1]["metric"]) == (server, metric):
                self.quiet.pop()  # the retry's sample replaces the first one's
            r, err = self.loadgen(mode, "--seconds", "5", "--warmup", "0", *opts, cpus=self.client_cpus, watch=watch)
        if err or r.get("ops", 0) == 0:
            self.fail(server, metric, err or f"no operation completed: {json.dumps(r)}")
            return None
        if r.get("errors") or r.get("live", 1) < r.get("conns", 1):
            self.count(server, f"{metric}: connection or reply errors (runs with errors: {{runs}}, errors: {{total}})", r["errors"])
            if self.args.smoke:
                self.fail(server, metric, f"errors: {json.dumps(r)}")
        if r.get("lost"):
            self.count(server, f"{metric}: datagrams unanswered for 500 ms, counted lost and resent "
                               f"(runs with losses: {{runs}}, lost: {{total}})", r["lost"])
            if metric == "e" and server in ANY_SERVERD and r.get("rate", 0) < 1000:
                self.note(server, "e: under 1,000 replies/s with losses: most likely serverd's per-source UDP "
                                  "reply budget (the load generator is one source), not its speed; a binary "
                                  "with --reply-rate-per-source gets 0 automatically, one without cannot lift it")
            if self.args.smoke and metric in ("h", "hp") and r["lost"] > r["ops"]:
                # A Unix datagram server that drops most replies (a reply check refusing the
                # load generator's socket) is broken, not slow.
                self.fail(server, metric, f"more datagrams lost than answered: {json.dumps(r)}")
        return r

    def pinned(self, s, body):
        """Runs body with the load generator on the first CPU and every thread and child of the
        server on the second (when there are two CPUs and --no-pin was not given)."""
        cpus = sorted(os.sched_getaffinity(0))
        if not (self.args.pin and len(cpus) >= 2 and set_affinity(s.proc.pid, {cpus[1]})):
            return body()
        self.client_cpus = {cpus[0]}
        try:
            return body()
        finally:
            set_affinity(s.proc.pid, set(cpus))
            self.client_cpus = None

    def wants(self, workload):
        """Whether --workloads selected this workload letter."""
        return workload in self.args.workload_set

    def runs(self, name, metric):
        """Whether this server runs the workload that produces metric."""
        letter = next(w for w, ms in WORKLOADS.items() if metric in ms)
        return self.wants(letter) and metric not in NOT_RUN.get(name, set())

    def workload_rates(self, name, s):
        """a, b, c, d, e and h: the load generator's rate modes against the running server."""
        tcp, unix, udp, pid = s.tcp, s.unix_path, s.udp, s.proc.pid
        if self.runs(name, "a"):
            r = self.rate_run(name, "a", "stream", "--tcp", tcp, "--conns", "64", pid=pid)
            if r:
                self.record(name, "a", r["rate"])
                self.record_extra(name, "a_p99_us", r["p99_us"])
        # b is pinned: unpinned, the scheduler sometimes runs client and server on one CPU (a
        # direct switch, ~7 us round trip here) and sometimes on two (~20 us), and that choice
        # rather than the server decides the median.  a, c, d and e are not: pinned, whatever
        # else runs on the server's CPU halves the numbers, and multi-threaded servers lose the
        # second core.
        if self.runs(name, "b50"):
            r = self.pinned(s, lambda: self.rate_run(name, "b", "latency", "--tcp", tcp, pid=pid))
            if r:
                self.record(name, "b50", r["p50_us"])
                self.record(name, "b99", r["p99_us"])
                self.record_extra(name, "b_rate", r["rate"])
        if self.runs(name, "c"):
            r = self.rate_run(name, "c", "connect", "--tcp", tcp, "--conns", "16", pid=pid)
            if r:
                self.record(name, "c", r["rate"])
        if self.runs(name, "d"):
            r = self.rate_run(name, "d", "stream", "--unix", unix, "--conns", "64", pid=pid)
            if r:
                self.record(name, "d", r["rate"])
        if self.runs(name, "e"):
            r = self.rate_run(name, "e", "udp", "--udp", udp, "--conns", "32", pid=pid)
            if r:
                self.record(name, "e", r["rate"])
                self.record_extra(name, "e_p99_us", r["p99_us"])
        # h twice: the client socket autobound (an abstract name the kernel picks) and bound to a
        # path; serverd checks the two kinds of sender differently before it replies.
        if self.runs(name, "h"):
            r = self.rate_run(name, "h", "udp", "--unixgram", s.dgram_path, "--conns", "32", pid=pid)
            if r:
                self.record(name, "h", r["rate"])
                self.record_extra(name, "h_p99_us", r["p99_us"])
        if self.runs(name, "hp"):
            client = os.path.join(self.tmp, f"{name}-h-client.sock")
            r = self.rate_run(name, "hp", "udp", "--unixgram", s.dgram_path, "--bind-path", client,
                              "--conns", "32", pid=pid)
            if r:
                self.record(name, "hp", r["rate"])
                self.record_extra(name, "hp_p99_us", r["p99_us"])

    def workload_f(self, name, s):
        n = self.args.idle_conns
        # One short exchange first, so one-time set-up (first thread, pools) is in the baseline.
        self.loadgen("latency", "--tcp", s.tcp, "--max", "100", timeout_extra=10)
        time.sleep(0.2)
        m0 = tree_memory(s.proc.pid)
        argv = [self.bins["loadgen"], "idle", "--tcp", s.tcp, "--conns", str(n), "--seconds", "40", "--hold", "60"]
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            ready = None
            if select.select([p.stdout], [], [], 50)[0]:
                line = p.stdout.readline().decode()
                if line:
                    ready = json.loads(line)
            if not ready or ready.get("ready", 0) == 0:
                self.fail(name, "f", f"idle connections not established: {ready}")
                return
            time.sleep(0.5)  # let the server settle (threads started, children forked)
            m1 = tree_memory(s.proc.pid)
            p.stdin.write(b"go\n")
            p.stdin.flush()
            out, err = p.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.fail(name, "f", "loadgen idle timed out")
            return
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        got = ready["ready"]
        if got < n:
            self.note(name, f"f: only {got} of {n} idle connections were served")
            if self.args.smoke:
                self.fail(name, "f", f"only {got} of {n} idle connections were served")
        self.record(name, "f", (m1["pss"] - m0["pss"]) / got)
        for k in ("rss", "pss_anon", "pte"):
            self.record_extra(name, f"f_{k}_kib_per_conn", (m1[k] - m0[k]) / got)
        self.record_extra(name, "f_processes", m1["procs"])
        self.record_extra(name, "f_setup_seconds", ready.get("setup_seconds"))
        try:
            last = json.loads(out.decode().strip().splitlines()[-1])
            if last.get("closed_by_server"):
                self.note(name, f"f: the server closed {last['closed_by_server']} idle connections while held")
        except (IndexError, ValueError):
            pass
        # Let a forking server's children exit before the next workload.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and tree_memory(s.proc.pid)["procs"] > m0["procs"]:
            time.sleep(0.05)

    def workload_g(self, name):
        sock = os.path.join(self.tmp, f"{name}-g.sock")
        argv = self.argv(name, sock)
        logpath = os.path.join(self.logdir, f"{name}-startup.log")
        runs = 1 if self.args.smoke else 5
        r, err = self.loadgen("startup", "--unix", sock, "--max", str(runs), "--log", logpath,
                              "--", *argv, timeout_extra=runs * 25.0, watch=(name, "g", None))
        if err or not r.get("ok"):
            self.fail(name, "g", err or f"never answered: {json.dumps(r)} (log {logpath})")
            return
        if r.get("failures"):
            self.note(name, f"g: {r['failures']} of {r['runs']} starts did not answer")
            if self.args.smoke:
                self.fail(name, "g", json.dumps(r))
        self.record(name, "g", r["median_ms"])
        stops = [x for x in r.get("stop_ms", []) if x >= 0]
        if stops:
            self.record_extra(name, "stop_ms", statistics.median(stops))

    def run_server(self, name, rep):
        served = [m for m in ("a", "b50", "c", "d", "e", "f", "h", "hp") if self.runs(name, m)]
        if served:
            try:
                s = self.start(name, f"rep {rep}")
            except (RuntimeError, OSError) as e:
                for m in served:
                    self.fail(name, "b" if m == "b50" else m, str(e).splitlines()[0])
                log(str(e))
                return
            try:
                if self.runs(name, "f"):
                    self.workload_f(name, s)
                self.workload_rates(name, s)
            finally:
                self.stop(s)
        if self.runs(name, "g"):
            self.workload_g(name)

    def summary_line(self, name, counts, nquiet):
        parts = []
        for key, _, unit, _ in METRICS:
            v = self.results.get(name, {}).get(key, [])
            if len(v) > counts.get(key, 0):
                parts.append(f"{key} {fmt(v[-1], unit)}")
            elif self.runs(name, key):
                parts.append(f"{key} FAILED")
        busy = [q for q in self.quiet[nquiet:] if q["others_pct"] > BUSY_PCT]
        if len(self.quiet) > nquiet:
            worst = max(self.quiet[nquiet:], key=lambda q: q["others_pct"])
            parts.append(f"others' CPU max {worst['others_pct']:.0f} % ({worst['metric']})" +
                         (f", {len(busy)} run(s) NOT QUIET" if busy else ""))
        return ", ".join(parts)

    def run(self, servers):
        t0 = time.monotonic()
        for rep in range(1, self.args.reps + 1):
            self.rep = rep
            for name in servers:
                log(f"[{rep}/{self.args.reps}] {name} ...")
                t = time.monotonic()
                counts = {k: len(v) for k, v in self.results.get(name, {}).items()}
                nquiet = len(self.quiet)
                self.run_server(name, rep)
                log(f"[{rep}/{self.args.reps}] {name}: {self.summary_line(name, counts, nquiet)}  ({time.monotonic() - t:.1f} s)")
        self.elapsed = time.monotonic() - t0


# ---------------------------------------------------------------------------------------------
# Report

def fmt(v, unit):
    if v is None:
        return "-"
    if unit in ("req/s", "conn/s", "dgram/s"):
        return f"{v:,.0f}"
    if unit == "us":
        return f"{v:,.1f}"
    if unit in ("KiB/conn", "ms"):
        return f"{v:,.1f}" if abs(v) < 100 else f"{v:,.0f}"
    return f"{v:g}"


def med(vals):
    return statistics.median(vals) if vals else None


def ratio_text(x, y):
    if x is None or y is None or y == 0:
        return "-"
    r = x / y
    return f"{r:.2f}x" if r < 100 else f"{r:.0f}x"


def render(bench, servers, meta):
    serverd_rows = [s for s in servers if s in SERVERD_MODELS]
    L = []
    L.append("# serverd benchmark results")
    L.append("")
    L.append(f"Measured on commit `{meta['commit']}`{meta['dirty']} on {meta['date']} by "
             f"Benchmarks/run.py{' --smoke' if bench.args.smoke else ''}; `make bench` regenerates it.")
    L.append("")
    L.append(f"Machine: {meta['machine']}; load average {meta['load']} the run (other work on the "
             f"machine makes the numbers noisier; see \"Quiet host\" below).")
    if meta.get("chart"):
        L.append("")
        L.append(f"![Each server's rate as a fraction of the C epoll server, per workload]({meta['chart']})")
        L.append("")
    L.append(f"Each workload ran {bench.args.reps} time(s) per server, {bench.args.seconds:g} s measured after "
             f"{bench.args.warmup:g} s of warm-up; the repetitions are interleaved across servers "
             f"(round 1 of every server, then round 2, ...). A cell is the median, with min-max of the "
             f"runs. {'Release builds' if not bench.args.smoke else 'Smoke run'}; 64-byte lines; loopback and Unix sockets only; the load generator "
             f"(Benchmarks/loadgen/loadgen.c) is one thread on epoll and shares the 2 cores with the server. "
             f"Total time {bench.elapsed:.0f} s.")
    L.append("")
    L.append("Servers:")
    L.append("")
    for s in servers:
        line = f"- `{s}`: {DESCRIPTION[s]}"
        if s in ANY_SERVERD:
            argv = bench.serverd_argv(s)
            line += f"; `{argv[0]}` with `{' '.join(shlex.quote(x) for x in argv[1:])}`; {swift_runtime_linking(argv[0])}"
        elif s == "swift-nio":
            line += f"; {swift_runtime_linking(bench.args.nio)}"
        L.append(line)
    L.append("")
    if serverd_rows:
        L.append("Ratio columns: serverd in that model divided by the row's server. For rates above 1 "
                 "means serverd is faster; for latency, memory and start-up below 1 means serverd is better."
                 + (" On a `serverd-baseline-<model>` row the column of the same model is the serverd under "
                    "test against the baseline binary." if any(x in BASELINE_MODELS for x in servers) else ""))
        L.append("")
    for key, title, unit, higher in METRICS:
        if not any(bench.results.get(s, {}).get(key) for s in servers):
            continue
        title = title.replace("IDLE", f"{bench.args.idle_conns:,}")
        L.append(f"### {title} - {unit}, {'higher' if higher else 'lower'} is better")
        L.append("")
        head = ["server", "median", "min-max"] + [f"{s.replace('serverd-', '')} / row" for s in serverd_rows]
        L.append("| " + " | ".join(head) + " |")
        L.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
        for s in servers:
            vals = bench.results.get(s, {}).get(key)
            if key in NOT_RUN.get(s, set()):
                cells = [s, NOT_RUN_TEXT.get(s, "n/a"), ""]
            elif not vals:
                cells = [s, "failed", ""]
            else:
                cells = [s, fmt(med(vals), unit), f"{fmt(min(vals), unit)}-{fmt(max(vals), unit)}"]
            for d in serverd_rows:
                dv = med(bench.results.get(d, {}).get(key, []))
                cells.append("" if d == s else ratio_text(dv, med(vals or [])))
            L.append("| " + " | ".join(cells) + " |")
        L.append("")

    L.extend(render_baseline(bench, servers))

    target_rows = []
    for model, key, peer, factor, sense in TARGETS:
        name = f"serverd-{model}"
        if name not in servers or not bench.runs(name, key) or (peer is not None and peer not in servers):
            continue
        unit = METRIC[key][2]
        sv = med(bench.results.get(name, {}).get(key, []))
        if peer is None:
            what = f"{model}: {key} {sense} {factor:g} {unit}"
            ok = sv is not None and (sv <= factor if sense == "<=" else sv >= factor)
            target_rows.append(f"| {what} | {fmt(sv, unit)} | {factor:g} | | {verdict(sv, ok)} |")
            continue
        pv = med(bench.results.get(peer, {}).get(key, []))
        what = f"{model}: {key} {sense} {factor:g}x {peer}"
        ok = sv is not None and pv is not None and (sv >= factor * pv if sense == ">=" else sv <= factor * pv)
        target_rows.append(f"| {what} | {fmt(sv, unit)} | {fmt(pv, unit)} | {ratio_text(sv, pv)} | "
                           f"{verdict(sv if pv is not None else None, ok)} |")
    if target_rows:
        L.append("### Targets (issues 6 and 13), on the medians")
        L.append("")
        L.append("| target | serverd | reference | ratio | |")
        L.append("|---|---:|---:|---:|---|")
        L.extend(target_rows)
        L.append("")

    extra_rows = []
    for s in servers:
        ex = bench.extra.get(s, {})
        bits = []
        if ex.get("f_rss_kib_per_conn"):
            bits.append(f"f per connection: RSS {fmt(med(ex['f_rss_kib_per_conn']), 'KiB/conn')} KiB, "
                        f"anonymous PSS {fmt(med(ex['f_pss_anon_kib_per_conn']), 'KiB/conn')} KiB, "
                        f"page tables {fmt(med(ex['f_pte_kib_per_conn']), 'KiB/conn')} KiB; "
                        f"{int(med(ex['f_processes']))} processes while held")
        if ex.get("a_p99_us"):
            bits.append(f"a p99 {fmt(med(ex['a_p99_us']), 'us')} us")
        if ex.get("b_rate"):
            bits.append(f"b {fmt(med(ex['b_rate']), 'req/s')} round trips/s")
        for k in ("e", "h", "hp"):
            if ex.get(f"{k}_p99_us"):
                bits.append(f"{k} p99 {fmt(med(ex[f'{k}_p99_us']), 'us')} us")
        if ex.get("stop_ms"):
            bits.append(f"SIGTERM to exit {fmt(med(ex['stop_ms']), 'ms')} ms")
        if bits:
            extra_rows.append(f"- `{s}`: " + "; ".join(bits))
    if extra_rows:
        L.append("### Other readings (medians)")
        L.append("")
        L.extend(extra_rows)
        L.append("")
    L.extend(render_quiet(bench, servers, meta))
    notes = [(s, n) for s in servers for n in bench.notes.get(s, [])]
    notes += [(s, t.format(runs=c[0], total=c[1])) for (s, t), c in bench.counters.items() if s in servers]
    if notes or bench.failures:
        L.append("### Notes")
        L.append("")
        for s, n in notes:
            L.append(f"- `{s}`: {n}")
        for s, m, t in bench.failures:
            L.append(f"- FAILED `{s}` {m}: {t.splitlines()[0] if t else ''}")
        L.append("")
    return "\n".join(L)


def render_baseline(bench, servers):
    """serverd under test against --serverd-baseline, model by model, on every metric both have."""
    pairs = [(s, b) for s in servers if s in SERVERD_MODELS and s not in ROW_OPTIONS
             for b in servers if BASELINE_MODELS.get(b) == SERVERD_MODELS[s]]
    rows = []
    for key, title, unit, higher in METRICS:
        for s, b in pairs:
            sv, bv = bench.results.get(s, {}).get(key), bench.results.get(b, {}).get(key)
            if not sv or not bv:
                continue
            sm, bm = med(sv), med(bv)
            change = (sm - bm) / bm * 100 if bm else None
            verdict_text = ""
            if change is not None and len(sv) >= 2 and len(bv) >= 2:
                if min(sv) > max(bv) or max(sv) < min(bv):
                    verdict_text = " (better)" if (sm > bm) == higher else " (worse)"
                else:
                    verdict_text = " (ranges overlap)"
            rows.append(f"| {key}: {title.split(') ', 1)[-1]} ({unit}) | {SERVERD_MODELS[s]} | {fmt(sm, unit)} "
                        f"({fmt(min(sv), unit)}-{fmt(max(sv), unit)}) | {fmt(bm, unit)} "
                        f"({fmt(min(bv), unit)}-{fmt(max(bv), unit)}) | {ratio_text(sm, bm)} | "
                        + ("-" if change is None else f"{change:+.1f} %{verdict_text}") + " |")
    if not rows:
        return []
    L = ["### serverd against the baseline binary (medians, min-max)", "",
         f"`serverd-<model>` runs {bench.args.serverd}, `serverd-baseline-<model>` runs "
         f"{bench.args.serverd_baseline}; each baseline row runs right after its serverd row in "
         f"every round. Change is serverd against the baseline: for rates + is faster, for latency, "
         f"memory and start-up - is better; better or worse is said only when the two min-max ranges "
         f"do not overlap (two rounds or more), overlapping ranges are noise.", "",
         "| metric | model | serverd | baseline | serverd / baseline | change |",
         "|---|---|---:|---:|---:|---:|"]
    return L + rows + [""]


def render_quiet(bench, servers, meta):
    """Other processes' CPU during each load generator run, by server and workload."""
    if not bench.quiet:
        return []
    L = ["### Quiet host", ""]
    busy = [q for q in bench.quiet if q["others_pct"] > BUSY_PCT]
    steal = max(q["steal_pct"] for q in bench.quiet)
    vals = sorted(q["others_pct"] for q in bench.quiet)
    L.append(f"Around every load generator run the driver compared the machine's CPU time (/proc/stat) "
             f"with that of the run's own processes (server and descendants, load generator, driver). "
             f"Other processes used a median of {statistics.median(vals):.0f} % and at most {vals[-1]:.0f} % "
             f"of one CPU over {len(vals)} runs; hypervisor steal at most {steal:.0f} %. Load average "
             f"{meta['load']}.")
    L.append("")
    if busy:
        L.append(f"**Not a quiet host: {len(busy)} of {len(vals)} runs had other processes above "
                 f"{BUSY_PCT:.0f} % of a CPU** (marked ! below); their numbers are not evidence of speed.")
    else:
        L.append(f"Quiet: no run had other processes above {BUSY_PCT:.0f} % of a CPU.")
    L.append("")
    keys = [k for k in ["a", "b", "c", "d", "e", "h", "hp", "g"] if any(q["metric"] == k for q in bench.quiet)]
    L.append("Other processes' CPU, % of one CPU, per run (round 1, 2, ...):")
    L.append("")
    L.append("| server | " + " | ".join(keys) + " |")
    L.append("|---|" + "---:|" * len(keys))
    for s in servers:
        cells = []
        for k in keys:
            runs = [q for q in bench.quiet if q["server"] == s and q["metric"] == k]
            cells.append(" ".join(f"{q['others_pct']:.0f}{'!' if q['others_pct'] > BUSY_PCT else ''}" for q in runs))
        if any(cells):
            L.append(f"| {s} | " + " | ".join(cells) + " |")
    L.append("")
    return L


def verdict(v, ok):
    if v is None:
        return "not measured"
    return "met" if ok else "MISSED"


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def metadata():
    def git(*a):
        try:
            return subprocess.run(["git", "-C", ROOT] + list(a), stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, timeout=10).stdout.decode().strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "Sources", "Package.swift")
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/sys/net/unix/max_dgram_qlen") as f:
            dgram_qlen = f.read().strip()
    except OSError:
        dgram_qlen = "?"
    return {
        "commit": commit,
        "dirty": " (with uncommitted changes in Sources/ or Package.swift)" if dirty else "",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs ({cpu or 'unknown CPU'}), Linux {platform.release()}, "
                   f"Python {platform.python_version()}, net.unix.max_dgram_qlen {dgram_qlen}",
    }


# ---------------------------------------------------------------------------------------------

def serverd_preflight(bench, servers):
    """For each serverd binary in the run: add --reply-rate-per-source 0 where the binary has that
    option and the options given do not name it (the load generator is one UDP source; serverd's
    default budget would be measured instead of serverd), then check with --check-config that
    the binary accepts its options, so that a wrong option fails now and not in every run."""
    a = bench.args
    done = set()
    for name in servers:
        if name not in ANY_SERVERD:
            continue
        binary = bench.serverd_argv(name)[0]
        if binary in done:
            continue
        done.add(binary)
        given = bench.serverd_argv(name)
        if a.auto_args and not any(x.startswith("--reply-rate-per-source") for x in given):
            try:
                helptext = subprocess.run([binary, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, timeout=20).stdout.decode(errors="replace")
            except (OSError, subprocess.TimeoutExpired) as e:
                raise RuntimeError(f"{binary} --help: {e}")
            if "--reply-rate-per-source" in helptext:
                bench.serverd_extra[binary] = ["--reply-rate-per-source", "0"]
                log(f"run.py: {binary} has --reply-rate-per-source: running it with --reply-rate-per-source 0")
        argv = bench.serverd_argv(name) + ["--listen", "echo@tcp://127.0.0.1:0", "--check-config"]
        try:
            p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               timeout=20, cwd=ROOT)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise RuntimeError(f"{' '.join(argv)}: {e}")
        if p.returncode != 0:
            raise RuntimeError(f"{binary} refuses its options (exit {p.returncode}): {' '.join(argv[1:])}\n"
                               + p.stdout.decode(errors="replace")[-1500:])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--serverd", default=os.path.join(ROOT, ".build", "release", "serverd"),
                    help="serverd binary (default .build/release/serverd)")
    ap.add_argument("--serverd-args", default="--max-connections 4096 --log-level notice",
                    help="serverd options for both binaries, --serverd and --serverd-baseline "
                         "(default: %(default)s)")
    ap.add_argument("--serverd-new-args", default="",
                    help="more options for the --serverd binary only (after --serverd-args)")
    ap.add_argument("--serverd-baseline", metavar="PATH",
                    help="a second serverd binary (say the previous main) run as servers of its own, "
                         "serverd-baseline-<model>, each right after serverd-<model>")
    ap.add_argument("--serverd-baseline-args", default="",
                    help="more options for the --serverd-baseline binary only (after --serverd-args)")
    ap.add_argument("--no-auto-args", dest="auto_args", action="store_false",
                    help="do not add --reply-rate-per-source 0 to a serverd binary whose --help lists that "
                         "option (added by default unless the options already name it: the load "
                         "generator is one source and would otherwise measure the rate limit)")
    ap.add_argument("--nio", default=os.path.join(HERE, ".build-bench", "swift", "release", "nio-echo"),
                    help="the SwiftNIO echo server binary")
    ap.add_argument("--build-dir", default=os.path.join(HERE, ".build-bench"),
                    help="where the C programs are compiled and logs go (default Benchmarks/.build-bench)")
    ap.add_argument("--only", help="comma-separated servers to run: " + ", ".join(SERVER_ORDER))
    ap.add_argument("--skip", default="", help="comma-separated servers to leave out")
    ap.add_argument("--workloads", default=",".join(WORKLOADS),
                    help="comma-separated workloads to run, of " + ", ".join(WORKLOADS) + " (default: all)")
    ap.add_argument("--smoke", action="store_true", help="one short run of each workload; fail on any error")
    ap.add_argument("--reps", type=int, help="repetitions (default 3, smoke 1)")
    ap.add_argument("--seconds", type=float, help="measured seconds per run (default 3.0, smoke 0.5)")
    ap.add_argument("--warmup", type=float, help="warm-up seconds per run (default 0.25, smoke 0.1)")
    ap.add_argument("--idle-conns", type=int, help="connections held in f (default 1000, smoke 50)")
    ap.add_argument("--nice", type=int,
                    help="niceness for the driver, servers and load generator (default -10, smoke 0; "
                         "so that other work on the machine disturbs the numbers less; needs root "
                         "for a negative value, ignored if refused)")
    ap.add_argument("--no-pin", dest="pin", action="store_false",
                    help="do not pin b (default: load generator on the first CPU, server on the second)")
    ap.add_argument("--results", help="markdown file to write (default Benchmarks/RESULTS.md; smoke: none)")
    ap.add_argument("--json", help="raw results as JSON (default BUILD_DIR/results.json)")
    args = ap.parse_args()

    args.reps = args.reps or (1 if args.smoke else 3)
    args.seconds = args.seconds or (0.5 if args.smoke else 3.0)
    args.warmup = args.warmup if args.warmup is not None else (0.1 if args.smoke else 0.25)
    args.idle_conns = args.idle_conns or (50 if args.smoke else 1000)
    if args.results is None and not args.smoke:
        args.results = os.path.join(HERE, "RESULTS.md")
    args.build_dir = os.path.abspath(args.build_dir)
    args.json = args.json or os.path.join(args.build_dir, "results.json")
    args.serverd = os.path.abspath(args.serverd)
    if args.serverd_baseline:
        args.serverd_baseline = os.path.abspath(args.serverd_baseline)
    args.workload_set = {w.strip() for w in args.workloads.split(",") if w.strip()}
    for w in args.workload_set:
        if w not in WORKLOADS:
            ap.error(f"unknown workload {w!r}; known: {', '.join(WORKLOADS)}")
    for opt in ("serverd_args", "serverd_new_args", "serverd_baseline_args"):
        try:
            shlex.split(getattr(args, opt))
        except ValueError as e:
            ap.error(f"--{opt.replace('_', '-')}: {e}")

    known = [x for x in SERVER_ORDER if args.serverd_baseline or x not in BASELINE_MODELS]
    servers = known if not args.only else [s.strip() for s in args.only.split(",") if s.strip()]
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    for s in list(servers) + list(skip):
        if s in BASELINE_MODELS and not args.serverd_baseline:
            ap.error(f"{s} needs --serverd-baseline PATH")
        if s not in SERVER_ORDER:
            ap.error(f"unknown server {s!r}; known: {', '.join(known)}")
    servers = [s for s in known if s in servers and s not in skip]
    missing = []
    if any(s in SERVERD_MODELS for s in servers) and not os.access(args.serverd, os.X_OK):
        missing.append(f"serverd binary {args.serverd} (build: swift build -c release --static-swift-stdlib --product serverd)")
    if any(s in BASELINE_MODELS for s in servers) and not os.access(args.serverd_baseline, os.X_OK):
        missing.append(f"baseline serverd binary {args.serverd_baseline}")
    if "swift-nio" in servers and not os.access(args.nio, os.X_OK):
        if args.only:
            missing.append(f"SwiftNIO echo server {args.nio} (build: make bench-build)")
        else:
            log(f"note: {args.nio} not built, leaving swift-nio out (make bench builds it)")
            servers.remove("swift-nio")
    if missing:
        log("run.py: missing " + "; ".join(missing))
        return 2

    # 1,000 idle connections: client and server each need that many descriptors.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.idle_conns + 200:
        log(f"warning: RLIMIT_NOFILE hard limit {hard} is low for {args.idle_conns} idle connections")

    if args.nice is None:
        args.nice = 0 if args.smoke else -10
    try:
        if args.nice:
            os.setpriority(os.PRIO_PROCESS, 0, args.nice)
    except OSError:
        pass

    bins = build_c(args.build_dir)
    bench = Bench(args, bins)
    try:
        serverd_preflight(bench, servers)
    except RuntimeError as e:
        log(f"run.py: {e}")
        shutil.rmtree(bench.tmp, ignore_errors=True)
        return 2
    load_before = loadavg()
    log(f"run.py: servers {', '.join(servers)}; {args.reps} round(s), {args.seconds:g} s per run")
    try:
        bench.run(servers)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        bench.stop_all()
        shutil.rmtree(bench.tmp, ignore_errors=True)

    meta = metadata()
    meta["load"] = f"{load_before} before, {loadavg()} after"
    chart_path = os.path.splitext(args.results)[0] + ".svg" if args.results else None
    if chart_path and chart.write(bench.results, servers, chart_path):
        meta["chart"] = os.path.relpath(chart_path, os.path.dirname(os.path.abspath(args.results)))
        log(f"run.py: wrote {os.path.relpath(chart_path, os.getcwd())}")
    text = render(bench, servers, meta)
    print(text)
    with open(args.json, "w") as f:
        json.dump({"meta": meta, "servers": servers, "args": {k: (sorted(v) if isinstance(v, set) else v) for k, v in vars(args).items()},
                   "results": bench.results, "extra": bench.extra, "notes": bench.notes,
                   "failures": bench.failures, "host": bench.quiet,
                   "serverd_argv": {x: bench.serverd_argv(x) for x in servers if x in ANY_SERVERD}}, f, indent=1)
    if args.results:
        with open(args.results, "w") as f:
            f.write(text + "\n")
        log(f"run.py: wrote {os.path.relpath(args.results, os.getcwd())}")
    busy = [q for q in bench.quiet if q["others_pct"] > BUSY_PCT]
    if busy:
        log(f"run.py: NOT A QUIET HOST: {len(busy)} of {len(bench.quiet)} runs had other processes above "
            f"{BUSY_PCT:.0f} % of a CPU (max {max(q['others_pct'] for q in busy):.0f} %); see \"Quiet host\"")
    if bench.failures:
        log(f"run.py: {len(bench.failures)} workload run(s) failed")
        return 1 if args.smoke else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
