VENV ?= .venv
BIN := $(VENV)/bin
# test processes (pytest-xdist; each file's tests stay in one, its module fixtures made once):
# one per core of CI's 2-core machine; `make test TEST_WORKERS=4` on a larger one
TEST_WORKERS ?= 2

.PHONY: demo test setup setup-test lint
demo: setup             ## pretrain on Fashion-MNIST without labels, bench with few labels, write a report
	$(BIN)/unlabeled demo --out demo $(DEMO_ARGS)

test: setup-test        ## install what the tests need and run them (.ci/run calls this)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

setup:
	scripts/setup.sh

setup-test:
	scripts/setup.sh test
