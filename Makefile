# s3-replicator: the commands a newcomer needs. `make demo` shows it working on the
# local stack; `make test` runs every test.

VENV    := .venv
PYTHON  ?= python3
MOTO    := $(VENV)/bin/moto_server
CARGO   ?= cargo

.PHONY: all demo test unit integration lint lint-infra fmt venv stack-up stack-down build build-local clean

all: build-local

## Python tools for the local stack (moto's server), pinned, in a project venv.
venv: $(MOTO)
$(MOTO): requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(MOTO)

stack-up: venv
	scripts/stack.sh up
stack-down:
	scripts/stack.sh down

build-local:
	$(CARGO) build --workspace

## Everything: formatting, lints, then every test (unit and integration) in one cargo
## run with the local stack up.
test: lint lint-infra venv
	scripts/with-stack.sh $(CARGO) test --workspace

## Unit tests only (no stack needed).
unit:
	$(CARGO) test --workspace --lib --bins

## Integration tests only (starts and stops the stack).
integration: venv
	scripts/with-stack.sh $(CARGO) test --workspace --tests

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## Static checks of the deployment templates.
lint-infra: venv
	$(VENV)/bin/cfn-lint infra/sam/template.yaml

fmt:
	$(CARGO) fmt --all

## Build, start the stack, replicate a varied set of objects, print what arrived.
demo: venv
	$(CARGO) build -p s3-replicator
	scripts/with-stack.sh $(VENV)/bin/python scripts/demo.py target/debug/s3-replicator

## Lambda artifacts (needs cargo-lambda; see README "Deploy").
build:
	@command -v cargo-lambda >/dev/null || { echo "cargo-lambda is not installed: pip install cargo-lambda (see README)"; exit 1; }
	$(CARGO) lambda build --release --arm64 -p ingest -p replicate

clean:
	scripts/stack.sh down || true
	rm -rf .stack
