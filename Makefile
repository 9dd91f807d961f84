# The two commands a new user needs:
#   make demo   set up a virtualenv, then score the online-retail customers (real data) and print the top ones
#   make test   set up the same virtualenv, then lint and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
AS_OF ?= 2011-12-10
export CUSTOMER_AI_HOME ?= $(CURDIR)/var

.PHONY: demo test lint format backtest clean

$(BIN)/customer-ai: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "customer-ai needs Python 3.11 or newer (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

examples/online_retail/events.parquet: examples/online_retail/online_retail.parquet examples/online_retail/prepare.py | $(BIN)/customer-ai
	$(BIN)/python examples/online_retail/prepare.py

demo: $(BIN)/customer-ai examples/online_retail/events.parquet
	$(BIN)/customer-ai run instances/repurchase_30d.yaml --as-of $(AS_OF) --top 5 --scores-out $(CUSTOMER_AI_HOME)/repurchase_30d_scores.csv

test: $(BIN)/customer-ai
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

backtest: $(BIN)/customer-ai
	$(BIN)/customer-ai -q backtest instances/repurchase_30d.yaml --as-of 2011-09-01 --as-of 2011-10-01
	$(BIN)/customer-ai -q backtest instances/churn_60d.yaml --as-of 2011-09-01 --as-of 2011-10-01

format: $(BIN)/customer-ai
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
