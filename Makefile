# Two entry points a new user needs; both are idempotent and set everything up themselves.
#   make run   install into .venv, then run the main job on the embedded defaults
#   make test  install into .venv (with test extras), then run the test suite
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install run test bench clean

install:
	bash scripts/bootstrap.sh dev,onnx

run: install
	bash scripts/run.sh

test: install
	$(PY) -m pytest -q

bench: install
	$(VENV)/bin/remask bench sampler --json

clean:
	rm -rf $(VENV) *.egg-info
