# Corral — every command a user or CI needs. `make test` is what CI runs.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.PHONY: install proto image lint typecheck pytest test serve run fuzz bench clean

install:  ## install Corral with the daemon, dev and integration extras
	$(PIP) install -q --disable-pip-version-check -e '.[daemon,dev,smolagents,bench]'

proto:  ## regenerate the committed gRPC modules from proto/executor.proto
	$(PYTHON) -m executor.protogen

image: install  ## build the sandbox image (debootstrap when no base can be pulled)
	$(PYTHON) -m executor.cli build-image --prune

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

typecheck:
	$(PYTHON) -m mypy

pytest:
	$(PYTHON) -m pytest -q -rfE

test: install image lint typecheck pytest  ## the whole suite: lint, types, unit, Docker, daemon, fuzz

serve: image  ## run the daemon on 127.0.0.1:50051
	$(PYTHON) -m executor.cli serve

run: image  ## the main job: start the daemon, show `corral exec` and `corral demo` against it
	PYTHON=$(PYTHON) scripts/run.sh

fuzz: image  ## long fuzz run against a fresh daemon (report under fuzz-report/)
	$(PYTHON) -m executor.cli fuzz --count 5000 --budget 1800

bench: image  ## all benchmarks, one Markdown report under benchmarks/results/
	$(PYTHON) benchmarks/report.py

clean:
	-docker ps -aq --filter label=io.corral.managed=1 | xargs -r docker rm -f
