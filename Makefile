# s3-replicator: the commands a newcomer needs. `make demo` shows it working on the
# local stack; `make test` runs every test.

VENV    := .venv
INFRA_VENV := .venv-infra
SAM_VENV := .venv-sam
PYTHON  ?= python3
MOTO    := $(VENV)/bin/moto_server
CHECKOV := $(INFRA_VENV)/bin/checkov
SAM     := $(SAM_VENV)/bin/sam
CARGO   ?= cargo

.PHONY: all demo test unit integration bench lint lint-infra fmt venv infra-venv sam-venv tools deploy tf-plan stack-up stack-down build build-local clean

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

## The SAM CLI (for sam validate --lint), pinned, in a venv of its own: its pins
## conflict with checkov's.
sam-venv: $(SAM)
$(SAM): requirements-sam.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-sam.txt
	touch $(SAM)

stack-up: venv tools
	scripts/stack.sh up
stack-down:
	scripts/stack.sh down

build-local:
	$(CARGO) build --workspace

## Everything: formatting, lints, then every test (unit and integration) in one cargo
## run with the local stack up.
## The function binaries are built first: tests/tests/deployed.rs runs them under the
## Lambda Runtime API, as deployed.
test: lint lint-infra venv tools
	$(CARGO) build --workspace --bins
	scripts/with-stack.sh $(CARGO) test --workspace

## Unit tests only (no stack needed).
unit:
	$(CARGO) test --workspace --lib --bins

## Integration tests only (starts and stops the stack).
integration: venv tools infra-venv
	$(CARGO) build --workspace --bins
	scripts/with-stack.sh $(CARGO) test --workspace --tests

## Benchmarks on the local stack: the functions' cold start (release binaries under
## the Runtime API emulator, beside a Python baseline; fails if it regresses past the
## README's figures), then the copy engine (peak memory of streamed copies, multipart
## against single-request copies; prints tables, asserts nothing).
bench: venv tools
	$(CARGO) build --release -p ingest -p replicate -p retry
	S3R_FUNCTION_DIR=$(CURDIR)/target/release scripts/with-stack.sh $(CARGO) bench -p integration-tests --bench cold_start
	scripts/with-stack.sh $(CARGO) bench -p integration-tests --bench copy_engine
	scripts/with-stack.sh $(CARGO) bench -p integration-tests --bench cost
	$(CARGO) build --release -p s3-replicator
	S3R_CLI=$(CURDIR)/target/release/s3-replicator scripts/with-stack.sh $(CARGO) bench -p integration-tests --bench throughput
	command -v rclone >/dev/null || { command -v apt-get >/dev/null && apt-get install -y rclone; } || { echo "make bench needs rclone (Debian: apt-get install rclone)"; exit 1; }
	S3R_CLI=$(CURDIR)/target/release/s3-replicator scripts/with-stack.sh $(CARGO) bench -p integration-tests --bench existing_objects

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## Static checks of the deployment templates: cfn-lint, sam validate --lint, checkov on SAM and Terraform
## (skips are listed with their reasons in the templates), terraform fmt.
lint-infra: infra-venv sam-venv
	$(INFRA_VENV)/bin/cfn-lint infra/sam/template.yaml
	SAM_CLI_TELEMETRY=0 $(SAM) validate --lint --region us-east-1 -t infra/sam/template.yaml
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

## Lambda artifacts: target/lambda/<function>/bootstrap.zip, arm64, built by cargo-lambda
## (with zig), both pinned in requirements-build.txt and installed into .venv-build.
BUILD_VENV := .venv-build
CARGO_LAMBDA := $(BUILD_VENV)/bin/cargo-lambda
$(CARGO_LAMBDA): requirements-build.txt
	$(PYTHON) -m venv $(BUILD_VENV)
	$(BUILD_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-build.txt
	touch $(CARGO_LAMBDA)
build: $(CARGO_LAMBDA)
	PATH="$(CURDIR)/$(BUILD_VENV)/bin:$$PATH" $(CARGO) lambda build --release --arm64 --output-format zip --bin ingest --bin replicate --bin retry
	@ls -l target/lambda/*/bootstrap.zip

## Deploy with SAM (guided the first time, then from infra/sam/samconfig.toml).
deploy:
	cd infra/sam && sam build && if [ -f samconfig.toml ]; then sam deploy; else sam deploy --guided; fi

## Plan the Terraform example (after make build).
tf-plan:
	cd infra/terraform/example && terraform init && terraform plan

clean:
	scripts/stack.sh down || true
	rm -rf .stack
