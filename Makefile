# Two commands do all the setup: `make demo` and `make test`. Each creates its
# virtual environment (.venv-demo, .venv) on first use (no root needed) and reinstalls
# when pyproject.toml changes or a module is added or removed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# The development install is editable in setuptools' strict mode: a tree of
# links under build/ that maps fsm/, channels/ and diagrams/ onto the one
# import root, linkstate, visible to mypy as well as to Python. That tree
# holds one link per file, so adding or removing a module must reinstall;
# MODULES is the list the stamp depends on.
MODULES := $(sort $(shell find fsm channels diagrams -name '*.py' -o -name 'py.typed'))
MODULE_LIST := $(VENV)/.modules

.PHONY: demo test lint check-all bench clean FORCE

$(MODULE_LIST): FORCE
	@mkdir -p $(VENV)
	@echo '$(MODULES)' | cmp -s - $@ || echo '$(MODULES)' > $@

$(STAMP): pyproject.toml $(MODULE_LIST)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]' --config-settings editable_mode=strict
	touch $(STAMP)

# The demo gets its own environment with the base package only (no test extra):
# a plain, non-editable install of what a user of linkstate gets.
DEMO_VENV  := .venv-demo
DEMO_STAMP := $(DEMO_VENV)/.installed

$(DEMO_STAMP): pyproject.toml $(MODULES)
	$(PYTHON) -m venv $(DEMO_VENV)
	$(DEMO_VENV)/bin/python -m pip install --quiet .
	touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(DEMO_VENV)/bin/linkstate demo

test: $(STAMP)
	$(BIN)/python -P -m pytest

# Every benchmark at full size (under 5 minutes on 2 cores); see docs/benchmarks.md.
bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(DEMO_VENV) build .pytest_cache .mypy_cache .ruff_cache .hypothesis
