# faasmeter build.
#
#   make            the three binaries in bin/ (warnings are errors)
#   make deps       install the missing Debian packages (through sudo when not root)
#   make test       sanitizer build in build/test/, private PostgreSQL, every suite, then
#                   the fuzz targets over their seeds and a fixed number of inputs more
#   make fuzz       the fuzz targets (clang's libFuzzer), FUZZ_SECONDS each (default 60)
#   make demo       build, start a private PostgreSQL, run the sample pipeline, print invoices
#   make bench      benchmarks: figures and ratios against baselines measured in the same run
#   make clean      remove build output (the private PostgreSQL under var/ stays; see db-stop)
#
# MODE=test selects the sanitizer build; SANITIZER=address|undefined|address,undefined
# overrides which sanitizers it uses.

MODE      ?= release
SANITIZER ?= address,undefined
PKGS      := libpq libmicrohttpd libcjson libcurl libcrypto
CC        ?= cc

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wformat=2 -Wvla
CPPFLAGS += -I. -D_GNU_SOURCE -DFAASMETER_HOME='"$(CURDIR)"'
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -pthread $(WARN)
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
LDLIBS   += -pthread -lm

ifeq ($(MODE),test)
OUT      := build/test
BINDIR   := build/test/bin
CFLAGS   += -fsanitize=$(SANITIZER) -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS  += -fsanitize=$(SANITIZER)
else ifeq ($(MODE),fuzz)
# libFuzzer needs clang; the libraries are built with its coverage hooks and sanitizers.
CC       := clang
OUT      := build/fuzz
BINDIR   := build/fuzz/bin
CFLAGS   += -fsanitize=fuzzer-no-link,$(SANITIZER) -fno-sanitize-recover=all \
            -fno-omit-frame-pointer
LDFLAGS  += -fsanitize=fuzzer,$(SANITIZER)
else
OUT      := build/release
BINDIR   := bin
endif

