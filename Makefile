# Defenra edge suite: one entry point.
#
#   make            build the library and every daemon into $(O)/bin (and bin/ for the default build)
#   make deps       install the Debian packages the build and the tests need
#   make test       deps + build + every test (unit, fuzz corpus replay, integration)
#   make test SANITIZE=1   the same with AddressSanitizer + UndefinedBehaviorSanitizer
#   make fuzz       build the libFuzzer targets with clang and run each for FUZZ_SECONDS
#   make run        start the suite in the foreground with the demo config
#   make bench      run the benchmarks under bench/
#   make check-style
#
# Every daemon folder defenra-X/ builds as $(O)/libX.a (all its .c but main.c) plus main.o, so
# tests and fuzz targets link the objects we ship.

# `make` alone builds everything: the per-daemon rules below come before `all`.
.DEFAULT_GOAL := all

SANITIZE ?= 0
FUZZ ?= 0
WERROR ?= 0

ifeq ($(FUZZ),1)
O ?= build/fuzz
CC := clang
else ifeq ($(SANITIZE),1)
O ?= build/san
else
O ?= build/default
endif

CC ?= gcc
PKGS := libevent libevent_pthreads libcurl libcjson lua5.4 libmaxminddb ldns liburcu libsystemd \
	libssl libcrypto libevent_openssl libnghttp2
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# Debian's libnng-dev 1.5.2 and libhttp-parser-dev 2.9 ship no .pc file.
NNG_LIBS := -lnng -lhttp_parser

WARN := -Wall -Wextra -Wformat=2 -Wvla -Wno-unused-parameter -Wno-missing-field-initializers \
	-Wpointer-arith -Wshadow=local -Wstrict-prototypes
CFLAGS ?= -O2 -g
CFLAGS += -std=gnu11 $(WARN) -D_GNU_SOURCE -I. -Ishared -Itests/lib $(PKG_CFLAGS) -pthread -MMD -MP
LDLIBS += $(PKG_LIBS) $(NNG_LIBS) -pthread -lm

ifeq ($(WERROR),1)
CFLAGS += -Werror
endif
ifeq ($(SANITIZE),1)
CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif
ifeq ($(FUZZ),1)
CFLAGS += -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -DDFR_FUZZING
LDFLAGS += -fsanitize=fuzzer,address,undefined
endif

# --- the common library ---------------------------------------------------------------------
LIB_SRCS := $(wildcard shared/*.c)
LIB_OBJS := $(LIB_SRCS:%.c=$(O)/%.o)
LIB := $(O)/libdefenra.a

# --- daemons: every defenra-X/ that has a main.c -----------------------------------------------
DAEMON_DIRS := $(patsubst %/main.c,%,$(wildcard defenra-*/main.c))
DAEMONS := $(DAEMON_DIRS:defenra-%=%)
BINS := $(DAEMONS:%=$(O)/bin/defenra-%)
DAEMON_LIBS := $(DAEMONS:%=$(O)/lib%.a)

define daemon_rules
$(1)_SRCS := $$(filter-out defenra-$(1)/main.c,$$(wildcard defenra-$(1)/*.c))
$(1)_OBJS := $$($(1)_SRCS:%.c=$(O)/%.o)
$(O)/lib$(1).a: $$($(1)_OBJS)
	@mkdir -p $$(@D)
	$$(AR) rcs $$@ $$^
$(O)/bin/defenra-$(1): $(O)/defenra-$(1)/main.o $(O)/lib$(1).a $(LIB)
	@mkdir -p $$(@D)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach d,$(DAEMONS),$(eval $(call daemon_rules,$(d))))

# --- tests -----------------------------------------------------------------------------------
TAP_OBJ := $(O)/tests/lib/tap.o
UNIT_SRCS := $(wildcard tests/unit/*/test_*.c)
UNIT_BINS := $(UNIT_SRCS:%.c=$(O)/%)
# tests/unit/<component>/ links lib<component>.a when the component is a daemon
unit_lib = $(if $(filter shared,$(1)),,$(O)/lib$(1).a)

define unit_rule
$(O)/$(basename $(1)): $(O)/$(basename $(1)).o $(TAP_OBJ) $(call unit_lib,$(word 3,$(subst /, ,$(1)))) $(LIB)
	@mkdir -p $$(@D)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach t,$(UNIT_SRCS),$(eval $(call unit_rule,$(t))))

