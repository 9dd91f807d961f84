"""The run lock's rules: who may take a lease, and how a held one is described."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys

import pytest

from customer_ai.store.lease import RunLease, busy_message, dag_scope, lease_verdict, process_scope

NOW = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)


def lease(attempt: str = "af-other", scope: str = "dag:customer_ai__unit", expires_in: float = 300) -> RunLease:
    return RunLease(
        instance="unit",
        attempt=attempt,
        origin="Airflow DAG run customer_ai__unit / manual__1, task train",
        scope=scope,
        acquired_at=NOW - dt.timedelta(minutes=20),
        renewed_at=NOW - dt.timedelta(seconds=90),
        expires_at=NOW + dt.timedelta(seconds=expires_in),
    )


def dead_pid() -> int:
    """Return the id of a process that has just ended."""
    command = [sys.executable, "-c", "import os; print(os.getpid())"]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return int(done.stdout)


@pytest.mark.parametrize(
    ("held", "verdict"),
    [
        (None, "take"),
        (lease(expires_in=0), "take"),  # the expiry is half-open: at expires_at it is free
        (lease(expires_in=-1), "take"),
        (lease(expires_in=1), "refuse"),
        (lease(attempt="af-mine"), "renew"),
        (lease(attempt="af-mine", expires_in=-60), "take"),  # expired: taken again, as a new lease
        (lease(scope=f"process:{platform.node()}:{os.getpid()}"), "refuse"),  # alive
        (lease(scope=f"process:some-other-host:{os.getpid()}"), "refuse"),  # cannot be checked from here
        (lease(scope="process:garbled"), "refuse"),
    ],
)
def test_who_may_take_a_lease(held: RunLease | None, verdict: str) -> None:
    assert lease_verdict(held, "af-mine", NOW) == verdict


def test_a_lease_whose_process_is_gone_from_this_host_is_taken_at_once() -> None:
    assert lease_verdict(lease(scope=f"process:{platform.node()}:{dead_pid()}"), "cli-mine", NOW) == "take"


def test_scopes_name_the_process_or_the_dag() -> None:
    assert process_scope() == f"process:{platform.node()}:{os.getpid()}"
    assert dag_scope("customer_ai__unit") == "dag:customer_ai__unit"


def test_a_held_lease_says_who_since_when_and_until_when() -> None:
    assert busy_message(lease(), NOW) == (
        "another run of unit is in progress: attempt af-other (Airflow DAG run customer_ai__unit / manual__1, task "
        "train) holds it since 2026-12-05 11:40:00 UTC, renewed 90 s ago; it expires at 2026-12-05 12:05:00 UTC "
        "unless renewed. Wait for it to finish, or, if it is certainly dead, free the lock with "
        "`customer-ai unlock unit`"
    )
    stale = lease()._replace(renewed_at=NOW - dt.timedelta(minutes=7, seconds=59))
    assert "renewed 7 min ago" in stale.describe(NOW)
