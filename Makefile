# buildset-registry: `make run` serves on the embedded default config, `make test` runs every test.
# Both install the Debian packages they need first, so a fresh Debian 12 machine needs nothing else.

SWIFT := $(shell test -x /opt/swift/usr/bin/swift && echo /opt/swift/usr/bin/swift || command -v swift)

# Build: the C libraries. Tests and benchmarks: the real peers they start.
BUILD_PACKAGES := pkg-config libmicrohttpd-dev libcurl4-openssl-dev libssl-dev libyaml-dev
TEST_PACKAGES := skopeo podman docker.io containerd docker-registry apache2-utils wrk curl tar openssl

.PHONY: all build run test lint format bench deps test-deps clean

all: build

# Installs whatever is missing; the policy file keeps package scripts from starting services.
deps:
	@bash scripts/install-packages.sh $(BUILD_PACKAGES)

test-deps:
	@bash scripts/install-packages.sh $(BUILD_PACKAGES) $(TEST_PACKAGES)

# The Swift runtime and Foundation are linked in statically: the server then starts with 19 MiB resident
# instead of 26, most of the difference being shared-library pages it never uses.
build: deps
	$(SWIFT) build -c release --static-swift-stdlib

run: build
	.build/release/buildset-registry serve $(ARGS)

lint:
	$(SWIFT) format lint --strict --recursive Sources Tests Package.swift

format:
	$(SWIFT) format format --in-place --recursive Sources Tests Package.swift

test: test-deps lint
	$(SWIFT) build --build-tests
	BUILDSET_REGISTRY_BINARY=$(CURDIR)/.build/debug/buildset-registry $(SWIFT) test

bench: test-deps build
	bash bench/run.sh $(CURDIR)/.build/release/buildset-registry

clean:
	rm -rf .build
