# The README's two commands: `make demo` (main job on the built-in fake providers) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint docs validate bench clean

$(BIN)/tarash-router: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# An editable install writes no bytecode (and this machine sets PYTHONDONTWRITEBYTECODE):
	# compile once, as installing a wheel would, so imports do not recompile every run.
	$(BIN)/python -m compileall -q tarash_router
	touch $@

demo: $(BIN)/tarash-router
	$(BIN)/tarash-router demo

test: $(BIN)/tarash-router
	$(BIN)/python -m pytest -q
	# The tests that exercise the wire once more on httpx's own connection layer (aiohttp's is the default).
	TARASH_TRANSPORT=httpx $(BIN)/python -m pytest -q tests/test_faults.py tests/test_hardening_http.py \
		tests/test_fal_engine.py tests/test_lifecycle.py tests/test_replicate.py tests/test_secrets_all_providers.py \
		tests/test_status_stream.py
	$(BIN)/lint-imports --no-cache   # the layer contracts in pyproject.toml (docs/architecture.md)
	$(MAKE) --no-print-directory lint docs

# The linter over everything, and the type checker over the whole package, strict on the public API
# ([tool.ruff], [tool.mypy]).
lint: $(BIN)/tarash-router
	$(BIN)/ruff check tarash_router tests benchmarks docs/hooks
	$(BIN)/mypy tarash_router

# The documentation site into site/ (not committed); any warning (a broken link or anchor, a
# docstring mkdocstrings cannot read) fails the build. Material's notice about MkDocs 2 is not one.
docs: $(BIN)/tarash-router
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --config-file - --site-dir site < docs/mkdocs.yml   # not --quiet: it hides the warnings --strict counts

validate: $(BIN)/tarash-router
	$(BIN)/tarash-router validate provider_specs routes

bench: $(BIN)/tarash-router
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache site
