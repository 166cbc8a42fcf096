# audience-operator — developer and CI entry points.
#
#   make test          every check CI runs: fmt, clippy, unit + integration tests on a real
#                      control plane (builds the test binaries on first use)
#   make testbins      build/cache etcd, kube-apiserver, kube-controller-manager, kubectl, helm
#                      (hack/gotools.sh builds the small Go test tools under their own key)
#   make cluster       the same control plane in the background (target/cluster/kubeconfig)
#   make cluster-down  stop it
#   make build | fmt | lint | crds

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test

CARGO ?= cargo
CRDS_DIR ?= crds

.PHONY: test testbins toolchain build fmt fmt-check lint crds cluster cluster-down cluster-status

# Components the checks need (a toolchain without them is otherwise left as is).
toolchain:
	@installed="$$(rustup component list --installed 2>/dev/null || true)"; \
	for c in rustfmt clippy; do \
	  if ! grep -q "^$$c" <<<"$$installed"; then \
	    echo "make: rustup component add $$c" >&2; rustup component add "$$c"; \
	  fi; \
	done

# Prints the binaries' directory as the last line of stdout.
testbins:
	@hack/testbins.sh

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
	echo "== cargo test --workspace"; \
	$(CARGO) test --workspace

build:
	$(CARGO) build --workspace

fmt: toolchain
	$(CARGO) fmt --all

fmt-check: toolchain
	$(CARGO) fmt --all -- --check

lint: toolchain
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The operator prints its CustomResourceDefinitions (`audience-operator crd`); the chart keeps a copy.
crds:
	$(CARGO) run -q --bin audience-operator -- crd --out-dir $(CRDS_DIR)
	cp $(CRDS_DIR)/*.yaml charts/audience-operator/files/crds/
	@echo "wrote $(CRDS_DIR)/ and charts/audience-operator/files/crds/"

cluster:
	@$(CARGO) run -q -p audience-testenv --bin testcluster -- up

cluster-down:
	@$(CARGO) run -q -p audience-testenv --bin testcluster -- down

cluster-status:
	@$(CARGO) run -q -p audience-testenv --bin testcluster -- status
