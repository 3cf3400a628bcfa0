# Time Machine (tm). `make demo` and `make test` set up a fresh Debian machine themselves.
BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_TSAN ?= build-tsan
BUILD_FUZZ ?= build-fuzz
FUZZ_SECONDS ?= 60
TM_CORPUS  ?= $(abspath ../shared/corpus)
JOBS       ?= $(shell nproc)
TM         := $(BUILD)/tm
# ccache, when installed (not required): paths relative to the checkout, so that several
# checkouts (git worktrees) share compiled objects.
CCACHE     := $(shell command -v ccache 2>/dev/null)
LAUNCHER   := $(if $(CCACHE),-DCMAKE_CXX_COMPILER_LAUNCHER=$(CCACHE))
export CCACHE_BASEDIR := $(CURDIR)

.PHONY: all setup build build-asan build-tsan demo test test-release test-asan test-tsan bench fuzz format clean

all: build

setup:
	@./scripts/setup.sh

build: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(LAUNCHER) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

build-asan: setup
	@cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DTM_SANITIZE=ON $(LAUNCHER) >/dev/null
	@cmake --build $(BUILD_ASAN) -j$(JOBS)

build-tsan: setup
	@cmake -S . -B $(BUILD_TSAN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTM_TSAN=ON $(LAUNCHER) >/dev/null
	@cmake --build $(BUILD_TSAN) -j$(JOBS)

# Records the shipped sample with a 15k cutoff, shows the store, answers a query.
demo: build
	@./scripts/demo.sh $(TM)

# Unit and end-to-end tests, in the release build, again under ASan+UBSan, and again under
# ThreadSanitizer.
test: test-release test-asan test-tsan

test-release: build
	@cd $(BUILD) && ctest --output-on-failure -j2

test-asan: build-asan
	@cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j2

test-tsan: build-tsan
	@cd $(BUILD_TSAN) && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/scripts/tsan.supp" ctest --output-on-failure -j2

bench: build
	@TM_BIN=$(abspath $(TM)) GEN_BIN=$(abspath $(BUILD)/gen_traffic) ./bench/run.sh

# libFuzzer (clang, ASan+UBSan) on the decoder and on the query parser, FUZZ_SECONDS each.
# Seeds: every distinct frame of $(TM_CORPUS) (extracted into the build dir) and fuzz/seeds
# (crafted frames of what the corpus lacks, e.g. L2TPv3).
# The grown corpus stays in $(BUILD_FUZZ)/corpus for the next run; a finding stops the run
# and leaves crash-* in $(BUILD_FUZZ) (reproduce: $(BUILD_FUZZ)/decoder_fuzz crash-...).
# The seed extractor reads captures with Debian's python3-dpkt (installed by setup), hence
# Debian's python3: a python3 earlier in PATH (pyenv, a venv) may not see it.
fuzz: setup
	@cmake -S fuzz -B $(BUILD_FUZZ) -DCMAKE_CXX_COMPILER=clang++ >/dev/null
	@cmake --build $(BUILD_FUZZ) -j$(JOBS)
	@/usr/bin/python3 fuzz/extract_seeds.py $(TM_CORPUS) $(BUILD_FUZZ)/seeds/decoder
	@mkdir -p $(BUILD_FUZZ)/corpus/decoder $(BUILD_FUZZ)/corpus/query
	cd $(BUILD_FUZZ) && ./decoder_fuzz -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	  corpus/decoder seeds/decoder $(CURDIR)/fuzz/seeds/decoder
	cd $(BUILD_FUZZ) && ./query_fuzz -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	  -dict=$(CURDIR)/fuzz/query.dict corpus/query $(CURDIR)/fuzz/seeds/query

format:
	@clang-format -i $$(git ls-files '*.cpp' '*.h')

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_TSAN) $(BUILD_FUZZ) demo-store demo-answer.pcap
