"""Floods: more clients than the daemon has descriptors, and connection churn.

emfile proves that descriptor exhaustion makes accept back off instead of spinning or dying, that
an exec connection waits for descriptors for its child instead of being dropped, and that every
listener serves again as soon as the clients leave. churn proves that 10,000 connections opened,
used and closed leave no descriptors, threads, children or memory behind, in every model.
"""
import re
import socket
import threading
import time

from .clients import baseline_of, connect, echo_exchange, receive_all, receive_line, stamp_exchange
from .harness import ALL_MODELS, FIGURES, check, fault, wait_until

@fault("emfile", ["threading", "event"],
       "RLIMIT_NOFILE 64 and 3x more clients than descriptors on stamp, Unix echo and exec listeners: "
       "accept backs off (CPU stays low, no crash, listeners kept), an exec connection accepted without "
       "descriptors for its child waits for them (logged, at most 5 s) instead of being dropped, and every "
       "listener serves again at once when the clients leave: an exec client that connects right then, "
       "among the backlog's dead exec connections and their burst of children, is served. (Threading "
       "and event: in the forking and serial models the daemon itself holds at most one connection at a time.)")
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
