"""Security: Unix socket permissions from the first instant, peer credentials, dropped privileges,
the descriptors exec children inherit, and hazards at the socket path.

They prove that a client without permission never connects (nor is served) even while the socket
is being created, that a refused peer's bytes are never read, that --user/--group leave no way
back to root, that exec children get only their connection and the log pipe, and that serverd
follows, replaces or deletes nothing it did not create at the socket path. Most need root.
"""
import os
import signal
import socket
import stat
import subprocess
import threading
import time

from .clients import connect, echo_exchange, receive_all, stamp_exchange
from .handlers import start_exec_daemon
from .harness import FIGURES, NOBODY, NOBODY_PYTHON, Failure, Skip, as_user, check, fault

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


@fault("peer-credentials", ["threading", "forking", "event"],
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
    daemon = start_exec_daemon(ctx)
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
