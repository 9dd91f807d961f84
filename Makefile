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
# the examples' schedules end with their data (end_date 2011-12-11): unpaused, they schedule nothing, and a user
# triggers one with the 2011 date its form offers
demo airflow: export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION = False
demo airflow: export CUSTOMER_AI_INSTANCES = $(CURDIR)/instances
demo airflow: export GX_ANALYTICS_ENABLED = False

.PHONY: demo test lint format tune backtest airflow benchmark bench-scale compat clean

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
	@# as of AS_OF through the run's configuration, as the trigger form does: the run is dated when it runs
	@$(BIN)/airflow db migrate > $(VAR)/demo-airflow.log 2>&1 || (tail -30 $(VAR)/demo-airflow.log; exit 1)
	@$(BIN)/airflow dags test customer_ai__repurchase_30d --conf '{"as_of": "$(AS_OF)"}' >> $(VAR)/demo-airflow.log 2>&1 \
		|| (grep -E "error|Error|failed" $(VAR)/demo-airflow.log | tail -30; exit 1)
	@$(BIN)/customer-ai show instances/repurchase_30d.yaml --as-of $(AS_OF) --top 5

test: $(BIN)/customer-ai
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

# Airflow's components start each other by name: the virtualenv's bin must be on their PATH
airflow: export PATH := $(abspath $(BIN)):$(PATH)
airflow: $(BIN)/customer-ai examples/online_retail/events.parquet
	@echo "Airflow UI: http://localhost:$${AIRFLOW__API__PORT:-8080}, user admin, password in $(AIRFLOW_HOME)/simple_auth_manager_passwords.json.generated"
	$(BIN)/airflow standalone

# The out-of-time evaluation of docs/evaluation.md on the frozen split of examples/evaluation.yaml: three real data
# sets (two fetched from PyPI), two goals each. `make tune` back-tests the tuning dates (choose a method there, as
# often as needed); `make backtest` the reported dates, whose outcome windows all start after every tuning window
# ends (measured once, when a change of method is finished). Tables on stdout, every metric as JSON in
# var/evaluation/tuning or var/evaluation/reported.
tune: $(BIN)/customer-ai examples/online_retail/events.parquet
	$(BIN)/python examples/evaluate.py tuning

backtest: $(BIN)/customer-ai examples/online_retail/events.parquet
	$(BIN)/python examples/evaluate.py reported
	$(BIN)/python examples/evaluate.py checks

# The oldest Airflow of the range pyproject.toml declares (apache-airflow>=3.2,<4), on demand: a virtualenv of its
# own with the project and that Airflow, then the tests that run Airflow (the DAG factory, the operators and their
# settings, real `airflow dags test` runs, the served view). CI tests the newest; README, "Deploying into your
# Airflow", says when this last passed.
COMPAT_AIRFLOW ?= 3.2.0
# packages that Airflow 3.2.0 needs older than pip picks today (its constraint files pin them): with FastAPI 0.137 or
# newer its API server does not start ("Model 'TITerminalStatePayload' needs a discriminator field"); Airflow 3.3
# declares the same cap itself. The S3 stack is pinned to the versions CI resolves: without, pip's resolver did not
# settle within 10 minutes for 3.2.0 (aiobotocore pins botocore to a narrow range)
COMPAT_PINS ?= 'fastapi<0.137' botocore==1.43.117 boto3==1.43.117 aiobotocore==3.10.0 s3fs==2026.9.0 moto==5.2.6
COMPAT_VENV ?= $(VAR)/compat-venv
COMPAT_TESTS ?= tests/test_dags.py tests/test_operators.py tests/test_settings.py tests/test_parse_cache.py \
	tests/test_airflow_runs.py tests/test_airflow_ui.py tests/test_airflow_services.py
compat:
	$(PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/pip install --quiet --upgrade pip
	$(COMPAT_VENV)/bin/pip install --quiet -e '.[dev]' "apache-airflow==$(COMPAT_AIRFLOW)" $(COMPAT_PINS)
	$(COMPAT_VENV)/bin/python -c 'import airflow; print("Airflow", airflow.__version__)'
	$(COMPAT_VENV)/bin/pytest $(COMPAT_TESTS)

benchmark: $(BIN)/customer-ai
	$(BIN)/python bench/dag_parse.py

# A whole run on generated logs (docs/benchmarks.md, "Scale: a whole run"), e.g. make bench-scale SIZES="300k" REPEATS=1
SIZES ?= 10k 100k
REPEATS ?= 3
bench-scale: $(BIN)/customer-ai
	$(BIN)/python bench/scale.py $(SIZES) --repeats $(REPEATS)

format: $(BIN)/customer-ai
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
