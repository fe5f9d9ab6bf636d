"""Slow clients: tricklers that send a byte a second and clients that never read their replies.

They prove that a slow or stuck peer holds up only its own connection (well-behaved clients are
served without delay meanwhile) and that --idle-timeout ends the stuck ones. Not in the serial
model, where one connection at a time is served by design.
"""
import os
import time

from .clients import Prober, abortive_close, baseline_of, connect, receive_line
from .harness import FIGURES, Failure, check, fault, wait_until

@fault("trickle", ["threading", "forking", "event"],
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


@fault("never-read", ["threading", "forking", "event"],
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
