# Two entry points a new user needs; both are idempotent and set everything up themselves.
#   make run   install into .venv, then run the main job on the embedded defaults
#   make test  install into .venv (with test extras), then run the test suite
#   make lint  ruff on the whole tree, mypy --strict on the model and pipeline packages
#              (refiner, drafter, workflows, backends), plain mypy on the rest
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install run test lint bench clean

install:
	bash scripts/bootstrap.sh dev,onnx

run: install
	bash scripts/run.sh

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy --strict
	$(VENV)/bin/mypy services client training bench lsp

bench: install
	$(VENV)/bin/remask bench sampler --json

clean:
	rm -rf $(VENV) *.egg-info
