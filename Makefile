# The few commands people run. `make demo` and `make test` are the README's two set-up commands.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= out/demo
PYTEST_ARGS ?=
# the annotation platform on this machine: the machine's Postgres and Redis, everything else started here
STACK_DB ?= postgresql+psycopg://postgres@127.0.0.1:5432/giqa_stack
STACK_BROKER ?= redis://127.0.0.1:6379/0
DETECT_WORKERS ?= 1

.PHONY: install demo test test-all lint audit services bench stack stack-stop

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[all]"
	@$(BIN)/python scripts/check_env.py

demo: install
	$(BIN)/giqa demo --out $(OUT) --overwrite
	@echo "open $(OUT)/report.html (results) and $(OUT)/bench/preview.html (the bench's ground truth)"

services:
	@bash scripts/ensure_services.sh
	@bash scripts/ensure_browser.sh

test: install services
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-all: install services
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check shared tests bench services examples
	$(BIN)/ruff format --check shared tests bench services examples
	$(BIN)/mypy

# known vulnerabilities of the installed packages (pip-audit against PyPI; skipped with the reason offline;
# exceptions with their reasons in audit-ignore.txt)
audit: install
	$(BIN)/python scripts/audit_deps.py

bench: install
	$(BIN)/python bench/synth_speed.py

stack: install services
	GIQA_DB__URL=$${GIQA_DB__URL:-$(STACK_DB)} GIQA_QUEUE__BROKER_URL=$${GIQA_QUEUE__BROKER_URL:-$(STACK_BROKER)} \
		$(BIN)/giqa stack up --detect-workers $(DETECT_WORKERS)

stack-stop:
	$(BIN)/giqa stack down
