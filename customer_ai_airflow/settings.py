"""How the tasks of every customer-ai DAG run under Airflow: retries, time limits, pools and priority.

Defaults suit a small deployment; a DAG file passes its own :class:`TaskSettings` to
:func:`customer_ai_airflow.dags.dags_from_folder`, or Airflow's environment sets them:

- ``CUSTOMER_AI_RETRIES`` (default 2) and ``CUSTOMER_AI_RETRY_DELAY_SECONDS`` (default 60, doubled on each retry up
  to 10 minutes): tries of a task that failed on something a retry can fix (a database that is down); bad data
  and a poor model fail at once whatever these say;
- ``CUSTOMER_AI_EXECUTION_TIMEOUT_MINUTES`` (default 180; ``0`` for none): the longest a task's try may run before
  Airflow stops it (a hung database call, a worker short of memory swapping);
- ``CUSTOMER_AI_HEAVY_POOL`` (default none: Airflow's ``default_pool``): the pool of the steps that hold a run's
  events or training set in memory (:data:`customer_ai.flow.STEPS` marks them ``heavy``), so that its slots cap
  how many of them run at once on the workers; create it first (``airflow pools set customer_ai_heavy 2 "..."``),
  as Airflow leaves the tasks of a pool that does not exist waiting;
- ``CUSTOMER_AI_PRIORITY_WEIGHT`` (default 1): every task's priority weight, to rank customer-ai against other DAGs
  (Airflow adds up the weights downstream, so a started run finishes before new ones start).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass

from customer_ai.environment import number_setting as _number

__all__ = ["TaskSettings"]


@dataclass(frozen=True)
class TaskSettings:
    """Airflow settings of the tasks of every customer-ai DAG.

    Attributes
    ----------
    retries : int
        Retries of a task that may be retried (see :attr:`customer_ai.flow.Step.retry`).
    retry_delay : datetime.timedelta
        The first retry's delay, doubled on each retry up to :attr:`max_retry_delay`.
    max_retry_delay : datetime.timedelta
        The longest delay between two tries.
    execution_timeout : datetime.timedelta or None
        The longest a try may run; None for no limit.
    heavy_pool : str or None
        The pool of the heavy steps; None for Airflow's default pool.
    priority_weight : int
        Every task's priority weight.
    """

    retries: int = 2
    retry_delay: dt.timedelta = dt.timedelta(seconds=60)
    max_retry_delay: dt.timedelta = dt.timedelta(minutes=10)
    execution_timeout: dt.timedelta | None = dt.timedelta(minutes=180)
    heavy_pool: str | None = None
    priority_weight: int = 1

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> TaskSettings:
        """Return the settings of ``env`` (default ``os.environ``), the defaults where a variable is unset.

        Raises
        ------
        ValueError
            For a value that is not a number, or a negative one: Airflow shows it as the DAG file's import error.
        """
        env = os.environ if env is None else env
        timeout = _number(env, "CUSTOMER_AI_EXECUTION_TIMEOUT_MINUTES", 180)
        return cls(
            retries=int(_number(env, "CUSTOMER_AI_RETRIES", 2)),
            retry_delay=dt.timedelta(seconds=_number(env, "CUSTOMER_AI_RETRY_DELAY_SECONDS", 60)),
            execution_timeout=dt.timedelta(minutes=timeout) if timeout else None,
            heavy_pool=env.get("CUSTOMER_AI_HEAVY_POOL", "").strip() or None,
            priority_weight=int(_number(env, "CUSTOMER_AI_PRIORITY_WEIGHT", 1, minimum=1)),
        )

    def default_args(self) -> dict:
        """Return the DAGs' ``default_args``: owner, retries with exponential back-off, time limit, priority."""
        return {
            "owner": "customer-ai",
            "retries": self.retries,
            "retry_delay": self.retry_delay,
            "retry_exponential_backoff": True,
            "max_retry_delay": self.max_retry_delay,
            "execution_timeout": self.execution_timeout,
            "priority_weight": self.priority_weight,
        }
