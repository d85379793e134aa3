VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test setup setup-test lint
demo: setup             ## pretrain on Fashion-MNIST without labels, bench with few labels, write a report
	$(BIN)/unlabeled demo --out demo $(DEMO_ARGS)

test: setup-test        ## install what the tests need and run them (.ci/run calls this)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q

setup:
	scripts/setup.sh

setup-test:
	scripts/setup.sh test
