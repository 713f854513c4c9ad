# Every target sets itself up: a fresh clone needs only `make run` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench faults lint typecheck clean template validate-template browser exiftool

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## start the local stack, run the demo, serve until Ctrl-C
	$(BIN)/tagsmith up

test: $(STAMP) lint typecheck validate-template browser exiftool  ## lint, types, template, the whole suite (what CI runs)
	$(BIN)/pytest -q

browser:  ## Debian's headless Chromium for the console's browser tests (Playwright drives it)
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium \
	  || echo "warning: chromium could not be installed; the browser tests will be skipped"; }

exiftool:  ## Debian's exiftool: the independent reader the XMP sidecar tests check against
	@command -v exiftool >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq libimage-exiftool-perl \
	  || echo "warning: exiftool could not be installed; the sidecar tests that read with it will be skipped"; }

bench: $(STAMP)  ## accuracy, automation and throughput figures for docs/benchmarks.md
	$(BIN)/python -m benchmarks.automation
	$(BIN)/python -m benchmarks.run

N ?= 1000
faults: $(STAMP)  ## the local stack under faults: N uploads, duplicates, poison, a search outage, kill -9 (docs/benchmarks.md)
	$(BIN)/python -m benchmarks.faults --n $(N)

lint: $(STAMP)
	$(BIN)/ruff check shared functions tests benchmarks infra
	$(BIN)/ruff format --check shared functions tests benchmarks infra

typecheck: $(STAMP)
	$(BIN)/mypy

SAM_VENV := .venv-sam
SAM_STAMP := $(SAM_VENV)/.installed
# sam validate needs a region and some credentials even though it checks offline
SAM_ENV := AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=validate AWS_SECRET_ACCESS_KEY=validate SAM_CLI_TELEMETRY=0

$(SAM_STAMP): infra/aws/requirements-validate.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/pip install --quiet -r infra/aws/requirements-validate.txt
	touch $(SAM_STAMP)

template: $(STAMP)  ## render infra/aws/template.yaml from shared/tagsmith/local/resources.py
	$(BIN)/python infra/aws/generate.py

validate-template: $(STAMP) $(SAM_STAMP)  ## template up to date, cfn-lint, sam validate --lint
	$(BIN)/python infra/aws/generate.py --check
	$(SAM_VENV)/bin/cfn-lint infra/aws/template.yaml
	$(SAM_ENV) $(SAM_VENV)/bin/sam validate --lint --template-file infra/aws/template.yaml

clean:
	rm -rf $(VENV) $(SAM_VENV) var .pytest_cache
