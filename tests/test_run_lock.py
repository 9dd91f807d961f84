"""Holding a run lock while working: renewed in the background, released at the end, lost when taken over."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from customer_ai import run_lock
from customer_ai.store import SQLiteStore
from customer_ai.store.lease import LockLostError, RunInProgressError

SCOPE = "dag:customer_ai__unit"


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(tmp_path / "store.sqlite")


def test_lock_minutes_come_from_the_environment() -> None:
    assert run_lock.lock_minutes({}) == 10.0
    assert run_lock.lock_minutes({"CUSTOMER_AI_LOCK_MINUTES": " 2.5 "}) == 2.5
    with pytest.raises(ValueError, match=r"CUSTOMER_AI_LOCK_MINUTES='soon': not a number"):
        run_lock.lock_minutes({"CUSTOMER_AI_LOCK_MINUTES": "soon"})
    with pytest.raises(ValueError, match=r"CUSTOMER_AI_LOCK_MINUTES='0.5': must be at least 1"):
        run_lock.lock_minutes({"CUSTOMER_AI_LOCK_MINUTES": "0.5"})


def test_a_held_lock_is_renewed_while_working_and_released_at_the_end(store: SQLiteStore) -> None:
    minutes = 1 / 100  # 0.6 s, renewed every 0.15 s
    with run_lock.holding(store, "unit", "cli-aaaa", "a test", SCOPE, minutes=minutes) as held:
        time.sleep(1.5)  # more than twice the lease: only renewals keep it
        lease, now = store.lock_holder("unit")
        assert lease.attempt == "cli-aaaa"
        assert lease.expires_at > now
        assert lease.renewed_at > held.lease.renewed_at
        with pytest.raises(RunInProgressError):
            store.take_lock("unit", "cli-bbbb", "another", SCOPE, minutes=1)
        held.check()  # still ours
    assert store.lock_holder("unit")[0] is None


def test_a_task_of_a_dag_run_leaves_the_lock_to_the_next_task(store: SQLiteStore) -> None:
    with run_lock.holding(store, "unit", "af-aaaa", "task 1", SCOPE, minutes=1, release=False):
        pass
    assert store.lock_holder("unit")[0].attempt == "af-aaaa"


def test_a_lock_freed_by_hand_is_lost_and_said_so(store: SQLiteStore) -> None:
    with run_lock.holding(store, "unit", "cli-aaaa", "a test", SCOPE, minutes=1 / 100) as held:
        store.release_lock("unit")  # `customer-ai unlock`
        deadline = time.monotonic() + 5
        while held.lost is None and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(LockLostError, match=r"the run lock of unit is no longer held by cli-aaaa: this run stops"):
            held.check()


def test_the_first_task_waits_for_the_lock_and_gives_up_after_its_wait(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_lock, "POLL_SECONDS", 0.1)
    store.take_lock("unit", "af-other", "another run", SCOPE, minutes=10)
    started = time.monotonic()
    with pytest.raises(RunInProgressError, match="attempt af-other"):
        run_lock.take(store, "unit", "af-aaaa", "task 1", SCOPE, minutes=1, wait_seconds=0.5)
    assert 0.3 <= time.monotonic() - started < 3

    threading.Timer(0.3, store.release_lock, ("unit", "af-other")).start()  # the other run ends meanwhile
    assert run_lock.take(store, "unit", "af-aaaa", "task 1", SCOPE, minutes=1, wait_seconds=5).attempt == "af-aaaa"
