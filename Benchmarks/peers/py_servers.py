#!/usr/bin/env python3
"""Python socketserver peers for the serverd benchmark.

    py_servers.py --model threading|forking [--tcp HOST:PORT] [--unix PATH] [--udp HOST:PORT]
                  [--unixgram PATH]

threading: ThreadingTCPServer, ThreadingUnixStreamServer, ThreadingUDPServer, ThreadingUnixDatagramServer.
forking:   ForkingTCPServer,   ForkingUnixStreamServer,   ForkingUDPServer,   ForkingUnixDatagramServer
           (the last composed here from ForkingMixIn and UnixDatagramServer, as Python 3.12 does).

The handlers are the textbook ones: a StreamRequestHandler that loops over rfile.readline() and
writes each line back, and a DatagramRequestHandler that writes each line of the datagram back
(socketserver sends it with sendto() to the sender's address: a Unix datagram sender must have
bound a name, abstract or a path).
Two class attributes differ from the defaults, both so that the benchmark measures the processing
model and not a limit any user would raise first: request_queue_size 128 instead of 5 (with 5 the
kernel drops SYNs under 16 concurrent connects and the clients stall for a second), and, for the
forking servers, max_children 4096 instead of 40 (with 40 the server blocks in waitpid() while 40
connections are open, so 1,000 idle connections would never be served).

For each listener one line `listening on echo@tcp://HOST:PORT` (real port) goes to stderr, as
serverd logs it.  Runs until killed (SIGTERM).
"""
import argparse
import os
import socketserver
import sys
import threading


class LineEcho(socketserver.StreamRequestHandler):
    def handle(self):
        while True:
            line = self.rfile.readline()
            if not line:
                break
            self.wfile.write(line)


class DatagramLineEcho(socketserver.DatagramRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line)


def host_port(text):
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["threading", "forking"], required=True)
    ap.add_argument("--tcp")
    ap.add_argument("--unix")
    ap.add_argument("--udp")
    ap.add_argument("--unixgram")
    a = ap.parse_args()
    if not (a.tcp or a.unix or a.udp or a.unixgram):
        ap.error("give at least one of --tcp, --unix, --udp, --unixgram")

    mixin = socketserver.ThreadingMixIn if a.model == "threading" else socketserver.ForkingMixIn
    knobs = {"request_queue_size": 128, "daemon_threads": True, "max_children": 4096}

    def make(base, name):
        return type(name, (mixin, base), dict(knobs))

    servers = []
    if a.tcp:
        host, port = host_port(a.tcp)
        cls = make(socketserver.TCPServer, a.model.capitalize() + "TCPServer")
        if ":" in host:
            cls.address_family = socketserver.socket.AF_INET6
        s = cls((host, port), LineEcho)
        h, p = s.server_address[:2]
        servers.append((s, f"tcp://{'[' + h + ']' if ':' in h else h}:{p}"))
    if a.unix:
        if os.path.exists(a.unix):
            os.unlink(a.unix)
        s = make(socketserver.UnixStreamServer, a.model.capitalize() + "UnixStreamServer")(a.unix, LineEcho)
        servers.append((s, f"unix:{a.unix}"))
    if a.udp:
        host, port = host_port(a.udp)
        cls = make(socketserver.UDPServer, a.model.capitalize() + "UDPServer")
        if ":" in host:
            cls.address_family = socketserver.socket.AF_INET6
        s = cls((host, port), DatagramLineEcho)
        h, p = s.server_address[:2]
        servers.append((s, f"udp://{'[' + h + ']' if ':' in h else h}:{p}"))
    if a.unixgram:
        if os.path.exists(a.unixgram):
            os.unlink(a.unixgram)
        cls = make(socketserver.UnixDatagramServer, a.model.capitalize() + "UnixDatagramServer")
        servers.append((cls(a.unixgram, DatagramLineEcho), f"unixgram:{a.unixgram}"))

    threads = []
    for s, where in servers:
        t = threading.Thread(target=s.serve_forever, daemon=True)
        t.start()
        threads.append(t)
        print(f"py_servers: listening on echo@{where}", file=sys.stderr, flush=True)
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
