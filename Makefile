# untild — plain Makefile with pkg-config.
# make            build build/untild and build/untilctl
# make check      build and run every test (unit, structure, end to end)
# make asan-check the same under AddressSanitizer + UBSan
# make bench      benchmarks
# make model-check EXAMPLES=N [STEPS=M]  long run of the model-based lifecycle test
# make deps       install build and test dependencies (Debian, as root)

PREFIX   ?= /usr/local
DESTDIR  ?=
BUILD    ?= build
CC       ?= gcc
# The one version number: untild --version, untilctl --version and the
# Debian package (debian/changelog must carry the same; debian/rules and
# tests/e2e/test_package.py check it).
VERSION  := $(shell cat VERSION)
PKGS     := libcurl libical libetpan gnutls sqlite3 libidn2 libsystemd libcrypt libmicrohttpd libpq libxml-2.0 json-c gmime-3.0
CHECKPKG := check

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# libetpan's flags carry Debian's no-pie specs: filter them out
# (docs/HACKING.md "Library pitfalls").
PKG_LIBS   := $(filter-out -specs=%,$(shell pkg-config --libs $(PKGS) 2>/dev/null))
CHECK_CFLAGS := $(shell pkg-config --cflags $(CHECKPKG) 2>/dev/null)
CHECK_LIBS   := $(shell pkg-config --libs $(CHECKPKG) 2>/dev/null)

WARN     := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral
# Quiet build lines; make V=1 shows the commands.
Q := $(if $(V),,@)
# CPPFLAGS / CFLAGS / LDFLAGS are the user's (optimisation, sanitizers,
# dpkg-buildflags' hardening in the Debian build); the project's
# own flags are always added on top.
CFLAGS   ?= -O2 -g
ALL_CFLAGS  = $(CPPFLAGS) $(CFLAGS) -std=gnu17 $(WARN) -D_GNU_SOURCE -Iinclude $(PKG_CFLAGS) -pthread -fPIE
ALL_LDFLAGS = $(LDFLAGS) -pie -pthread
LDLIBS   += $(PKG_LIBS) -lm

