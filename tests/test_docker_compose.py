"""docker-compose.yml: what can be checked without a Docker engine."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml
from airflow_support import airflow_env, run_airflow

from conftest import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_services_are_the_airflow_3_components_and_postgres() -> None:
    assert sorted(SERVICES) == [
        "airflow-apiserver",
        "airflow-dag-processor",
        "airflow-init",
        "airflow-scheduler",
        "airflow-triggerer",
        "airflow-worker-1",
        "airflow-worker-2",
        "postgres",
        "redis",
    ]
    commands = {name: service.get("command") for name, service in SERVICES.items()}
    assert commands["airflow-apiserver"][:2] == ["airflow", "api-server"]
    assert commands["airflow-init"] == ["airflow", "db", "migrate"]


def test_every_referenced_file_exists() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source}"
        if "build" in service:
            assert (ROOT / service["build"] / "Dockerfile").exists()
    dockerfile = (ROOT / "Dockerfile").read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY ") and not line.startswith("COPY --from="):  # --from: another stage's files
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), line


def test_the_image_installs_the_built_wheel_and_ships_no_package_source() -> None:
    stages = (ROOT / "Dockerfile").read_text().split("\nFROM ")[1:]
    assert len(stages) == 2  # the wheel is built in the first stage, installed in the second
    assert "RUN pip wheel --no-deps --wheel-dir /wheels ." in stages[0]
    final = stages[1]
    assert "COPY --from=wheel /wheels /wheels" in final
    assert '"$(ls /wheels/customer_ai-*.whl)[airflow,postgres,s3]"' in final
    copied = [line.split()[1] for line in final.splitlines() if line.startswith("COPY ") and "--from" not in line]
    assert copied == ["dags", "plugins", "instances", "examples"]  # the package comes from the wheel alone
    assert [p.name for p in (ROOT / "plugins").iterdir()] == ["README.md"]
    assert (ROOT / "dags" / "customer_ai_dags.py").read_text().count("\n") <= 10  # the documented few lines


def test_airflow_settings_name_real_options() -> None:
    package = Path(importlib.util.find_spec("airflow").origin).parent  # found, not imported: no ~/airflow made
    template = yaml.safe_load((package / "config_templates" / "config.yml").read_text())
    from airflow.providers.celery.get_provider_info import get_provider_info

    template.update(get_provider_info()["config"])  # the [celery] section comes with the Celery provider
    environment = SERVICES["airflow-apiserver"]["environment"]
    dockerfile_env = re.findall(r"(AIRFLOW__\w+)=", (ROOT / "Dockerfile").read_text())
    for key in [*environment, *dockerfile_env]:
        if key.startswith("AIRFLOW__"):
            _, section, option = key.split("__", 2)
            assert option.lower() in template[section.lower()]["options"], key


def test_store_connection_gives_a_postgres_address(monkeypatch: pytest.MonkeyPatch) -> None:
    from customer_ai_airflow.connections import store_address

    raw = SERVICES["airflow-apiserver"]["environment"]["AIRFLOW_CONN_CUSTOMER_AI_STORE"]
    monkeypatch.setenv("AIRFLOW_CONN_CUSTOMER_AI_STORE", raw)
    assert store_address() == ("postgresql://airflow:airflow@postgres:5432/customer_ai", "customer_ai")


def test_the_celery_profile_adds_redis_and_two_workers_of_the_same_image() -> None:
    profiled = {name: service["profiles"] for name, service in SERVICES.items() if "profiles" in service}
    assert profiled == {"redis": ["celery"], "airflow-worker-1": ["celery"], "airflow-worker-2": ["celery"]}
    workers = [SERVICES["airflow-worker-1"], SERVICES["airflow-worker-2"]]
    assert [w["command"] for w in workers] == [
        ["airflow", "celery", "worker", "--celery-hostname", "worker-1@%h"],
        ["airflow", "celery", "worker", "--celery-hostname", "worker-2@%h"],
    ]
    assert [w["hostname"] for w in workers] == ["airflow-worker-1", "airflow-worker-2"]  # distinct, for the logs
    for worker in workers:
        assert worker["image"] == SERVICES["airflow-scheduler"]["image"]
        assert worker["environment"] == SERVICES["airflow-scheduler"]["environment"]
        assert worker["volumes"] == SERVICES["airflow-scheduler"]["volumes"]  # one home: the partitions' run folder
        assert worker["depends_on"]["redis"] == {"condition": "service_healthy"}
    environment = SERVICES["airflow-scheduler"]["environment"]
    assert environment["AIRFLOW__CORE__EXECUTOR"] == "${CUSTOMER_AI_EXECUTOR:-LocalExecutor}"
    assert environment["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0"
    assert environment["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + environment["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert (
        "CUSTOMER_AI_EXECUTOR=CeleryExecutor docker compose --profile celery up"
        in (ROOT / "docker-compose.yml").read_text()
    )


@pytest.mark.parametrize(
    "service",
    [
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker-1",
    ],
)
def test_the_same_commands_run_outside_docker(service: str, tmp_path: Path) -> None:
    command = SERVICES[service]["command"]
    words = 3 if command[1] == "celery" else 2  # airflow celery worker
    result = run_airflow(airflow_env(tmp_path, ROOT / "instances"), *command[1:words], "--help")
    assert result.returncode == 0, result.stderr[-2000:]
