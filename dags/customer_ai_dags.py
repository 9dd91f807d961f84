"""One Airflow DAG per customer-ai instance file: ``customer_ai__<name>``.

Instance files are read from ``CUSTOMER_AI_INSTANCES`` (default: the project's ``instances/`` folder).  A file
that cannot be loaded becomes a DAG of its own, tagged ``invalid``, whose description and docs show the file,
the field and the reason (and whose only task fails with them), so one bad file never hides the others.

Parsing stays fast: this file imports only Airflow's SDK, PyYAML and pydantic (through the spec); pandas,
LightGBM and Great Expectations are imported by the tasks when they run.  Environment knobs:
``CUSTOMER_AI_START_DATE`` (overrides every instance's ``start_date``), ``CUSTOMER_AI_RETRIES`` (default 2),
``CUSTOMER_AI_RETRY_DELAY_SECONDS`` (default 60, doubled on each retry up to 10 minutes).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from pathlib import Path

from airflow.sdk import DAG, Asset, Param, chain

from customer_ai.flow import STEPS
from customer_ai.spec import InstanceSpec, SpecError, load_spec
from customer_ai_airflow.operators import STEP_OPERATORS, InvalidInstanceOperator

log = logging.getLogger(__name__)

INSTANCES = Path(os.environ.get("CUSTOMER_AI_INSTANCES") or Path(__file__).resolve().parents[1] / "instances")
DAG_PREFIX = "customer_ai__"
TAGS = ["customer-ai"]
AS_OF_PATTERN = r"^(\d{4}-\d{2}-\d{2})?$"  # a date or empty; the task checks the calendar


def _start_date(spec_date: dt.date) -> dt.datetime:
    override = os.environ.get("CUSTOMER_AI_START_DATE")
    day = dt.date.fromisoformat(override) if override else spec_date
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _default_args() -> dict:
    return {
        "owner": "customer-ai",
        "retries": int(os.environ.get("CUSTOMER_AI_RETRIES", "2")),
        "retry_delay": dt.timedelta(seconds=float(os.environ.get("CUSTOMER_AI_RETRY_DELAY_SECONDS", "60"))),
        "retry_exponential_backoff": True,
        "max_retry_delay": dt.timedelta(minutes=10),
    }


def scores_asset(name: str) -> Asset:
    """Return the Asset a DAG updates when fresh scores of instance ``name`` are in the store."""
    return Asset(uri=f"customer_ai://{name}/scores", name=f"{DAG_PREFIX}{name}__scores")


def _doc(spec: InstanceSpec, path: Path) -> str:
    eligibility = spec.eligibility
    rule = f"{eligibility.match} of {len(eligibility.events)} event pattern(s)" if eligibility.events else "any event"
    return "\n".join(
        [
            f"### {spec.name}: {spec.description or spec.goal_in_words()}",
            "",
            f"- **Goal** ({spec.propensity}): {spec.goal_in_words()}, counted in `[as_of, as_of + "
            f"{spec.goal.window_days} days)`.",
            f"- **Eligible**: profiles with {rule} in the last {eligibility.lookback_days} days before the as-of date"
            + (f", minus {len(eligibility.exclude)} exclusion pattern(s)" if eligibility.exclude else "")
            + ".",
            "- **As of**: each run's data interval end (logical date for manual runs), midnight UTC; it sees only "
            "events before that instant, so backfills reproduce what would have been scored then. A manual run "
            "triggered with the form's `as_of` is as of that date instead"
            + (f" (offered: {spec.trigger_as_of:%Y-%m-%d})." if spec.trigger_as_of else "."),
            f"- **Training**: {spec.training.snapshots} snapshots every {spec.training.snapshot_every_days} days, "
            f"retrained every {spec.training.retrain_every_days} days (trigger with `force_retrain` to retrain now); "
            f"quality gate: validation ROC AUC >= {spec.training.min_auc}.",
            f"- **Outputs**: probability, score, percentile, bucket and the top {spec.output.factors} factors per "
            f"profile in the profile store; Asset `customer_ai://{spec.name}/scores` when they land.",
            f"- **Instance file**: `{path}`",
        ]
    )


def _as_of_param(spec: InstanceSpec) -> Param:
    """Return the trigger form's as-of date: the instance's ``trigger_as_of``, else none (the run's own date)."""
    return Param(
        f"{spec.trigger_as_of:%Y-%m-%d}" if spec.trigger_as_of else None,
        type=["null", "string"],  # optional: the form marks a plain string as required and refuses it empty
        pattern=AS_OF_PATTERN,
        title="As of",
        description="Score as of this date (YYYY-MM-DD): the run sees only events before it. "
        "Empty: the run's data interval end. Manual runs only; scheduled runs and backfills use their own date.",
    )


def build_dag(spec: InstanceSpec, path: Path) -> DAG:
    """Return the DAG of one instance: the steps of :data:`customer_ai.flow.STEPS`, in order."""
    with DAG(
        dag_id=f"{DAG_PREFIX}{spec.name}",
        description=f"customer-ai {spec.propensity}: {spec.goal_in_words()}",
        schedule=spec.schedule,
        start_date=_start_date(spec.start_date),
        catchup=spec.catchup,
        max_active_runs=1,
        tags=[*TAGS, spec.propensity],
        default_args=_default_args(),
        doc_md=_doc(spec, path),
        params={
            "force_retrain": Param(False, type="boolean", description="Train a new model even if one is recent."),
            "factors": Param(
                spec.output.factors, type="integer", minimum=0, maximum=50, description="Factors per profile."
            ),
            "min_auc": Param(
                spec.training.min_auc, type="number", minimum=0, maximum=1, description="Quality gate (ROC AUC)."
            ),
            "as_of": _as_of_param(spec),
        },
    ) as dag:
        tasks = []
        for step in STEPS:  # the same declared list that `customer-ai run` follows
            options: dict = {"instance_path": str(path), "doc": step.summary}
            if not step.retry:
                options["retries"] = 0
            if step is STEPS[-1]:
                options["outlets"] = [scores_asset(spec.name)]
            tasks.append(STEP_OPERATORS[step.name](task_id=step.name, **options))
        chain(*tasks)
    return dag


def invalid_dag(path: Path, reason: str) -> DAG:
    """Return a stand-in DAG that shows why an instance file cannot be used."""
    name = re.sub(r"[^a-z0-9_]+", "_", path.stem.lower()).strip("_") or "unnamed"
    first_line = reason.splitlines()[0] if reason else "invalid"
    with DAG(
        dag_id=f"{DAG_PREFIX}{name}",
        description=f"INVALID instance file: {first_line}"[:200],
        schedule=None,
        start_date=_start_date(dt.date(2010, 1, 1)),
        catchup=False,
        tags=[*TAGS, "invalid"],
        doc_md=f"### The instance file `{path}` cannot be used\n\nFix it and the DAG comes back:\n\n```\n{reason}\n```",
    ) as dag:
        InvalidInstanceOperator(task_id="instance_file_is_invalid", message=reason, retries=0)
    return dag


def load_dags(folder: Path) -> dict[str, DAG]:
    """Return a DAG per ``*.yaml``/``*.yml`` file in ``folder``; a bad file gives an invalid-instance DAG."""
    dags: dict[str, DAG] = {}
    owners: dict[str, Path] = {}
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        try:
            spec = load_spec(path)
            if spec.name in owners:
                raise SpecError(f"{path}: name: {spec.name!r} is already used by {owners[spec.name]}")
            dag = build_dag(spec, path)
            owners[spec.name] = path
        except SpecError as exc:
            log.warning("customer-ai instance file %s is invalid:\n%s", path, exc)
            dag = invalid_dag(path, str(exc))
            if dag.dag_id in dags:
                continue
        dags[dag.dag_id] = dag
    return dags


globals().update(load_dags(INSTANCES))
