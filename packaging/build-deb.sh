#!/bin/sh
# Builds serverd_VERSION_ARCH.deb from a staging copy of the work tree and
# checks it with lintian.
#
#   packaging/build-deb.sh [OUTDIR]        (default OUTDIR: .build/deb)
#
# The staging copy holds the tracked and unignored files of the work tree,
# packaging/debian as debian/, and the Swift package dependencies resolved
# into .build/ (from the local mirror that git's configuration points to):
# dpkg-buildpackage then builds without fetching anything. The work tree is
# left as it was; the artifacts land in OUTDIR.
#
# Environment: SWIFT (default: swift on PATH), DEB_BUILD_OPTIONS (default:
# parallel=<number of CPUs>), LINTIAN=no to skip lintian.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
SWIFT=${SWIFT:-swift}
export SWIFT

command -v "$SWIFT" >/dev/null 2>&1 || {
    echo "build-deb: Swift toolchain not found; set SWIFT=/path/to/swift or put it on PATH" >&2
    exit 1
}

version=$(dpkg-parsechangelog -l "$repo/packaging/debian/changelog" -S Version)
upstream=${version%-*}
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
out=$(realpath -m "${1:-$repo/.build/deb}")
stage="$out/serverd-$upstream"

echo "build-deb: staging $repo into $stage"
rm -rf "$stage"
mkdir -p "$stage"
rm -f "$out"/serverd_"$version"_* "$out"/serverd-dbgsym_"$version"_*
if git -C "$repo" rev-parse --git-dir >/dev/null 2>&1; then
    (cd "$repo" && git ls-files -z --cached --others --exclude-standard |
        tar --null --no-recursion --ignore-failed-read -T - -cf -) | tar -xf - -C "$stage"
else
    (cd "$repo" && tar --exclude=./.build --exclude=./.git -cf - .) | tar -xf - -C "$stage"
fi
rm -rf "$stage/debian"
cp -a "$repo/packaging/debian" "$stage/debian"

# Pin the versions the developer built with, then resolve into the stage.
if [ -f "$repo/Package.resolved" ]; then
    cp "$repo/Package.resolved" "$stage/Package.resolved"
fi
echo "build-deb: resolving Swift package dependencies"
(cd "$stage" && "$SWIFT" package resolve)

if [ -z "${DEB_BUILD_OPTIONS:-}" ]; then
    DEB_BUILD_OPTIONS="parallel=$(nproc)"
    export DEB_BUILD_OPTIONS
fi

echo "build-deb: dpkg-buildpackage (DEB_BUILD_OPTIONS=$DEB_BUILD_OPTIONS)"
# No git URL rewriting from here on: should SwiftPM try to fetch, the build
# fails instead of quietly using the network or the mirror.
(cd "$stage" && GIT_CONFIG_NOSYSTEM=1 GIT_ALLOW_PROTOCOL=none dpkg-buildpackage -us -uc -b)

deb="$out/serverd_${version}_${arch}.deb"
changes="$out/serverd_${version}_${arch}.changes"
test -f "$deb" && test -f "$changes"

# The unit must stay within the exposure the issue allows (1.5 of 10;
# --threshold counts in tenths).
unitdir="$stage/debian/serverd/lib/systemd/system"
systemd-analyze security --offline=yes --threshold=15 "$unitdir/serverd.service" |
    tail -n 1

if [ "${LINTIAN:-yes}" != no ]; then
    echo "build-deb: lintian"
    # lintian 2.116 leaves mldbm-* files in TMPDIR: give it one of its own.
    lintian_tmp=$(mktemp -d "$out/lintian-tmp.XXXXXX")
    rc=0
    TMPDIR=$lintian_tmp lintian --fail-on error,warning -I -E --pedantic "$changes" || rc=$?
    TMPDIR=$lintian_tmp lintian --fail-on error,warning -I -E --pedantic "$deb" || rc=$?
    rm -rf "$lintian_tmp"
    [ "$rc" = 0 ] || { echo "build-deb: lintian failed" >&2; exit "$rc"; }
fi

echo "build-deb: built $deb"
