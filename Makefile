# lrrun's developer entry points. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=
FASHION_SYSTEM_DIR := /usr/share/datasets/fashion-mnist

.DEFAULT_GOAL := help
.PHONY: help install data corpus run test test-slow test-full lint format bench clean generated docs pictures

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "} {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed ## create .venv and install lrrun with the pinned torch/torchvision pair

data: ## make sure FashionMNIST is on this machine (Debian's dataset-fashion-mnist, via apt)
	@if [ -f $(FASHION_SYSTEM_DIR)/train-images-idx3-ubyte.gz ] || [ -f data/FashionMNIST/raw/train-images-idx3-ubyte ]; then \
	  echo "FashionMNIST: found"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist; \
	elif command -v apt-get >/dev/null && sudo -n true 2>/dev/null; then \
	  sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist; \
	else \
	  echo "FashionMNIST: not found; install Debian's dataset-fashion-mnist, put the IDX files in data/FashionMNIST/raw, or let lrrun try torchvision's download"; \
	fi

corpus: ## plain English text for language-model benchmarks (Debian's fortunes, via apt)
	@if [ -d /usr/share/games/fortunes ]; then \
	  echo "fortunes: found"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q fortunes; \
	elif command -v apt-get >/dev/null && sudo -n true 2>/dev/null; then \
	  sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q fortunes; \
	else \
	  echo "fortunes: not found; install Debian's fortunes package (or pass --root to benchmarks/nanogpt.py)"; \
	fi

run: install data ## train: make run ARGS="scheduler=step_lr optimizer=adam"
	$(BIN)/lrrun $(ARGS)

test: install data ## the test suite without slow tests (7-9 minutes on 2 cores)
	$(BIN)/pytest -m "not slow"

test-slow: install data ## only the slow tests (real FashionMNIST, SIGTERM, wheel, compile, launchers, extra cases)
	$(BIN)/pytest -m slow

test-full: install data ## every test
	$(BIN)/pytest

generated: install ## rewrite what is written from the code's declarations (conf/trainer/default.yaml)
	$(BIN)/python -m lrrun.config.reference yaml > conf/trainer/default.yaml

docs: install ## build the docs site into site/ (mkdocs --strict: a broken link, anchor or page fails)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

pictures: install data ## remake the docs' pictures from real runs (docs/pictures.py; ~10 min on 2 cores)
	$(BIN)/python docs/pictures.py $(ARGS)

lint: install ## ruff lint + format check
	$(BIN)/ruff check lrrun tests benchmarks hydra_plugins docs/*.py
	$(BIN)/ruff format --check lrrun tests benchmarks hydra_plugins docs/*.py

format: install ## ruff fix + format
	$(BIN)/ruff check --fix lrrun tests benchmarks hydra_plugins
	$(BIN)/ruff format lrrun tests benchmarks hydra_plugins

bench: install data corpus ## lrrun vs the tutorial loop (both models, 5 epochs, ~15 min on 2 CPU cores), start-up and sweep cost, trackers cost, PNG folders vs a hand loop, 2 DDP processes vs 1, nanoGPT's CPU run vs its loop
	$(BIN)/python benchmarks/peer.py $(ARGS)
	$(BIN)/python benchmarks/sweep.py
	$(BIN)/python benchmarks/trackers.py
	$(BIN)/python benchmarks/image_folder.py
	$(BIN)/python benchmarks/ddp.py
	$(BIN)/python benchmarks/nanogpt.py

clean: ## remove the venv, caches and run outputs (keeps data/)
	rm -rf $(VENV) .pytest_cache .ruff_cache dist build outputs/*/ multirun
