#!/usr/bin/env bash
# Runs the whole test suite under a sanitizer, in a scratch folder of its own:
#
#   Stress/sanitized-test.sh thread  [swift test args…]   # ThreadSanitizer,  .build-tsan
#   Stress/sanitized-test.sh address [swift test args…]   # AddressSanitizer, .build-asan (with LeakSanitizer)
#
# The integration tests start the serverd binary of the same build folder, so the daemon runs
# instrumented too. Every process writes its reports to one folder (log_path), and any report —
# from an XCTest process or from a serverd the tests started — fails the run, even when the test
# that provoked it passed. Suppressions are in Stress/tsan.supp and Stress/lsan.supp, each with its
# reason. The last line is "sanitizer <kind>: N reports, tests exit S".
set -uo pipefail
cd "$(dirname "$0")/.."
kind=${1:?usage: sanitized-test.sh thread|address [swift test args...]}
shift
SWIFT=${SWIFT:-swift}
case "$kind" in
    thread) scratch=.build-tsan ;;
    address) scratch=.build-asan ;;
    *) echo "unknown sanitizer '$kind' (thread or address)" >&2; exit 2 ;;
esac
reports="$PWD/$scratch/sanitizer-reports"
rm -rf "$reports"
mkdir -p "$reports"

# Swift's own crash backtracer would race the sanitizer's report; the sanitizer's is the one we want.
export SWIFT_BACKTRACE=enable=no
case "$kind" in
    thread)
        export TSAN_OPTIONS="log_path=$reports/tsan suppressions=$PWD/Stress/tsan.supp halt_on_error=0 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
        ;;
    address)
        export ASAN_OPTIONS="log_path=$reports/asan detect_leaks=1 detect_stack_use_after_return=0 ${ASAN_OPTIONS:-}"
        export LSAN_OPTIONS="suppressions=$PWD/Stress/lsan.supp print_suppressions=0 ${LSAN_OPTIONS:-}"
        ;;
esac

started=$(date +%s)
"$SWIFT" build --scratch-path "$scratch" --sanitize="$kind" --build-tests || exit $?
built=$(date +%s)
"$SWIFT" test --scratch-path "$scratch" --sanitize="$kind" --skip-build --parallel "$@"
status=$?
finished=$(date +%s)

count=0
for report in "$reports"/*; do
    [ -e "$report" ] || continue
    count=$((count + 1))
    echo "=== sanitizer report $report"
    cat "$report"
done
echo "sanitizer $kind: build $((built - started)) s, tests $((finished - built)) s"
echo "sanitizer $kind: $count reports, tests exit $status"
if [ "$count" -ne 0 ] || [ "$status" -ne 0 ]; then
    exit 1
fi
