"""The DAG factory: one Airflow DAG per customer-ai instance file, ``customer_ai__<name>``.

A DAG file of a few lines gives Airflow every instance of a folder (see the README, "Deploying into your
Airflow")::

    from customer_ai_airflow.dags import dags_from_folder

    globals().update(dags_from_folder("/path/to/instances"))

A file that cannot be loaded becomes a DAG of its own, tagged ``invalid``, whose description and docs show the file,
the field and the reason (and whose only task fails with them), so one bad file never hides the others.

Parsing stays fast: this module imports only Airflow's SDK, PyYAML and pydantic (and the instance spec when a
file must be read); pandas, LightGBM and Great Expectations are imported by the tasks when they run.  What a DAG
shows of an instance (its :class:`InstanceSummary`, or why the file is invalid) is kept in a parse cache
(:mod:`customer_ai_airflow.parse_cache`), so parsing again reads and checks only the files that changed, and a
parse for one task (Airflow's parsing context names its DAG) builds that DAG alone.  Environment knobs:
``CUSTOMER_AI_INSTANCES`` (the folder, when the DAG file names none), ``CUSTOMER_AI_PARSE_CACHE`` (the cache's
folder, or ``off``), ``CUSTOMER_AI_START_DATE`` (overrides every instance's ``start_date``), and the tasks'
retries, time limit, pool and priority (:mod:`customer_ai_airflow.settings`).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import pydantic
import yaml
from airflow.sdk import DAG, Asset, Param, chain, get_parsing_context

import customer_ai
from customer_ai.flow import STEPS
from customer_ai_airflow.operators import STEP_OPERATORS, InvalidInstanceOperator
from customer_ai_airflow.parse_cache import ParseCache, code_stamp
from customer_ai_airflow.settings import TaskSettings
from customer_ai_airflow.timetables import CronUntilTimetable

if TYPE_CHECKING:
    from customer_ai.spec import InstanceSpec

log = logging.getLogger(__name__)

INSTANCES_ENV = "CUSTOMER_AI_INSTANCES"
DAG_PREFIX = "customer_ai__"
TAGS = ["customer-ai"]
AS_OF_PATTERN = r"^(\d{4}-\d{2}-\d{2})?$"  # a date or empty; the task checks the calendar


def _start_date(spec_date: dt.date) -> dt.datetime:
    override = os.environ.get("CUSTOMER_AI_START_DATE")
    day = dt.date.fromisoformat(override) if override else spec_date
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _schedule(summary: InstanceSummary) -> str | CronUntilTimetable | None:
    """Return the DAG's schedule: the instance's, planned no further than its ``end_date`` when it has one.

    The spec refuses an ``end_date`` beside a schedule that does not repeat (none, ``@once``, ``@continuous``).
    """
    if summary.end_date is None:
        return summary.schedule
    return CronUntilTimetable(summary.schedule, end=dt.date.fromisoformat(summary.end_date))


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


class InstanceSummary(NamedTuple):
    """What the DAG of one instance file shows: taken from the checked spec, kept as JSON in the parse cache.

    Attributes
    ----------
    name, propensity, schedule, catchup : str, str, str or None, bool
        As in the spec.
    description, doc_md : str
        The DAG's description and docs.
    start_date : str
        The spec's ``start_date`` (ISO date); ``CUSTOMER_AI_START_DATE`` overrides it when the DAG is built.
    factors, min_auc : int, float
        The defaults of the trigger form's ``factors`` and ``min_auc``.
    trigger_as_of : str or None
        The trigger form's as-of date (``YYYY-MM-DD``), or None for the run's own date.
    end_date : str or None
        The spec's ``end_date`` (ISO date): no run is scheduled after it (manual runs are not bounded); None: no end.
    """

    name: str
    propensity: str
    description: str
    doc_md: str
    schedule: str | None
    start_date: str
    catchup: bool
    factors: int
    min_auc: float
    trigger_as_of: str | None
    end_date: str | None = None

    @classmethod
    def of(cls, spec: InstanceSpec, path: Path) -> InstanceSummary:
        """Return the summary of ``spec``, read from ``path``."""
        return cls(
            name=spec.name,
            propensity=spec.propensity,
            description=f"customer-ai {spec.propensity}: {spec.goal_in_words()}",
            doc_md=_doc(spec, path),
            schedule=spec.schedule,
            start_date=spec.start_date.isoformat(),
            catchup=spec.catchup,
            factors=spec.output.factors,
            min_auc=spec.training.min_auc,
            trigger_as_of=f"{spec.trigger_as_of:%Y-%m-%d}" if spec.trigger_as_of else None,
            end_date=spec.end_date.isoformat() if spec.end_date else None,
        )


# Airflow checks every Param's schema against its meta-schema when a DAG is built: against draft 2020-12 (the
# default) that is most of a parse; these simple schemas (type, minimum, maximum, pattern) mean the same in draft 7,
# whose meta-schema is checked much faster
_DRAFT_7 = {"$schema": "http://json-schema.org/draft-07/schema#"}


def _param(default: Any, description: str, **schema: Any) -> Param:  # noqa: ANN401 - a JSON value
    """Return a trigger-form :class:`Param` of ``default`` with its ``description`` and draft-7 ``schema``."""
    return Param(default, description=description, **_DRAFT_7, **schema)


def _as_of_param(trigger_as_of: str | None) -> Param:
    """Return the trigger form's as-of date: the instance's ``trigger_as_of``, else none (the run's own date)."""
    return _param(
        trigger_as_of,
        "Score as of this date (YYYY-MM-DD): the run sees only events before it. "
        "Empty: the run's data interval end. Manual runs only; scheduled runs and backfills use their own date.",
        type=["null", "string"],  # optional: the form marks a plain string as required and refuses it empty
        pattern=AS_OF_PATTERN,
        title="As of",
    )


def _trigger_params(summary: InstanceSummary) -> dict[str, Param]:
    """Return the trigger form's Params of an instance, with its defaults."""
    return {
        "force_retrain": _param(False, "Train a new model even if one is recent.", type="boolean"),
        "factors": _param(summary.factors, "Factors per profile.", type="integer", minimum=0, maximum=50),
        "min_auc": _param(summary.min_auc, "Quality gate (ROC AUC).", type="number", minimum=0, maximum=1),
        "as_of": _as_of_param(summary.trigger_as_of),
    }


def build_dag(summary: InstanceSummary, path: Path, settings: TaskSettings | None = None) -> DAG:
    """Return the DAG of one instance: the steps of :data:`customer_ai.flow.STEPS`, in order.

    ``settings`` (default: the environment's, :meth:`TaskSettings.from_environment`) gives every task its retries,
    time limit and priority, and the heavy steps their pool.
    """
    settings = TaskSettings.from_environment() if settings is None else settings
    with DAG(
        dag_id=f"{DAG_PREFIX}{summary.name}",
        description=summary.description,
        schedule=_schedule(summary),
        start_date=_start_date(dt.date.fromisoformat(summary.start_date)),
        catchup=summary.catchup,
        max_active_runs=1,
        tags=[*TAGS, summary.propensity],
        default_args=settings.default_args(),
        doc_md=summary.doc_md,
        params=_trigger_params(summary),
    ) as dag:
        tasks: list = []
        for step in STEPS:  # the same declared list that `customer-ai run` follows
            options: dict = {"instance_path": str(path), "instance_name": summary.name, "doc": step.summary}
            if not step.retry:
                options["retries"] = 0
            if step.heavy and settings.heavy_pool:
                options["pool"] = settings.heavy_pool
            if step is STEPS[-1]:
                options["outlets"] = [scores_asset(summary.name)]
            operator = STEP_OPERATORS[step.name]
            if step.mapped:  # one task instance per partition the task before returns (dynamic task mapping)
                tasks.append(operator.partial(task_id=step.name, **options).expand(partition=tasks[-1].output))
            else:
                tasks.append(operator(task_id=step.name, **options))
        chain(*tasks)
    return dag


def _invalid_dag_id(path: Path) -> str:
    """Return the id of the stand-in DAG of an invalid instance file: from the file's name."""
    return DAG_PREFIX + (re.sub(r"[^a-z0-9_]+", "_", path.stem.lower()).strip("_") or "unnamed")


def invalid_dag(path: Path, reason: str) -> DAG:
    """Return a stand-in DAG that shows why an instance file cannot be used."""
    first_line = reason.splitlines()[0] if reason else "invalid"
    with DAG(
        dag_id=_invalid_dag_id(path),
        description=f"INVALID instance file: {first_line}"[:200],
        schedule=None,
        start_date=_start_date(dt.date(2010, 1, 1)),
        catchup=False,
        tags=[*TAGS, "invalid"],
        doc_md=f"### The instance file `{path}` cannot be used\n\nFix it and the DAG comes back:\n\n```\n{reason}\n```",
    ) as dag:
        InvalidInstanceOperator(task_id="instance_file_is_invalid", message=reason, retries=0)
    return dag


def read_instance(path: Path) -> dict:
    """Return ``{"summary": {...}}`` for a usable instance file, else ``{"error": "<the SpecError's message>"}``.

    Any other error (a bug, or the machine failing) gives ``{"error": ..., "unexpected": True}``: the file
    becomes an invalid DAG of its own instead of hiding every DAG, and is read again at the next parse.
    """
    # imported on a cache miss only: building the spec's pydantic models is a good part of a parse
    from customer_ai.spec import SpecError, load_spec  # noqa: PLC0415

    try:
        return {"summary": InstanceSummary.of(load_spec(path), path)._asdict()}
    except SpecError as exc:
        return {"error": str(exc)}
    except Exception as exc:  # one file must never hide the others' DAGs
        log.exception("customer-ai instance file %s could not be read", path)
        reason = f"{path}: could not be read: {type(exc).__name__}: {exc} (an unexpected error: please report it)"
        return {"error": reason, "unexpected": True}


def open_parse_cache(folder: Path) -> ParseCache:
    """Return the parse cache of ``folder``, valid for both packages and their parsers as they are now."""
    modules = [
        *sorted(Path(customer_ai.__file__).parent.glob("*.py")),
        *sorted(Path(__file__).parent.glob("*.py")),
    ]
    versions = f"{customer_ai.__version__} {yaml.__version__} {pydantic.VERSION} {sys.version}"
    return ParseCache.for_folder(folder, code_stamp(versions, modules))


def _from_entry(entry: object) -> InstanceSummary | str | None:
    """Return the summary or the reason held by an entry of :func:`read_instance`; None if it holds neither."""
    if not isinstance(entry, dict):
        return None
    if isinstance(entry.get("error"), str):
        return entry["error"]
    try:
        return InstanceSummary(**entry["summary"])
    except (KeyError, TypeError):
        return None


def _summary_or_reason(path: Path, cache: ParseCache | None) -> InstanceSummary | str:
    """Return the summary of the instance file at ``path``, or why it is invalid; from the cache when it holds it."""
    key = cache.key(path) if cache is not None else None
    found = _from_entry(cache.get(path, key)) if cache is not None else None
    if found is None:
        entry = read_instance(path)
        if cache is not None and not entry.get("unexpected"):  # an unexpected error may not happen again
            cache.put(path, key, entry)
        found = _from_entry(entry)
    return found


def load_dags(folder: Path, cache: ParseCache | None = None, settings: TaskSettings | None = None) -> dict[str, DAG]:
    """Return a DAG per ``*.yaml``/``*.yml`` file in ``folder``; a bad file gives an invalid-instance DAG.

    When Airflow parses the file to run a task of one DAG (its parsing context names the DAG), only that DAG is
    built; the others are still read (from the cache), so a name used twice is refused the same way.

    Parameters
    ----------
    folder : pathlib.Path
        The instance files' folder.
    cache : ParseCache, optional
        What was read from unchanged files; without it every file is read and checked.
    settings : TaskSettings, optional
        The tasks' Airflow settings; the environment's by default.
    """
    settings = TaskSettings.from_environment() if settings is None else settings
    wanted = get_parsing_context().dag_id
    dags: dict[str, DAG] = {}
    owners: dict[str, Path] = {}
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        found = _summary_or_reason(path, cache)
        if isinstance(found, InstanceSummary) and found.name in owners:
            found = f"{path}: name: {found.name!r} is already used by {owners[found.name]}"
        if isinstance(found, InstanceSummary):
            owners[found.name] = path
            dag_id = f"{DAG_PREFIX}{found.name}"
            if wanted is None or dag_id == wanted:
                dags[dag_id] = build_dag(found, path, settings)
        else:
            log.warning("customer-ai instance file %s is invalid:\n%s", path, found)
            dag_id = _invalid_dag_id(path)  # a valid instance of that name keeps its DAG
            if dag_id not in dags and (wanted is None or dag_id == wanted):
                dags[dag_id] = invalid_dag(path, found)
    if cache is not None:
        cache.save()
    return dags


def dags_from_folder(
    folder: str | os.PathLike | None = None, *, settings: TaskSettings | None = None
) -> dict[str, DAG]:
    """Return the DAGs of the instance files in ``folder`` (default ``$CUSTOMER_AI_INSTANCES``), by DAG id.

    What a DAG file calls: ``globals().update(dags_from_folder("/path/to/instances"))``.  The folder's parse cache
    is used (see :func:`open_parse_cache`); ``settings`` are the tasks' retries, time limit, pool and priority
    (default: :meth:`TaskSettings.from_environment`).

    Raises
    ------
    ValueError
        When no folder is given and ``CUSTOMER_AI_INSTANCES`` is not set, or the folder does not exist: Airflow
        shows it as the DAG file's import error.
    """
    chosen = folder if folder is not None else os.environ.get(INSTANCES_ENV)
    if not chosen:
        raise ValueError(
            f"customer-ai: no folder of instance files: pass one to dags_from_folder() or set {INSTANCES_ENV}"
        )
    path = Path(chosen)
    if not path.is_dir():
        raise ValueError(f"customer-ai: the folder of instance files {path} does not exist (or is not a folder)")
    return load_dags(path, open_parse_cache(path), settings)
