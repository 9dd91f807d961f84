"""Holding an instance's run lock while working: take the lease, renew it in the background, say if it was lost.

The lease lives in the profile store (:mod:`customer_ai.store.lease`), so it keeps runs apart whichever machine
they run on.  ``customer-ai run`` holds it for the whole run; each task of a DAG run holds it while it runs (the
first task waits for it a while, as a DAG run queued behind another run should), and the run's commit releases
it.  ``CUSTOMER_AI_LOCK_MINUTES`` (default 10) is how long a lease lasts without renewal: a run whose process or
machine died leaves the instance locked that long at most (a command's run on the same machine: not at all).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from customer_ai.environment import number_setting
from customer_ai.progress import logger
from customer_ai.store.lease import LockLostError, RunInProgressError, RunLease

__all__ = ["LOCK_MINUTES_ENV", "Holding", "holding", "lock_minutes"]

LOCK_MINUTES_ENV = "CUSTOMER_AI_LOCK_MINUTES"
DEFAULT_LOCK_MINUTES = 10.0
POLL_SECONDS = 15.0  # how often a waiting first task looks at the lock again


def lock_minutes(environ: Mapping[str, str] | None = None) -> float:
    """Return how long a lease lasts without renewal: ``$CUSTOMER_AI_LOCK_MINUTES``, default 10, at least 1.

    Raises
    ------
    ValueError
        When the setting is not a number of at least 1 minute.
    """
    return number_setting(os.environ if environ is None else environ, LOCK_MINUTES_ENV, DEFAULT_LOCK_MINUTES, minimum=1)


class Holding:
    """A lease being held: renewed every quarter of its length by a background thread until :meth:`stop`."""

    def __init__(self, store: Any, lease: RunLease, minutes: float) -> None:  # noqa: ANN401 - a store
        self.store = store
        self.lease = lease
        self.minutes = minutes
        self.lost: str | None = None  # why the lease was lost, once it was
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"lease-{lease.instance}", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stopped.wait(self.minutes * 60 / 4):
            try:
                held = self.store.renew_lock(self.lease.instance, self.lease.attempt, minutes=self.minutes)
            except Exception as exc:  # the store unreachable for a moment: try again at the next beat
                logger.warning("could not renew the run lock of %s: %s", self.lease.instance, exc)
                continue
            if not held:  # released by the run's commit, or taken by another run after it expired
                if not self._stopped.is_set():
                    self.lost = f"the run lock of {self.lease.instance} is no longer held by {self.lease.attempt}"
                return

    def check(self) -> None:
        """Raise :class:`LockLostError` if the lease was lost while working."""
        if self.lost is not None:
            raise LockLostError(f"{self.lost}: this run stops (another run may have taken over the instance)")

    def stop(self) -> None:
        """Stop renewing (the lease itself stays: the commit or :func:`holding` releases it)."""
        self._stopped.set()
        self._thread.join(timeout=60)


def take(
    store: Any,  # noqa: ANN401 - a store
    instance: str,
    attempt: str,
    origin: str,
    scope: str,
    *,
    minutes: float,
    wait_seconds: float = 0.0,
) -> RunLease:
    """Take (or renew) the run lock, waiting up to ``wait_seconds`` for another run to free it.

    Raises
    ------
    RunInProgressError
        When another run still holds it after the wait; the message says who.
    """
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return store.take_lock(instance, attempt, origin, scope, minutes=minutes)
        except RunInProgressError as exc:
            if time.monotonic() + POLL_SECONDS > deadline:
                raise
            logger.info("waiting for the run lock of %s: %s", instance, exc)
            time.sleep(POLL_SECONDS)


@contextlib.contextmanager
def holding(
    store: Any,  # noqa: ANN401 - a store
    instance: str,
    attempt: str,
    origin: str,
    scope: str,
    *,
    minutes: float | None = None,
    wait_seconds: float = 0.0,
    release: bool = True,
) -> Iterator[Holding]:
    """Hold the run lock of ``instance`` for ``attempt`` while the block runs, renewing it in the background.

    With ``release`` (a whole run in one process), the lock is freed when the block ends, however it ends (the
    commit has freed it already when the run published); a DAG's task passes False, as the next task of its run
    takes the lock on.

    Raises
    ------
    RunInProgressError
        When another run holds the lock (after ``wait_seconds``).
    """
    minutes = lock_minutes() if minutes is None else minutes
    lease = take(store, instance, attempt, origin, scope, minutes=minutes, wait_seconds=wait_seconds)
    held = Holding(store, lease, minutes)
    try:
        yield held
    finally:
        held.stop()
        if release:
            with contextlib.suppress(Exception):  # the store gone: the lease expires by itself
                store.release_lock(instance, attempt)
