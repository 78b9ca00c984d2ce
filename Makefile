# Round Table. `make run` and `make test` work on a fresh clone with Python 3.11 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint messages bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/roundtable run --or-demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# After changing user-visible strings: refresh the catalogs, then translate the new entries.
messages: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k N_ --no-location --sort-output \
		--project "Round Table" --width 100 -o locales/messages.pot .
	for locale in cs en uk; do \
		$(BIN)/pybabel update -i locales/messages.pot -d locales -l $$locale \
			--no-fuzzy-matching --ignore-obsolete --width 100; \
	done

# Benchmarks are not part of the test suite; each prints one JSON line (see README).
bench: $(STAMP)
	$(BIN)/python -m bench finder
	$(BIN)/python -m bench fanout
	$(BIN)/python -m bench load

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
