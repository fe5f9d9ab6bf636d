#!/usr/bin/env python3
"""Superserver benchmark (issue 17, item 4): serverd's exec service against the classic
superservers and a C floor.  Python 3 standard library only; helpers shared with run.py.

Every server runs `/usr/bin/head -n1` per connection, the connection on its stdin and stdout.  The
client (Benchmarks/loadgen, mode connect-eof) keeps 16 connections in flight; each sends one
64-byte line and reads until EOF: the line must come back byte for byte, then the server side
must close.  Per server and family it reports connections/s and the p50/p99 latency from the
start of connect() to EOF.

    python3 Benchmarks/superservers.py --serverd .build/release/serverd   # what `make bench-exec` runs
    python3 Benchmarks/superservers.py --smoke --serverd PATH             # one short round (~15 s)
    python3 Benchmarks/superservers.py --serverd NEW --serverd-baseline OLD \\
        --servers serverd-threading,serverd-baseline-threading,spawn-floor --families unix

Families (--families): tcp (127.0.0.1) and unix (stream sockets in a temporary directory).
Servers (--servers; each runs in the families it serves):

  tcpserver                 ucspi-tcp   tcp    tcpserver -R -H -l0 127.0.0.1 0 PROG
  unixserver                ucspi-unix  unix   unixserver -c 40 -- PATH PROG
  s6-ipcserver              s6          unix   s6-ipcserver PATH PROG
  xinetd                    xinetd      tcp    xinetd -dontfork -f CONF (wait = no, NOLIBWRAP)
  systemd-socket-activate   systemd     both   systemd-socket-activate -l ADDR -a --inetd PROG
  spawn-floor               (C, here)   both   Benchmarks/peers/spawn_floor.c: accept + posix_spawn
  serverd-<model>           --serverd   both   serverd --model M --log-level warning
                                               --listen exec@tcp://127.0.0.1:0 --listen exec@unix:PATH -- PROG
  serverd-baseline-<model>  --serverd-baseline, the same, each right after serverd-<model>

A server's address is found in /proc, not in its log: the driver waits until a process of the
server's tree holds a listening socket on 127.0.0.1 (the port it was given, or any port when it
was given 0, which tcpserver, spawn-floor and serverd accept) or on the Unix path.  xinetd and
systemd-socket-activate get a port the driver found free by binding port 0 and closing it (they
refuse port 0); when another process takes it first, the start is retried with a new port.

Each repetition runs every family, and in it every server once, in order (servers interleaved
within the repetition): start, one window (warm-up, then the measured seconds), stop (SIGTERM,
SIGKILL after 12 s, then any leftover child by PID).  Around each window the driver compares the
machine's CPU time with that of the server's tree, the load generator and itself; a window where
other processes used more than 25 % of a CPU is flagged.  Every loop is bounded in time and
count; only processes this driver started are signalled, by PID.
"""
import argparse
import datetime
import json
import os
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # importing run.py must not leave __pycache__ in the tree
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import run  # noqa: E402  (tree, same_process, CpuWatch, Server.stop, metadata, loadavg, BUSY_PCT)

PROGRAM = ["/usr/bin/head", "-n1"]
CONNS = 16
BUSY_PCT = run.BUSY_PCT
SECTION_TITLE = "## Superservers: exec per connection"
BEGIN = "<!-- superservers.py: begin (Benchmarks/superservers.py rewrites this section) -->"
END = "<!-- superservers.py: end -->"
FAMILIES = {"tcp": "TCP on 127.0.0.1", "unix": "Unix stream sockets"}
MODELS = ["serial", "threading", "forking"]

