"""Handlers: exec children that crash, are missing or are killed, forked workers that are killed,
and library handlers that throw.

They prove that each such failure is logged, its process reaped and its connection closed, and
that the daemon goes on serving everyone else.
"""
import os
import re
import resource
import signal

from .clients import (Prober, baseline_of, closed_by_peer, connect, receive_all, receive_line, server_side_inode,
                      stamp_exchange)
from .harness import FIGURES, check, fault, holds_socket, parent_of, read_cmdline

def exec_config(ctx, extra=""):
    """A configuration file with one exec listener per behaviour. The program of missing.sock exists when
    serverd starts (a start refuses a missing program) and is removed by start_exec_daemon."""
    vanishing = ctx.path("vanishing-program")
    with open(vanishing, "w") as script:
        script.write("#!/bin/sh\nexit 0\n")
    os.chmod(vanishing, 0o755)
    return ctx.write("exec.toml", """
listen = ["stamp@tcp://127.0.0.1:0"]
[[listener]]
listen = "exec@tcp://127.0.0.1:0"
exec = ["/bin/sh", "-c", "kill -SEGV $$"]
[[listener]]
listen = "exec@unix:%s"
exec = ["%s"]
[[listener]]
listen = "exec@unix:%s"
exec = ["/bin/sh", "-c", "echo started; read line; echo \\"got $line\\""]
[[listener]]
listen = "exec@unix:%s"
exec = ["/bin/sh", "-c", "ls /proc/$$/fd"]
%s""" % (ctx.path("missing.sock"), vanishing, ctx.path("slow.sock"), ctx.path("fds.sock"), extra))


def start_exec_daemon(ctx):
    """serverd on exec_config, with missing.sock's program removed once it serves."""
    daemon = ctx.serverd(["--config", exec_config(ctx)], expect_listening=5)
    os.unlink(ctx.path("vanishing-program"))
    return daemon


@fault("failing-handlers", ["threading", "forking", "event"],
       "exec children that crash (SIGSEGV), a missing exec program, exec children killed from "
       "outside, and (forking) workers killed by SIGKILL and SIGSEGV: each is logged and reaped, "
       "and the daemon serves on")
def fault_failing_handlers(ctx):
    daemon = start_exec_daemon(ctx)
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
    check(log.count("cannot run %s" % ctx.path("vanishing-program")) >= 30, "missing program not logged")
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
