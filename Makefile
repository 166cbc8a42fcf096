# audience-operator — developer and CI entry points. `make help` lists the targets.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test

CARGO ?= cargo
CRDS_DIR ?= crds

.PHONY: help test reliability bench-freshness bench-no-change bench-thousand testbins image toolchain build fmt fmt-check lint crds cluster cluster-down cluster-status

## help: this list of targets
help:
	@awk -F': ' '/^## / { sub(/^## /, ""); split($$0, a, ": "); printf "  make %-15s %s\n", a[1], substr($$0, length(a[1]) + 3) }' $(MAKEFILE_LIST)

# Components the checks need (a toolchain without them is otherwise left as is).
## toolchain: the rustfmt and clippy components (installed when missing)
toolchain:
	@installed="$$(rustup component list --installed 2>/dev/null || true)"; \
	for c in rustfmt clippy; do \
	  if ! grep -q "^$$c" <<<"$$installed"; then \
	    echo "make: rustup component add $$c" >&2; rustup component add "$$c"; \
	  fi; \
	done

# Prints the binaries' directory as the last line of stdout.
## testbins: build/cache etcd, kube-apiserver, kube-controller-manager, kubectl, helm; prints their directory
testbins:
	@hack/testbins.sh

## image: the operator's OCI image from the release binary (buildah, no Docker engine); prints its reference
image:
	@hack/image.sh build

## test: every check CI runs: fmt, clippy -D warnings, unit, property, contract and control-plane tests
test: toolchain
	@dir="$$(hack/testbins.sh | tail -n 1)"; \
	export AUDIENCE_OPERATOR_TESTBINS="$$dir"; \
	echo "== AUDIENCE_OPERATOR_TESTBINS=$$dir"; \
	tools="$$(hack/gotools.sh | tail -n 1)"; \
	export AUDIENCE_OPERATOR_GOTOOLS="$$tools"; \
	echo "== AUDIENCE_OPERATOR_GOTOOLS=$$tools"; \
	echo "== cargo fmt --all -- --check"; \
	$(CARGO) fmt --all -- --check; \
	echo "== cargo clippy --workspace --all-targets -- -D warnings"; \
	$(CARGO) clippy --workspace --all-targets -- -D warnings; \
	echo "== hack/image.sh build (release binary; tests/image_run.rs runs this image)"; \
	image="$$(hack/image.sh build | tail -n 1)"; \
	export AUDIENCE_OPERATOR_IMAGE="$$image"; \
	echo "== cargo test --workspace"; \
	$(CARGO) test --workspace

## reliability: the process-fault suite at full length (SIGKILL at random points of a 20,000-contact push, ten seeds)
reliability:
	@dir="$$(hack/testbins.sh | tail -n 1)"; \
	export AUDIENCE_OPERATOR_TESTBINS="$$dir"; \
	AUDIENCE_OPERATOR_KILL_SEEDS=10 $(CARGO) test --test operator_kill -- --nocapture

## bench-freshness: source edit → visible in the target, p50/p95, with webhooks and with polling (minutes; see BENCHMARKS.md)
bench-freshness:
	@dir="$$(hack/testbins.sh | tail -n 1)"; \
	export AUDIENCE_OPERATOR_TESTBINS="$$dir"; \
	$(CARGO) test --test bench_freshness -- --ignored --nocapture --test-threads 1

## bench-no-change: a no-change run of a 100,000-customer shop, full reconcile against incremental (calls, time, memory)
bench-no-change:
	@dir="$$(hack/testbins.sh | tail -n 1)"; \
	export AUDIENCE_OPERATOR_TESTBINS="$$dir"; \
	$(CARGO) test --test bench_no_change -- --ignored --nocapture

## bench-thousand: 1,000 AudienceSyncs, each its own merchant, on one operator (RSS, time to reconcile all, vendor calls, 429s, status writes)
bench-thousand:
	@dir="$$(hack/testbins.sh | tail -n 1)"; \
	export AUDIENCE_OPERATOR_TESTBINS="$$dir"; \
	$(CARGO) test --test bench_thousand -- --ignored --nocapture

## build: cargo build of the workspace
build:
	$(CARGO) build --workspace

## fmt: format the workspace
fmt: toolchain
	$(CARGO) fmt --all

## fmt-check: check the formatting
fmt-check: toolchain
	$(CARGO) fmt --all -- --check

## lint: clippy with warnings as errors
lint: toolchain
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The operator prints its CustomResourceDefinitions (`audience-operator crd`); the chart keeps a copy.
## crds: regenerate crds/ (and the chart's copy) from the types
crds:
	$(CARGO) run -q --bin audience-operator -- crd --out-dir $(CRDS_DIR)
	cp $(CRDS_DIR)/*.yaml charts/audience-operator/files/crds/
	@echo "wrote $(CRDS_DIR)/ and charts/audience-operator/files/crds/"

## cluster: the tests' control plane in the background (target/cluster/kubeconfig)
cluster:
	@$(CARGO) run -q -p audience-testenv --bin testcluster -- up

## cluster-down: stop it
cluster-down:
	@$(CARGO) run -q -p audience-testenv --bin testcluster -- down

## cluster-status: is it running
cluster-status:
	@$(CARGO) run -q -p audience-testenv --bin testcluster -- status
