"""Signals: SIGHUP reloads under load, reloads of malformed configurations, and the SIGTERM drain.

They prove that reloads drop no connection and keep the unchanged listeners' sockets, that a
configuration which once aborted the daemon only fails its reload, and that SIGTERM closes the
listeners at once, lets every in-flight exchange complete and exits 0 within --drain-timeout.
"""
import os
import signal
import subprocess
import threading
import time

from .clients import baseline_of, connect, receive_all, refuses, stamp_exchange
from .harness import ALL_MODELS, FIGURES, Failure, Serverd, check, fault, wait_until

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


@fault("sighup", ["threading", "forking", "event"],
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


@fault("sighup-malformed-config", ["threading", "forking", "event"],
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
