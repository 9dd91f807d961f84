"""Each run's as-of date, and the note that shows it in Airflow's grid.

A manual run is as of the date its trigger form (or ``conf``) gives, which Airflow shows nowhere but in the run's
folded configuration; its run id and the grid show when it was triggered.  The plugin
(:mod:`customer_ai_airflow.plugin`) registers this module as a listener: when the scheduler starts or ends a run of
a customer-ai DAG that has no note, the run gets the note ``as of YYYY-MM-DD``, which the grid marks and the run's
page shows.  A note a user wrote is kept.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import sqlalchemy
from airflow.listeners import hookimpl

log = logging.getLogger(__name__)

DAG_PREFIX = "customer_ai__"  # the DAG factory's, repeated: the factory imports far more than a listener needs


def run_as_of(
    run_type: object,
    conf: dict | None,
    data_interval_end: dt.datetime | None,
    logical_date: dt.datetime | None,
    run_after: dt.datetime | None,
) -> object:
    """Return a run's as-of date, ``YYYY-MM-DD``: what every task of the run scores as of.

    A manual run with ``as_of`` in its configuration is as of that date (the value as given: the caller checks it
    is a date); every
    other run (scheduled, backfill, manual without it) is as of its data interval end, else its logical date, else
    its ``run_after``, in UTC.
    """
    given = (conf or {}).get("as_of")
    if getattr(run_type, "value", run_type) == "manual" and given:
        return given
    instant = data_interval_end or logical_date or run_after
    if instant is None:
        raise ValueError("the run has no data interval, logical date or run_after to be as of")
    return instant.astimezone(dt.UTC).date().isoformat()


def note_of(dag_run: Any) -> str | None:  # noqa: ANN401 - Airflow's DagRun
    """Return the note a run should get (``as of YYYY-MM-DD``), or None for a run of another DAG."""
    if not str(getattr(dag_run, "dag_id", "")).startswith(DAG_PREFIX):
        return None
    as_of = run_as_of(
        dag_run.run_type, dag_run.conf, dag_run.data_interval_end, dag_run.logical_date, dag_run.run_after
    )
    return f"as of {as_of}"


def _write_note(dag_run: Any) -> None:  # noqa: ANN401 - Airflow's DagRun
    """Give ``dag_run`` its as-of note unless it has one; never raise (a note is never worth a run).

    The note is set on the run the scheduler hands over, in its session, and saved with its change of the run's
    state.  ``airflow dags test`` hands over a run outside any session, which only Airflow's database internals
    could change: it is left without a note (its configuration still holds its ``as_of``).
    """
    try:
        note = note_of(dag_run)
        if note is None:
            return
        if sqlalchemy.inspect(dag_run).session is None:
            log.info("customer-ai: run %s is not noted: Airflow handed it over outside its session", dag_run.run_id)
            return
        if not dag_run.note:  # a note a user wrote is kept
            dag_run.note = note
    except Exception:  # a note is never worth a run
        log.exception("customer-ai: could not write the as-of note of run %s", getattr(dag_run, "run_id", "?"))


@hookimpl
def on_dag_run_running(dag_run: Any, msg: str) -> None:  # noqa: ANN401, ARG001 - Airflow's listener interface
    """Note the as-of date of a run that starts."""
    _write_note(dag_run)


@hookimpl
def on_dag_run_success(dag_run: Any, msg: str) -> None:  # noqa: ANN401, ARG001
    """Note the as-of date of a run that ends well (``airflow dags test`` announces no start)."""
    _write_note(dag_run)


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:  # noqa: ANN401, ARG001
    """Note the as-of date of a run that failed."""
    _write_note(dag_run)
