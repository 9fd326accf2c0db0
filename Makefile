# Everything a fresh Debian machine (root, Swift installed) needs: `make demo`, `make test`.
APT_PACKAGES := libopenblas-dev libpng-dev libjpeg-dev libjson-c-dev zlib1g-dev libdeflate-dev \
  pkg-config libopenmpi-dev openmpi-bin
SWIFT ?= swift
# Tests run in release mode (heavy numeric kernels); -enable-testing keeps @testable imports.
TEST_FLAGS := -c release -Xswiftc -enable-testing

.PHONY: deps build demo test bench clean fuzz fuzz-smoke probe

deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

build: deps
	$(SWIFT) build -c release

demo: build
	$(SWIFT) run -c release atso-transfer demo

test: deps
	$(SWIFT) build $(TEST_FLAGS) --build-tests
	$(SWIFT) test $(TEST_FLAGS) --skip-build

# libFuzzer harnesses (Fuzz/, a separate package built with the fuzzer and address sanitizers):
# `make fuzz` runs each for 10^6 executions, `make fuzz-smoke` for 5 seconds each (CI).
fuzz: deps
	scripts/fuzz.sh -runs 1000000

fuzz-smoke: deps
	scripts/fuzz.sh -seconds 5

# Malformed and unusual inputs to every command (exit status, signal, message per case).
probe: build
	scripts/probe_inputs.sh

clean:
	rm -rf .build Fuzz/.build
