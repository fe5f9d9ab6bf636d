#!/bin/bash
# System test of the serverd Debian package with systemd as PID 1.
#
#   packaging/test-system.sh [DEBDIR]        (default DEBDIR: .build/deb, where make deb puts it)
#
# Boots a throw-away systemd-nspawn container over a tmpfs overlay of the host
# root (private network: loopback only; the Swift toolchain hidden), installs
# the package and runs packaging/test-system/checks.py in it: socket
# activation over TCP on IPv4 and IPv6, UDP, Unix stream and Unix datagram,
# exec children, a configuration error, reload, the watchdog, a draining
# stop, an upgrade to a newer build, remove and purge. One PASS/FAIL line per check; exit status 0 only if
# all pass. The whole run is bounded by TEST_SYSTEM_TIMEOUT seconds (default
# 600) and cleans up after itself whatever happens. Logs: DEBDIR/test-system/.
#
# Needs root, systemd-container, util-linux, iproute2, procps and python3.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=$(realpath -m "${1:-$here/../.build/deb}")
limit=${TEST_SYSTEM_TIMEOUT:-600}

say() { printf 'test-system: %s\n' "$*"; }
die() { say "FAIL setup: $*"; exit 2; }

[ "$(id -u)" = 0 ] || die "must run as root"
for tool in systemd-nspawn unshare nsenter setpriv dpkg-deb dpkg-parsechangelog; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install systemd-container util-linux dpkg-dev)"
done

version=$(dpkg-parsechangelog -l "$here/debian/changelog" -S Version)
arch=$(dpkg --print-architecture)
deb="serverd_${version}_${arch}.deb"
upgrade_version="${version}+systemtest1"
upgrade_deb="serverd_${upgrade_version}_${arch}.deb"
[ -f "$out/$deb" ] || die "$out/$deb not found: run 'make deb' first"

# The Swift toolchain that built the package is hidden in the container: the
# installed serverd must run without it. (Nothing to hide if it lives in /usr.)
swift_root=
if swift_bin=$(command -v "${SWIFT:-swift}" 2>/dev/null); then
    swift_root=$(realpath "$(dirname "$swift_bin")")   # e.g. /opt/swift/usr/bin
    swift_root=${swift_root%/bin}
    swift_root=${swift_root%/usr}
    case $swift_root in /|/usr|/usr/local|"") swift_root= ;; esac
fi

work=$(mktemp -d /tmp/serverd-test-system.XXXXXX)
machine="serverd-test-$$"
logdir="$out/test-system"
rm -rf "$logdir"
mkdir -p "$logdir" "$work/debs"
ls /run/systemd/nspawn/locks 2>/dev/null > "$work.locks" || true

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    # container.sh powers the container off; if it was killed, kill what it
    # started and recorded (PID and start time, so a reused PID is spared).
    local pid st
    while read -r pid st; do
        [ "$(awk '{print $22}' "/proc/$pid/stat" 2>/dev/null)" = "$st" ] && kill -KILL "$pid" 2>/dev/null
    done < <(tac "$work/pids" 2>/dev/null)
    # The overlay and tmpfs lived in the private mount namespace and are gone;
    # only the empty mount points and what systemd-nspawn left in /run remain.
    rm -rf --one-file-system "$work" 2>/dev/null || true
    # systemd-nspawn's own bookkeeping in the host's /run: ours is what was
    # not there before (a lock outlives a killed systemd-nspawn).
    rm -rf "/run/systemd/nspawn/propagate/$machine" 2>/dev/null || true
    local f
    for f in /run/systemd/nspawn/locks/*; do
        [ -e "$f" ] || continue
        grep -qxF "$(basename "$f")" "$work.locks" 2>/dev/null || rm -f "$f"
    done
    rm -f "$work.locks"
    rmdir /run/systemd/nspawn/propagate /run/systemd/nspawn/locks /run/systemd/nspawn 2>/dev/null || true
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The upgrade: the same build as a newer package version (repacking is
# quicker than a second Swift build, and dpkg sees a real upgrade).
cp "$out/$deb" "$work/debs/$deb"
dpkg-deb --raw-extract "$out/$deb" "$work/repack"
sed -i "s/^Version: .*/Version: $upgrade_version/" "$work/repack/DEBIAN/control"
dpkg-deb --root-owner-group -Znone --build "$work/repack" "$work/debs/$upgrade_deb" >/dev/null
rm -rf "$work/repack"
cp "$here/test-system/checks.py" "$work/debs/"

say "testing $deb (upgrade to $upgrade_version), at most $limit s; logs in $logdir"
start=$(date +%s)
# In the background, so that a signal to this script is handled at once: it
# is passed on, and container.sh powers the container off.
interrupted=
timeout --kill-after=30 "$limit" \
    unshare --mount --propagation private \
    "$here/test-system/container.sh" "$work" "$machine" "$logdir" "$deb" "$upgrade_deb" "$swift_root" &
runner=$!
trap 'interrupted=1; kill -TERM "$runner" 2>/dev/null' INT TERM
set +e
while :; do
    wait "$runner"
    rc=$?
    kill -0 "$runner" 2>/dev/null || break
done
set -e
elapsed=$(( $(date +%s) - start ))

if [ -n "$interrupted" ]; then
    say "FAIL: interrupted"
    exit 130
fi
case $rc in
    0) say "PASS: every check passed in ${elapsed} s" ;;
    124|137) say "FAIL: no result within $limit s (TEST_SYSTEM_TIMEOUT)"; rc=1 ;;
    *) say "FAIL: see the FAIL lines above and $logdir (${elapsed} s)"; rc=1 ;;
esac
exit "$rc"
