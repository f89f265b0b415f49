# BoneScreen: `make demo` runs the main job on bundled data, `make test` runs the tests.
# Both create .venv and install what they need on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint clean

$(STAMP): ml/pyproject.toml pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# the CPU build of torch; an unpinned torch would pull a multi-GB CUDA build
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e "ml[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	bash scripts/demo.sh

lint: install
	$(BIN)/ruff check .

test: install lint
	$(BIN)/python -m pytest tests

clean:
	rm -rf $(VENV) demo-out
