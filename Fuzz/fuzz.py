#!/usr/bin/env python3
"""Runs serverd's libFuzzer targets for a bounded time each and reports the figures.

    python3 Fuzz/fuzz.py --seconds 30                 # every fuzzer, 30 s each (make fuzz-smoke)
    python3 Fuzz/fuzz.py --seconds 600 fuzz-config    # one fuzzer, longer (make fuzz)

Each fuzzer starts from its seed corpus in Fuzz/Corpus/<name>/ (read only) and a working corpus
in <out>/corpus/<name>/ that grows from run to run (never the repository's). A crash input goes
to <out>/artifacts/<name>/. A crash whose report matches an entry of Fuzz/known-crashes.txt (a
bug that is reported and not yet fixed) is counted, and fuzzing goes on for the rest of the
time; any other crash, leak, timeout or out-of-memory fails that fuzzer. The last line is
"N passed, N failed"; the exit status is 1 if any failed.
"""
import argparse
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FUZZERS = ["fuzz-address", "fuzz-config", "fuzz-fdnames", "fuzz-linereader", "fuzz-datagram", "fuzz-options", "fuzz-toml"]
# Per-fuzzer libFuzzer options, each with its reason.
OPTIONS = {
    # Inputs span several 16 KiB receive chunks.
    "fuzz-linereader": ["-max_len=65536"],
}


def known_crashes():
    """(regex, reason) pairs from Fuzz/known-crashes.txt: `REGEX<TAB>REASON` lines, # comments."""
    entries = []
    path = os.path.join(HERE, "known-crashes.txt")
    if os.path.exists(path):
        for line in open(path, encoding="utf-8"):
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            pattern, _, reason = line.partition("\t")
            entries.append((re.compile(pattern), reason.strip()))
    return entries


def run_fuzzer(name, binary, seconds, out, extra):
    corpus = os.path.join(out, "corpus", name)
    artifacts = os.path.join(out, "artifacts", name) + "/"
    os.makedirs(corpus, exist_ok=True)
    os.makedirs(artifacts, exist_ok=True)
    seeds = os.path.join(HERE, "Corpus", name)
    env = dict(os.environ)
    # A Swift runtime failure must reach libFuzzer as the signal it is, not the Swift backtracer
    # (whose memory server trips AddressSanitizer).
    env["SWIFT_BACKTRACE"] = "enable=no"
    env["LSAN_OPTIONS"] = "suppressions=%s:print_suppressions=0" % os.path.join(HERE, "lsan.supp")
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    known = known_crashes()
    executions = 0
    known_hits = {}
    failure = None
    started = time.monotonic()
    round_number = 0
    while failure is None:
        left = seconds - (time.monotonic() - started)
        if left < 2:
            break
        round_number += 1
        log_path = os.path.join(out, "%s.%d.log" % (name, round_number))
        command = [binary, "-max_total_time=%d" % int(left), "-timeout=10", "-rss_limit_mb=2048",
                   "-print_final_stats=1", "-artifact_prefix=" + artifacts] + OPTIONS.get(name, []) + extra + [corpus, seeds]
        with open(log_path, "w") as log:
            status = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        text = open(log_path, encoding="utf-8", errors="replace").read()
        found = re.findall(r"stat::number_of_executed_units: (\d+)", text)
        if found:
            executions += int(found[-1])
        if status == 0:
            break
        artifact = re.findall(r"Test unit written to (\S+)", text)
        reason = None
        for pattern, why in known:
            if pattern.search(text):
                reason = why
                break
        if reason is None:
            headline = [line for line in text.splitlines()
                        if re.search(r"ERROR: |^%s: |Fatal error|Assertion" % name, line)][:3]
            failure = "exit %d, %s; input %s; log %s" % (
                status, " / ".join(headline) or "see log", artifact[-1] if artifact else "?", log_path)
        else:
            known_hits[reason] = known_hits.get(reason, 0) + 1
    elapsed = time.monotonic() - started
    corpus_size = len(os.listdir(corpus))
    return {"name": name, "executions": executions, "seconds": elapsed, "corpus": corpus_size,
            "known": known_hits, "failure": failure}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("fuzzers", nargs="*", default=FUZZERS)
    parser.add_argument("--seconds", type=int, default=30, help="fuzzing time per fuzzer")
    parser.add_argument("--build-dir", default=os.path.join(ROOT, ".build-fuzz", "release"))
    parser.add_argument("--out", default=os.path.join(ROOT, "fuzz-out"))
    parser.add_argument("--libfuzzer-arg", action="append", default=[], help="passed on to every fuzzer")
    args = parser.parse_args()
    results = []
    for name in args.fuzzers:
        binary = os.path.join(args.build_dir, name)
        if not os.access(binary, os.X_OK):
            print("%s: no binary at %s (build with make fuzz-build)" % (name, binary))
            results.append({"name": name, "failure": "missing binary", "executions": 0, "seconds": 0,
                            "corpus": 0, "known": {}})
            continue
        print("%s: fuzzing for %d s ..." % (name, args.seconds), flush=True)
        result = run_fuzzer(name, binary, args.seconds, os.path.abspath(args.out), args.libfuzzer_arg)
        results.append(result)
        known = sum(result["known"].values())
        print("%s: %s, %d executions in %.0f s (%.0f/s), corpus %d, known crashes %d%s" % (
            name, "FAIL" if result["failure"] else "ok", result["executions"], result["seconds"],
            result["executions"] / max(result["seconds"], 0.001), result["corpus"], known,
            (": " + result["failure"]) if result["failure"] else ""), flush=True)
        for reason, count in result["known"].items():
            print("    known x%d: %s" % (count, reason))
    total = sum(r["executions"] for r in results)
    failed = [r for r in results if r["failure"]]
    print("fuzz figures: %d executions over %d fuzzers, %d known-crash hits, %d new crashes" % (
        total, len(results), sum(sum(r["known"].values()) for r in results), len(failed)))
    print("%d passed, %d failed" % (len(results) - len(failed), len(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
