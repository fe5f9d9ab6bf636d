# serverd — build, run and test on Debian 12 with the Swift toolchain on PATH.
#
#   make run    install what is missing, build, start serverd on its embedded default set
#   make test   install what is missing, build, run every test
#   make docs   the DocC documentation of the libraries (mk/docs.mk)

SWIFT      ?= swift
APT_PACKAGES = libsystemd-dev pkgconf systemd python3
# Programs the wait-mode tests run behind serverd.
TEST_APT_PACKAGES = tftpd-hpa tftp-hpa
# One build folder for everything the tests and `make run` use; a plain `swift build`, the
# configuration parser being fit for any build configuration.
BUILD_FLAGS ?=

.PHONY: all deps test-deps build release run test clean

all: build

# Installs the Debian packages $(1) that are missing (apt-get update first), never starting a
# service of theirs: a policy-rc.d that refuses every start is put in place for the install when
# there is none (installing tftpd-hpa or xinetd would start a system server).
define apt_install
	@missing=""; for p in $(1); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    guard=""; if [ ! -e /usr/sbin/policy-rc.d ]; then \
	        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && guard=1; \
	    fi; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	    status=$$?; [ -z "$$guard" ] || rm -f /usr/sbin/policy-rc.d; exit $$status; \
	fi
endef

## Debian packages the build and the tests need.
deps:
	$(call apt_install,$(APT_PACKAGES))

## The programs the tests run behind serverd.
test-deps:
	$(call apt_install,$(TEST_APT_PACKAGES))

build: deps
	$(SWIFT) build $(BUILD_FLAGS)

# The Swift runtime linked statically, as the Debian package and `make bench` build serverd: linked
# dynamically, every start loads and relocates libswiftCore.so and its companions (Benchmarks
# workload g, both builds side by side in one run: first reply 1.16x later under threading, 1.31x
# under event).
release: deps
	$(SWIFT) build -c release --static-swift-stdlib $(BUILD_FLAGS)

run: build
	$$($(SWIFT) build $(BUILD_FLAGS) --show-bin-path)/serverd

test: build test-deps
	$(SWIFT) build $(BUILD_FLAGS) --build-tests
	@rm -f .build/test-results.xml
	$(SWIFT) test $(BUILD_FLAGS) --skip-build --parallel --xunit-output .build/test-results.xml; \
	    status=$$?; python3 scripts/test-summary.py .build/test-results.xml && exit $$status

clean:
	rm -rf .build

# Further targets (deb, bench, stress, fuzz, docs) live in mk/*.mk.
-include mk/*.mk