# --- fuzz targets: fuzz/fuzz_<name>.c; replayed over their corpus in every test run ------------
FUZZ_SRCS := $(wildcard fuzz/fuzz_*.c)
FUZZ_NAMES := $(FUZZ_SRCS:fuzz/fuzz_%.c=%)
ifeq ($(FUZZ),1)
FUZZ_BINS := $(FUZZ_NAMES:%=$(O)/fuzz/fuzz_%)
$(O)/fuzz/fuzz_%: $(O)/fuzz/fuzz_%.o $(DAEMON_LIBS) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
else
FUZZ_BINS := $(FUZZ_NAMES:%=$(O)/fuzz/replay_%)
$(O)/fuzz/replay_%: $(O)/fuzz/fuzz_%.o $(O)/fuzz/replay.o $(DAEMON_LIBS) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
endif

# Test tools (a bus probe, clients): tests/tools/<name>.c -> $(O)/tests/tools/<name>
TOOL_SRCS := $(wildcard tests/tools/*.c)
TOOL_BINS := $(TOOL_SRCS:%.c=$(O)/%)
$(O)/tests/tools/%: $(O)/tests/tools/%.o $(DAEMON_LIBS) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

BENCH_SRCS := $(wildcard bench/*/bench_*.c)
BENCH_BINS := $(BENCH_SRCS:%.c=$(O)/%)
$(O)/bench/%: $(O)/bench/%.o $(DAEMON_LIBS) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# --- generic rules ---------------------------------------------------------------------------
.PHONY: all deps test unit integration fuzz fuzz-build run bench check-style clean install

all: $(LIB) $(BINS)
ifeq ($(O),build/default)
	@mkdir -p bin && for b in $(BINS); do ln -sf ../$$b bin/; done
endif

$(LIB): $(LIB_OBJS)
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

$(O)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

# Make one file: `make defenra-syncd/poll.o` builds $(O)/defenra-syncd/poll.o.
%.o: %.c FORCE
	$(MAKE) $(O)/$@
FORCE:

deps:
	@deploy/deps.sh

build-tests: all $(UNIT_BINS) $(TOOL_BINS) $(FUZZ_BINS) $(BENCH_BINS)

test: deps
	$(MAKE) build-tests
	O=$(O) SANITIZE=$(SANITIZE) tests/run.sh

# Unit tests and replays only (no daemons on sockets): quick inner loop.
unit: build-tests
	O=$(O) SANITIZE=$(SANITIZE) tests/run.sh unit

integration: build-tests
	O=$(O) SANITIZE=$(SANITIZE) tests/run.sh integration

FUZZ_SECONDS ?= 20
fuzz:
	@deploy/deps.sh
	$(MAKE) FUZZ=1 fuzz-build
	@for t in $(FUZZ_NAMES); do \
		echo "fuzz: $$t for $(FUZZ_SECONDS)s"; \
		mkdir -p build/fuzz/corpus/$$t; \
		dict=; [ -f fuzz/$$t.dict ] && dict=-dict=fuzz/$$t.dict; \
		build/fuzz/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -rss_limit_mb=2048 \
			-print_final_stats=0 $$dict build/fuzz/corpus/$$t fuzz/corpus/$$t \
			>build/fuzz/$$t.log 2>&1 || { tail -50 build/fuzz/$$t.log; exit 1; }; \
		tail -1 build/fuzz/$$t.log; \
	done

fuzz-build: $(FUZZ_BINS)

run: deps all
	deploy/demo/run.sh

bench: deps all $(BENCH_BINS)
	bench/run.sh

check-style:
	@clang-format --dry-run --Werror shared/*.[ch] defenra-*/*.[ch]

# Install binaries, systemd units and the example files (DESTDIR, PREFIX as usual).
PREFIX ?= /usr/local
BINDIR = $(PREFIX)/bin
DOCDIR = $(PREFIX)/share/doc/defenra
ETCDIR ?= /etc/defenra
UNITDIR ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,/etc/systemd/system)
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR) $(DESTDIR)$(ETCDIR)
	install -m 0755 $(BINS) $(DESTDIR)$(BINDIR)/
	for u in deploy/systemd/*.service deploy/systemd/*.socket deploy/systemd/*.target; do \
		sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@DOCDIR@|$(DOCDIR)|g' $$u \
			>$(DESTDIR)$(UNITDIR)/$${u##*/} && chmod 0644 $(DESTDIR)$(UNITDIR)/$${u##*/}; \
	done
	install -m 0644 docs/*.md $(DESTDIR)$(DOCDIR)/
	install -m 0640 deploy/defenra.env.example $(DESTDIR)$(ETCDIR)/defenra.env.example
	install -m 0640 deploy/demo/config.json $(DESTDIR)$(ETCDIR)/config.json.example

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)
