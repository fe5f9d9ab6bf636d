"""Hostile input: resets mid-reply, half-closed connections, binary garbage and over-long lines.

They prove that whatever a client sends, or however it ends its connection, only that connection
is affected: a reset ends quietly, a half-close still gets every reply in full, garbage is
answered byte for byte (stamp) or echoed, and a line over --max-line closes its connection without
the daemon buffering the rest.
"""
import os
import random
import re
import socket
import time

from .clients import (Prober, abortive_close, baseline_of, closed_by_peer, connect, echo_exchange, parse_address,
                      push, receive_all, receive_line, stamp_exchange)
from .harness import ALL_MODELS, FIGURES, STAMP_REPLY, check, fault

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
