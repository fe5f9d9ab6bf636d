# Debian package: `make deb` builds .build/deb/serverd_VERSION_ARCH.deb and checks it
# with lintian; `make test-system` installs it in a throw-away systemd-nspawn container
# (systemd as PID 1) and checks socket activation, exec, reload, watchdog, stop, upgrade
# and removal. Both run as root on Debian 12; see packaging/debian/README.Debian.

DEB_OUT ?= .build/deb
DEB_APT_PACKAGES = debhelper dpkg-dev lintian pkgconf libsystemd-dev man-db
TEST_SYSTEM_APT_PACKAGES = systemd systemd-container python3 iproute2 procps util-linux
# Upper bound for the whole container test, in seconds.
TEST_SYSTEM_TIMEOUT ?= 600

.PHONY: deb deb-deps test-system test-system-deps

deb-deps:
	$(call apt_install,$(DEB_APT_PACKAGES))

test-system-deps:
	$(call apt_install,$(TEST_SYSTEM_APT_PACKAGES))

deb: deb-deps
	SWIFT=$(SWIFT) packaging/build-deb.sh $(DEB_OUT)

test-system: deb test-system-deps
	TEST_SYSTEM_TIMEOUT=$(TEST_SYSTEM_TIMEOUT) packaging/test-system.sh $(DEB_OUT)
