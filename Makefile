# Two entry points for a fresh machine: `make repro` (the pipeline) and `make test`.
# Each creates the local virtual environment .venv when missing or out of date.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
# dvc.yaml's commands say `python`: make it the environment's interpreter
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: repro test lint bench

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "mcis needs Python >= 3.11"'
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

repro: $(STAMP)
	$(VENV)/bin/dvc repro

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: $(STAMP)
	$(VENV)/bin/python -m bench.saliency_bench
	$(VENV)/bin/python -m bench.classifier_bench
	$(VENV)/bin/python -m bench.jitter_bench
	$(VENV)/bin/python -m bench.throughput_bench
	$(VENV)/bin/python -m bench.locmaps_bench
	$(VENV)/bin/python -m bench.crf_bench
	$(VENV)/bin/python -m bench.kernels_bench
	$(VENV)/bin/python -m bench.paper_cost
