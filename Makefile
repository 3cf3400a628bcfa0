# Time Machine (tm). `make demo` and `make test` set up a fresh Debian machine themselves.
BUILD      ?= build
BUILD_ASAN ?= build-asan
JOBS       ?= $(shell nproc)
TM         := $(BUILD)/tm

.PHONY: all setup build build-asan demo test test-release test-asan bench format clean

all: build

setup:
	@./scripts/setup.sh

build: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

build-asan: setup
	@cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DTM_SANITIZE=ON >/dev/null
	@cmake --build $(BUILD_ASAN) -j$(JOBS)

# Records the shipped sample with a 15k cutoff, shows the store, answers a query.
demo: build
	@./scripts/demo.sh $(TM)

# Unit and end-to-end tests, in the release build and again under ASan+UBSan.
test: test-release test-asan

test-release: build
	@cd $(BUILD) && ctest --output-on-failure -j2

test-asan: build-asan
	@cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j2

bench: build
	@TM_BIN=$(abspath $(TM)) GEN_BIN=$(abspath $(BUILD)/gen_traffic) ./bench/run.sh

format:
	@clang-format -i $$(git ls-files '*.cpp' '*.h')

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) demo-store demo-answer.pcap
