# The two commands the README promises. Both set up .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test setup lint

$(BIN)/logpipe: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/logpipe

setup: $(BIN)/logpipe

# Run the main job on the bundled sample logs against local servers.
demo: setup
	$(BIN)/logpipe demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check logpipe tests bench sample_logs
	$(BIN)/mypy

# Gates + the whole suite (unit and integration; servers are started by fixtures).
# pytest exits 5 when it collects nothing, which fails this target too.
test: lint
	$(BIN)/pytest -q
