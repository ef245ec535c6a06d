# Shelfwise: `make demo` runs the nightly pipeline end to end on embedded defaults; `make test` runs the suite.
# Both create .venv and install the pinned set on first use; later runs reuse it.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.lock | cksum | cut -d' ' -f1)

.PHONY: help install demo approve airflow celery test browser lint lock bench-env clean

help:
	@echo "make demo     generate a retail world and run retail_nightly end to end"
	@echo "make approve  the demo planner approves the lines waiting at the gate"
	@echo "make airflow  airflow standalone on http://localhost:8080 with the demo users"
	@echo "make celery   the demo on the CeleryExecutor: PostgreSQL, Redis, 2 workers (Ctrl-C stops it)"
	@echo "make test     the whole test suite (unit, DAG integrity, integration, e2e)"
	@echo "make browser  one-time setup for the browser tests: Debian's chromium (apt-get, as root)"
	@echo "make lint     ruff, including the Airflow 3 rules"
	@echo "make lock     re-resolve requirements.lock from requirements*.txt"
	@echo "make bench-env  .venv-bench for the forecasting benchmarks (statsforecast needs pandas<3)"

$(STAMP): requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check uv
	$(VENV)/bin/uv pip install -q --python $(PY) -r requirements.lock
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

demo: install
	$(PY) scripts/shelfwise.py demo

approve: install
	$(PY) scripts/shelfwise.py approve $(if $(APPROVER),--user $(APPROVER),)

airflow: install
	$(PY) scripts/shelfwise.py airflow

# Needs PostgreSQL and Redis on this machine (README: "Celery on one machine"); CELERY_ARGS="--port 0 ..."
celery: install
	$(PY) scripts/shelfwise.py celery $(CELERY_ARGS)

test: install
	$(PY) scripts/shelfwise.py test

# Not part of `make test`, which never installs anything from the network. Needs no venv (stdlib only),
# so `sudo make browser` leaves no root-owned .venv behind.
browser:
	$(PYTHON) scripts/ensure_browser.py

lint: install
	$(VENV)/bin/ruff check .

lock: install
	$(VENV)/bin/uv pip compile --universal --python-version 3.11 requirements-dev.txt -o requirements.lock --no-header --quiet

bench-env: install
	@test -x .venv-bench/bin/python || $(PYTHON) -m venv .venv-bench
	$(VENV)/bin/uv pip install -q --python .venv-bench/bin/python -r requirements.lock
	$(VENV)/bin/uv pip install -q --python .venv-bench/bin/python -r requirements-bench.txt

clean:
	rm -rf data .airflow .airflow-test test-output
