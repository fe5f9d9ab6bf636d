# Benchmarks (issue 6); everything lives in Benchmarks/.
#
#   make bench         build serverd (release), the SwiftNIO peer (its own package and scratch
#                      folder) and the C programs, run every server and workload three times, print
#                      the table and rewrite Benchmarks/RESULTS.md and its chart Benchmarks/RESULTS.svg; 3 s
#                      windows, about 15-20 minutes on 2 cores.
#   make bench-smoke   half a second per workload against the debug serverd, the C epoll server and
#                      the Python peers (no SwiftNIO build); fails if a workload fails, never on timing.
#   make bench-compare BENCH_BASELINE=/path/to/old/serverd
#                      the release serverd of this tree against another serverd binary (say the
#                      previous main's), with the C epoll server as the limit: the datagram workloads
#                      e (UDP) and h (Unix datagrams), three interleaved rounds, about 1 minute.  The
#                      table goes to stdout and to $(BENCH_COMPARE_RESULTS); RESULTS.md is left alone.
#   make bench-exec    the superserver benchmark (issue 17): the release serverd's exec service, each
#                      model, against tcpserver, unixserver, s6-ipcserver, xinetd,
#                      systemd-socket-activate and a C floor (Benchmarks/peers/spawn_floor.c), all
#                      running /usr/bin/head -n1 per connection over TCP and Unix sockets; three
#                      interleaved repetitions of 3 s windows, about 4 minutes.  Installs the Debian
#                      packages of the peers when missing; rewrites only the "Superservers" section
#                      of Benchmarks/RESULTS.md (`make bench` rewrites the whole file: run this after).
#   make bench-exec-smoke  the same, one 0.5 s window each, against the debug serverd; fails on a
#                      connection error or a wrong reply, never on timing; writes no results.
#
# BENCH_EXEC_ARGS / BENCH_EXEC_SMOKE_ARGS pass options to Benchmarks/superservers.py (see its --help),
# e.g. `make bench-exec BENCH_EXEC_ARGS="--servers serverd-threading,tcpserver,spawn-floor --families tcp"`.
# BENCH_ARGS / BENCH_SMOKE_ARGS pass options to Benchmarks/run.py (see its --help), e.g.
# `make bench BENCH_ARGS="--only serverd-threading,epoll-c --reps 1"`.  BENCH_BASELINE=PATH adds
# the rows serverd-baseline-<model> to bench and bench-smoke too; per-binary serverd options go in
# BENCH_ARGS as --serverd-new-args "..." and --serverd-baseline-args "..." (--serverd-args: both).

BENCH_SCRATCH    ?= Benchmarks/.build-bench
BENCH_ARGS       ?=
BENCH_SMOKE_ARGS ?=
BENCH_JOBS       ?= 2
BENCH_BASELINE   ?=
BENCH_COMPARE_ARGS    ?= --only serverd-threading,serverd-baseline-threading,epoll-c --workloads e,h --reps 3
BENCH_COMPARE_RESULTS ?= $(BENCH_SCRATCH)/compare.md
BENCH_EXEC_ARGS       ?=
BENCH_EXEC_SMOKE_ARGS ?=
# The Debian packages of bench-exec's peers (systemd brings systemd-socket-activate).
BENCH_EXEC_PACKAGES   = ucspi-tcp ucspi-unix s6 xinetd systemd

bench_baseline = $(if $(BENCH_BASELINE),--serverd-baseline "$(BENCH_BASELINE)")

.PHONY: bench bench-build bench-build-serverd bench-c bench-smoke bench-compare bench-need-baseline \
        bench-exec bench-exec-smoke bench-exec-deps

$(BENCH_SCRATCH)/bin/loadgen: Benchmarks/loadgen/loadgen.c
	@mkdir -p $(@D)
	$(CC) -O2 -Wall -o $@ $<

$(BENCH_SCRATCH)/bin/epoll_echo: Benchmarks/peers/epoll_echo.c
	@mkdir -p $(@D)
	$(CC) -O2 -Wall -o $@ $<

$(BENCH_SCRATCH)/bin/spawn_floor: Benchmarks/peers/spawn_floor.c
	@mkdir -p $(@D)
	$(CC) -O2 -Wall -o $@ $<

bench-c: $(BENCH_SCRATCH)/bin/loadgen $(BENCH_SCRATCH)/bin/epoll_echo $(BENCH_SCRATCH)/bin/spawn_floor

# Both Swift servers link the Swift runtime statically, as the Debian package ships serverd (build
# a baseline binary the same way: swift build -c release --static-swift-stdlib).
bench-build-serverd: deps
	$(SWIFT) build -c release --static-swift-stdlib -j $(BENCH_JOBS) --product serverd $(BUILD_FLAGS)

bench-build: bench-build-serverd bench-c
	$(SWIFT) build -c release --static-swift-stdlib -j $(BENCH_JOBS) --package-path Benchmarks \
	    --scratch-path $(BENCH_SCRATCH)/swift --product nio-echo

bench: bench-build
	python3 Benchmarks/run.py --build-dir $(BENCH_SCRATCH) \
	    --serverd "$$($(SWIFT) build -c release $(BUILD_FLAGS) --show-bin-path)/serverd" \
	    --nio $(BENCH_SCRATCH)/swift/release/nio-echo $(bench_baseline) $(BENCH_ARGS)

bench-smoke: build bench-c
	python3 Benchmarks/run.py --smoke --build-dir $(BENCH_SCRATCH) \
	    --serverd "$$($(SWIFT) build $(BUILD_FLAGS) --show-bin-path)/serverd" \
	    --skip swift-nio $(bench_baseline) $(BENCH_SMOKE_ARGS)

# Before anything is built: a comparison needs the other binary.
bench-need-baseline:
	@test -n "$(BENCH_BASELINE)" || { echo "bench-compare: set BENCH_BASELINE=/path/to/the/other/serverd" >&2; exit 2; }
	@test -x "$(BENCH_BASELINE)" || { echo "bench-compare: $(BENCH_BASELINE) is not an executable" >&2; exit 2; }

bench-compare: bench-need-baseline bench-build-serverd bench-c
	python3 Benchmarks/run.py --build-dir $(BENCH_SCRATCH) \
	    --serverd "$$($(SWIFT) build -c release $(BUILD_FLAGS) --show-bin-path)/serverd" \
	    $(bench_baseline) --results $(BENCH_COMPARE_RESULTS) $(BENCH_COMPARE_ARGS) $(BENCH_ARGS)

# The peers of bench-exec, installed like the build's packages (`apt_install` in the Makefile).
bench-exec-deps:
	$(call apt_install,$(BENCH_EXEC_PACKAGES))

bench-exec: bench-exec-deps bench-build-serverd bench-c
	python3 Benchmarks/superservers.py --build-dir $(BENCH_SCRATCH) \
	    --serverd "$$($(SWIFT) build -c release $(BUILD_FLAGS) --show-bin-path)/serverd" \
	    $(bench_baseline) $(BENCH_EXEC_ARGS)

bench-exec-smoke: bench-exec-deps build bench-c
	python3 Benchmarks/superservers.py --smoke --build-dir $(BENCH_SCRATCH) \
	    --serverd "$$($(SWIFT) build $(BUILD_FLAGS) --show-bin-path)/serverd" \
	    $(bench_baseline) $(BENCH_EXEC_SMOKE_ARGS)
