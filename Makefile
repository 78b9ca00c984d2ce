# Round Table. `make run` and `make test` work on a fresh clone with Python 3.11 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# uv installs exactly what uv.lock says; it is itself installed, at the version pyproject.toml
# requires, into a small environment of its own.
UV_VERSION := 0.13.9
UV := .uv/bin/uv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: run test lint messages bench record-pdf install upgrade clean

$(UV):
	$(PYTHON) -m venv .uv
	.uv/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --extra dev --compile-bytecode --python "$$(command -v $(PYTHON))" --quiet
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/roundtable run --or-demo

# In parallel, three workers per core: most of a test's time is spent waiting for a process or a
# reply (on 2 cores: 6 workers 2.8 min, 4 workers 2.9 min, 8 workers 3.5 min, 2 workers 4 min). Many
# tests start `roundtable` processes: their code is imported from cached bytecode, whatever the
# shell says (PYTHONDONTWRITEBYTECODE would make each of them compile it all again, 3 s each).
test: $(STAMP)
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q -n $$($(BIN)/python -c "import os; print(3 * (os.cpu_count() or 1))")

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# After changing user-visible strings: refresh the catalogs, then translate the new entries.
messages: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k N_ -k NP_:1c,2 --no-location --sort-output \
		--project "Round Table" --width 100 -o locales/messages.pot .
	for locale in cs en uk; do \
		$(BIN)/pybabel update -i locales/messages.pot -d locales -l $$locale \
			--no-fuzzy-matching --ignore-obsolete --width 100; \
	done

# Benchmarks are not part of the test suite; each prints one JSON line (see docs/benchmarks.md).
bench: $(STAMP)
	$(BIN)/python -m bench finder
	$(BIN)/python -m bench fanout
	$(BIN)/python -m bench load

# The record document as LibreOffice lays it out: a sample draft and final record to PDF and one PNG
# per page in record-pdf/, to look at (A4, margins, tables across pages, the signature lines). Not
# part of `make test`; needs Debian's libreoffice-writer-nogui and poppler-utils.
record-pdf: $(STAMP)
	$(BIN)/python -m bench.record_pdf record-pdf

# A server's install: the locked versions without the development tools.
install: | $(UV)
	$(UV) sync --locked --no-dev --compile-bytecode --python "$$(command -v $(PYTHON))" --quiet

# Refresh uv.lock to the newest releases pyproject.toml allows; then `make test` and commit it.
upgrade: | $(UV)
	$(UV) lock --upgrade --python "$$(command -v $(PYTHON))"

clean:
	rm -rf $(VENV) .uv .pytest_cache .mypy_cache .ruff_cache .hypothesis .import_linter_cache
