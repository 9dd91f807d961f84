"""The run lock of an instance: a lease held in the profile store, so it keeps runs apart across machines.

One row per instance in ``customer_ai_locks`` names the attempt that holds the instance, who it is (``origin``,
for messages), its *scope* and until when it holds it.  A holder renews its lease while it works; a lease not
renewed in time expires and may be taken by another attempt.  The scope says when a lease is known to be
abandoned before it expires:

- ``process:<host>:<pid>``: a command that holds the instance for the life of its process; when that process is
  gone from this host, the lease is taken at once (a killed run never blocks the next one).
- ``dag:<dag id>``: a DAG run, whose tasks (separate processes, possibly on several machines) take the lease in
  turn; only its expiry frees it.

The commit of a run checks, inside its transaction, that no other attempt holds the lease (fencing: a run that
lost its lease can never publish) and releases it.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
from typing import NamedTuple

__all__ = [
    "LockLostError",
    "RunInProgressError",
    "RunLease",
    "busy_message",
    "dag_scope",
    "lease_verdict",
    "process_scope",
]

PROCESS = "process:"
DAG = "dag:"


class RunInProgressError(RuntimeError):
    """Another attempt holds the run lock of the instance (the message says who, since when and until when)."""


class LockLostError(RuntimeError):
    """The attempt no longer holds the run lock it took: it expired and another attempt took it."""


class RunLease(NamedTuple):
    """One instance's lock row.

    Attributes
    ----------
    instance, attempt, origin, scope : str
        The instance; the attempt holding it; who that is, in words; its scope (see the module).
    acquired_at, renewed_at, expires_at : datetime.datetime
        When the attempt took it, last renewed it, and when it expires unless renewed (UTC).
    """

    instance: str
    attempt: str
    origin: str
    scope: str
    acquired_at: dt.datetime
    renewed_at: dt.datetime
    expires_at: dt.datetime

    def describe(self, now: dt.datetime) -> str:
        """Return who holds the lease and until when, in words."""
        return (
            f"attempt {self.attempt} ({self.origin}) holds it since {_stamp(self.acquired_at)}, renewed "
            f"{_ago(now - self.renewed_at)} ago; it expires at {_stamp(self.expires_at)} unless renewed"
        )


def process_scope() -> str:
    """Return the scope of a lease held by this process for its whole life."""
    return f"{PROCESS}{platform.node()}:{os.getpid()}"


def dag_scope(dag_id: str) -> str:
    """Return the scope of a lease held by the tasks of a DAG run of ``dag_id``."""
    return f"{DAG}{dag_id}"


def _gone(scope: str) -> bool:
    """Whether ``scope`` names a process of this host that no longer runs."""
    if not scope.startswith(PROCESS):
        return False
    host, _, pid = scope.removeprefix(PROCESS).rpartition(":")
    if host != platform.node() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it runs, as another user
        return False
    return False


def lease_verdict(held: RunLease | None, attempt: str, now: dt.datetime) -> str:
    """Return what ``attempt`` may do with the instance's lease ``held`` at ``now``.

    ``"take"``: nobody holds it, it expired, or its process is gone; ``"renew"``: the attempt holds it;
    ``"refuse"``: another attempt holds it.
    """
    if held is None or held.expires_at <= now or _gone(held.scope):
        return "take"
    return "renew" if held.attempt == attempt else "refuse"


def busy_message(held: RunLease, now: dt.datetime) -> str:
    """Return the message of :class:`RunInProgressError` for the lease ``held``."""
    return (
        f"another run of {held.instance} is in progress: {held.describe(now)}. Wait for it to finish, or, if it is "
        f"certainly dead, free the lock with `customer-ai unlock {held.instance}`"
    )


def _stamp(moment: dt.datetime) -> str:
    return f"{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC"


def _ago(elapsed: dt.timedelta) -> str:
    seconds = max(0, int(elapsed.total_seconds()))
    return f"{seconds} s" if seconds < 120 else f"{seconds // 60} min"
