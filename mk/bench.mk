# Benchmarks (issue 6); everything lives in Benchmarks/.
#
#   make bench         build serverd (release), the SwiftNIO peer (its own package and scratch
#                      folder) and the C programs, run every server and workload three times, print
#                      the table and rewrite Benchmarks/RESULTS.md.  About 6-8 minutes on 2 cores.
#   make bench-smoke   half a second per workload against the debug serverd, the C epoll server and
#                      the Python peers (no SwiftNIO build); fails if a workload fails, never on timing.
#
# BENCH_ARGS / BENCH_SMOKE_ARGS pass options to Benchmarks/run.py (see its --help), e.g.
# `make bench BENCH_ARGS="--only serverd-threading,epoll-c --reps 1"`.

BENCH_SCRATCH    ?= Benchmarks/.build-bench
BENCH_ARGS       ?=
BENCH_SMOKE_ARGS ?=
BENCH_JOBS       ?= 2

.PHONY: bench bench-build bench-c bench-smoke

$(BENCH_SCRATCH)/bin/loadgen: Benchmarks/loadgen/loadgen.c
	@mkdir -p $(@D)
	$(CC) -O2 -Wall -o $@ $<

$(BENCH_SCRATCH)/bin/epoll_echo: Benchmarks/peers/epoll_echo.c
	@mkdir -p $(@D)
	$(CC) -O2 -Wall -o $@ $<

bench-c: $(BENCH_SCRATCH)/bin/loadgen $(BENCH_SCRATCH)/bin/epoll_echo

# Both Swift servers link the Swift runtime statically, as the Debian package ships serverd.
bench-build: deps bench-c
	$(SWIFT) build -c release --static-swift-stdlib -j $(BENCH_JOBS) --product serverd $(BUILD_FLAGS)
	$(SWIFT) build -c release --static-swift-stdlib -j $(BENCH_JOBS) --package-path Benchmarks \
	    --scratch-path $(BENCH_SCRATCH)/swift --product nio-echo

bench: bench-build
	python3 Benchmarks/run.py --build-dir $(BENCH_SCRATCH) \
	    --serverd "$$($(SWIFT) build -c release $(BUILD_FLAGS) --show-bin-path)/serverd" \
	    --nio $(BENCH_SCRATCH)/swift/release/nio-echo $(BENCH_ARGS)

bench-smoke: build bench-c
	python3 Benchmarks/run.py --smoke --build-dir $(BENCH_SCRATCH) \
	    --serverd "$$($(SWIFT) build $(BUILD_FLAGS) --show-bin-path)/serverd" \
	    --skip swift-nio $(BENCH_SMOKE_ARGS)