CORE_SRC := $(filter-out daemon/main.c daemon/untilctl.c,$(wildcard daemon/*.c))
CORE_OBJ := $(CORE_SRC:daemon/%.c=$(BUILD)/obj/%.o)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
BENCH_SRC := $(wildcard tests/bench/*.c)
BENCH_BIN := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)

.PHONY: all run check unit e2e model-check asan-check valgrind-check bench torture install clean deps structure

all: $(BUILD)/untild $(BUILD)/untilctl

$(BUILD)/obj/%.o: daemon/%.c $(wildcard include/untild/*.h) | $(BUILD)/obj
	@$(if $(Q),echo '  CC      $<')
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

# The web console's files (daemon/console) are installed here; the daemon
# serves them from there unless [http] console_dir says otherwise.
CONSOLEDIR ?= $(PREFIX)/share/untild/console
$(BUILD)/obj/http_console.o: ALL_CFLAGS += -DUNTILD_CONSOLE_DIR='"$(CONSOLEDIR)"'

# Only the two programs print the version: only they rebuild when it changes.
$(BUILD)/obj/main.o $(BUILD)/obj/untilctl.o: VERSION
$(BUILD)/obj/main.o $(BUILD)/obj/untilctl.o: ALL_CFLAGS += -DUNTILD_VERSION='"$(VERSION)"'

$(BUILD)/obj $(BUILD)/tests $(BUILD)/bench:
	mkdir -p $@

$(BUILD)/libuntild.a: $(CORE_OBJ)
	$(Q)rm -f $@; ar rcs $@ $^

$(BUILD)/untild: $(BUILD)/obj/main.o $(BUILD)/libuntild.a
	@$(if $(Q),echo '  LD      $@')
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/untilctl: $(BUILD)/obj/untilctl.o $(BUILD)/libuntild.a
	@$(if $(Q),echo '  LD      $@')
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libuntild.a | $(BUILD)/tests
	@$(if $(Q),echo '  CCLD    $@')
	$(Q)$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(BUILD)/libuntild.a $(LDLIBS) $(CHECK_LIBS)

$(BUILD)/bench/%: tests/bench/%.c $(BUILD)/libuntild.a | $(BUILD)/bench
	@$(if $(Q),echo '  CCLD    $@')
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(BUILD)/libuntild.a $(LDLIBS)

# Quick start: untild in the foreground on the embedded default config
# (loopback only, state and outbox under ./var/).
run: deps
	@$(MAKE) --no-print-directory all
	./$(BUILD)/untild -c etc/untild.conf

deps:
	@if pkg-config --exists $(PKGS) $(CHECKPKG) && command -v swaks >/dev/null && command -v smtp-sink >/dev/null \
	   && [ -x /usr/sbin/dovecot ] && command -v chromedriver >/dev/null \
	   && /usr/bin/python3 -c 'import aiosmtpd, radicale, hypothesis, selenium' 2>/dev/null; then :; \
	 else sh tests/install-deps.sh; fi

unit: all $(UNIT_BIN)
	@E2E=no sh tests/run-all.sh $(BUILD) $(UNIT_BIN)

# The structure rules alone (also part of check and unit, via run-all.sh):
# no include cycle, no function over 120 lines, no file over 1,500 lines.
structure:
	@/usr/bin/python3 tests/check-structure.py

e2e: all
	@/usr/bin/python3 tests/e2e/run.py --build $(BUILD) $(E2E_ARGS)

# The model-based test of the held-message lifecycle (tests/e2e/test_model.py)
# runs a few examples in `make check`; this runs it long. It prints the
# falsifying sequence of steps if it finds one.
EXAMPLES ?= 100
STEPS ?= 30
model-check: deps
	@$(MAKE) --no-print-directory all
	@UNTILD_MODEL_EXAMPLES=$(EXAMPLES) UNTILD_MODEL_STEPS=$(STEPS) UNTILD_MODEL_SHRINK=1 \
	  /usr/bin/python3 tests/e2e/run.py --build $(BUILD) test_model

check: deps
	@$(MAKE) --no-print-directory all $(UNIT_BIN)
	@sh tests/run-all.sh $(BUILD) $(UNIT_BIN)

asan-check: deps
	@$(MAKE) --no-print-directory BUILD=build-asan \
	  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  LDFLAGS="-fsanitize=address,undefined" check

# Valgrind memcheck: every unit binary (CK_FORK=no so the tests run inside
# the checked process), then the daemon of the e2e suites in VG_E2E under
# valgrind (tests/e2e/harness.py: UNTILD_WRAPPER; each test fails if its
# daemon's valgrind log reports an error or a definite leak). Reports every
# failure by name, goes on to the end, then fails.
VALGRIND ?= valgrind
VG_FLAGS := --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
            --track-origins=yes --suppressions=$(CURDIR)/tests/valgrind.supp
VG_E2E   ?= test_smoke test_core test_gate test_imip test_auth test_faults test_open_relay test_postfix_policy
valgrind-check: deps
	@command -v $(VALGRIND) >/dev/null || { echo "valgrind-check: $(VALGRIND) not found (apt-get install valgrind)"; exit 1; }
	@$(MAKE) --no-print-directory all $(UNIT_BIN)
	@mkdir -p $(BUILD)/valgrind; bad=""; \
	for t in $(UNIT_BIN); do \
	  n=$$(basename $$t); log=$(BUILD)/valgrind/$$n.log; \
	  if CK_FORK=no $(VALGRIND) -q $(VG_FLAGS) $$t >$$log 2>&1; then \
	    echo "PASS $$n: $$(grep -E '^[0-9]+%: Checks:' $$log | tail -1)"; \
	  else \
	    echo "FAIL $$n (exit $$?; $$log):"; grep -vE '^(Running suite|[0-9]+%: Checks)' $$log | head -60; \
	    bad="$$bad $$n"; \
	  fi; \
	done; \
	UNTILD_WRAPPER="$(VALGRIND) $(VG_FLAGS)" /usr/bin/python3 tests/e2e/run.py --build $(BUILD) $(VG_E2E) \
	  || bad="$$bad e2e"; \
	if [ -n "$$bad" ]; then echo "valgrind-check: failing:$$bad"; exit 1; fi; \
	echo "valgrind-check: no errors, no definite leaks"

bench: all $(BENCH_BIN)
	@sh tests/bench/run.sh $(BUILD)

SYSCONFDIR ?= /etc
UNITDIR    ?= $(PREFIX)/lib/systemd/system
USERUNITDIR ?= $(PREFIX)/lib/systemd/user
MANDIR     ?= $(PREFIX)/share/man

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(SYSCONFDIR)/untild/windows.d \
	  $(DESTDIR)$(UNITDIR) $(DESTDIR)$(USERUNITDIR) $(DESTDIR)$(PREFIX)/lib/sysusers.d \
	  $(DESTDIR)$(PREFIX)/lib/tmpfiles.d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
	  $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(PREFIX)/share/doc/untild $(DESTDIR)$(CONSOLEDIR)
	install -m 0755 $(BUILD)/untild $(DESTDIR)$(PREFIX)/sbin/untild
	install -m 0755 $(BUILD)/untilctl $(DESTDIR)$(PREFIX)/bin/untilctl
	install -m 0644 etc/untild.conf.sample $(DESTDIR)$(PREFIX)/share/doc/untild/untild.conf.sample
	install -m 0644 etc/windows.d/example.windows $(DESTDIR)$(PREFIX)/share/doc/untild/example.windows
	[ -e $(DESTDIR)$(SYSCONFDIR)/untild/untild.conf ] || \
	  install -m 0640 etc/untild.conf.sample $(DESTDIR)$(SYSCONFDIR)/untild/untild.conf
	sed 's|/usr/sbin/untild|$(PREFIX)/sbin/untild|' systemd/untild.service > $(DESTDIR)$(UNITDIR)/untild.service
	sed 's|/usr/sbin/untild|$(PREFIX)/sbin/untild|' systemd/untild-user.service > $(DESTDIR)$(USERUNITDIR)/untild.service
	install -m 0644 systemd/untild.sysusers $(DESTDIR)$(PREFIX)/lib/sysusers.d/untild.conf
	install -m 0644 systemd/untild.tmpfiles $(DESTDIR)$(PREFIX)/lib/tmpfiles.d/untild.conf
	install -m 0644 man/untilctl.1 $(DESTDIR)$(MANDIR)/man1/untilctl.1
	install -m 0644 man/untild.conf.5 man/untild.windows.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 man/untild.8 $(DESTDIR)$(MANDIR)/man8/untild.8
	install -m 0644 daemon/console/*.html daemon/console/*.css daemon/console/*.js $(DESTDIR)$(CONSOLEDIR)/

clean:
	rm -rf build build-asan

# Crash torture: kill -9 the daemon at random moments (TRIALS=N, default 200).
TRIALS ?= 200
torture: all
	/usr/bin/python3 tests/torture.py --build $(BUILD) --trials $(TRIALS)

# libFuzzer targets (clang): build/fuzz/fuzz_<name>, each run FUZZ_SECONDS.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_NAMES   := address windowline config message smtp control dav_xml json httpapi csv
FUZZ_BIN     := $(FUZZ_NAMES:%=$(BUILD)/fuzz/fuzz_%)
FUZZ_CFLAGS  := -g -O1 -fno-omit-frame-pointer -std=gnu17 -Wall -Wextra -D_GNU_SOURCE -Iinclude \
                $(PKG_CFLAGS) -pthread -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_OBJ     := $(CORE_SRC:daemon/%.c=$(BUILD)/fuzz/obj/%.o)

$(BUILD)/fuzz/obj:
	mkdir -p $@

$(BUILD)/fuzz/obj/%.o: daemon/%.c $(wildcard include/untild/*.h) | $(BUILD)/fuzz/obj
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(BUILD)/fuzz/libuntild.a: $(FUZZ_OBJ)
	$(Q)rm -f $@; ar rcs $@ $^

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(BUILD)/fuzz/libuntild.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(BUILD)/fuzz/libuntild.a $(LDLIBS)

.PHONY: fuzz fuzz-build
fuzz-build: $(FUZZ_BIN)

fuzz: $(FUZZ_BIN)
	@sh tests/fuzz/run.sh $(BUILD) $(FUZZ_SECONDS) $(FUZZ_NAMES)