# A folder is a module. Every .c in it belongs to the module's library except the
# binary's main file and its command-line files (cli_*.c), which only the binary links.
COMMON_SRC  := $(wildcard common/*.c)
BILLING_SRC := $(filter-out billing/faasbill.c billing/cli_%.c,$(wildcard billing/*.c))
REPORTS_SRC := $(filter-out reports/cli_%.c,$(wildcard reports/*.c))
SCHEMA_SRC  := $(wildcard schema/*.c)
METER_SRC   := $(filter-out meter/meterd.c,$(wildcard meter/*.c))
RUNTIME_SRC := $(filter-out runtime/faasrun.c runtime/cli_%.c,$(wildcard runtime/*.c))
FAASBILL_SRC := billing/faasbill.c $(wildcard billing/cli_*.c) $(wildcard reports/cli_*.c)
FAASRUN_SRC  := runtime/faasrun.c $(wildcard runtime/cli_*.c)
TEST_SRC     := $(wildcard tests/*.c)
BENCH_SRC    := $(wildcard tests/bench/*.c)
FUZZ_SRC     := $(wildcard tests/fuzz/*.c)
FNS_SRC      := $(wildcard runtime/functions/*.c)

obj = $(patsubst %.c,$(OUT)/%.o,$(1))

LIB_COMMON  := $(OUT)/libfm_common.a
LIB_BILLING := $(OUT)/libfm_billing.a
LIB_REPORTS := $(OUT)/libfm_reports.a
LIB_SCHEMA  := $(OUT)/libfm_schema.a
LIB_METER   := $(OUT)/libfm_meter.a
LIB_RUNTIME := $(OUT)/libfm_runtime.a
# Link order: users before what they use.
ALL_LIBS := $(LIB_RUNTIME) $(LIB_METER) $(LIB_REPORTS) $(LIB_SCHEMA) $(LIB_BILLING) $(LIB_COMMON)

BINS := $(BINDIR)/meterd $(BINDIR)/faasrun $(BINDIR)/faasbill
FNS  := $(patsubst runtime/functions/%.c,$(BINDIR)/fn/%,$(FNS_SRC))
TESTBIN := $(BINDIR)/faasmeter-tests
BENCHES := $(patsubst tests/bench/%.c,$(BINDIR)/bench/%,$(BENCH_SRC))

.PHONY: all deps test test-build demo bench fuzz fuzz-build clean db-start db-stop lint
all: $(BINS) $(FNS)

$(OUT)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(PKG_CFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

define module_lib
$(1): $(call obj,$(2))
	@mkdir -p $$(dir $$@)
	rm -f $$@ && ar rcs $$@ $$^
endef
$(eval $(call module_lib,$(LIB_COMMON),$(COMMON_SRC)))
$(eval $(call module_lib,$(LIB_BILLING),$(BILLING_SRC)))
$(eval $(call module_lib,$(LIB_REPORTS),$(REPORTS_SRC)))
$(eval $(call module_lib,$(LIB_SCHEMA),$(SCHEMA_SRC)))
$(eval $(call module_lib,$(LIB_METER),$(METER_SRC)))
$(eval $(call module_lib,$(LIB_RUNTIME),$(RUNTIME_SRC)))

$(BINDIR)/meterd: $(call obj,meter/meterd.c) $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(LDLIBS)
$(BINDIR)/faasrun: $(call obj,$(FAASRUN_SRC)) $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(LDLIBS)
$(BINDIR)/faasbill: $(call obj,$(FAASBILL_SRC)) $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(LDLIBS)
# Sample functions are tenants' code: plain programs, no faasmeter libraries, and no
# sanitizers either: their shadow memory cannot fit under the runtime's RLIMIT_AS.
$(OUT)/runtime/functions/%.o: CFLAGS := $(filter-out -fsanitize% -fno-sanitize%,$(CFLAGS))
$(BINDIR)/fn/%: LDFLAGS := $(filter-out -fsanitize%,$(LDFLAGS))
$(BINDIR)/fn/%: $(OUT)/runtime/functions/%.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(TESTBIN): $(call obj,$(TEST_SRC)) $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(shell pkg-config --libs check) $(LDLIBS)

# Benchmarks: one program each, linked like the binaries; scripts/bench.sh runs them.
$(BINDIR)/bench/%: $(OUT)/tests/bench/%.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(LDLIBS)

# Fuzz targets (MODE=fuzz): libFuzzer's main, one parser each.
$(BINDIR)/fuzz_%: $(OUT)/tests/fuzz/fuzz_%.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(LDLIBS)

-include $(shell find build -name '*.d' 2>/dev/null)

deps:
	@scripts/deps.sh

test-build: deps
	@$(MAKE) --no-print-directory MODE=test build/test/bin/faasmeter-tests \
		build/test/bin/meterd build/test/bin/faasrun build/test/bin/faasbill \
		$(patsubst runtime/functions/%.c,build/test/bin/fn/%,$(FNS_SRC))
	@# The benchmarks are built too, so that a change of an interface they use shows here.
	@$(MAKE) --no-print-directory all $(BENCHES)

fuzz-build: deps
	@$(MAKE) --no-print-directory MODE=fuzz \
		$(patsubst tests/fuzz/%.c,build/fuzz/bin/%,$(FUZZ_SRC))

# The suites run against the sanitizer build; end-to-end suites drive its binaries.
test: test-build fuzz-build
	@scripts/run-tests.sh build/test/bin
	@scripts/fuzz.sh --check

fuzz: fuzz-build
	@scripts/fuzz.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@scripts/demo.sh

bench: deps
	@$(MAKE) --no-print-directory all $(BENCHES)
	@scripts/bench.sh

db-start: deps
	@scripts/pgcluster.sh start
db-stop:
	@scripts/pgcluster.sh stop

lint:
	@scripts/lint.sh

clean:
	rm -rf build bin
