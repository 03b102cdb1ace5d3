# IntentTuner build. GNU make, C11.
#
#   make              optimised binary build/intenttuner and build/libintenttuner.a
#   make test         unit tests (T="substr ..." filters), ends "N passed, N failed"
#   make asan-test    the whole suite under AddressSanitizer + UBSan (build-asan/)
#   make bench        builds and runs every bench/*.c program
#   make fuzz         libFuzzer harnesses (clang) in build-fuzz/; FUZZ_SECONDS each
#   make demo         builds, then runs the main job on the embedded toy world
#   make clean
#
# Options: PORTABLE=1 (no -march=native), BUILD=dir (separate build tree),
# SAN=1 (sanitizers), DEBUG=1 (-O0).
# Sources are discovered: every src/**/*.c is part of the library except
# src/cli/, tests register themselves with IT_TEST(name) and commands with
# IT_COMMAND(name, "summary"); see tests/test.h and src/cli/commands.h.

BUILD    ?= build
PORTABLE ?= 0
SAN      ?= 0
DEBUG    ?= 0
CC       ?= cc
FUZZ_SECONDS ?= 60

ifeq ($(PORTABLE),1)
  ARCH := -march=x86-64-v2 -mtune=generic
else
  ARCH := -march=native
endif

ifeq ($(DEBUG),1)
  OPT := -O0 -g
else
  OPT := -O2 -g $(ARCH)
endif

ifeq ($(SAN),1)
  OPT := -O1 -g -fno-omit-frame-pointer $(ARCH)
  SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined
endif

CPPFLAGS += -Isrc -I$(BUILD)/gen -D_GNU_SOURCE
CFLAGS   += -std=c11 -Wall -Wextra -Wno-unused-parameter -fopenmp -MMD -MP $(OPT) $(SANFLAGS) $(EXTRA_CFLAGS)
LDFLAGS  += -fopenmp $(SANFLAGS)
LDLIBS   += -lopenblas -ljansson -lpng -ljpeg -lwebp -lwebpdemux -lcurl -lmicrohttpd -lsqlite3 -lpthread -lm

LIB_SRC   := $(shell find src -name '*.c' -not -path 'src/cli/*' | sort)
CLI_SRC   := $(sort $(wildcard src/cli/*.c))
TEST_SRC  := $(sort $(wildcard tests/*.c))
BENCH_SRC := $(sort $(wildcard bench/*.c))
FUZZ_SRC  := $(sort $(wildcard fuzz/*.c))

LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ   := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
CLI_NOMAIN_OBJ := $(filter-out $(BUILD)/obj/src/cli/main.o,$(CLI_OBJ))
TEST_OBJ  := $(TEST_SRC:%.c=$(BUILD)/obj/%.o)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

BIN  := $(BUILD)/intenttuner
LIB  := $(BUILD)/libintenttuner.a
TESTBIN := $(BUILD)/test_runner

.PHONY: all test asan-test bench fuzz clean demo
all: $(BIN) $(LIB)

$(BUILD)/obj/%.o: %.c | $(BUILD)/gen/commands.inc $(BUILD)/gen/tests.inc
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

# Registries: regenerated on every make, rewritten only when they change so
# that unchanged trees do not rebuild.
$(BUILD)/gen/commands.inc: FORCE
	@mkdir -p $(dir $@)
	@grep -h '^IT_COMMAND(' $(CLI_SRC) /dev/null | sed 's/).*/)/' > $@.new; \
	  cmp -s $@.new $@ || mv $@.new $@; rm -f $@.new
$(BUILD)/gen/tests.inc: FORCE
	@mkdir -p $(dir $@)
	@grep -h '^IT_TEST(' $(TEST_SRC) /dev/null | sed 's/).*/)/' > $@.new; \
	  cmp -s $@.new $@ || mv $@.new $@; rm -f $@.new
FORCE:

$(BUILD)/obj/src/cli/main.o: $(BUILD)/gen/commands.inc
$(BUILD)/obj/tests/runner.o: $(BUILD)/gen/tests.inc

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@dups=$$(for f in $(LIB_SRC); do basename $$f; done | sort | uniq -d); \
	  if [ -n "$$dups" ]; then echo "duplicate source basenames (ar needs unique names): $$dups"; exit 1; fi
	rm -f $@
	$(AR) rcs $@ $^

$(BIN): $(CLI_OBJ) $(LIB_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(TESTBIN): $(TEST_OBJ) $(CLI_NOMAIN_OBJ) $(LIB_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Passive OpenMP waits: the tests run many small parallel regions, and spinning
# workers starve each other on a loaded machine (the CLI re-execs itself the same way).
test: $(TESTBIN) $(BIN)
	IT_BIN=$(BIN) OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-passive} ./$(TESTBIN) $(T)

demo: $(BIN)
	./$(BIN) demo --out demo-out

asan-test:
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  $(MAKE) BUILD=build-asan SAN=1 test

$(BUILD)/bench/%: bench/%.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_OBJ) $(LDLIBS)

bench: $(BENCH_BIN) $(BIN)
	@for b in $(BENCH_BIN); do echo "== $$b"; ./$$b || exit 1; done

# libFuzzer: clang, ASan+UBSan, no OpenMP (libFuzzer wants one thread).
FUZZ_BUILD := build-fuzz
# FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION (the libFuzzer convention) lets
# decoders skip checksums so that mutations reach the code behind them.
FUZZ_CFLAGS := -std=c11 -g -O1 -Isrc -I$(FUZZ_BUILD)/gen -D_GNU_SOURCE \
  -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION \
  -fsanitize=fuzzer-no-link,address,undefined -Wno-unknown-pragmas
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(FUZZ_BUILD)/obj/%.o)
FUZZ_BIN := $(FUZZ_SRC:fuzz/%.c=$(FUZZ_BUILD)/%)
$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -c $< -o $@
# -fopenmp at link time lets clang find its own libomp (Debian keeps it
# outside the default -L path); the objects keep their OpenMP calls.
# .PRECIOUS: the objects would otherwise be deleted as intermediates.
.PRECIOUS: $(FUZZ_BUILD)/obj/%.o
# Harnesses link the library as an archive, so that only the objects they
# use are linked: libFuzzer scans every coverage counter of the binary after
# each execution, and the whole library's counters cost a harness of a
# small module (the intent parser) about a tenth of its speed.
$(FUZZ_BUILD)/libintenttuner.a: $(FUZZ_LIB_OBJ)
	rm -f $@
	ar rcs $@ $(FUZZ_LIB_OBJ)
$(FUZZ_BUILD)/%: fuzz/%.c $(FUZZ_BUILD)/libintenttuner.a
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -fopenmp -o $@ $< $(FUZZ_BUILD)/libintenttuner.a $(LDLIBS)
fuzz: $(FUZZ_BIN)
	@for f in $(FUZZ_BIN); do n=$$(basename $$f); mkdir -p fuzz/corpus/$$n $(FUZZ_BUILD)/found/$$n; \
	  echo "== $$n ($(FUZZ_SECONDS)s)"; \
	  ./$$f -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=$(FUZZ_BUILD)/found/$$n/ \
	    $(FUZZ_BUILD)/corpus-$$n fuzz/corpus/$$n 2>&1 | tail -n 3 || exit 1; \
	  rm -rf $(FUZZ_BUILD)/corpus-$$n; done

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
