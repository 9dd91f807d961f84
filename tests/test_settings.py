"""The tasks' Airflow settings: retries, time limit, pool of the heavy steps, priority; from the environment."""

from __future__ import annotations

import datetime as dt

import pytest

from customer_ai_airflow.settings import TaskSettings


def test_the_defaults_suit_a_small_deployment() -> None:
    settings = TaskSettings.from_environment({})
    assert settings == TaskSettings()
    assert settings.default_args() == {
        "owner": "customer-ai",
        "retries": 2,
        "retry_delay": dt.timedelta(seconds=60),
        "retry_exponential_backoff": True,
        "max_retry_delay": dt.timedelta(minutes=10),
        "execution_timeout": dt.timedelta(hours=3),
        "priority_weight": 1,
    }
    assert settings.heavy_pool is None  # Airflow's default pool: a pool that does not exist would hold tasks back


def test_the_environment_sets_every_setting() -> None:
    env = {
        "CUSTOMER_AI_RETRIES": "4",
        "CUSTOMER_AI_RETRY_DELAY_SECONDS": "15",
        "CUSTOMER_AI_EXECUTION_TIMEOUT_MINUTES": "90",
        "CUSTOMER_AI_HEAVY_POOL": " customer_ai_heavy ",
        "CUSTOMER_AI_PRIORITY_WEIGHT": "5",
    }
    assert TaskSettings.from_environment(env) == TaskSettings(
        retries=4,
        retry_delay=dt.timedelta(seconds=15),
        execution_timeout=dt.timedelta(minutes=90),
        heavy_pool="customer_ai_heavy",
        priority_weight=5,
    )
    assert TaskSettings.from_environment({"CUSTOMER_AI_EXECUTION_TIMEOUT_MINUTES": "0"}).execution_timeout is None


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CUSTOMER_AI_RETRIES", "two", "CUSTOMER_AI_RETRIES='two': not a number"),
        (
            "CUSTOMER_AI_EXECUTION_TIMEOUT_MINUTES",
            "-5",
            "CUSTOMER_AI_EXECUTION_TIMEOUT_MINUTES='-5': must be at least 0",
        ),
        ("CUSTOMER_AI_PRIORITY_WEIGHT", "0", "CUSTOMER_AI_PRIORITY_WEIGHT='0': must be at least 1"),
    ],
)
def test_a_bad_value_names_its_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        TaskSettings.from_environment({name: value})
