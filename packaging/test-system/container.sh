#!/bin/bash
# Runs inside the private mount namespace that packaging/test-system.sh creates
# with `unshare --mount`: every mount made here vanishes with the namespace.
#
#   container.sh WORKDIR MACHINE LOGDIR DEB UPGRADE_DEB [HIDE]
#
# WORKDIR/debs holds the packages DEB and UPGRADE_DEB (file names) and
# checks.py; HIDE is a directory (the Swift toolchain) to hide under an
# empty tmpfs in the container. Boots systemd as PID 1 in a systemd-nspawn container over a tmpfs
# overlay of the host root, runs checks.py in it, saves the journal to LOGDIR
# and powers the container off. Exits with the status of checks.py, or 2 when
# the container does not boot.
#
# Every process it starts is recorded in WORKDIR/pids ("PID STARTTIME"), so
# that test-system.sh can kill what is left even if this script is killed.
set -u

work=$1 machine=$2 logdir=$3 deb=$4 upgrade_deb=$5 hide=${6:-}
root="$work/root"
boot_timeout=${BOOT_TIMEOUT:-90}
checks_timeout=${CHECKS_TIMEOUT:-420}
nspawn_pid= leader_pid= job_pid=

say() { printf 'test-system: %s\n' "$*"; }

record() {  # PID: remember it with its start time (guards against PID reuse)
    local st
    st=$(awk '{print $22}' "/proc/$1/stat" 2>/dev/null) && echo "$1 $st" >> "$work/pids"
}

# The container's PID 1, seen from here: systemd-nspawn's child.
find_leader() {
    local p
    for p in $(pgrep -P "$nspawn_pid"); do
        [ "$(cat "/proc/$p/comm" 2>/dev/null)" = systemd ] && { echo "$p"; return 0; }
    done
    return 1
}

# inside LIMIT CMD...: runs CMD in the container with a clean environment, in
# the background, and waits for it, so that a TERM reaches our trap at once.
inside() {
    local limit=$1; shift
    timeout --kill-after=5 "$limit" nsenter --target "$leader_pid" --all -- \
        env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb "$@" &
    job_pid=$!
    record "$job_pid"
    wait "$job_pid"
    local rc=$?
    job_pid=
    return "$rc"
}

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

shutdown_container() {
    trap - TERM INT HUP
    # A running check first: timeout passes the TERM on to its process group.
    if alive "$job_pid"; then kill -TERM "$job_pid" 2>/dev/null; fi
    if alive "$nspawn_pid"; then
        # SIGRTMIN+4 asks systemd for a poweroff; it needs no bus connection.
        if alive "$leader_pid"; then kill -s RTMIN+4 "$leader_pid"; else kill -TERM "$nspawn_pid"; fi
        for _ in $(seq 1 150); do
            alive "$nspawn_pid" || break
            sleep 0.1
        done
        if alive "$nspawn_pid"; then
            say "container did not power off within 15 s; killing it"
            kill -KILL "$nspawn_pid" 2>/dev/null
        fi
        wait "$nspawn_pid" 2>/dev/null
    fi
    # Killing the init of a PID namespace kills everything in it.
    if alive "$leader_pid"; then kill -KILL "$leader_pid" 2>/dev/null; fi
    if alive "$job_pid"; then kill -KILL "$job_pid" 2>/dev/null; fi
}
trap shutdown_container EXIT
trap 'exit 143' TERM INT HUP

# A throw-away root: the host's / below, a tmpfs above.
mkdir -p "$work/ovl" "$root"
mount -t tmpfs -o mode=0755 tmpfs "$work/ovl" || exit 2
mkdir -p "$work/ovl/upper" "$work/ovl/work"
mount -t overlay overlay \
    -o "lowerdir=/,upperdir=$work/ovl/upper,workdir=$work/ovl/work" "$root" || exit 2

# Let maintainer scripts start units (Docker-style images forbid it), keep
# the boot small and quiet: no timers firing apt or man-db, no man-db trigger.
rm -f "$root/usr/sbin/policy-rc.d" "$root/var/lib/man-db/auto-update"
for t in "$root"/etc/systemd/system/timers.target.wants/*.timer; do
    [ -e "$t" ] || [ -L "$t" ] || continue
    ln -sf /dev/null "$root/etc/systemd/system/$(basename "$t")"
done
: > "$root/etc/machine-id"

hide_opts=()
[ -n "$hide" ] && hide_opts=(--tmpfs="$hide:mode=0755")
say "booting $machine (systemd as PID 1, private network${hide:+, $hide hidden})"
# PDEATHSIG: systemd-nspawn dies with this script even if it is SIGKILLed.
setpriv --pdeathsig KILL -- \
    systemd-nspawn --quiet --directory="$root" --machine="$machine" --boot \
        --private-network --register=no --keep-unit --console=read-only \
        "${hide_opts[@]}" --bind-ro="$work/debs:/srv/serverd-test" \
        -- systemd.unit=basic.target \
    > "$logdir/console.log" 2>&1 < /dev/null &
nspawn_pid=$!
record "$nspawn_pid"

deadline=$(( $(date +%s) + boot_timeout ))
until leader_pid=$(find_leader); do
    if [ "$(date +%s)" -ge "$deadline" ] || ! alive "$nspawn_pid"; then
        say "FAIL boot: systemd-nspawn did not start systemd (see $logdir/console.log)"
        exit 2
    fi
    sleep 0.1
done
record "$leader_pid"

# The manager answers only once its private socket exists; then wait for the boot.
until inside 10 test -S /run/systemd/private; do
    if [ "$(date +%s)" -ge "$deadline" ] || ! alive "$nspawn_pid"; then
        say "FAIL boot: the container's systemd never opened /run/systemd/private"
        exit 2
    fi
    sleep 0.2
done
state=$(inside $(( deadline - $(date +%s) + 1 )) systemctl is-system-running --wait 2>&1)
case $state in
    running|degraded) say "PASS boot: system $state" ;;
    *) say "FAIL boot: system state '$state' (see $logdir/console.log)"; exit 2 ;;
esac
[ "$state" = degraded ] && inside 20 systemctl --failed --no-legend > "$logdir/failed-at-boot.txt"

# The checks start from a system that never had serverd.
if inside 20 dpkg-query -W serverd >/dev/null 2>&1; then
    say "serverd is installed on the host; purging it in the container first"
    inside 120 dpkg -P serverd > "$logdir/purge-host-copy.log" 2>&1 ||
        { say "FAIL setup: could not purge the host's serverd in the container"; exit 2; }
fi

inside "$checks_timeout" /usr/bin/python3 -u /srv/serverd-test/checks.py \
    "/srv/serverd-test/$deb" "/srv/serverd-test/$upgrade_deb" $hide > >(tee "$logdir/checks.log") 2>&1
rc=$?
case $rc in
    124|137) say "FAIL checks: no result within $checks_timeout s" ;;
esac

inside 30 journalctl --no-pager -b > "$logdir/journal.txt" 2>&1
inside 30 journalctl --no-pager -b -u 'serverd*' > "$logdir/journal-serverd.txt" 2>&1
exit "$rc"
