# s3-replicator: the commands a newcomer needs. `make demo` shows it working on the
# local stack; `make test` runs every test.

VENV    := .venv
INFRA_VENV := .venv-infra
PYTHON  ?= python3
MOTO    := $(VENV)/bin/moto_server
CHECKOV := $(INFRA_VENV)/bin/checkov
CARGO   ?= cargo

.PHONY: all demo test unit integration bench lint lint-infra fmt venv infra-venv tools deploy tf-plan stack-up stack-down build build-local clean

all: build-local

## Python tools for the local stack (moto's server), pinned, in a project venv.
venv: $(MOTO)
$(MOTO): requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(MOTO)

## s3s-fs, a strict S3 server standing in for a third provider, pinned, built from
## crates.io into .tools/.
S3S_FS := .tools/bin/s3s-fs
tools: $(S3S_FS)
$(S3S_FS):
	$(CARGO) install --locked --quiet --root .tools s3s-fs --version 0.14.1 --features binary

## Template checkers (cfn-lint, checkov), pinned, in their own venv.
infra-venv: $(CHECKOV)
$(CHECKOV): requirements-infra.txt
	$(PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-infra.txt
	touch $(CHECKOV)

stack-up: venv tools
	scripts/stack.sh up
stack-down:
	scripts/stack.sh down

build-local:
	$(CARGO) build --workspace

## Everything: formatting, lints, then every test (unit and integration) in one cargo
## run with the local stack up.
test: lint lint-infra venv tools
	scripts/with-stack.sh $(CARGO) test --workspace

## Unit tests only (no stack needed).
unit:
	$(CARGO) test --workspace --lib --bins

## Integration tests only (starts and stops the stack).
integration: venv tools
	scripts/with-stack.sh $(CARGO) test --workspace --tests

## Benchmarks of the copy engine on the local stack (peak memory of streamed copies,
## multipart against single-request copies); prints tables, asserts nothing.
bench: venv tools
	scripts/with-stack.sh $(CARGO) bench -p integration-tests --bench copy_engine

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## Static checks of the deployment templates: cfn-lint, checkov on SAM and Terraform
## (skips are listed with their reasons in the templates), terraform fmt.
lint-infra: infra-venv
	$(INFRA_VENV)/bin/cfn-lint infra/sam/template.yaml
	$(INFRA_VENV)/bin/python scripts/lint_iam.py --self-test
	$(INFRA_VENV)/bin/python scripts/lint_iam.py infra/sam/template.yaml
	$(CHECKOV) --quiet --compact --skip-download --framework cloudformation -f infra/sam/template.yaml
	$(CHECKOV) --quiet --compact --skip-download --framework terraform -d infra/terraform
	terraform fmt -check -recursive infra/terraform

fmt:
	$(CARGO) fmt --all

## Build, start the stack, replicate a varied set of objects, print what arrived.
demo: venv tools
	$(CARGO) build -p s3-replicator
	scripts/with-stack.sh $(VENV)/bin/python scripts/demo.py target/debug/s3-replicator

## Lambda artifacts: target/lambda/<function>/bootstrap(.zip), arm64 (needs cargo-lambda
## and zig: pip install cargo-lambda ziglang; see README "Deploy").
build:
	@command -v cargo-lambda >/dev/null || { echo "cargo-lambda is not installed: pip install cargo-lambda ziglang (see README)"; exit 1; }
	$(CARGO) lambda build --release --arm64 --output-format zip --bin ingest --bin replicate --bin retry

## Deploy with SAM (guided the first time, then from infra/sam/samconfig.toml).
deploy:
	cd infra/sam && sam build && if [ -f samconfig.toml ]; then sam deploy; else sam deploy --guided; fi

## Plan the Terraform example (after make build).
tf-plan:
	cd infra/terraform/example && terraform init && terraform plan

clean:
	scripts/stack.sh down || true
	rm -rf .stack
