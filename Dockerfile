# customer-ai with Airflow 3: the image every docker-compose service runs.
# Built from the wheel, as a deployment installs it: the first stage builds it, the second installs nothing else of
# the source tree but the DAG file, the empty plugins folder and the examples.
FROM python:3.11-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY customer_ai ./customer_ai
COPY customer_ai_airflow ./customer_ai_airflow
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    AIRFLOW_HOME=/opt/airflow \
    CUSTOMER_AI_HOME=/opt/customer-ai-home \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/customer-ai/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/customer-ai/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    CUSTOMER_AI_INSTANCES=/opt/customer-ai/instances \
    GX_ANALYTICS_ENABLED=False

WORKDIR /opt/customer-ai
COPY --from=wheel /wheels /wheels
# the package with its Airflow integration (the "Customer AI" view registers itself: the plugins folder stays
# empty) and the PostgreSQL store; Celery and Redis for the "celery" profile's executor
RUN pip install "$(ls /wheels/customer_ai-*.whl)[airflow,postgres,s3]" \
        "apache-airflow-providers-celery>=3.12,<4" "celery[redis]>=5.5,<5.7" \
    && mkdir -p "$AIRFLOW_HOME" "$CUSTOMER_AI_HOME"
COPY dags ./dags
COPY plugins ./plugins
COPY instances ./instances
COPY examples ./examples
