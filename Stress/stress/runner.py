"""The command line: runs the registered faults in each wanted model, prints one line per fault
and model, the figures and "N passed, N failed"; exits 1 if any failed, 2 without a binary."""
import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import traceback

from . import __doc__ as SUITE_DOC
from .harness import ALL_MODELS, FAULTS, FIGURES, Context, Failure, Skip

# The scenario modules register their faults when imported: the import order is the run order.
from . import floods, slow_clients, hostile_input, handlers, signals, security

SCENARIOS = (floods, slow_clients, hostile_input, handlers, signals, security)

# Faults that fail through a bug that is reported and not fixed yet: name -> reason. They show as
# XFAIL (and fail the run as XPASS once they pass, so that the entry gets removed). None now.
KNOWN_BUGS = {}


def main():
    parser = argparse.ArgumentParser(prog="python3 -m stress", description=SUITE_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serverd", required=True, help="the serverd binary to test")
    parser.add_argument("--only", help="run only faults whose name matches this regex")
    parser.add_argument("--models", default=",".join(ALL_MODELS), help="comma-separated processing models")
    parser.add_argument("--churn", type=int, default=10000, help="connections per churn (default 10,000)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories (logs)")
    parser.add_argument("--list", action="store_true", help="list the faults and exit")
    args = parser.parse_args()
    if args.list:
        for name, models, description, _ in FAULTS:
            print("%-24s %-28s %s" % (name, ",".join(models), description))
        return 0
    binary = os.path.abspath(args.serverd)
    if not os.access(binary, os.X_OK):
        print("no serverd binary at %s" % binary)
        return 2
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    wanted_models = args.models.split(",")
    passed = failed = skipped = 0
    suite_started = time.monotonic()
    root = tempfile.mkdtemp(prefix="serverd-stress.")
    os.chmod(root, 0o755)
    for name, models, description, function in FAULTS:
        if args.only and not re.search(args.only, name):
            continue
        for model in models:
            if model not in wanted_models:
                continue
            directory = tempfile.mkdtemp(prefix="%s-%s." % (name, model), dir=root)
            ctx = Context(binary, directory, model, args.churn)
            started = time.monotonic()
            label = "%s [%s]" % (name, model)
            known = KNOWN_BUGS.get(name)
            try:
                figures = function(ctx)
                elapsed = time.monotonic() - started
                if known:
                    failed += 1
                    print("XPASS %-34s %5.1fs  known bug now passes: remove it from KNOWN_BUGS (%s)" % (label, elapsed, known))
                else:
                    passed += 1
                    print("PASS  %-34s %5.1fs  %s" % (label, elapsed, format_figures(figures)))
            except Skip as reason:
                skipped += 1
                print("SKIP  %-34s        %s" % (label, reason))
            except Exception as error:  # noqa: BLE001
                elapsed = time.monotonic() - started
                if known:
                    passed += 1
                    print("XFAIL %-34s %5.1fs  known bug: %s (%s)" % (label, elapsed, known, str(error).splitlines()[0][:200]))
                else:
                    failed += 1
                    print("FAIL  %-34s %5.1fs  %s" % (label, elapsed, error))
                    if not isinstance(error, Failure):
                        traceback.print_exc()
                    print("      logs: %s" % directory)
                    args.keep = True
            finally:
                ctx.cleanup()
            sys.stdout.flush()
    total = time.monotonic() - suite_started
    print()
    print("figures:")
    for key in sorted(FIGURES.values):
        print("  %-48s %s" % (key, FIGURES.values[key]))
    print("  %-48s %.0f" % ("suite seconds", total))
    if not args.keep:
        subprocess.call(["rm", "-rf", root])
    else:
        print("logs kept in %s" % root)
    print("%d passed, %d failed%s" % (passed, failed, (", %d skipped" % skipped) if skipped else ""))
    return 1 if failed else 0


def format_figures(figures):
    return ", ".join("%s %s" % (k, v) for k, v in (figures or {}).items())
