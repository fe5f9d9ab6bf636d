"""The harness: checks, figures, the fault registry and the serverd under test.

A fault is a function registered with @fault(name, models, description); it gets a Context (the
binary, a temporary directory of its own, the processing model) and starts its serverd through it,
so that the runner can kill whatever is left. Serverd reads the daemon's descriptors, threads,
children, memory and CPU from /proc, and `settle` checks that they come back to a baseline after
the fault. Only processes this suite started are ever signalled, by PID.
"""
import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STAMP_REPLY = re.compile(rb"^\[[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d \d{4}\] ")
NOBODY = 65534
# Clients that run as nobody need an interpreter nobody can reach (pyenv's lives under /root).
NOBODY_PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
ALL_MODELS = ["threading", "forking", "serial", "event"]


class Failure(Exception):
    """A fault's check failed."""


class Skip(Exception):
    """The fault cannot run here (e.g. not root)."""


def check(condition, message):
    if not condition:
        raise Failure(message)


def wait_until(predicate, timeout, interval=0.05):
    """Polls `predicate` until it returns a true value or `timeout` passes; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# Figures

class Figures:
    def __init__(self):
        self.lock = threading.Lock()
        self.values = {}

    def add(self, name, amount=1):
        with self.lock:
            self.values[name] = self.values.get(name, 0) + amount

    def set_max(self, name, value):
        with self.lock:
            self.values[name] = max(self.values.get(name, value), value)

    def get(self, name):
        return self.values.get(name, 0)


FIGURES = Figures()


# ---------------------------------------------------------------------------------------------
# The fault registry

FAULTS = []


def fault(name, models, description):
    def register(function):
        FAULTS.append((name, models, description, function))
        return function
    return register


# ---------------------------------------------------------------------------------------------
# The daemon under test

class Serverd:
    """One serverd started by this script. Logs go to a file in the fault's directory."""
    counter = 0

    def __init__(self, context, args, nofile=None, env=None, expect_listening=None, umask=None):
        Serverd.counter += 1
        self.context = context
        self.log_path = os.path.join(context.directory, "serverd-%d.log" % Serverd.counter)
        environment = {k: v for k, v in os.environ.items()
                       if not k.startswith(("LISTEN_", "WATCHDOG_")) and k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM")}
        environment["XDG_RUNTIME_DIR"] = context.directory
        environment.pop("RUNTIME_DIRECTORY", None)
        environment.update(env or {})

        def limit():
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
            if umask is not None:
                os.umask(umask)

        self.log_file = open(self.log_path, "wb")
        self.args = args
        self.process = subprocess.Popen(
            [context.binary] + args, stdin=subprocess.DEVNULL, stdout=self.log_file, stderr=self.log_file,
            cwd=context.directory, env=environment, preexec_fn=limit)
        context.started.append(self)
        self.listening = []
        if expect_listening:
            self.wait_listening(expect_listening)

    @property
    def pid(self):
        return self.process.pid

    def log(self):
        with open(self.log_path, "rb") as log:
            return log.read().decode("utf-8", "replace")

    def wait_listening(self, count, timeout=30):
        def found():
            lines = re.findall(r"listening on (\S+)", self.log())
            return lines if len(lines) >= count else None
        lines = wait_until(found, timeout)
        if not lines:
            raise Failure("serverd did not report %d listeners (exit %s); log:\n%s" % (
                count, self.process.poll(), self.log()[-3000:]))
        self.listening = lines
        return lines

    def address(self, service_prefix):
        """The address of the first `listening on` line whose SERVICE@ADDRESS starts with the prefix."""
        for line in self.listening:
            if line.startswith(service_prefix):
                return line.split("@", 1)[1]
        raise Failure("no listener %s in %s" % (service_prefix, self.listening))

    def alive(self):
        return self.process.poll() is None

    def require_alive(self):
        check(self.alive(), "serverd exited with status %s; log tail:\n%s" % (self.process.poll(), self.log()[-3000:]))

    def _proc(self, name):
        return "/proc/%d/%s" % (self.pid, name)

    def fds(self):
        return len(os.listdir(self._proc("fd")))

    def threads(self):
        return len(os.listdir(self._proc("task")))

    def children(self):
        pids = set()
        for task in os.listdir(self._proc("task")):
            try:
                with open(self._proc("task/%s/children" % task)) as f:
                    pids.update(int(p) for p in f.read().split())
            except OSError:
                pass
        return pids

    def rss_kb(self):
        with open(self._proc("status")) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def cpu_seconds(self):
        with open(self._proc("stat")) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def status_field(self, name):
        with open(self._proc("status")) as f:
            for line in f:
                if line.startswith(name + ":"):
                    return line.split(":", 1)[1].split()
        return []

    def resources(self):
        return {"fds": self.fds(), "threads": self.threads(), "children": len(self.children()), "rss_kb": self.rss_kb()}

    def signal(self, number):
        if self.alive():
            os.kill(self.pid, number)

    def kill_child(self, pid, number):
        """Signals one of this serverd's own children (checked by its parent PID)."""
        with open("/proc/%d/stat" % pid) as f:
            parent = int(f.read().rsplit(")", 1)[1].split()[1])
        check(parent == self.pid, "pid %d is not a child of serverd %d" % (pid, self.pid))
        os.kill(pid, number)

    def stop(self, timeout=30):
        """SIGTERM, then waits; returns the exit status."""
        self.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise Failure("serverd did not stop within %d s of SIGTERM" % timeout)

    def kill(self):
        if self.alive():
            self.process.kill()
            self.process.wait()
        self.log_file.close()

    def settle(self, baseline, timeout=20, rss_allowance_kb=None, what="after the fault", thread_slack=None):
        """Waits until descriptors, threads and children are back to `baseline`; checks memory.

        Threads: the threading model parks a finished worker for 10 s in case another request
        comes, so a full return to the baseline takes that long. Faults that check it exactly
        (churn, sighup, emfile) wait; the others pass `thread_slack` and accept that many parked
        threads above the baseline (their exit is what churn checks)."""
        slack = thread_slack or 0

        def back():
            now = self.resources()
            return now if (now["fds"] <= baseline["fds"] and now["threads"] <= baseline["threads"] + slack
                           and now["children"] <= baseline["children"]) else None
        settled = wait_until(back, timeout, 0.1)
        now = self.resources()
        check(settled, "%s, resources did not come back within %d s: before %s, now %s" % (what, timeout, baseline, now))
        if rss_allowance_kb is not None:
            check(now["rss_kb"] <= baseline["rss_kb"] + rss_allowance_kb,
                  "%s, RSS grew from %d to %d KiB (allowance %d)" % (what, baseline["rss_kb"], now["rss_kb"], rss_allowance_kb))
        zombies = wait_until(lambda: not [p for p in self.children() if process_state(p) == "Z"], 3)
        check(zombies, "unreaped children %s" % [p for p in self.children() if process_state(p) == "Z"])
        return now


def process_state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


class Context:
    def __init__(self, binary, directory, model, churn):
        self.binary = binary
        self.directory = directory
        self.model = model
        self.churn = churn
        self.started = []

    def path(self, name):
        return os.path.join(self.directory, name)

    def write(self, name, text):
        path = self.path(name)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.rename(path + ".tmp", path)
        return path

    def serverd(self, args, **kwargs):
        return Serverd(self, ["--model", self.model] + args, **kwargs)

    def cleanup(self):
        for daemon in self.started:
            daemon.kill()


def as_user(uid, gid):
    def demote():
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    return demote


def read_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return [part.decode("utf-8", "replace") for part in f.read().split(b"\0") if part]
    except OSError:
        return []


def parent_of(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def holds_socket(pid, inode):
    target = "socket:[%d]" % inode
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == target:
                    return True
            except OSError:
                pass
    except OSError:
        pass
    return False
