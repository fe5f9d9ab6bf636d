# Reliability and security (issue 7): the fault suite, the fuzzers and the sanitizer runs.
#
#   make test-stress   build serverd (debug), run Stress/stress/ against it: every fault in every
#                      processing model where it applies (about 2.5 minutes on 2 cores).
#                      STRESS_ARGS="--only churn --models forking" picks faults and models.
#   make fuzz-smoke    build the libFuzzer targets in Fuzz/ (own package, scratch .build-fuzz) and run
#                      each for FUZZ_SECONDS (30); a crash that is not a known, reported bug fails.
#   make fuzz          the same for FUZZ_LONG_SECONDS (600) each; the corpora grow in fuzz-out/.
#   make test-tsan     the whole test suite under ThreadSanitizer (scratch .build-tsan), serverd
#   make test-asan     under AddressSanitizer + LeakSanitizer (.build-asan): any report from the test
#                      processes or from the serverd processes they start fails the run
#                      (Stress/sanitized-test.sh; suppressions, each with its reason, in Stress/*.supp).

STRESS_ARGS       ?=
FUZZ_SCRATCH      ?= .build-fuzz
FUZZ_SECONDS      ?= 30
FUZZ_LONG_SECONDS ?= 600
FUZZ_ARGS         ?=
# Linked with the toolchain's lld: gold (2.40) stops with an internal error in
# format_file_lineno on the fuzz-datagram target.
# Swift and C/C++ instrumented for libFuzzer and AddressSanitizer; -enable-testing so that a fuzzer
# can reach an internal parser with @testable import.
FUZZ_BUILD_FLAGS   = -c release --package-path Fuzz --scratch-path $(FUZZ_SCRATCH) \
                     -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing \
                     -Xcc -fsanitize=fuzzer-no-link,address -Xcxx -fsanitize=fuzzer-no-link,address \
                     -Xswiftc -use-ld=lld
SANITIZER_TEST_ARGS ?=

.PHONY: test-stress fuzz-build fuzz-smoke fuzz test-tsan test-asan

test-stress: build
	PYTHONPATH=Stress python3 -m stress --serverd "$$($(SWIFT) build $(BUILD_FLAGS) --show-bin-path)/serverd" $(STRESS_ARGS)

fuzz-build: deps
	$(SWIFT) build $(FUZZ_BUILD_FLAGS)

fuzz-smoke: fuzz-build
	python3 Fuzz/fuzz.py --seconds $(FUZZ_SECONDS) --build-dir $(FUZZ_SCRATCH)/release $(FUZZ_ARGS)

fuzz: fuzz-build
	python3 Fuzz/fuzz.py --seconds $(FUZZ_LONG_SECONDS) --build-dir $(FUZZ_SCRATCH)/release $(FUZZ_ARGS)

test-tsan: deps test-deps
	SWIFT="$(SWIFT)" Stress/sanitized-test.sh thread $(SANITIZER_TEST_ARGS)

test-asan: deps test-deps
	SWIFT="$(SWIFT)" Stress/sanitized-test.sh address $(SANITIZER_TEST_ARGS)
