# The two commands: `make demo` and `make test`. Both build .venv from nothing on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck bench postgres browser clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/voicebot demo

test: $(STAMP) postgres browser lint
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench migrations
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP) postgres
	$(BIN)/python bench/dialer.py --json

# The PostgreSQL-backed tests need a server on 127.0.0.1:5432 (VOICEBOT_TEST_POSTGRES_URL to change).
postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || { \
	  if command -v pg_ctlcluster >/dev/null; then \
	    pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; \
	  else \
	    echo "PostgreSQL is not running on 127.0.0.1:5432 (needed by make test)"; exit 1; \
	  fi; }

# The dashboard test drives Debian's chromium (playwright's own browser download is not used).
browser:
	@command -v chromium >/dev/null || { \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    apt-get install -y -q chromium >/dev/null || { apt-get update -q && apt-get install -y -q chromium; }; \
	  else \
	    echo "the dashboard test needs Chromium: install Debian's chromium package"; exit 1; \
	  fi; }

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache
