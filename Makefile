# The two commands a new user needs:
#   make demo   set up a virtualenv, run the repurchase instance's DAG through Airflow (embedded SQLite metadata and
#               store, real online-retail data) and print where the scores and artifacts are, with the top profiles
#   make test   set up the same virtualenv, then lint and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
AS_OF ?= 2011-12-11
VAR := $(CURDIR)/var

# Airflow and customer-ai on the embedded default, everything under var/ (for demo, airflow, show)
demo airflow: export CUSTOMER_AI_HOME = $(VAR)/customer-ai
demo airflow: export AIRFLOW_HOME = $(VAR)/airflow
demo airflow: export AIRFLOW__CORE__DAGS_FOLDER = $(CURDIR)/dags
demo airflow: export AIRFLOW__CORE__PLUGINS_FOLDER = $(CURDIR)/plugins
demo airflow: export AIRFLOW__CORE__LOAD_EXAMPLES = False
demo airflow: export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION = False
demo airflow: export CUSTOMER_AI_INSTANCES = $(CURDIR)/instances
demo airflow: export GX_ANALYTICS_ENABLED = False

.PHONY: demo test lint format backtest airflow benchmark clean

$(BIN)/customer-ai: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "customer-ai needs Python 3.11 or newer (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

examples/online_retail/events.parquet: examples/online_retail/online_retail.parquet examples/online_retail/prepare.py | $(BIN)/customer-ai
	$(BIN)/python examples/online_retail/prepare.py

demo: $(BIN)/customer-ai examples/online_retail/events.parquet
	@mkdir -p $(VAR)
	@echo "Airflow: running DAG customer_ai__repurchase_30d as of $(AS_OF) (log: var/demo-airflow.log)"
	@$(BIN)/airflow db migrate > $(VAR)/demo-airflow.log 2>&1 || (tail -30 $(VAR)/demo-airflow.log; exit 1)
	@$(BIN)/airflow dags test customer_ai__repurchase_30d $(AS_OF) >> $(VAR)/demo-airflow.log 2>&1 \
		|| (grep -E "error|Error|failed" $(VAR)/demo-airflow.log | tail -30; exit 1)
	@$(BIN)/customer-ai show instances/repurchase_30d.yaml --as-of $(AS_OF) --top 5

test: $(BIN)/customer-ai
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

airflow: $(BIN)/customer-ai examples/online_retail/events.parquet
	$(BIN)/airflow standalone

backtest: $(BIN)/customer-ai
	$(BIN)/customer-ai -q backtest instances/repurchase_30d.yaml --as-of 2011-09-01 --as-of 2011-10-01
	$(BIN)/customer-ai -q backtest instances/churn_60d.yaml --as-of 2011-09-01 --as-of 2011-10-01

benchmark: $(BIN)/customer-ai
	$(BIN)/python bench/dag_parse.py

format: $(BIN)/customer-ai
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