# name -> binary (None: built here or given on the command line), Debian package, families, kind
PEERS = {
    "tcpserver": ("tcpserver", "ucspi-tcp", ["tcp"], "c"),
    "unixserver": ("unixserver", "ucspi-unix", ["unix"], "c"),
    "s6-ipcserver": ("s6-ipcserver", "s6", ["unix"], "c"),
    "xinetd": ("xinetd", "xinetd", ["tcp"], "c"),
    "systemd-socket-activate": ("systemd-socket-activate", "systemd", ["tcp", "unix"], "c"),
    "spawn-floor": (None, None, ["tcp", "unix"], "floor"),
}
DESCRIPTION = {
    "tcpserver": "ucspi-tcp {v} `tcpserver -R -H -l0 127.0.0.1 0 PROG` (no ident, no DNS; default "
                 "limit 40 connections, backlog 20); port 0, the real one read back from /proc",
    "unixserver": "ucspi-unix {v} `unixserver -c 40 -- PATH PROG` (its default limit of 10 connections "
                  "is below the 16 in flight; `--` because its getopt would take PROG's `-n1` as its own)",
    "s6-ipcserver": "s6 {v} `s6-ipcserver PATH PROG` (execs into s6-ipcserver-socketbinder, then "
                    "s6-ipcserverd; defaults: 40 connections, 40 per uid)",
    "xinetd": "xinetd {v} `xinetd -dontfork -f CONF -filelog LOG`, one UNLISTED service: `wait = no`, "
              "`server = /usr/bin/head`, `server_args = -n1`, `instances = UNLIMITED`, `per_source = "
              "UNLIMITED`, `cps = 1000000 1`, `flags = REUSE NOLIBWRAP` (no hosts.allow lookup per "
              "connection); a free port chosen by the driver",
    "systemd-socket-activate": "systemd {v} `systemd-socket-activate -l ADDR -a --inetd PROG` with "
                               "SYSTEMD_LOG_LEVEL=warning (at its default it logs five lines per "
                               "connection); it refuses port 0: a free port chosen by the driver",
    "spawn-floor": "Benchmarks/peers/spawn_floor.c: one thread, blocking accept, posix_spawn with the "
                   "connection on 0 and 1, waitpid(-1, WNOHANG) after each accept: the floor",
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def serverd_names(with_baseline):
    out = []
    for m in MODELS:
        out.append(f"serverd-{m}")
        if with_baseline:
            out.append(f"serverd-baseline-{m}")
    return out


def families_of(name):
    return PEERS[name][2] if name in PEERS else ["tcp", "unix"]


def is_c_superserver(name):
    return name in PEERS and PEERS[name][3] == "c"


# ---------------------------------------------------------------------------------------------
# Listening sockets held by a process tree, from /proc

def socket_inodes(root):
    inodes = set()
    for pid, _ in run.tree(root):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    return inodes


def listening(root):
    """{"tcp": [(ip, port)], "unix": [path]}: the listening stream sockets root's tree holds."""
    inodes = socket_inodes(root)
    out = {"tcp": [], "unix": []}
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                v = line.split()
                if len(v) > 9 and v[3] == "0A" and v[9] in inodes:
                    host, port = v[1].split(":")
                    ip = socket.inet_ntoa(bytes.fromhex(host)[::-1])
                    out["tcp"].append((ip, int(port, 16)))
    except (OSError, ValueError):
        pass
    try:
        with open("/proc/net/unix") as f:
            next(f)
            for line in f:
                v = line.split(None, 7)
                # Flags 00010000: listening; Type 0001: SOCK_STREAM.
                if len(v) == 8 and v[3] == "00010000" and v[4] == "0001" and v[6] in inodes:
                    out["unix"].append(v[7].rstrip("\n"))
    except (OSError, ValueError):
        pass
    return out


def free_port():
    """A port on 127.0.0.1 free right now (bound to port 0 and closed; it may be taken again
    before the server binds it: the caller retries)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


# ---------------------------------------------------------------------------------------------
# Servers

class StartFailed(RuntimeError):
    pass


class Super(run.Server):
    """One running superserver in one family.  stop() is run.Server's: SIGTERM, SIGKILL after
    12 s, then SIGKILL to any descendant still there 3 s later, all by PID."""

    def __init__(self, name, family, argv, logpath, env=None, port=None, path=None, fail_re=None):
        self.name, self.family, self.argv, self.logpath = name, family, argv, logpath
        self.env, self.port, self.path, self.fail_re = env, port, path, fail_re
        self.proc = None
        self.address = None  # "127.0.0.1:PORT" or the Unix path, once listening

    def start(self, timeout=20.0):
        offset = os.path.getsize(self.logpath) if os.path.exists(self.logpath) else 0
        logf = open(self.logpath, "ab")
        env = dict(os.environ, **self.env) if self.env else None
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                     cwd=ROOT, env=env)
        logf.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            held = listening(self.proc.pid)
            if self.family == "tcp":
                ports = [p for ip, p in held["tcp"] if ip == "127.0.0.1" and (not self.port or p == self.port)]
                if ports:
                    self.address = f"127.0.0.1:{ports[0]}"
                    return
            elif self.path in held["unix"]:
                self.address = self.path
                return
            if self.proc.poll() is not None:
                break
            if self.fail_re and self.fail_re.search(self.log_since(offset)):
                break
            time.sleep(0.01)
        tail = self.log_since(offset)[-1500:]
        self.stop()
        raise StartFailed(f"{self.name} ({self.family}) did not listen (exit {self.proc.returncode}); "
                          f"log tail:\n{tail}")

    def log_since(self, offset):
        try:
            with open(self.logpath, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""


def build_c(build_dir):
    """loadgen and spawn_floor into BUILD_DIR/bin, when missing or older than their source."""
    return run.build_c(build_dir, (("loadgen", "loadgen/loadgen.c"), ("spawn_floor", "peers/spawn_floor.c")))


class Bench:
    def __init__(self, args, bins):
        self.args, self.bins = args, bins
        self.tmp = tempfile.mkdtemp(prefix="serverd-superservers-")
        self.logdir = os.path.join(args.build_dir, "logs")
        os.makedirs(self.logdir, exist_ok=True)
        self.results = {}  # (family, server) -> [loadgen result + host sample]
        self.failures = []  # (family, server, text)
        self.notes = []
        self.quiet = []  # one per window: family, server, rep, others_pct, ...
        self.running = []
        self.serverd_opts = {}  # binary -> options main() added (--log-level warning)
        self.rep = 0

    # -- argv of each server --
    def serverd_argv(self, name):
        a = self.args
        base = name.startswith("serverd-baseline-")
        binary = a.serverd_baseline if base else a.serverd
        model = name.rsplit("-", 1)[1]
        return ([binary, "--model", model] + shlex.split(a.serverd_args) +
                self.serverd_opts.get(binary, []))

    def make(self, name, family, tag):
        """A Super for this server and family, not started yet."""
        path = os.path.join(self.tmp, f"{name}-{family}.sock")
        for p in (path, path + ".lock"):  # s6-ipcserver leaves PATH.lock next to its socket
            if os.path.lexists(p):
                os.unlink(p)
        logpath = os.path.join(self.logdir, f"superservers-{name}-{family}.log")
        with open(logpath, "ab") as f:
            f.write(f"==== {tag} {datetime.datetime.now().isoformat()} ====\n".encode())
        unix = family == "unix"
        if name.startswith("serverd-"):
            argv = self.serverd_argv(name) + ["--listen", "exec@tcp://127.0.0.1:0",
                                              "--listen", f"exec@unix:{path}", "--"] + PROGRAM
            return Super(name, family, argv, logpath, path=path)
        if name == "spawn-floor":
            argv = [self.bins["spawn_floor"], "unix" if unix else "tcp", path if unix else "127.0.0.1:0"] + PROGRAM
            return Super(name, family, argv, logpath, path=path)
        if name == "tcpserver":
            return Super(name, family, ["tcpserver", "-R", "-H", "-l0", "127.0.0.1", "0"] + PROGRAM, logpath)
        if name == "unixserver":
            return Super(name, family, ["unixserver", "-c", "40", "--", path] + PROGRAM, logpath, path=path)
        if name == "s6-ipcserver":
            return Super(name, family, ["s6-ipcserver", path] + PROGRAM, logpath, path=path)
        if name == "systemd-socket-activate":
            port = None if unix else free_port()
            argv = ["systemd-socket-activate", "-l", path if unix else f"127.0.0.1:{port}", "-a", "--inetd"] + PROGRAM
            return Super(name, family, argv, logpath, env={"SYSTEMD_LOG_LEVEL": "warning"}, port=port, path=path)
        if name == "xinetd":
            port = free_port()
            conf = os.path.join(self.tmp, "xinetd.conf")
            with open(conf, "w") as f:
                f.write(XINETD_CONF.format(port=port, server=PROGRAM[0], args=" ".join(PROGRAM[1:])))
            # Bind refused (the port taken meanwhile): xinetd stays up with no service.
            return Super(name, family, ["xinetd", "-dontfork", "-f", conf, "-filelog", logpath], logpath,
                         port=port, fail_re=re.compile(r"Started working: 0 available service"))
        raise KeyError(name)

    def start(self, name, family, tag):
        attempts = 3 if name in ("xinetd", "systemd-socket-activate") and family == "tcp" else 1
        for i in range(attempts):
            s = self.make(name, family, tag)
            self.running.append(s)
            try:
                s.start()
                return s
            except StartFailed as e:
                self.running.remove(s)
                if i + 1 == attempts:
                    raise
                log(f"  {name} ({family}): did not listen on port {s.port}, retrying with another "
                    f"port ({str(e).splitlines()[0]})")

    def stop(self, s):
        s.stop()
        if s in self.running:
            self.running.remove(s)

    def stop_all(self):
        for s in list(self.running):
            self.stop(s)

    # -- one window --
    def loadgen(self, s, seconds, warmup):
        target = ["--tcp", s.address] if s.family == "tcp" else ["--unix", s.address]
        argv = [self.bins["loadgen"], "connect-eof"] + target + [
            "--conns", str(CONNS), "--seconds", str(seconds), "--warmup", str(warmup), "--max", "1000000"]
        cw = run.CpuWatch(s.proc.pid)
        try:
            p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=seconds + warmup + 30)
        except subprocess.TimeoutExpired:
            return None, "loadgen timed out", cw.finish()
        q = cw.finish()
        lines = p.stdout.decode().strip().splitlines()
        if not lines:
            return None, f"loadgen printed nothing (exit {p.returncode}): {p.stderr.decode().strip()[-300:]}", q
        return json.loads(lines[-1]), None, q

    def window(self, name, family):
        a = self.args
        try:
            s = self.start(name, family, f"rep {self.rep}")
        except (StartFailed, OSError) as e:
            self.fail(family, name, str(e).splitlines()[0])
            log(str(e))
            return None
        try:
            r, err, q = self.loadgen(s, a.seconds, a.warmup)
            if a.smoke and not err and r.get("ops", 0) == 0 and not r.get("errors"):
                log(f"  {name} ({family}): no connection finished in {a.seconds:g} s, trying once more for 5 s")
                r, err, q = self.loadgen(s, 5.0, 0)
        finally:
            self.stop(s)
        if q and q["wall_s"] >= 0.25:
            q.update(server=name, family=family, rep=self.rep)
            self.quiet.append(q)
            if q["others_pct"] > BUSY_PCT:
                log(f"  {name} ({family}): NOT QUIET: other processes used {q['others_pct']:.0f} % of a CPU "
                    f"during the window (load average {q['load1']})")
        if err or r.get("ops", 0) == 0:
            self.fail(family, name, err or f"no connection finished: {json.dumps(r)}")
            return None
        if r.get("errors"):
            self.notes.append(f"`{name}` ({family}), repetition {self.rep}: {r['errors']} connection errors "
                              f"({r.get('timeouts', 0)} not finished within 5 s)")
            if a.smoke:
                self.fail(family, name, f"errors: {json.dumps(r)}")
        r["others_pct"] = q["others_pct"] if q else None
        r["rep"] = self.rep
        self.results.setdefault((family, name), []).append(r)
        return r

    def fail(self, family, name, text):
        self.failures.append((family, name, text))
        log(f"  FAILED {name} ({family}): {text}")

    def run(self, plan):
        """plan: [(family, [servers])]; every repetition runs all of it in that order."""
        t0 = time.monotonic()
        for rep in range(1, self.args.reps + 1):
            self.rep = rep
            for family, servers in plan:
                for name in servers:
                    t = time.monotonic()
                    r = self.window(name, family)
                    text = "FAILED" if not r else (
                        f"{r['rate']:,.0f} conn/s, p50 {r['p50_us'] / 1000:.1f} ms, p99 {r['p99_us'] / 1000:.1f} ms"
                        + (f", others' CPU {r['others_pct']:.0f} %" if r.get("others_pct") is not None else ""))
                    log(f"[{rep}/{self.args.reps}] {family} {name}: {text}  ({time.monotonic() - t:.1f} s)")
        self.elapsed = time.monotonic() - t0


XINETD_CONF = """# written by Benchmarks/superservers.py for one run
defaults
{{
}}

service serverd-bench
{{
	type        = UNLISTED
	id          = serverd-bench
	socket_type = stream
	protocol    = tcp
	port        = {port}
	bind        = 127.0.0.1
	wait        = no
	user        = root
	server      = {server}
	server_args = {args}
	instances   = UNLIMITED
	per_source  = UNLIMITED
	cps         = 1000000 1
	flags       = REUSE NOLIBWRAP
}}
"""


# ---------------------------------------------------------------------------------------------
# Report

def med(vals):
    return statistics.median(vals) if vals else None


def rate_text(v):
    return "-" if v is None else f"{v:,.0f}"


def ms_text(us):
    return "-" if us is None else f"{us / 1000:.1f}"


def ratio(x, y):
    if x is None or not y:
        return "-"
    return f"{x / y:.2f}x"


def versions(args, servers):
    """Debian package versions of the peers and `serverd --version` of each serverd binary."""
    out = {}
    for name, (binary, pkg, _, _) in PEERS.items():
        if pkg and name in servers:
            try:
                out[name] = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], stdout=subprocess.PIPE,
                                           stderr=subprocess.DEVNULL, timeout=10).stdout.decode().strip() or "?"
            except (OSError, subprocess.TimeoutExpired):
                out[name] = "?"
    for binary in {args.serverd, args.serverd_baseline} - {None}:
        try:
            out[binary] = subprocess.run([binary, "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, timeout=10).stdout.decode().strip().splitlines()[0]
        except (OSError, subprocess.TimeoutExpired, IndexError):
            out[binary] = "?"
    return out


def render(bench, servers, plan, meta, vers, command):
    a = bench.args
    L = [SECTION_TITLE, ""]
    L.append(f"Measured with the benchmark of commit `{meta['commit']}` on {meta['date']}: "
             f"`{command}`{' (smoke run: numbers not meant to be read)' if a.smoke else ''}; "
             f"`make bench-exec` regenerates this section (and `make bench` rewrites the whole file "
             f"without it).")
    L.append("")
    L.append(f"Machine: {meta['machine']}; load average {meta['load']} the run.")
    L.append(f"Workload: every server runs `{' '.join(PROGRAM)}` per connection (the line back, then "
             f"exit); the load generator (Benchmarks/loadgen `connect-eof`, one thread, epoll) keeps "
             f"{CONNS} connections in flight, each sends one 64-byte line and reads until EOF (the line "
             f"must come back byte for byte). {a.reps} repetition(s); in each, every server ran one "
             f"window per family ({a.warmup:g} s warm-up, then {a.seconds:g} s measured), servers "
             f"interleaved within the repetition, each started fresh for its window. Latency runs from "
             f"the start of connect() to EOF. A cell is the median of the repetitions with their "
             f"min-max. Total time {bench.elapsed:.0f} s.")
    L.append("")
    L.append("Servers:")
    L.append("")
    for s in servers:
        if s in DESCRIPTION:
            L.append(f"- `{s}`: " + DESCRIPTION[s].format(v=vers.get(s, "?")))
        else:
            argv = bench.serverd_argv(s)
            L.append(f"- `{s}`: `{argv[0]}` ({vers.get(argv[0], '?')}) with "
                     f"`{' '.join(shlex.quote(x) for x in argv[1:])} --listen exec@tcp://127.0.0.1:0 "
                     f"--listen exec@unix:PATH -- {' '.join(PROGRAM)}` (both listeners in every window; "
                     f"the TCP port read back from /proc)")
    L.append("")
    for family, ss in plan:
        rows = [s for s in ss if (family, s) in bench.results or any(f == family and n == s for f, n, _ in bench.failures)]
        if not rows:
            continue
        rate = {s: med([r["rate"] for r in bench.results.get((family, s), [])]) for s in rows}
        cs = [s for s in rows if is_c_superserver(s) and rate[s] is not None]
        fastest = max(cs, key=lambda s: rate[s]) if cs else None
        floor = rate.get("spawn-floor")
        L.append(f"### Exec per connection, {FAMILIES[family]}")
        L.append("")
        L.append(f"Ratios are of connections/s (medians): to the fastest C superserver of this family "
                 f"({'`' + fastest + '`' if fastest else 'none ran'}) and to the C floor "
                 f"(`spawn-floor`{'' if floor else ', did not run'}).")
        L.append("")
        L.append("| server | conn/s | min-max | p50 ms | min-max | p99 ms | min-max | / fastest C | / floor |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for s in rows:
            res = bench.results.get((family, s), [])
            if not res:
                L.append(f"| {s} | failed | | | | | | | |")
                continue
            rv = [r["rate"] for r in res]
            p50 = [r["p50_us"] for r in res]
            p99 = [r["p99_us"] for r in res]
            L.append(f"| {s} | {rate_text(med(rv))} | {rate_text(min(rv))}-{rate_text(max(rv))} | "
                     f"{ms_text(med(p50))} | {ms_text(min(p50))}-{ms_text(max(p50))} | {ms_text(med(p99))} | "
                     f"{ms_text(min(p99))}-{ms_text(max(p99))} | {ratio(med(rv), rate[fastest] if fastest else None)} | "
                     f"{ratio(med(rv), floor)} |")
        L.append("")
    L.extend(render_baseline(bench, plan))
    L.extend(render_quiet(bench, servers, plan, meta))
    if bench.notes or bench.failures:
        L.append("### Superservers: notes")
        L.append("")
        L.extend(f"- {n}" for n in bench.notes)
        L.extend(f"- FAILED `{s}` ({f}): {t.splitlines()[0] if t else ''}" for f, s, t in bench.failures)
        L.append("")
    return "\n".join(L).rstrip() + "\n"


def render_baseline(bench, plan):
    """serverd under test against --serverd-baseline, model by model, on connections/s."""
    rows = []
    for family, ss in plan:
        for m in MODELS:
            sv = [r["rate"] for r in bench.results.get((family, f"serverd-{m}"), [])]
            bv = [r["rate"] for r in bench.results.get((family, f"serverd-baseline-{m}"), [])]
            if not sv or not bv:
                continue
            sm, bm = med(sv), med(bv)
            verdict = ""
            if len(sv) >= 2 and len(bv) >= 2:
                verdict = " (ranges overlap)" if min(sv) <= max(bv) and min(bv) <= max(sv) else \
                    (" (faster)" if sm > bm else " (slower)")
            rows.append(f"| {family} | {m} | {rate_text(sm)} ({rate_text(min(sv))}-{rate_text(max(sv))}) | "
                        f"{rate_text(bm)} ({rate_text(min(bv))}-{rate_text(max(bv))}) | "
                        f"{(sm - bm) / bm * 100:+.1f} %{verdict} |")
    if not rows:
        return []
    a = bench.args
    return ["### Superservers: serverd against the baseline binary", "",
            f"Connections/s, medians (min-max). `serverd-<model>` runs {a.serverd}, `serverd-baseline-<model>` "
            f"runs {a.serverd_baseline}, right after it in every repetition. Faster or slower is said only "
            f"when the two ranges do not overlap (two repetitions or more).", "",
            "| family | model | serverd | baseline | change |", "|---|---|---:|---:|---:|"] + rows + [""]


def render_quiet(bench, servers, plan, meta):
    if not bench.quiet:
        return []
    vals = sorted(q["others_pct"] for q in bench.quiet)
    busy = [q for q in bench.quiet if q["others_pct"] > BUSY_PCT]
    steal = max(q["steal_pct"] for q in bench.quiet)
    L = ["### Superservers: quiet host", ""]
    L.append(f"Around every window the driver compared the machine's CPU time (/proc/stat) with that of "
             f"the window's own processes (server and descendants, load generator, driver). Other "
             f"processes used a median of {statistics.median(vals):.0f} % and at most {vals[-1]:.0f} % of "
             f"one CPU over {len(vals)} windows; hypervisor steal at most {steal:.0f} %. Load average "
             f"{meta['load']}.")
    L.append("")
    if busy:
        L.append(f"**Not a quiet host: {len(busy)} of {len(vals)} windows had other processes above "
                 f"{BUSY_PCT:.0f} % of a CPU** (marked ! below); their numbers are not evidence of speed.")
    else:
        L.append(f"Quiet: no window had other processes above {BUSY_PCT:.0f} % of a CPU.")
    L.append("")
    fams = [f for f, _ in plan]
    L.append("Other processes' CPU, % of one CPU, per window (repetition 1, 2, ...):")
    L.append("")
    L.append("| server | " + " | ".join(fams) + " |")
    L.append("|---|" + "---:|" * len(fams))
    for s in servers:
        cells = []
        for f in fams:
            qs = [q for q in bench.quiet if q["server"] == s and q["family"] == f]
            cells.append(" ".join(f"{q['others_pct']:.0f}{'!' if q['others_pct'] > BUSY_PCT else ''}" for q in qs))
        if any(cells):
            L.append(f"| {s} | " + " | ".join(cells) + " |")
    L.append("")
    return L


def write_section(path, text):
    """Replaces the section between BEGIN and END in path, or appends it; the rest stays."""
    block = f"{BEGIN}\n{text}{END}\n"
    old = ""
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
    i, j = old.find(BEGIN), old.find(END)
    if i >= 0 and j > i:
        new = old[:i] + block + old[j + len(END):].lstrip("\n")
    elif old:
        new = old.rstrip("\n") + "\n\n" + block
    else:
        new = block
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(new)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------

def serverd_preflight(bench, servers):
    """--log-level warning for each serverd binary whose --help lists --log-level (unless
    --serverd-args names it): per-connection lines are logged at info.  Then --check-config with
    the real options, so that a refused option stops the run at once."""
    a = bench.args
    for binary in sorted({bench.serverd_argv(s)[0] for s in servers if s.startswith("serverd-")}):
        try:
            helptext = subprocess.run([binary, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, timeout=20).stdout.decode(errors="replace")
        except (OSError, subprocess.TimeoutExpired) as e:
            raise RuntimeError(f"{binary} --help: {e}")
        if "--log-level" in helptext and "--log-level" not in a.serverd_args:
            bench.serverd_opts[binary] = ["--log-level", "warning"]
        name = next(s for s in servers if s.startswith("serverd-") and bench.serverd_argv(s)[0] == binary)
        argv = bench.serverd_argv(name) + ["--listen", "exec@tcp://127.0.0.1:0", "--listen",
                                           f"exec@unix:{bench.tmp}/check.sock", "--check-config", "--"] + PROGRAM
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
    ap.add_argument("--serverd", required=True, help="the serverd binary under test")
    ap.add_argument("--serverd-baseline", metavar="PATH",
                    help="a second serverd binary (say the previous main) as rows serverd-baseline-<model>, "
                         "each right after serverd-<model>")
    ap.add_argument("--serverd-args", default="",
                    help="more serverd options for both binaries (--log-level warning is added where the "
                         "binary has it, unless these name --log-level); give them with =, "
                         "--serverd-args=\"--max-connections 64\"")
    ap.add_argument("--servers", help="comma-separated servers to run (default: all that are installed)")
    ap.add_argument("--families", default="tcp,unix", help="comma-separated families: tcp, unix (default both)")
    ap.add_argument("--smoke", action="store_true",
                    help="one repetition of 0.5 s windows, to check the script runs; fails on any error, "
                         "never on speed; writes no results unless --results is given")
    ap.add_argument("--reps", type=int, help="repetitions (default 3, smoke 1)")
    ap.add_argument("--seconds", type=float, help="measured seconds per window (default 3, smoke 0.5)")
    ap.add_argument("--warmup", type=float, help="warm-up seconds per window (default 1, smoke 0.2)")
    ap.add_argument("--build-dir", default=os.path.join(HERE, ".build-bench"),
                    help="where the C programs are compiled and logs go (default Benchmarks/.build-bench)")
    ap.add_argument("--results", help="markdown file whose section '" + SECTION_TITLE[3:] + "' is written "
                                      "(replaced between its markers, the rest of the file kept; default "
                                      "Benchmarks/RESULTS.md, smoke: none)")
    ap.add_argument("--json", help="raw results as JSON (default BUILD_DIR/superservers.json)")
    ap.add_argument("--nice", type=int,
                    help="niceness for the driver, servers and load generator (default -10, smoke: unchanged; "
                         "a negative value needs root and is ignored if refused)")
    args = ap.parse_args()

    command = " ".join(shlex.quote(x) for x in ["python3", os.path.relpath(os.path.abspath(sys.argv[0]), ROOT)] + sys.argv[1:])
    args.reps = args.reps or (1 if args.smoke else 3)
    args.seconds = args.seconds or (0.5 if args.smoke else 3.0)
    args.warmup = args.warmup if args.warmup is not None else (0.2 if args.smoke else 1.0)
    if args.results is None and not args.smoke:
        args.results = os.path.join(HERE, "RESULTS.md")
    if args.seconds <= 0 or args.seconds > 60 or args.warmup < 0 or args.warmup > 30 or not 1 <= args.reps <= 20:
        ap.error("--seconds must be in (0, 60], --warmup in [0, 30], --reps in 1..20")
    try:
        shlex.split(args.serverd_args)
    except ValueError as e:
        ap.error(f"--serverd-args: {e}")
    args.build_dir = os.path.abspath(args.build_dir)
    args.json = args.json or os.path.join(args.build_dir, "superservers.json")
    args.serverd = os.path.abspath(args.serverd)
    if args.serverd_baseline:
        args.serverd_baseline = os.path.abspath(args.serverd_baseline)

    families = [f.strip() for f in args.families.split(",") if f.strip()]
    for f in families:
        if f not in FAMILIES:
            ap.error(f"unknown family {f!r}; known: {', '.join(FAMILIES)}")
    known = list(PEERS) + serverd_names(bool(args.serverd_baseline))
    wanted = known if not args.servers else [s.strip() for s in args.servers.split(",") if s.strip()]
    for s in wanted:
        if s.startswith("serverd-baseline-") and not args.serverd_baseline and s in serverd_names(True):
            ap.error(f"{s} needs --serverd-baseline PATH")
        if s not in known:
            ap.error(f"unknown server {s!r}; known: {', '.join(known)}")
    servers = [s for s in known if s in wanted]
    missing = []
    for s in list(servers):
        binary, pkg = PEERS.get(s, (None, None, None, None))[:2]
        if binary and not shutil.which(binary):
            if args.servers:
                missing.append(f"{binary} (Debian package {pkg}; `make bench-exec` installs it)")
            else:
                log(f"note: {binary} is not installed (Debian package {pkg}), leaving {s} out")
                servers.remove(s)
    if any(s.startswith("serverd-") and not s.startswith("serverd-baseline-") for s in servers) \
            and not os.access(args.serverd, os.X_OK):
        missing.append(f"serverd binary {args.serverd}")
    if any(s.startswith("serverd-baseline-") for s in servers) and not os.access(args.serverd_baseline, os.X_OK):
        missing.append(f"baseline serverd binary {args.serverd_baseline}")
    if not os.access(PROGRAM[0], os.X_OK):
        missing.append(PROGRAM[0])
    if missing:
        log("superservers.py: missing " + "; ".join(missing))
        return 2
    plan = [(f, [s for s in servers if f in families_of(s)]) for f in families]
    plan = [(f, ss) for f, ss in plan if ss]
    if not plan:
        ap.error("no server serves the families asked for")

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
        log(f"superservers.py: {e}")
        shutil.rmtree(bench.tmp, ignore_errors=True)
        return 2
    load_before = run.loadavg()
    log(f"superservers.py: {'; '.join(f'{f}: ' + ', '.join(ss) for f, ss in plan)}; {args.reps} repetition(s), "
        f"{args.seconds:g} s windows after {args.warmup:g} s warm-up")
    try:
        bench.run(plan)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        bench.stop_all()
        shutil.rmtree(bench.tmp, ignore_errors=True)

    meta = run.metadata()
    meta["load"] = f"{load_before} before, {run.loadavg()} after"
    meta["machine"] = meta["machine"].split(", net.unix.max_dgram_qlen", 1)[0]  # not read here
    vers = versions(args, servers)
    text = render(bench, servers, plan, meta, vers, command)
    print(text)
    with open(args.json, "w") as f:
        json.dump({"meta": meta, "command": command, "versions": vers,
                   "args": vars(args), "plan": plan,
                   "results": [{"family": f, "server": s, "runs": rs} for (f, s), rs in bench.results.items()],
                   "failures": bench.failures, "notes": bench.notes, "host": bench.quiet,
                   "argv": {s: bench.serverd_argv(s) for s in servers if s.startswith("serverd-")}}, f, indent=1)
    if args.results:
        write_section(args.results, text)
        log(f"superservers.py: wrote the section to {os.path.relpath(args.results, os.getcwd())}")
    busy = [q for q in bench.quiet if q["others_pct"] > BUSY_PCT]
    if busy:
        log(f"superservers.py: NOT A QUIET HOST: {len(busy)} of {len(bench.quiet)} windows had other processes "
            f"above {BUSY_PCT:.0f} % of a CPU (max {max(q['others_pct'] for q in busy):.0f} %)")
    if bench.failures:
        log(f"superservers.py: {len(bench.failures)} window(s) failed")
        return 1 if args.smoke else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
