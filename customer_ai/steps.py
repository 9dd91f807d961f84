"""A run's steps over the files of its run folder: one function per Airflow task, also chained by the command.

The steps and their order are declared once, in :data:`customer_ai.flow.STEPS`: validate_events ->
build_training_set -> train (or reuse the current model) -> quality_gate -> plan_scoring -> score_partition (once
per hash partition of the eligible profiles) -> combine_scores -> validate_scores -> track_outcomes ->
write_report -> publish.  A poor model stops the run at the quality gate, in the command as in Airflow.

Each step takes the spec, the as-of date, the home folder and the attempt's id, reads what earlier steps wrote in
the attempt's staging folder (see :mod:`customer_ai.artifacts`) and returns a small JSON-ready dict (what Airflow
passes on as XCom).  The first step copies the events in ``[history_start, as_of)`` into the folder, so no later
step can see an event at or after the as-of date.

Nothing a reader sees changes before :func:`publish`, the commit point: it seals the finished folder (one rename;
never written again), then writes the scores, history, segments, tracked outcomes and the run row naming that
folder in one store transaction.  A run killed or failed at any moment before that transaction leaves every
reader (``show``, ``report``, ``segment export``, ``explain``, the Airflow view) on the previous run; the store's
attempts table keeps a row for every start, failure, poor model and publish.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from customer_ai import artifacts, frozen, run_lock
from customer_ai.artifacts import DEFAULT_ATTEMPT
from customer_ai.attributes import RunAttributes, keep_attributes, read_run_attributes
from customer_ai.backtest import held_out_evaluation, held_out_value_baselines
from customer_ai.bgnbd import BGNBD, CountsTally
from customer_ai.conditions import (
    ConditionError,
    patterns_mask,
    unknown_fields,
    unlearnable_goal,
    value_field_problems,
)
from customer_ai.drift import (
    DriftStopError,
    add_counts,
    describe_drift,
    drift_counts,
    drift_reference,
    drift_status,
    drift_table,
    scale_drift,
)
from customer_ai.estimator import EventParts, InsufficientDataError, PropensityModel, TrainingSet, training_totals
from customer_ai.evaluation import expected_reach, quality_verdict, window_rates
from customer_ai.event_split import (
    EventSource,
    canonical_table,
    empty_events,
    file_source,
    part_path,
    read_part,
    read_split_part,
    read_split_rows,
    remove_split_part,
    table_source,
    write_split,
)
from customer_ai.events import (
    EventsError,
    checked_start,
    count_attribute_join,
    event_table_start,
    refuse_unjoined,
    sort_events,
)
from customer_ai.features import (
    FEATURES_VERSION,
    PROBABILITY_EDGES,
    FeaturePlan,
    feature_infos,
    fit_repeat_counts,
    fixed_scales,
    repeat_model_counts,
)
from customer_ai.files import FACTOR_COLUMNS
from customer_ai.flow import GATE, STEPS
from customer_ai.history import DataStart, SnapshotPlan, event_days, find_data_start, run_window
from customer_ai.home import as_path, fetch
from customer_ai.labels import eligible_profiles, goal_reached, goal_value
from customer_ai.outcomes import OUTCOMES_FILE, OutcomeTally, closed_window_dates, read_tracked, tracked_frame
from customer_ai.partitions import partition_count, partition_of
from customer_ai.progress import logger, step
from customer_ai.quantiles import order_statistics
from customer_ai.saved_audiences import SavedAudience, applicable, resolve_cuts
from customer_ai.scoring import (
    BUCKET_RULE_FILE,
    BucketRule,
    choose_bucket_rule,
    percentile_ranks,
    profiles_per_score,
    score_frame,
    top_score_notes,
)
from customer_ai.segments import segment_members, segment_sizes
from customer_ai.spec import InstanceSpec
from customer_ai.store.lease import process_scope
from customer_ai.timing_model import TimingModel, timing_verdict
from customer_ai.validation import DataValidationError, event_checks, validate_frame
from customer_ai.value_model import value_verdict
from customer_ai.windows import EventIndex, as_of_timestamp, in_window, rows_where

__all__ = [
    "QualityGateError",
    "RunResult",
    "ScoringInputs",
    "build_training_set",
    "combine_scores",
    "find_reusable_model",
    "model_verdict",
    "plan_scoring",
    "publish",
    "published_run",
    "quality_gate",
    "read_scores",
    "record_failure",
    "run",
    "run_definition",
    "score",
    "score_partition",
    "track_outcomes",
    "train",
    "validate_events",
    "validate_scores",
    "write_report",
]


class QualityGateError(RuntimeError):
    """The model failed the quality gate; the reason is the message."""


def _folder(spec: InstanceSpec, as_of: pd.Timestamp, home: Path, attempt: str) -> Path:
    """Return the folder the steps of an attempt work in: its staging folder, until :func:`publish` seals it.

    A step re-run on its own after its attempt was sealed (an Airflow task cleared and run again) finds no
    staging folder: it starts from a copy of the attempt's newest sealed folder, which never changes; a
    :func:`publish` run again seals the copy under a name of its own.
    """
    staging = artifacts.staging_dir(home, spec.name, as_of, attempt)
    if not staging.exists():
        sealed = artifacts.sealed_runs(home, spec.name, as_of, attempt)
        if sealed:
            artifacts.copy_dir(sealed[-1], staging)
    return staging


def run_definition(name: str, as_of: pd.Timestamp, home: Path, attempt: str = DEFAULT_ATTEMPT) -> InstanceSpec:
    """Return the instance definition the attempt froze at its first step (:func:`validate_events`).

    Every later step of a run uses it, so an edit of the instance file during a run changes nothing of that run.

    Raises
    ------
    customer_ai.frozen.FrozenDefinitionError
        When the attempt's folder holds no definition, or one that does not read back.
    """
    staging = artifacts.staging_dir(home, name, as_of, attempt)
    sealed = [] if staging.exists() else artifacts.sealed_runs(home, name, as_of, attempt)
    return frozen.thaw(sealed[-1] if sealed else staging)  # read where it is: a sealed folder is not copied back


def _suites(spec: InstanceSpec, stage: str) -> list[Path]:
    return [spec.resolve(p) for p in getattr(spec.validation, stage)]


def validate_events(
    spec: InstanceSpec,
    as_of: pd.Timestamp,
    home: Path,
    *,
    events_path: Path | None = None,
    dsn: str | None = None,
    now: pd.Timestamp | None = None,
    store: object | None = None,
    attempt: str = DEFAULT_ATTEMPT,
    origin: str = "",
    try_number: int = 1,
    instance_file: str = "<instance>",
) -> dict:
    """Start an attempt: freeze its definition, load the events, validate them and keep the run's window.

    The spec is written into the attempt's folder (:func:`customer_ai.frozen.freeze`, ``instance_file`` naming
    where it was read): every later step of the attempt uses that copy (:func:`run_definition`).

    With a ``store``, the attempt's start (``try_number``: Airflow's try of this task) is recorded there first
    (``origin`` says who started it) and the as-of
    date's folders that nothing points at are removed: earlier attempts' staging folders, and sealed folders of
    runs killed before their commit or replaced by a later run of the date.  The attempt's staging folder starts
    empty: the published run of the date stays as it is until this attempt publishes.  Validation covers every
    loaded event, including events after the as-of date (a backfill legitimately has those), but refuses events
    in the future of the wall clock ``now``.  ``source.json`` keeps where the events' history really starts
    (``data_start``) and the events dated before it (``before_start``: a warning up to 0.1% of the events; more
    is refused, see :func:`customer_ai.history.find_data_start`).
    """
    if store is not None:
        date = f"{as_of:%Y-%m-%d}"
        reason = f"started{f' by {origin}' if origin else ''}"
        started = {"attempt": attempt, "step": "validate_events", "try_number": try_number, "status": "started"}
        store.record_attempt(spec.name, date, {**started, "reason": reason})  # type: ignore[attr-defined]
        published = published_run(spec, as_of, store)
        keep = {published["run_id"]} if published is not None else set()
        for name in artifacts.clear_abandoned(home, spec.name, as_of, keep):
            logger.info("removed %s of %s as of %s: no published run points at it", name, spec.name, date)
    folder = artifacts.reset_dir(artifacts.staging_dir(home, spec.name, as_of, attempt))
    frozen.freeze(spec, folder, instance_file)
    source, columns, table_start = _event_source(spec, as_of, events_path=events_path, dsn=dsn)
    count = partition_count(spec.scoring.partitions, source.rows)
    now = now if now is not None else pd.Timestamp.now(tz="UTC")
    start, end = run_window(spec, as_of)
    attributes, first_profile = _keep_attributes(spec, folder, count)
    totals = _SplitTotals()
    with tempfile.TemporaryDirectory(prefix="customer-ai-split-") as scratch:
        with step(f"reading the events and splitting them by profile into {count} partition(s)") as info:
            tables = (canonical_table(table, first, columns, source.name) for first, table in source.batches())
            info["events"], schema = write_split(
                _fields_checked(spec, tables, source.name, instance_file), Path(scratch), count
            )
        for partition in range(count):
            said = f" (partition {partition + 1} of {count})" if count > 1 else ""
            with step(f"validating events{said}") as info:
                events = read_split_part(Path(scratch), partition, schema)
                result = _validate_partition(spec, events, now, folder, partition=partition, count=count)
                totals.add_validation(result, len(events))
                inside = in_window(events["timestamp"], start, end)
                in_run = (events if inside.all() else rows_where(events, inside)).reset_index(drop=True)
                own = None if attributes is None else attributes.read(partition)
                totals.add(events, in_run, count_attribute_join(in_run, own))
                totals.add_run_facts(spec, in_run, as_of)
                del events
                artifacts.write_frame(part_path(folder, partition), in_run)
                info["events"] = len(in_run)
            del in_run
            remove_split_part(Path(scratch), partition)  # the disk holds one copy of the events, not two
            artifacts.release_memory()
    if not any(totals.validations):  # no events at all: the suites say so, as for one partition
        _validate_partition(spec, empty_events(schema), now, folder, partition=0, count=1)
    summary = totals.validation_summary(folder, count)
    _refuse_nothing_to_learn(spec, totals, source.name, start, end)
    joined = totals.joined
    if joined is not None:
        refuse_unjoined(joined, first_profile, totals.example, f"instance {spec.name}")
        if joined["without_attributes"]:
            logger.warning(
                "%s of %s profiles in the events have no row in the profile file: their attributes are missing",
                f"{joined['without_attributes']:,}",
                f"{joined['profiles']:,}",
            )
    # where the history really starts: a few rows dated 1900-01-01 do not make a century of it
    started = table_start if table_start is not None else checked_start(find_data_start(totals.days(), source.name))
    source_file = {
        "data_start": None if started.start is None else started.start.isoformat(),
        "window": [f"{start:%Y-%m-%d}", f"{end:%Y-%m-%d}"],
        "attribute_join": joined,
        "before_start": started.to_dict(),
        "partitions": {
            "count": count,
            "events": totals.part_events,
            "profiles": totals.part_profiles,
            "eligible": totals.part_eligible,  # at the as-of date
            "first_event": totals.first_in_run.isoformat(),
            "last_event": totals.last_in_run.isoformat(),
            "goal_start": totals.goal_start(),
        },
    }
    artifacts.write_json(folder / "source.json", source_file)
    return {
        "events": totals.in_run,
        "profiles": totals.profiles,
        "partitions": count,
        "window": source_file["window"],
        "data_start": source_file["data_start"],
        "before_start": source_file["before_start"],
        "attribute_join": joined,
        "last_event": f"{totals.last_in_run:%Y-%m-%dT%H:%M:%SZ}",
        "validation": summary,
    }


def _fields_checked(
    spec: InstanceSpec, tables: Iterator[pa.Table], source: str, instance_file: str
) -> Iterator[pa.Table]:
    """Yield the canonical tables, once the first shows that every field the instance's conditions test is there.

    Raises
    ------
    ConditionError
        Naming the instance file, each condition on a missing field (its place in the file) and the source; or a
        goal's value field that is missing or not a column of numbers.
    """
    for number, table in enumerate(tables):
        if number == 0:
            numeric = [f.name for f in table.schema if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)]
            names = table.column_names
            problems = unknown_fields(spec, names, source) + value_field_problems(spec, names, numeric, source)
            if problems:
                raise ConditionError("\n".join(f"{instance_file}: {line}" for line in problems))
        yield table


def _refuse_nothing_to_learn(
    spec: InstanceSpec, totals: _SplitTotals, source: str, start: pd.Timestamp, end: pd.Timestamp
) -> None:
    """Refuse a run whose window holds no event, or no event of its goal (no label could ever differ).

    Raises
    ------
    customer_ai.events.EventsError
        Without events in the window.
    customer_ai.estimator.InsufficientDataError
        Without a goal event in it: said in words, since more snapshots cannot help.
    """
    if not totals.in_run:
        raise EventsError(_no_events_message(spec, totals, start, end))
    if not totals.goal_events_seen:
        raise InsufficientDataError(_no_goal_message(spec, source, start, end))


def _no_goal_message(spec: InstanceSpec, source: str, start: pd.Timestamp, end: pd.Timestamp) -> str:
    """Say that no event of the run's window matches the goal, and what follows."""
    return (
        f"no event of {source} from {start:%Y-%m-%d} to {end:%Y-%m-%d} matches the goal of {spec.name} "
        f"({spec.goal_in_words()}): {unlearnable_goal(spec)}. More snapshots cannot help: check the goal's "
        "patterns against the events (`customer-ai check` names the patterns that match nothing and the events' types)"
    )


def _keep_attributes(spec: InstanceSpec, folder: Path, count: int) -> tuple[RunAttributes | None, object]:
    """Keep the instance's profile attributes in the run folder per partition (see :mod:`customer_ai.attributes`).

    Returns them (None: the instance has none) and the profile file's first id (None: no rows).
    """
    if spec.profiles is None:
        return None, None
    path, columns = spec.resolve(spec.profiles.path), list(spec.profiles.columns)
    with step(f"reading the profile attributes and splitting them by profile into {count} partition(s)"):
        return keep_attributes(path, columns, spec.profiles.id_column, folder, count)


def _event_source(
    spec: InstanceSpec, as_of: pd.Timestamp, *, events_path: Path | None, dsn: str | None
) -> tuple[EventSource, dict[str, str] | None, DataStart | None]:
    """Open the run's events: a canonical file replacing the instance's, its file, or its table's run window.

    Returns the source, the column mapping to apply to it, and, for a table, where its history starts (a table
    is read one run window at a time, so its start is asked of the server; a file's is found in its events).
    """
    if events_path is not None:
        return file_source(Path(events_path)), None, None
    columns = spec.events.columns
    if spec.events.path is not None:
        id_column = (columns or {}).get("profile_id", "profile_id")
        return file_source(spec.resolve(spec.events.path), id_column), columns, None
    if not dsn:
        raise ValueError(
            f"instance {spec.name}: events come from table {spec.events.table!r} but no database connection was "
            f"given (connection {spec.events.connection!r})"
        )
    start, end = run_window(spec, as_of)
    started = event_table_start(dsn, spec.events.table, columns)
    source = table_source(dsn, spec.events.table, columns, start=start, end=end, rows=started.events)
    return source, columns, started


def _validate_partition(
    spec: InstanceSpec, events: pd.DataFrame, now: pd.Timestamp, folder: Path, *, partition: int, count: int
) -> dict | None:
    """Validate one partition's events (see :func:`_validate_events_part`); None for one without events.

    A partition no profile hashed to has nothing to check (the suites would fail on its zero rows); the events as a
    whole are checked for being there (one partition, or none of them with events, is validated as it is).
    """
    if not len(events) and count > 1:
        return None
    checked, parameters = event_checks(events, spec.validation.thresholds, now)
    return _validate_events_part(spec, checked, parameters, folder, partition=partition, count=count)


def _validate_events_part(
    spec: InstanceSpec, checked: pd.DataFrame, parameters: dict, folder: Path, *, partition: int, count: int
) -> dict:
    """Validate one partition's events; the results go to ``validation/events.json`` (one partition) or its own file.

    Raises
    ------
    customer_ai.validation.DataValidationError
        When an expectation fails on the partition; with several, the message names the partition first.
    """
    return _validate_part(spec, "events", checked, folder, parameters=parameters, partition=partition, count=count)


def _validate_part(
    spec: InstanceSpec,
    stage: str,
    frame: pd.DataFrame,
    folder: Path,
    *,
    partition: int,
    count: int,
    parameters: dict | None = None,
) -> dict:
    """Validate one partition of a stage's rows (``events`` or ``scores``) with the stage's suites.

    The results go to ``validation/<stage>.json`` (one partition) or ``validation/<stage>/part-NNNNN.json``.

    Raises
    ------
    customer_ai.validation.DataValidationError
        When an expectation fails on the partition; with several, the message names the partition first and
        ``validation/<stage>.json`` says which failed.
    """
    name = f"{stage}.json" if count == 1 else f"{stage}/part-{partition:05d}.json"
    try:
        return validate_frame(
            frame,
            stage,
            parameters=parameters,
            extra_suites=_suites(spec, stage),
            result_path=folder / "validation" / name,
        )
    except DataValidationError as exc:
        if count == 1:
            raise
        said = (
            f"{stage} of partition {partition + 1} of {count} (the {len(frame):,} {stage} of the profiles whose "
            f"id hashes to it; every expectation holds in each partition):\n{exc.summary}"
        )
        report = {**exc.report, "partition": partition, "partitions": count, "rows": len(frame), "summary": said}
        artifacts.write_json(folder / "validation" / f"{stage}.json", {**report, "failures": exc.failures})
        raise DataValidationError(said, exc.result_path, exc.failures, report) from None


def _merged_validation(folder: Path, stage: str, validations: list[dict | None], rows: int) -> dict:
    """Return a stage's validation over its partitions (each's summary with its ``rows``; None: not validated).

    With one partition its summary is the stage's; with several, ``validation/<stage>.json`` lists them.
    """
    count = len(validations)
    if count == 1:
        return {k: v for k, v in validations[0].items() if k != "rows"}
    first = next(v for v in validations if v is not None)
    summary = {
        "stage": stage,
        "suites": first["suites"],
        "success": all(v["success"] for v in validations if v is not None),
        "evaluated": first["evaluated"],
        "failed": 0,
        "result_path": str(folder / "validation" / f"{stage}.json"),
    }
    lines = [f"all {first['evaluated']} expectations passed in each of the {count} partitions of the {stage}"]
    artifacts.write_json(
        folder / "validation" / f"{stage}.json",
        {
            **summary,
            "summary": "\n".join(lines),
            "rows": rows,
            "partitions": count,
            "parts": [
                {"partition": i, **(v or {"skipped": f"no profile hashed to it: no {stage} to check"})}
                for i, v in enumerate(validations)
            ],
            "failures": [],
        },
    )
    return summary


@dataclass
class _SplitTotals:
    """What the first step adds up over the partitions of the events: counts, times, days and validation."""

    loaded: int = 0
    in_run: int = 0
    profiles: int = 0
    part_events: list = field(default_factory=list)
    part_profiles: list = field(default_factory=list)
    first: pd.Timestamp | None = None
    last: pd.Timestamp | None = None
    first_in_run: pd.Timestamp | None = None
    last_in_run: pd.Timestamp | None = None
    joined: dict | None = None
    example: object = None
    validations: list = field(default_factory=list)
    part_eligible: list = field(default_factory=list)
    _days: list = field(default_factory=list)
    _goal_days: list = field(default_factory=list)

    def add_run_facts(self, spec: InstanceSpec, in_run: pd.DataFrame, as_of: pd.Timestamp) -> None:
        """Count a partition's profiles eligible at ``as_of`` and the days of its goal events (the run's own)."""
        self.part_eligible.append(len(eligible_profiles(in_run, spec.eligibility, as_of)))
        goal = in_run["timestamp"].iloc[np.flatnonzero(patterns_mask(in_run, spec.goal.events))]
        if len(goal):
            self._goal_days.append(event_days(goal))

    @property
    def goal_events_seen(self) -> bool:
        """Whether any partition's events in the run's window match the goal."""
        return bool(self._goal_days)

    def goal_start(self) -> str | None:
        """Return where the run's goal events' history starts (:func:`customer_ai.history.find_data_start`)."""
        if not self._goal_days:
            return None
        started = find_data_start(_merged_days(self._goal_days)).start
        return None if started is None else started.isoformat()

    def add_validation(self, summary: dict | None, rows: int) -> None:
        """Add a partition's validation summary (None: a partition without events, not validated)."""
        self.validations.append(None if summary is None else {**summary, "rows": rows})

    def add(self, events: pd.DataFrame, in_run: pd.DataFrame, joined: dict | None) -> None:
        """Count a partition: its events (sorted by time), those in the run's window, and their profiles."""
        self.loaded += len(events)
        if len(events):
            stamps = events["timestamp"]
            self.first = stamps.iloc[0] if self.first is None else min(self.first, stamps.iloc[0])
            self.last = stamps.iloc[-1] if self.last is None else max(self.last, stamps.iloc[-1])
            self._days.append(event_days(stamps))
        profiles = int(in_run["profile_id"].nunique())
        self.in_run += len(in_run)
        self.profiles += profiles
        self.part_events.append(len(in_run))
        self.part_profiles.append(profiles)
        if len(in_run):
            stamps = in_run["timestamp"]
            earliest, latest = stamps.iloc[0], stamps.iloc[-1]
            self.first_in_run = earliest if self.first_in_run is None else min(self.first_in_run, earliest)
            self.last_in_run = latest if self.last_in_run is None else max(self.last_in_run, latest)
            if self.example is None:
                self.example = in_run["profile_id"].iloc[0]
        if joined is not None:
            self.joined = joined if self.joined is None else {k: self.joined[k] + v for k, v in joined.items()}

    def days(self) -> pd.DataFrame:
        """Return the events' :func:`customer_ai.history.event_days` over every partition."""
        if not self._days:
            return event_days(pd.Series([], dtype="datetime64[us, UTC]"))
        return _merged_days(self._days)

    def validation_summary(self, folder: Path, count: int) -> dict:
        """Return the events' validation over every partition; with several, write ``validation/events.json``."""
        return _merged_validation(folder, "events", self.validations[:count], self.loaded)


def _merged_days(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Return the :func:`customer_ai.history.event_days` of the union of events, from each part's."""
    merged = pd.concat(parts, ignore_index=True).groupby("day", sort=True)
    return merged.agg(events=("events", "sum"), first=("first", "min"), last=("last", "max")).reset_index()


def _no_events_message(spec: InstanceSpec, totals: _SplitTotals, start: pd.Timestamp, end: pd.Timestamp) -> str:
    window = f"[{start:%Y-%m-%d}, {end:%Y-%m-%d})"
    if not totals.loaded:
        return f"instance {spec.name}: there are no events at all, so nothing in the run's window {window}"
    first, last = totals.first, totals.last
    if start > last:
        where = "after the events end"
    elif end <= first:
        where = "before the events start"
    else:
        where = "in a gap of the events"
    return (
        f"instance {spec.name}: no events before the as-of date {end:%Y-%m-%d} in the run's window {window}, "
        f"which lies {where} (the events run from {first:%Y-%m-%d} to {last:%Y-%m-%d}); pick an as-of date "
        "the events cover"
    )


def _run_attributes(spec: InstanceSpec, folder: Path) -> RunAttributes | None:
    """Return the run's profile attributes as its first step kept them per partition (None: the instance has none)."""
    if spec.profiles is None:
        return None
    return read_run_attributes(folder, int(_source(folder)["partitions"]["count"]))


def _source(folder: Path) -> dict:
    """Return what the first step wrote of the run's events (``source.json``), or say to run that step."""
    path = folder / "source.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run the validate_events step first")
    return artifacts.read_json(path)


def _data_start(folder: Path) -> pd.Timestamp | None:
    started = _source(folder)["data_start"]
    return None if started is None else pd.Timestamp(started).tz_convert("UTC")


def _run_parts(folder: Path) -> EventParts:
    """Return the run's events as the partitions its first step split them into (see :func:`validate_events`)."""
    split = _source(folder)["partitions"]

    def stamp(key: str) -> pd.Timestamp | None:
        return None if split.get(key) is None else pd.Timestamp(split[key]).tz_convert("UTC")

    return EventParts(
        count=int(split["count"]),
        read=lambda partition: read_part(folder, partition),
        first_event=stamp("first_event"),
        last_event=stamp("last_event"),
        goal_start=stamp("goal_start"),
    )


def _drift_sample(
    spec: InstanceSpec, as_of: pd.Timestamp, folder: Path
) -> Callable[[pd.DataFrame, EventIndex], pd.Index]:
    """Return the rule that picks a partition's profiles of the drift sample: eligible at ``as_of``, hashed to 0.

    A hash partition of the profiles eligible at ``as_of`` (at most about :data:`DRIFT_SAMPLE` of them, counted
    over every partition by the first step), so the same profiles are checked every time.
    """
    eligible = sum(_source(folder)["partitions"]["eligible"])
    count = max(1, -(-eligible // DRIFT_SAMPLE))

    def pick(events: pd.DataFrame, index: EventIndex) -> pd.Index:
        profiles = eligible_profiles(events, spec.eligibility, as_of, index=index)
        return profiles[partition_of(profiles, count) == 0]

    return pick


def find_reusable_model(spec: InstanceSpec, as_of: pd.Timestamp, home: Path) -> dict | None:
    """Return the metadata of the newest good model that a run as of ``as_of`` may reuse, if any.

    A model qualifies when it was trained for the same model definition (``spec.model_hash()``) by code that
    builds the same features (:data:`customer_ai.features.FEATURES_VERSION`; models stored before the number
    existed are version 1), as of a date ``T'`` with ``as_of - retrain_every_days < T' <= as_of``, meets the
    current quality gate, and its files read back whole: a broken model folder met on the way is moved aside and
    said in the log (see :func:`customer_ai.artifacts.model_problem`).
    """
    days = spec.training.retrain_every_days
    if days == 0:
        return None
    candidates = []
    for folder in artifacts.model_folders(home, spec.name):  # never a staging folder, nor one moved aside
        if not (folder / "model.txt").exists():
            continue  # half a model: never reused
        try:
            meta = artifacts.read_json_object(folder / "model.json", artifacts.MODEL_FILE_KEYS)
            trained = pd.Timestamp(meta["as_of"], tz="UTC")
        except (ValueError, TypeError) as exc:  # not JSON, a key missing, no date: which model it is is unknown
            artifacts.set_aside(folder, str(exc))
            continue
        if (
            meta.get("model_hash") == spec.model_hash()
            and meta.get("features_version", 1) == FEATURES_VERSION
            and trained <= as_of < trained + pd.Timedelta(days=days)
            and model_verdict(spec, meta, spec.training.min_auc)[0] == "ok"
        ):
            candidates.append((meta, folder))
    # the newest candidate whose files read back whole; a broken one is moved aside (and the next one tried)
    for meta, folder in sorted(candidates, key=lambda c: (c[0]["as_of"], c[0]["model_version"]), reverse=True):
        if artifacts.usable_model(folder):
            return meta
    return None


def build_training_set(
    spec: InstanceSpec,
    as_of: pd.Timestamp,
    home: Path,
    *,
    force_retrain: bool = False,
    attempt: str = DEFAULT_ATTEMPT,
) -> dict:
    """Build and validate the training set, unless a model trained recently enough can be reused."""
    folder = _folder(spec, as_of, home, attempt)
    reusable = None if force_retrain else find_reusable_model(spec, as_of, home)
    if reusable is not None:
        check = _drift_since(spec, as_of, home, reusable, folder)
        if check["status"] in {"ok", "unknown"}:
            logger.info(
                "retraining not due: reusing model %s trained as of %s", reusable["model_version"], reusable["as_of"]
            )
            result = {"skipped": True, "reuse": reusable["model_version"], "drift_check": check}
            artifacts.write_json(folder / "plan.json", result)
            return result
        logger.warning(
            "retraining early: since model %s was trained, the profiles to score moved from its training rows by "
            "the warning or more (monitoring.drift_warn %g; a sample of %s profiles, largest rise of a stability "
            "index %.3f): %s",
            reusable["model_version"],
            spec.monitoring.drift_warn,
            f"{check['profiles']:,}",
            check["largest_psi"],
            "; ".join(check["moved_most"]),
        )
    parts = _run_parts(folder)
    training_set = PropensityModel(spec).build_training_set_parts(
        parts,
        as_of,
        _run_attributes(spec, folder),
        data_start=_data_start(folder),
        also_keep=_drift_sample(spec, as_of, folder),
    )
    artifacts.write_frame(folder / TRAINING_EVENTS, training_set.events)  # what the train step reads
    frame = training_set.to_frame()
    with step("validating the training set"):
        summary = validate_frame(
            frame,
            "training_set",
            extra_suites=_suites(spec, "training_set"),
            result_path=folder / "validation" / "training_set.json",
        )
    artifacts.write_frame(folder / "training_set.parquet", frame)
    counts = training_set.counts()
    history = training_set.snapshot_plan
    plan = {
        "skipped": False,
        "snapshots": [c["as_of"] for c in counts],
        "label_counts": counts,
        "history": history.to_dict(),
        "plan": training_set.feature_plan.to_dict(),
        "sample": training_set.sample,
        "read_from": None if parts.first_event is None else parts.first_event.isoformat(),
        "repeat_models": _models_json(training_set.repeat_models),
    }
    artifacts.write_json(folder / "plan.json", plan)
    positives, negatives = training_totals(counts)
    return {
        "skipped": False,
        "rows": len(frame),
        "positives": positives,
        "negatives": negatives,
        "lookback_days": history.lookback_days,
        "history_adapted": history.adapted,
        "validation": summary,
    }


DRIFT_SAMPLE = 20_000  # profiles whose features tell whether a model to reuse still fits the data
TRAINING_EVENTS = "training_events.parquet"  # the training sample's and the drift sample's events


def _models_json(models: dict | None) -> dict:
    return {f"{date:%Y-%m-%d}": None if model is None else asdict(model) for date, model in (models or {}).items()}


def _models_of(data: dict) -> dict[pd.Timestamp, BGNBD | None]:
    return {as_of_timestamp(date): None if model is None else BGNBD(**model) for date, model in data.items()}


def _sample_drift(
    spec: InstanceSpec,
    as_of: pd.Timestamp,
    estimator: PropensityModel,
    reference: dict,
    sample: DriftSample,
) -> pd.DataFrame:
    """Return the drift table of the drift sample's profiles (see :func:`_drift_sample`) against a model's reference."""
    index = EventIndex(sample.events)
    profiles = sample.pick(sample.events, index)  # every profile the events hold that the rule picks
    features = estimator.features(
        sample.events,
        as_of,
        profiles,
        None if sample.attributes is None else sample.attributes.of(profiles),
        index=index,
        repeat_models={as_of: sample.repeat_model},
        read_from=sample.read_from,
    )
    table = drift_table(reference, drift_counts(reference, features))
    table.attrs["profiles"] = len(profiles)
    return table


@dataclass
class DriftSample:
    """The drift sample's events (and maybe more profiles'), the rule that picks it, and what its features need."""

    events: pd.DataFrame
    pick: Callable[[pd.DataFrame, EventIndex], pd.Index]
    repeat_model: BGNBD | None
    read_from: pd.Timestamp | None
    attributes: RunAttributes | None = None


def _read_drift_sample(spec: InstanceSpec, as_of: pd.Timestamp, folder: Path) -> DriftSample:
    """Read the drift sample's events from the run's partitions, one at a time, with the repeat-buying model."""
    parts, pick = _run_parts(folder), _drift_sample(spec, as_of, folder)
    frames, histories = [], CountsTally()
    with step(f"reading the drift sample's events ({parts.count} partition(s))"):
        for partition in range(parts.count):
            events = parts.read(partition)
            index = EventIndex(events)
            frames.append(index.events_of(pick(events, index)))
            histories.add(repeat_model_counts(events, [as_of], spec, index=index)[as_of])
            del events, index
    events = frames[0] if len(frames) == 1 else sort_events(pd.concat(frames, ignore_index=True))
    repeat_model = fit_repeat_counts({as_of: histories})[as_of]
    return DriftSample(events, pick, repeat_model, parts.first_event, _run_attributes(spec, folder))


def _drift_since(spec: InstanceSpec, as_of: pd.Timestamp, home: Path, model: dict, folder: Path) -> dict:
    """Return how far the profiles to score moved from a stored model's training rows since it was trained.

    Each feature's stability index now (a fixed sample of the profiles eligible at ``as_of``, see
    :func:`_drift_sample`) less its index when the model was trained (``drift_at_training``: the profiles eligible
    then): a shift the data had already when the model was trained (a short history makes the oldest snapshots'
    profiles differ from today's) is no reason to retrain, since a new model would meet it too.  ``status`` is
    ``warn`` when a feature moved by ``monitoring.drift_warn`` or more, ``unknown`` for a model stored before drift
    was measured.
    """
    reference = model.get("drift_reference")
    if reference is None:
        return {"status": "unknown", "reason": f"model {model['model_version']} was stored before drift was measured"}
    estimator, _ = artifacts.load_model(artifacts.model_dir(home, spec.name, model["model_version"]), spec)
    table = _sample_drift(spec, as_of, estimator, reference, _read_drift_sample(spec, as_of, folder))
    then = pd.Series(model.get("drift_at_training") or {}, dtype="float64").reindex(table.index).fillna(0.0)
    moved = table.assign(psi=(table["psi"] - then).clip(lower=0.0))
    return {
        "status": drift_status(moved, spec.monitoring.drift_warn),
        "profiles": table.attrs["profiles"],
        "largest_psi": float(moved["psi"].max()) if len(moved) else 0.0,
        "moved_most": describe_drift(moved, _feature_labels(spec, estimator.feature_plan_)),
    }


def _read_training_set(folder: Path) -> TrainingSet:
    plan = artifacts.read_json(folder / "plan.json")
    return TrainingSet.from_frame(
        pd.read_parquet(fetch(folder / "training_set.parquet")),
        FeaturePlan.from_dict(plan["plan"]),
        SnapshotPlan.from_dict(plan["history"]),
        plan.get("sample"),
    )


def train(spec: InstanceSpec, as_of: pd.Timestamp, home: Path, *, attempt: str = DEFAULT_ATTEMPT) -> dict:
    """Train, calibrate and store a model from the run's training set, or point the run at the reused one.

    Writes ``model.json`` in the run folder (the model's metadata plus ``reused``) and, for a new model, the
    model folder under ``<home>/models``.  A poor model is stored too (for inspection) but marked so.
    ``evaluation.json`` (the model and the baselines measured on the held-out evaluation half, with their
    curves: :func:`customer_ai.backtest.held_out_evaluation`) goes into the model folder and the run folder; a
    reused model's run copies it from the model folder, where models stored before it existed have none.  A model
    to reuse that broke since it was chosen, or a broken folder of the version just trained, is moved aside (see
    :func:`customer_ai.artifacts.model_problem`) and the run trains and stores a new one.
    """
    folder = _folder(spec, as_of, home, attempt)
    plan = artifacts.read_json(folder / "plan.json")
    reused = artifacts.model_dir(home, spec.name, plan["reuse"]) if plan.get("skipped") else None
    if reused is not None and not artifacts.usable_model(reused):  # broken since it was chosen: train instead
        build_training_set(spec, as_of, home, force_retrain=True, attempt=attempt)
        reused = None
    if reused is not None:
        meta = artifacts.read_json(reused / "model.json")
        artifacts.write_json(folder / "model.json", {**meta, "reused": True})
        if (reused / "evaluation.json").exists():
            artifacts.write_json(folder / "evaluation.json", artifacts.read_json(reused / "evaluation.json"))
        logger.info("model %s reused: trained as of %s", meta["model_version"], meta["as_of"])
        return _model_summary(meta, reused=True)
    training_set = _read_training_set(folder)
    estimator = PropensityModel(spec).fit_training_set(training_set)
    reference, moved = _drift_reference(spec, training_set)
    events = artifacts.read_frame(folder / TRAINING_EVENTS)  # the sample's and the drift sample's
    plan = artifacts.read_json(folder / "plan.json")
    models = _models_of(plan["repeat_models"])
    read_from = pd.Timestamp(plan["read_from"]).tz_convert("UTC") if plan.get("read_from") else None
    pick = _drift_sample(spec, as_of, folder)
    drift_sample = DriftSample(events, pick, models.get(as_of), read_from, _run_attributes(spec, folder))
    at_training = _sample_drift(spec, as_of, estimator, reference, drift_sample)  # what a reuse is measured against
    evaluation = held_out_evaluation(spec, estimator, training_set, events, repeat_models=models)
    if estimator.value_model_ is not None:  # the gate compares it with the best of every value baseline
        started = _data_start(folder) or events["timestamp"].min()
        estimator.judge_value(training_set, held_out_value_baselines(spec, training_set, events, data_start=started))
    status, reason = estimator.verdict()
    version = artifacts.model_version(estimator.model_, as_of, estimator.value_model_, estimator.timing_model_)
    meta = {
        "instance": spec.name,
        "model_version": version,
        "as_of": f"{as_of:%Y-%m-%d}",
        "propensity": spec.propensity,
        "goal": spec.goal_in_words(),
        "spec_hash": spec.spec_hash(),
        "model_hash": spec.model_hash(),
        "features_version": FEATURES_VERSION,
        "spec": spec.model_dump(mode="json"),
        "created_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "versions": artifacts.package_versions(),
        "quality": {"status": status, "reason": reason, "min_auc": spec.training.min_auc},
        "drift_reference": reference,
        "drift_validation": moved,
        "drift_at_training": {name: round(float(psi), 6) for name, psi in at_training["psi"].items()},
    }
    # a model folder of this version, if there is one already, keeps what it holds
    stored = artifacts.save_model(home, spec.name, estimator, meta, {"model_version": version, **evaluation})
    artifacts.write_json(folder / "evaluation.json", artifacts.read_json(stored / "evaluation.json"))
    meta = artifacts.read_json(stored / "model.json")
    logger.info("model %s trained as of %s, stored in %s", version, meta["as_of"], stored)
    artifacts.write_json(folder / "model.json", {**meta, "reused": False})
    return _model_summary(meta, reused=False)


def _feature_labels(spec: InstanceSpec, plan: FeaturePlan) -> dict[str, str]:
    return {info.name: info.label for info in feature_infos(plan, spec)}


def _drift_reference(spec: InstanceSpec, training_set: TrainingSet) -> tuple[dict, dict]:
    """Return the training rows' drift reference (kept with the model) and what moved at the validation snapshot.

    The second part compares the latest fully observed snapshot (validation) with the older ones the model is
    fitted on: the quality gate's log says what moved most between them.
    """
    plan = training_set.feature_plan
    features = training_set.features
    training = training_set.rows("training")
    reference = drift_reference(features.loc[training], fixed_scales(plan, spec))
    table = drift_table(reference, drift_counts(reference, features.loc[~training]))
    moved = {
        "largest_psi": float(table["psi"].max()) if len(table) else 0.0,
        "moved_most": describe_drift(table, _feature_labels(spec, plan)),
    }
    return reference, moved


def _gate(spec: InstanceSpec, min_auc: float | None) -> float:
    """Return the quality gate a run applies: the trigger's ``min_auc`` if given, else the instance's."""
    return spec.training.min_auc if min_auc is None else min_auc


def model_verdict(spec: InstanceSpec, model: dict, min_auc: float) -> tuple[str, str]:
    """Return ``("ok" | "poor", reason)`` for a model (its ``model.json``): its ROC AUC, then its value model's gain.

    A goal with a value passes only when both pass (:func:`customer_ai.value_model.value_verdict`, with
    ``training.min_value_gini_gain``), and one with timing only when its timing model passes too
    (:func:`customer_ai.timing_model.timing_verdict`, ``training.min_timing_concordance_gain``); the reason says
    each.
    """
    status, reason = quality_verdict(model["validation"]["metrics"], min_auc)
    for key, verdict, gain in (
        ("value", value_verdict, spec.training.min_value_gini_gain),
        ("timing", timing_verdict, spec.training.min_timing_concordance_gain),
    ):
        if status == "ok" and model.get(key):
            status, said = verdict(model[key].get("metrics") or {}, gain)
            reason = f"{reason}; {said}"
    return status, reason


def _bucket_counts(scores: pd.DataFrame) -> dict[str, int]:
    return {b: int((scores["bucket"] == b).sum()) for b in ("low", "medium", "high")}


def _model_summary(meta: dict, *, reused: bool) -> dict:
    metrics = meta["validation"]["metrics"]
    return {
        "model_version": meta["model_version"],
        "trained_as_of": meta["as_of"],
        "reused": reused,
        "quality": meta["quality"]["status"],
        "validation_auc": metrics.get("model_roc_auc", metrics["roc_auc"]),
        "calibration_error": metrics["calibration_error"],
    }


def quality_gate(
    spec: InstanceSpec,
    as_of: pd.Timestamp,
    home: Path,
    store: object,
    *,
    min_auc: float | None = None,
    attempt: str = DEFAULT_ATTEMPT,
    try_number: int = 1,
) -> dict:
    """Let a good model through; record a poor one as a ``poor`` attempt in the store and stop with the reason.

    Raises
    ------
    QualityGateError
        When validation ROC AUC is below ``min_auc`` (default ``training.min_auc``); the store's published runs
        and current scores are left as they are.
    """
    meta = artifacts.read_json(_folder(spec, as_of, home, attempt) / "model.json")
    metrics = meta["validation"]["metrics"]
    status, reason = model_verdict(spec, meta, _gate(spec, min_auc))
    logger.info(
        "quality gate: model %s: held-out ROC AUC %.3f against the gate of %.2f, calibration error %.3f: %s",
        meta["model_version"],
        metrics.get("model_roc_auc", metrics["roc_auc"]),
        _gate(spec, min_auc),
        metrics["calibration_error"],
        status,
    )
    moved = meta.get("drift_validation")
    plan_path = _folder(spec, as_of, home, attempt) / "plan.json"
    check = artifacts.read_json(plan_path).get("drift_check") if plan_path.exists() else None
    if meta.get("reused") and check is not None and check["status"] != "unknown":
        logger.info(
            "quality gate: model %s reused: since it was trained, %s sampled profiles to score moved from its "
            "training rows by less than the drift warning (largest rise of a stability index %.3f); what moved "
            "most: %s",
            meta["model_version"],
            f"{check['profiles']:,}",
            check["largest_psi"],
            "; ".join(check["moved_most"]) or "nothing",
        )
    elif moved is not None and not meta.get("reused"):
        logger.info(
            "quality gate: from the training snapshots to the validation snapshot, what moved most: %s",
            "; ".join(moved["moved_most"]) or "nothing",
        )
    if status != "ok":
        reason = f"model {meta['model_version']} is poor: {reason}; the previous scores are kept"
        store.record_attempt(  # type: ignore[attr-defined]
            spec.name,
            f"{as_of:%Y-%m-%d}",
            {
                "attempt": attempt,
                "step": GATE,
                "try_number": try_number,
                "status": "poor",
                "reason": reason,
                "model_version": meta["model_version"],
                "metrics": {**metrics, **{key: meta[key]["metrics"] for key in ("value", "timing") if meta.get(key)}},
            },
        )
        raise QualityGateError(reason)
    return {"status": status, "reason": reason, "model_version": meta["model_version"]}


SCORING = "scoring"  # the run folder's subfolder of the scoring plan and the partitions' scores


def _scoring_folder(spec: InstanceSpec, as_of: pd.Timestamp, home: Path, attempt: str) -> Path:
    """Return the run's scoring folder; partitions starting at once on a sealed run share one staging copy."""
    try:
        folder = _folder(spec, as_of, home, attempt)
    except OSError:  # another partition's task made the staging copy first
        folder = artifacts.staging_dir(home, spec.name, as_of, attempt)
        if not folder.exists():
            raise
    return folder / SCORING


def _scoring_count(folder: Path) -> int:
    """Return how many partitions the run's scoring has (``scoring/plan.json``)."""
    path = folder / "plan.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run the plan_scoring step first")
    planned = artifacts.read_json(path)
    if "sizes" not in planned or not (folder / _plan_name(0)).exists():
        raise FileNotFoundError(f"{path} was written by an earlier version of customer-ai: run plan_scoring again")
    return int(planned["partitions"])


def _plan_name(partition: int) -> str:
    return f"plan-{partition:05d}.parquet"


def _planned_ids(folder: Path, partition: int) -> pd.Index:
    """Return the profiles a partition scores, in their order (``scoring/plan-NNNNN.parquet``)."""
    ids = pd.read_parquet(fetch(folder / _plan_name(partition)))["profile_id"]
    return pd.Index(ids.to_numpy(dtype=object), name="profile_id")


def _part_path(folder: Path, partition: int) -> Path:
    return folder / f"part-{partition:05d}.parquet"


def _drift_part_path(folder: Path, partition: int) -> Path:
    return folder / f"drift-{partition:05d}.json"


def _part_events_path(folder: Path, partition: int) -> Path:
    return folder / f"events-{partition:05d}.parquet"


def _uses_repeat_model(spec: InstanceSpec, home: Path, version: str) -> bool:
    meta = artifacts.read_json(artifacts.model_dir(home, spec.name, version) / "model.json")
    return bool(meta["features"]["plan"].get("repeat_model"))


def _resplit(run_folder: Path, split: int, folder: Path, count: int) -> None:
    """Split the run's events again, into ``count`` partitions in the scoring folder (``events-NNNNN.parquet``).

    Only when a scoring asks for another count than the events were split into (``score --partitions``): the run's
    partitions are read one at a time and written out of core again, as the first step split them.
    """
    with tempfile.TemporaryDirectory(prefix="customer-ai-split-") as scratch:
        tables = (pa.Table.from_pandas(read_part(run_folder, k), preserve_index=False) for k in range(split))
        _, schema = write_split(tables, Path(scratch), count)
        for partition in range(count):
            events = read_split_part(Path(scratch), partition, schema)
            artifacts.write_frame(_part_events_path(folder, partition), events)
            remove_split_part(Path(scratch), partition)


def _scoring_events_path(run_folder: Path, partition: int) -> Path:
    """Return the file of a scoring partition's events: its own split, else the run's partition of that number."""
    planned = artifacts.read_json(run_folder / SCORING / "plan.json")
    if planned.get("resplit"):
        return _part_events_path(run_folder / SCORING, partition)
    return part_path(run_folder, partition)


def plan_scoring(
    spec: InstanceSpec,
    as_of: pd.Timestamp,
    home: Path,
    *,
    partitions: int | None = None,
    attempt: str = DEFAULT_ATTEMPT,
) -> dict:
    """List the profiles eligible at ``as_of`` by partition of the run's events (``scoring/plan-NNNNN.parquet``).

    The partitions are those the events were split into (:func:`validate_events`); ``partitions`` asks for
    another count, for which the events are split again into ``scoring/events-NNNNN.parquet``.  Each partition
    is read in turn: its eligible profiles, and the counts of the repeat-buying histories the features' model is
    fitted on (merged into the model of all the profiles' goal events, kept in ``scoring/plan.json``): a
    partition's scoring then reads its own profiles' events only, and no step's memory follows the run's size.
    Scores of an earlier scoring of the run are removed.  Returns ``partitions`` (the partition numbers, which
    the next step is mapped over), ``profiles`` and ``sizes`` (profiles per partition).
    """
    run_folder = _folder(spec, as_of, home, attempt)
    folder = artifacts.reset_dir(run_folder / SCORING)
    version = artifacts.read_json(run_folder / "model.json")["model_version"]
    split = _run_parts(run_folder).count
    count = split if partitions is None else partitions
    repeat = _uses_repeat_model(spec, home, version)
    with step(f"planning the scoring as of {as_of:%Y-%m-%d}") as info:
        if count != split:
            _resplit(run_folder, split, folder, count)
        sizes, histories, read_from = [], CountsTally(), None
        for partition in range(count):
            path = _part_events_path(folder, partition) if count != split else part_path(run_folder, partition)
            events = artifacts.read_frame(path)
            index = EventIndex(events)
            eligible = eligible_profiles(events, spec.eligibility, as_of, index=index)
            ids = np.sort(np.asarray(eligible, dtype=object).astype(str), kind="stable")
            artifacts.write_frame(folder / _plan_name(partition), pd.DataFrame({"profile_id": ids}))
            sizes.append(len(ids))
            if repeat:
                histories.add(repeat_model_counts(events, [as_of], spec, index=index)[as_of])
            if len(events):
                first = events["timestamp"].iloc[0]
                read_from = first if read_from is None else min(read_from, first)
            del events, index
        repeat_models = fit_repeat_counts({as_of: histories}) if repeat else {}
        info["profiles"] = sum(sizes)
        info["partitions"] = count
    artifacts.write_json(
        folder / "plan.json",
        {
            "partitions": count,
            "resplit": count != split,
            "profiles": sum(sizes),
            "sizes": sizes,
            "model_version": version,
            "read_from": None if read_from is None else read_from.isoformat(),
            "repeat_models": {
                f"{date:%Y-%m-%d}": None if model is None else asdict(model) for date, model in repeat_models.items()
            },
        },
    )
    logger.info("%s eligible profiles in %d partition(s)", f"{sum(sizes):,}", count)
    return {"partitions": list(range(count)), "profiles": sum(sizes), "sizes": sizes}


@dataclass
class ScoringInputs:
    """What every partition of a run's scoring shares: the model, its repeat-buying fit, where the attributes are.

    Loaded on first use by :meth:`load`.  The command hands one object to every partition it scores, so the
    model is loaded once per run; an Airflow task scores one partition and loads its own.  The events are
    not shared: each partition reads its own profiles' (see :func:`plan_scoring`).
    """

    estimator: PropensityModel | None = None
    model_version: str = ""
    repeat_models: dict | None = None
    attributes: RunAttributes | None = None  # read per partition, for the profiles it scores
    drift_reference: dict | None = None  # the training rows in bins (models stored before drift was measured: None)
    read_from: pd.Timestamp | None = None  # the first event the run read (the goal rate's history)

    def load(
        self, spec: InstanceSpec, as_of: pd.Timestamp, home: Path, attempt: str = DEFAULT_ATTEMPT
    ) -> ScoringInputs:
        """Load what is not loaded yet; return ``self``."""
        if self.estimator is None:
            folder = _folder(spec, as_of, home, attempt)
            version = artifacts.read_json(folder / "model.json")["model_version"]
            self.estimator, meta = artifacts.load_model(artifacts.model_dir(home, spec.name, version), spec)
            self.model_version = meta["model_version"]
            self.drift_reference = meta.get("drift_reference")
            plan = artifacts.read_json(folder / SCORING / "plan.json")
            if "repeat_models" not in plan:  # planned by a version that let every partition read every event
                raise FileNotFoundError(
                    f"{folder / SCORING / 'plan.json'} was written by an earlier version of customer-ai: run the "
                    "plan_scoring step again"
                )
            fitted = plan["repeat_models"]
            self.read_from = pd.Timestamp(plan["read_from"]) if plan.get("read_from") else None
            self.repeat_models = {
                as_of_timestamp(date): None if model is None else BGNBD(**model) for date, model in fitted.items()
            }
            self.attributes = _run_attributes(spec, folder)
        return self


def score_partition(
    spec: InstanceSpec,
    as_of: pd.Timestamp,
    home: Path,
    partition: int,
    *,
    factors: int | None = None,
    inputs: ScoringInputs | None = None,
    attempt: str = DEFAULT_ATTEMPT,
) -> dict:
    """Score the profiles of one partition with their influential factors; write ``scoring/part-NNNNN.parquet``.

    Reads the partition's own profiles' events only.  The part holds ``profile_id``, ``probability``,
    ``model_version`` and ``factors`` (JSON) in the plan's order; it is written atomically, so a retried or
    re-run partition replaces it whole.  Percentiles and buckets need every partition: :func:`combine_scores`
    adds them.
    """
    folder = _scoring_folder(spec, as_of, home, attempt)
    count = _scoring_count(folder)
    if not 0 <= partition < count:
        raise ValueError(f"partition {partition} does not exist: the run's scoring has partitions 0 .. {count - 1}")
    ids = _planned_ids(folder, partition)
    inputs = (inputs or ScoringInputs()).load(spec, as_of, home, attempt)
    estimator = inputs.estimator
    with step(f"scoring profiles as of {as_of:%Y-%m-%d} (partition {partition + 1} of {count})") as info:
        path = _scoring_events_path(folder.parent, partition)
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: run the validate_events and plan_scoring steps again")
        events = artifacts.read_frame(path)
        attributes = None if inputs.attributes is None else inputs.attributes.of(ids)
        features = estimator.features(
            events, as_of, ids, attributes, repeat_models=inputs.repeat_models, read_from=inputs.read_from
        )
        probability = estimator.predict_proba(features)
        info["profiles"] = len(ids)
        info["events"] = len(events)
    if inputs.drift_reference is not None:  # counted in the training rows' bins: the parts add up in combine_scores
        artifacts.write_json(_drift_part_path(folder, partition), drift_counts(inputs.drift_reference, features))
    del events
    with step("explaining scores with TreeSHAP"):
        explained = estimator.explain(features, factors, inputs.drift_reference)
    part = pd.DataFrame(
        {
            "profile_id": np.asarray(ids, dtype=object),
            "probability": probability,
            "model_version": inputs.model_version,
            "factors": pd.Series(explained, dtype=object),
        }
    )
    timing = estimator.predict_timing(features, probability, as_of)
    if timing is not None:  # the days to the next goal event, the median of a curve anchored on the probability
        part["days_to_next"] = timing[0]
        part["next_by"] = pd.Series(timing[1], dtype="str")  # text even in a partition where every date is missing
    expected_value = estimator.predict_value(features)
    if expected_value is not None:
        with step("explaining expected values with TreeSHAP (on the log of the expected value)"):
            part["value_factors"] = pd.Series(
                estimator.explain_value(features, factors, inputs.drift_reference), dtype=object
            )
        part.insert(2, "expected_value", expected_value)
    artifacts.write_frame(_part_path(folder, partition), part)
    return {"partition": partition, "profiles": len(part), "model_version": inputs.model_version}


def combine_scores(spec: InstanceSpec, as_of: pd.Timestamp, home: Path, *, attempt: str = DEFAULT_ATTEMPT) -> dict:
    """Put the partitions' scores together, with percentiles and buckets over all of them.

    Writes ``scores.parquet``: every eligible profile once, one row group per partition (partition by partition,
    each in the order of its plan: by profile id), with exactly the values a scoring of everyone at once gives.
    The parts are read one at a time: checked first, then their probabilities a few times over (the percentiles
    are taken among all of them: :func:`customer_ai.quantiles.order_statistics` finds the 99 probabilities that cut
    them without holding every profile's), then each part whole, written out with its score columns.  In a bucket
    home each part is downloaded once.

    Raises
    ------
    FileNotFoundError
        When a partition has not been scored.
    ValueError
        When a part does not hold its partition's profiles or was scored with another model than the run's.
    """
    run_folder = _folder(spec, as_of, home, attempt)
    folder = run_folder / SCORING
    count = _scoring_count(folder)
    version = artifacts.read_json(run_folder / "model.json")["model_version"]
    paths = [fetch(_part_path(folder, k)) if _part_path(folder, k).exists() else None for k in range(count)]
    per_score = sum((_checked_part(folder, k, version, path) for k, path in enumerate(paths)), np.zeros(101, "int64"))
    profiles = int(per_score.sum())
    rule = choose_bucket_rule(spec.output, per_score)

    def probabilities() -> Iterator[np.ndarray]:
        for path in paths:
            yield pq.read_table(path, columns=["probability"])["probability"].to_numpy()

    cuts = order_statistics(probabilities, percentile_ranks(profiles))
    buckets = dict.fromkeys(("low", "medium", "high"), 0)
    totals = {"expected_value": 0.0, "valued": False}

    def parts() -> Iterator[pd.DataFrame]:
        for path in paths:
            part = pd.read_parquet(path)
            scores = score_frame(part["profile_id"], part["probability"].to_numpy(), rule, cuts=cuts)
            if "expected_value" in part.columns:
                scores["expected_value"] = part["expected_value"].to_numpy(dtype="float64")
                totals["expected_value"] += float(scores["expected_value"].sum())
                totals["valued"] = True
            for column in ("days_to_next", "next_by"):
                if column in part.columns:
                    scores[column] = part[column].reset_index(drop=True)
            scores["propensity"] = spec.propensity
            scores["as_of"] = f"{as_of:%Y-%m-%d}"
            scores["model_version"] = version
            scores["factors"] = part["factors"].to_numpy(dtype=object)
            if "value_factors" in part.columns:
                scores["value_factors"] = part["value_factors"].to_numpy(dtype=object)
            for name, n in _bucket_counts(scores).items():
                buckets[name] += n
            yield scores
            del part, scores

    artifacts.write_frames(run_folder / "scores.parquet", parts())
    for partition in range(count):  # the partitions' events are not needed any more
        _part_events_path(folder, partition).unlink(missing_ok=True)
    logger.info("scored %s profiles: %s", f"{profiles:,}", ", ".join(f"{k} {n:,}" for k, n in buckets.items()))
    logger.info("buckets %s", rule.in_words())
    valued = bool(totals["valued"])
    if valued:
        logger.info(
            "expected value of the goal's events in the next %d days: %s in all, %s per profile",
            spec.goal.window_days,
            f"{totals['expected_value']:,.2f}",
            f"{totals['expected_value'] / max(profiles, 1):,.2f}",
        )
    top = int(np.flatnonzero(per_score).max()) if profiles else None
    for note in top_score_notes(rule, top) if top is not None else []:
        logger.info("%s", note)
    artifacts.write_json(run_folder / BUCKET_RULE_FILE, rule.to_dict())
    drift = _measure_drift(spec, run_folder, count)
    return {
        "scored_profiles": profiles,
        "buckets": buckets,
        "bucket_rule": rule.to_dict(),
        "model_version": version,
        "partitions": count,
        "drift": drift["status"],
        **({"expected_value": totals["expected_value"]} if valued else {}),
    }


def _checked_part(folder: Path, partition: int, version: str, local: Path | None) -> np.ndarray:
    """Return how many of a scored partition's profiles have each score (:func:`profiles_per_score`), once checked.

    Its part (the ``local`` copy of it; None: missing) must hold its plan's profiles, scored by the run's model.
    """
    path = _part_path(folder, partition)
    if local is None:
        raise FileNotFoundError(f"{path} is missing: run the score_partition step for partition {partition}")
    part = pd.read_parquet(local, columns=["profile_id", "probability", "model_version"])
    expected = _planned_ids(folder, partition).to_numpy(dtype=object)
    if not np.array_equal(part["profile_id"].to_numpy(dtype=object), expected):
        raise ValueError(f"{path} does not hold the {len(expected):,} profiles of partition {partition}")
    if len(part) and set(part["model_version"]) != {version}:
        raise ValueError(f"{path} was scored with model {part['model_version'].iloc[0]}, not the run's {version}")
    return profiles_per_score(part["probability"].to_numpy())


def _measure_drift(spec: InstanceSpec, run_folder: Path, count: int) -> dict:
    """Compare the scored profiles' features with the model's training rows; write ``drift.json``; say what moved.

    Raises
    ------
    DriftStopError
        When a feature's stability index reaches ``monitoring.drift_stop``.
    """
    model = artifacts.read_json(run_folder / "model.json")
    reference = model.get("drift_reference")
    monitoring = spec.monitoring
    paths = [_drift_part_path(run_folder / SCORING, partition) for partition in range(count)]
    thresholds = {"warn": monitoring.drift_warn, "stop": monitoring.drift_stop}
    if reference is None or not all(path.exists() for path in paths):
        why = "was stored before drift was measured" if reference is None else "was used by an earlier version"
        drift = {"status": "unknown", "reason": f"model {model['model_version']} {why}", **thresholds}
        logger.info("drift: not measured: %s", drift["reason"])
        artifacts.write_json(run_folder / "drift.json", drift)
        return drift
    table = drift_table(reference, add_counts([artifacts.read_json(path) for path in paths]))
    status = drift_status(table, monitoring.drift_warn, monitoring.drift_stop)
    moved = describe_drift(table, _feature_labels(spec, FeaturePlan.from_dict(model["features"]["plan"])))
    largest = float(table["psi"].max()) if len(table) else 0.0
    drift = {
        "status": status,
        **thresholds,
        "largest_psi": largest,
        "moved_most": moved,
        "features": [
            {"feature": name, **{k: None if pd.isna(v) else float(v) for k, v in row.items()}}
            for name, row in table.sort_values("psi", ascending=False, kind="stable").iterrows()
        ],
    }
    artifacts.write_json(run_folder / "drift.json", drift)
    said = {"ok": "below the warning", "warn": "at or above the warning", "stop": "at or above the stop"}[status]
    logger.log(
        logging.WARNING if status != "ok" else logging.INFO,
        "drift %s: the largest stability index of a feature, %.3f, is %s (%g); what moved most: %s",
        status,
        largest,
        said,
        monitoring.drift_stop if status == "stop" else monitoring.drift_warn,
        "; ".join(moved) or "nothing",
    )
    if status == "stop":
        raise DriftStopError(
            f"the profiles to score lie too far from the training rows: a feature's stability index reached "
            f"{largest:.3f}, at or above monitoring.drift_stop ({monitoring.drift_stop:g}); what moved most: "
            f"{'; '.join(moved)}. Nothing was published; the previous run stays current"
        )
    return drift


def score(
    spec: InstanceSpec,
    as_of: pd.Timestamp,
    home: Path,
    *,
    factors: int | None = None,
    partitions: int | None = None,
    attempt: str = DEFAULT_ATTEMPT,
) -> dict:
    """Score every profile eligible at ``as_of``: :func:`plan_scoring`, each partition, :func:`combine_scores`.

    ``partitions`` overrides ``scoring.partitions``.  Writes ``scores.parquet`` and returns what
    :func:`combine_scores` returns.
    """
    planned = plan_scoring(spec, as_of, home, partitions=partitions, attempt=attempt)
    inputs = ScoringInputs()
    for partition in planned["partitions"]:
        score_partition(spec, as_of, home, partition, factors=factors, inputs=inputs, attempt=attempt)
    return combine_scores(spec, as_of, home, attempt=attempt)


def read_scores(folder: Path) -> pd.DataFrame:
    """Return the scores of a run folder (``scores.parquet``), with ``factors`` (and ``value_factors``) as lists."""
    return _decoded(pd.read_parquet(fetch(as_path(folder) / "scores.parquet")))


def _decoded(scores: pd.DataFrame) -> pd.DataFrame:
    """Return ``scores`` with their factor columns' JSON text as lists of dicts."""
    for column in FACTOR_COLUMNS:
        if column in scores.columns:
            scores[column] = [json.loads(f) for f in scores[column]]
    return scores


def top_scores(folder: Path, count: int) -> pd.DataFrame:
    """Return the ``count`` scores of highest probability (ties: by profile id) of a run folder, factors decoded.

    ``scores.parquet`` is read a row group (a partition) at a time, keeping the best ``count`` so far.
    """
    best = None
    for part in artifacts.read_row_groups(as_path(folder) / "scores.parquet"):
        best = part if best is None else pd.concat([best, part], ignore_index=True)
        best = best.sort_values(["probability", "profile_id"], ascending=[False, True], kind="stable").head(count)
    if best is None:
        return pd.DataFrame()
    return _decoded(best.reset_index(drop=True))


def published_run(spec: InstanceSpec, as_of: pd.Timestamp | str, store: object) -> dict | None:
    """Return the store's row of the run published as of ``as_of`` (see ``read_runs``), or None."""
    date = as_of if isinstance(as_of, str) else f"{as_of:%Y-%m-%d}"
    runs = store.read_runs(spec.name)  # type: ignore[attr-defined]
    found = runs.loc[runs["as_of"] == date]
    return None if found.empty else found.iloc[0].to_dict()


def validate_scores(spec: InstanceSpec, as_of: pd.Timestamp, home: Path, *, attempt: str = DEFAULT_ATTEMPT) -> dict:
    """Validate the run's scores (Great Expectations) a partition at a time: ranges, buckets, one row per profile.

    ``scores.parquet`` holds one row group per partition of the scoring (see :func:`combine_scores`), each checked
    on its own, as the events are: a ``mostly`` share holds in each partition.  One row per profile in each is one
    row per profile of the run, since a profile's partition follows from its id.  A partition without profiles is
    not checked, unless none has any (the suites then fail on zero rows, as for a run in one partition).
    """
    folder = _folder(spec, as_of, home, attempt)
    path = fetch(folder / "scores.parquet")  # one local copy (in a bucket, one download) for both reads
    count = pq.read_metadata(path).num_row_groups
    validations, rows = [], 0
    for partition, scores in enumerate(artifacts.read_row_groups(path)):
        rows += len(scores)
        if not len(scores) and count > 1 and (partition < count - 1 or any(validations)):
            validations.append(None)
            continue
        summary = _validate_part(spec, "scores", scores, folder, partition=partition, count=count)
        validations.append({**summary, "rows": len(scores)})
        del scores
        # GX leaves each partition's validation in reference cycles (about 22 MB at 50,000 profiles): 2.9 GB at 10M
        artifacts.release_memory()
    return _merged_validation(folder, "scores", validations, rows)


def _tracked_past_runs(spec: InstanceSpec, as_of: pd.Timestamp, store: object) -> list[dict]:
    """Return the published runs before ``as_of`` whose outcomes the store has not recorded yet."""
    runs = store.read_runs(spec.name)  # type: ignore[attr-defined]
    tracked = set(store.read_outcomes(spec.name)["as_of"])  # type: ignore[attr-defined]
    past = runs.loc[runs["as_of"] < f"{as_of:%Y-%m-%d}"]
    return [row for row in past.to_dict("records") if row["as_of"] not in tracked]


def track_outcomes(
    spec: InstanceSpec, as_of: pd.Timestamp, home: Path, store: object, *, attempt: str = DEFAULT_ATTEMPT
) -> dict:
    """Find what came true for every published past run whose goal window has closed and is not yet tracked.

    A past run as of ``P`` is tracked by the first run as of ``T >= P + window_days`` whose events cover the
    whole goal window ``[P, P + window_days)`` (see :mod:`customer_ai.outcomes`); its scored profiles are read
    from the store's history.  A past run that scored another goal than the instance's current one (its
    ``metadata.json`` says so) is left untracked: its scores answered another question.  The outcomes go to the
    run folder's ``outcomes.parquet``; the store records them when this run publishes, with its scores.
    """
    folder = _folder(spec, as_of, home, attempt)
    parts = _run_parts(folder)
    start, _ = run_window(spec, as_of)
    untracked = {row["as_of"]: row for row in _tracked_past_runs(spec, as_of, store)}
    due = closed_window_dates(list(untracked), spec.goal.window_days, as_of, parts.last_event)
    skipped, tracking = {}, []
    for date in due:
        then = pd.Timestamp(date, tz="UTC")
        meta_path = artifacts.run_dir(home, spec.name, then, untracked[date]["run_id"]) / "metadata.json"
        goal_then = artifacts.read_json(meta_path).get("goal") if meta_path.exists() else None
        if then < start:
            skipped[date] = f"its goal window starts before this run's events ({start:%Y-%m-%d})"
        elif goal_then is not None and goal_then != spec.goal_in_words():
            skipped[date] = f"it scored another goal ({goal_then})"
        if date in skipped:
            logger.info("outcomes of the run as of %s not tracked: %s", date, skipped[date])
            continue
        tracking.append(date)
    tracked_at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    frames = []
    for date, outcomes in _reached_goals(spec, parts, store, tracking).items():
        frames.append(outcomes.assign(as_of=date, tracked_at=tracked_at))
        overall = outcomes.iloc[0]
        logger.info(
            "outcomes of the run as of %s: %s profiles, predicted %.1f%%, came true %.1f%%",
            date,
            f"{int(overall['profiles']):,}",
            100 * overall["predicted_rate"],
            100 * overall["realised_rate"],
        )
        if pd.notna(overall.get("predicted_value")):
            logger.info(
                "outcomes of the run as of %s: expected value %s per profile, realised %s",
                date,
                f"{overall['predicted_value']:,.2f}",
                f"{overall['realised_value']:,.2f}",
            )
    artifacts.write_frame(folder / OUTCOMES_FILE, tracked_frame(frames))
    return {"tracked": tracking, "skipped": skipped}


_PAST_SCORES = pa.schema(
    [("profile_id", pa.string()), ("probability", pa.float64()), ("percentile", pa.int64()), ("bucket", pa.string())]
)


def _reached_goals(spec: InstanceSpec, parts: EventParts, store: object, dates: list[str]) -> dict[str, pd.DataFrame]:
    """Return the predicted and realised rates of each past run's profiles (see :func:`outcome_rates`).

    The past runs' scores are read from the store's history in batches and split by profile hash out of core, as
    the events were; each partition of the run's events is then read once, with the past scores of its profiles,
    and the rates are added up (:class:`customer_ai.outcomes.OutcomeTally`): no step holds every profile.
    """
    if not dates:
        return {}
    tallies = {date: OutcomeTally(spec) for date in dates}
    valued = spec.goal.value is not None  # then each past run's expected values, NaN for a run that had none
    past_scores = _PAST_SCORES.append(pa.field("expected_value", pa.float64())) if valued else _PAST_SCORES
    columns = [f.name for f in past_scores]

    def batches() -> Iterator[pa.Table]:
        yield past_scores.append(pa.field("past", pa.string())).empty_table()
        for date in dates:
            for batch in store.score_batches(spec.name, date, columns):  # type: ignore[attr-defined]
                table = pa.Table.from_pandas(batch[columns], schema=past_scores, preserve_index=False)
                yield table.append_column("past", pa.array([date] * table.num_rows, pa.string()))

    with (
        step(f"finding what came true for {len(dates)} past run(s) ({parts.count} partition(s))"),
        tempfile.TemporaryDirectory(prefix="customer-ai-outcomes-") as scratch,
    ):
        _, schema = write_split(batches(), Path(scratch), parts.count)
        for partition in range(parts.count):
            past = read_split_rows(Path(scratch), partition, schema)
            remove_split_part(Path(scratch), partition)
            if not len(past):
                continue
            events = parts.read(partition)
            for date, scores in past.groupby("past", sort=False):
                ids = pd.Index(scores["profile_id"].astype(str))
                then = pd.Timestamp(date, tz="UTC")
                reached = goal_reached(events, spec.goal, then, ids).to_numpy()
                worth = None
                if valued:
                    worth = goal_value(events, spec.goal, spec.goal.value.field, then, ids).to_numpy()  # type: ignore[union-attr]
                tallies[date].add(scores, reached, worth)
            del events, past
    return {date: tally.rates() for date, tally in tallies.items()}


def write_report(
    spec: InstanceSpec, as_of: pd.Timestamp, home: Path, store: object, *, attempt: str = DEFAULT_ATTEMPT
) -> dict:
    """Write the run's ``report.html`` into its staging folder (see :mod:`customer_ai.report`); publish shows it.

    First adds to the run's ``drift.json`` how its scores compare with those of the published run of the previous
    as-of date (the store says which).
    """
    from customer_ai.report import build_report  # noqa: PLC0415 - only the step that draws loads matplotlib

    folder = _folder(spec, as_of, home, attempt)
    _compare_scores(spec, as_of, home, folder, store)  # the report shows it: before the report, not at publish
    with step("writing the report"):
        path = build_report(spec, as_of, home, store, folder=folder)
    logger.info("report written (%s KB); it is published with the run", f"{path.stat().st_size // 1024:,}")
    return {"report": path.name, "bytes": path.stat().st_size}


SEGMENTS = "segments.parquet"  # the run's segment membership: segment, profile_id


def _write_segments(spec: InstanceSpec, folder: Path, audiences: Sequence[SavedAudience] = ()) -> dict[str, int]:
    """Write the segment membership of a run folder's scores (``segments.parquet``); return the segments' sizes.

    A partition of the scores (a row group of ``scores.parquet``) at a time, its members one row group of the
    membership: a segment's rule tests one profile's scores only, so the parts add up to the whole run's.  A saved
    audience of the top N is first cut against the whole run (:func:`customer_ai.saved_audiences.resolve_cuts`:
    two more passes over the probabilities and ids).  The factors are read and decoded only when a rule tests them.
    """
    tests_factors = any(c.factor for s in spec.segments for c in s.where)
    path = fetch(folder / "scores.parquet")  # one local copy (in a bucket, one download) for both reads
    names = pq.read_schema(path).names
    columns = [c for c in names if c != "value_factors" and (tests_factors or c != "factors")]
    cuts = resolve_cuts(audiences, lambda: artifacts.read_row_groups(path, ["probability", "profile_id"]))
    audience_names = [cut.name for cut in cuts]
    sizes = dict.fromkeys(segment_sizes(pd.DataFrame({"segment": []}), spec, audience_names), 0)

    def parts() -> Iterator[pd.DataFrame]:
        for scores in artifacts.read_row_groups(path, columns):
            if tests_factors:
                scores["factors"] = [json.loads(f) for f in scores["factors"]]
            members = segment_members(scores, spec, cuts)
            for name, n in segment_sizes(members, spec, audience_names).items():
                sizes[name] += n
            yield members
            del scores, members

    artifacts.write_frames(folder / SEGMENTS, parts())
    return sizes


def _saved_audiences(spec: InstanceSpec, store: object) -> tuple[list[SavedAudience], list[dict[str, str]]]:
    """Return the instance's saved audiences a run applies, and those it skips (a name the file now takes), said."""
    applied, skipped = applicable(store.read_audiences(spec.name), (s.name for s in spec.segments))  # type: ignore[attr-defined]
    for audience in applied:
        logger.info("saved audience %s: %s (saved by %s)", audience.name, audience.words(), audience.saved_by or "?")
    for audience in skipped:
        logger.warning("saved audience %s is not applied: %s", audience["name"], audience["reason"])
    return applied, skipped


def _say_missing_factors(spec: InstanceSpec, model: dict) -> None:
    """Warn about segment rules that test a factor the run's model has no feature of (they can never hold).

    Which features a model has depends on the events (``customer-ai check`` tests the names against them); a run
    that skipped the check, or whose data changed, says it here instead of publishing a silently empty segment.
    """
    names = set(model.get("features", {}).get("names", []))
    for segment in spec.segments:
        for condition in segment.where:
            if condition.factor and condition.factor not in names:
                logger.warning(
                    "segment %s tests factor %s, which model %s has no feature of: the condition is false for every "
                    "profile (exists: false is true for every one)",
                    segment.name,
                    condition.factor,
                    model.get("model_version", "?"),
                )


def _score_drift(spec: InstanceSpec, as_of: pd.Timestamp, home: Path, staging: Path, store: object) -> dict | None:
    """Compare the run's probabilities with those of the published run of the previous as-of date, if any.

    Probabilities are binned in twentieths of ``[0, 1]`` (see :mod:`customer_ai.drift`); the stability index says
    how much the distribution of scores moved from one run to the next, the means by how much their level did.
    """
    runs = store.read_runs(spec.name)  # type: ignore[attr-defined]
    earlier = runs.loc[runs["as_of"] < f"{as_of:%Y-%m-%d}"]
    if earlier.empty:
        return None
    row = earlier.sort_values("as_of").iloc[-1]
    path = artifacts.run_dir(home, spec.name, pd.Timestamp(row["as_of"], tz="UTC"), row["run_id"]) / "scores.parquet"
    if not path.exists():
        return {"previous_as_of": row["as_of"], "reason": "its scores are no longer in its run folder"}
    columns = ["probability"]  # a row group (a partition) of each run's at a time
    before, now = (artifacts.read_row_groups(p, columns) for p in (path, staging / "scores.parquet"))
    row_of_table = scale_drift(before, now, {"probability": PROBABILITY_EDGES}).loc["probability"]
    return {
        "previous_as_of": row["as_of"],
        "psi": float(row_of_table["psi"]),
        **{
            name: None if pd.isna(row_of_table[column]) else float(row_of_table[column])
            for name, column in (("mean_previous", "mean_reference"), ("mean_now", "mean_current"))
        },
    }


def _seal(spec: InstanceSpec, as_of: pd.Timestamp, staging: Path, attempt: str, *, gate: float, store: object) -> Path:
    """Write the run's segments and metadata into its staging folder, then seal it; return the sealed folder.

    The segments are the instance file's and the instance's saved audiences, read from ``store`` now: the sealed
    folder's ``metadata.json`` keeps the rules it applied (``audiences``) and those it skipped.
    """
    final = artifacts.next_seal(staging, attempt)
    model = artifacts.read_json(staging / "model.json")
    scores_path = fetch(staging / "scores.parquet")
    buckets = dict.fromkeys(("low", "medium", "high"), 0)
    for part in artifacts.read_row_groups(scores_path, ["bucket"]):  # a partition at a time
        buckets = {name: n + _bucket_counts(part)[name] for name, n in buckets.items()}
    _say_missing_factors(spec, model)
    audiences, skipped = _saved_audiences(spec, store)
    sizes = _write_segments(spec, staging, audiences)
    _, reason = model_verdict(spec, model, gate)
    reason += f"; model trained as of {model['as_of']}{', reused' if model.get('reused') else ''}"
    if model.get("history", {}).get("single_period"):  # said wherever the run is: show, the view, the report
        reason += "; trained and judged on one period: no check across time"
    summary = {
        "instance": spec.name,
        "as_of": f"{as_of:%Y-%m-%d}",
        "run_id": final.name,
        "attempt": attempt,
        "propensity": spec.propensity,
        "goal": spec.goal_in_words(),
        "spec_hash": spec.spec_hash(),
        "model_version": model["model_version"],
        "model_trained_as_of": model["as_of"],
        "model_reused": bool(model.get("reused")),
        "validation": model["validation"],
        "history": model["history"],
        "quality": model["quality"],
        "reason": reason,
        "scored_profiles": sum(buckets.values()),
        "buckets": buckets,
        "bucket_rule": _bucket_rule(spec, staging).to_dict(),
        "segments": sizes,
        "audiences": [audience.record() for audience in audiences],
        "audiences_skipped": skipped,
        "drift": _drift_summary(staging),
        "expected": _expected(scores_path, model),
        **_expected_value(spec, scores_path, model),
        **_timing_summary(spec, scores_path, model),
        "versions": artifacts.package_versions(),
        "artifacts": str(final),
    }
    artifacts.write_json(staging / "metadata.json", summary)
    return artifacts.seal(staging, final)


def _bucket_rule(spec: InstanceSpec, folder: Path) -> BucketRule:
    """Return the bucket rule the run's scores were combined with.

    A folder combined before rules were kept used the instance's thresholds on the score, or on the percentile
    when ``buckets_by`` named it.
    """
    path = folder / BUCKET_RULE_FILE
    return BucketRule.of_run(artifacts.read_json(path) if path.exists() else None, spec.output)


def _compare_scores(spec: InstanceSpec, as_of: pd.Timestamp, home: Path, staging: Path, store: object) -> None:
    """Add the comparison with the previous run's scores to the run's ``drift.json`` and say it in the log."""
    path = staging / "drift.json"
    if not path.exists():
        return
    scores = _score_drift(spec, as_of, home, staging, store)
    if scores is None:
        return
    artifacts.write_json(path, {**artifacts.read_json(path), "scores": scores})
    if "psi" in scores:
        logger.info(
            "scores against the run as of %s: stability index %.3f, mean probability %.3f (then %.3f)",
            scores["previous_as_of"],
            scores["psi"],
            scores["mean_now"] if scores["mean_now"] is not None else float("nan"),
            scores["mean_previous"] if scores["mean_previous"] is not None else float("nan"),
        )


def _expected(scores: Path, model: dict) -> dict:
    """Return how many scored profiles (``scores.parquet``) are expected to reach the goal, with a range.

    The windows are the model's snapshots (latest first): how much their goal rate moved from one to the next is
    how much the next window's may move from the latest (see :func:`customer_ai.evaluation.expected_reach`).  The
    probabilities are read a partition at a time.
    """
    counts = model.get("label_counts", {}).get("snapshots", [])
    parts = (part["probability"].to_numpy() for part in artifacts.read_row_groups(scores, ["probability"]))
    return expected_reach(parts, window_rates(counts))


def _expected_value(spec: InstanceSpec, scores: Path, model: dict) -> dict:
    """Return the run's ``value`` summary (a goal with a value; else nothing): the expected total and the model's test.

    ``total`` and ``per_profile`` add up the scored profiles' ``expected_value`` (read a partition at a time);
    ``metrics`` are the value model's on the evaluation half (see :func:`customer_ai.value_model.value_quality`).
    """
    value = model.get("value")
    if not value:
        return {}
    total, profiles = 0.0, 0
    for part in artifacts.read_row_groups(scores, ["expected_value"]):
        total += float(part["expected_value"].sum())
        profiles += len(part)
    return {
        "value": {
            "field": value["field"],
            "window_days": spec.goal.window_days,
            "total": total,
            "per_profile": total / profiles if profiles else None,
            "metrics": value.get("metrics"),
        }
    }


def _timing_summary(spec: InstanceSpec, scores: Path, model: dict) -> dict:
    """Return the run's ``timing`` summary (with ``output.timing``; else nothing): how many profiles have a date.

    ``dated`` counts the profiles with a ``days_to_next`` (a median within the horizon and the learned intervals),
    ``within_window`` those whose median lies inside the goal window; ``metrics`` are the timing model's on the
    evaluation half (see :func:`customer_ai.timing_model.timing_quality`).
    """
    timing = model.get("timing")
    if not timing:
        return {}
    dated = within = profiles = 0
    for part in artifacts.read_row_groups(scores, ["days_to_next"]):
        days = part["days_to_next"].to_numpy(dtype="float64")
        profiles += len(days)
        dated += int((~np.isnan(days)).sum())
        within += int((days < spec.goal.window_days).sum())
    return {
        "timing": {
            "horizon_days": spec.timing_horizon(),
            "limit_days": TimingModel.described_limit_days(timing),
            "profiles": profiles,
            "dated": dated,
            "within_window": within,
            "metrics": timing.get("metrics"),
        }
    }


def _drift_summary(folder: Path) -> dict:
    """Return the run's drift in brief (status, largest index, what moved most, the scores against the last run)."""
    path = folder / "drift.json"
    if not path.exists():  # scored before drift was measured
        return {"status": "unknown", "reason": "the run was scored before drift was measured"}
    drift = artifacts.read_json(path)
    return {k: drift[k] for k in ("status", "reason", "largest_psi", "moved_most", "scores") if k in drift}


def _commit(spec: InstanceSpec, as_of: pd.Timestamp, folder: Path, store: object) -> dict:
    """Make the sealed run folder current: its scores, history, segments, outcomes and run row in one transaction."""
    meta = artifacts.read_json(folder / "metadata.json")
    outcomes = read_tracked(folder)
    with step(f"publishing {meta['scored_profiles']:,} scores and {len(meta['segments'])} segments to {store}"):
        store.write_run_parts(  # type: ignore[attr-defined]
            spec.name,
            f"{as_of:%Y-%m-%d}",
            _published_parts(folder),
            {
                "model_version": meta["model_version"],
                "status": "ok",
                "reason": meta["reason"],
                "metrics": {
                    **meta["validation"]["metrics"],
                    "drift": _drift_brief(meta),
                    "single_period": bool(meta["history"].get("single_period")),
                    "expected": {k: (meta.get("expected") or {}).get(k) for k in ("expected", "low", "high")},
                    "bucket_rule": meta.get("bucket_rule"),
                },
                "run_id": meta["run_id"],
                "attempt": meta["attempt"],
            },
            outcomes=outcomes,
        )
    return meta


def _published_parts(folder: Path) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """Yield a sealed run's scores and segment members a partition at a time (their files' row groups).

    The factors stay the JSON text ``scores.parquet`` holds, which the store keeps as it is.  A folder sealed
    before the segments were written a partition at a time gives its files whole, as one part.
    """
    scores_path, members_path = fetch(folder / "scores.parquet"), fetch(folder / SEGMENTS)  # each downloaded once
    groups = {pq.read_metadata(path).num_row_groups for path in (scores_path, members_path)}
    if len(groups) > 1:
        yield pd.read_parquet(scores_path), pd.read_parquet(members_path)
        return
    yield from zip(artifacts.read_row_groups(scores_path), artifacts.read_row_groups(members_path), strict=True)


def _drift_brief(meta: dict) -> dict:
    """Return what the run row keeps of a run's drift: its status and largest stability index."""
    drift = meta.get("drift") or {"status": "unknown"}
    return {"status": drift["status"], "largest_psi": drift.get("largest_psi")}


def publish(
    spec: InstanceSpec,
    as_of: pd.Timestamp,
    home: Path,
    store: object,
    *,
    min_auc: float | None = None,
    attempt: str = DEFAULT_ATTEMPT,
) -> dict:
    """Publish the run: seal its folder, then make it current in the store in one transaction (the commit point).

    Sealing writes the run's segment membership and ``metadata.json`` and renames the staging folder to its
    sealed name, which no later step writes into.  The commit then writes the scores, the history, the segment
    membership, the outcomes the run tracked and the run row naming the sealed folder, in one transaction; until
    it, every reader sees the previous run, after it the new one, whole.  Publishing again after the commit (a
    retried task) commits the attempt's newest sealed folder again: the same rows.  ``min_auc`` is the gate the
    run passed (the trigger's value, else ``training.min_auc``), quoted in the run's reason.

    Raises
    ------
    FileNotFoundError
        When the attempt has neither a staging folder nor a sealed one: its earlier steps have not run.
    """
    staging = artifacts.staging_dir(home, spec.name, as_of, attempt)
    if staging.exists():
        with step("sealing the run folder"):
            folder = _seal(spec, as_of, staging, attempt, gate=_gate(spec, min_auc), store=store)
    else:
        sealed = artifacts.sealed_runs(home, spec.name, as_of, attempt)
        if not sealed:
            raise FileNotFoundError(f"{staging} is missing: run the steps before publish for {spec.name}")
        folder = sealed[-1]
        logger.info("publishing the sealed run folder %s again", folder)
    meta = _commit(spec, as_of, folder, store)
    logger.info(
        "published run %s of %s as of %s: %s; segments: %s",
        meta["run_id"],
        spec.name,
        meta["as_of"],
        folder,
        ", ".join(f"{name} {size:,}" for name, size in meta["segments"].items()),
    )
    keys = ("instance", "as_of", "run_id", "model_version", "scored_profiles", "buckets", "segments", "artifacts")
    return {k: meta[k] for k in keys}


def record_failure(
    spec: InstanceSpec,
    as_of: pd.Timestamp,
    store: object,
    *,
    attempt: str,
    step_name: str,
    error: BaseException,
    try_number: int = 1,
) -> bool:
    """Record a failed step of an attempt in the store's attempts; return whether it could be recorded.

    A store that cannot be reached (often the very reason of the failure) is said in the log, never raised: the
    step's own error is what the caller reports.
    """
    reason = " ".join(f"{type(error).__name__}: {error}".split())[:4000] if str(error) else type(error).__name__
    try:
        store.record_attempt(  # type: ignore[attr-defined]
            spec.name,
            f"{as_of:%Y-%m-%d}",
            {"attempt": attempt, "step": step_name, "try_number": try_number, "status": "failed", "reason": reason},
        )
    except Exception as exc:  # the store may be what failed: say so and let the step's own error through
        logger.warning("the failure of %s could not be recorded in the store: %s", step_name, exc)
        return False
    return True


def _say_if_the_definition_changed(spec: InstanceSpec, home: Path, store: object) -> None:
    """Warn when the instance's current published run scored another definition of it."""
    latest = store.latest_run(spec.name)  # type: ignore[attr-defined]
    if latest is None:
        return
    path = artifacts.run_dir(home, spec.name, pd.Timestamp(latest["as_of"], tz="UTC"), latest["run_id"])
    meta = artifacts.read_json(path / "metadata.json") if (path / "metadata.json").exists() else {}
    if meta and meta.get("spec_hash") != spec.spec_hash():
        logger.warning(
            "the definition of %s changed since its run as of %s (spec %s then, %s now; goal then: %s): this run "
            "trains and publishes a new model version for the new definition",
            spec.name,
            meta.get("as_of"),
            meta.get("spec_hash"),
            spec.spec_hash(),
            meta.get("goal"),
        )


@dataclass
class RunResult:
    """What a whole run produced (see :func:`run`).

    ``scores`` is None when the model was poor: the run stopped at the quality gate.
    """

    metadata: dict
    artifact_dir: Path
    written_to_store: bool

    @cached_property
    def scores(self) -> pd.DataFrame | None:
        """The run's scores with their factors (:func:`read_scores`), read on first use: every profile in memory."""
        return read_scores(self.artifact_dir) if self.written_to_store else None

    def top(self, count: int) -> pd.DataFrame:
        """Return the ``count`` profiles of highest probability (ties: by id), with factors (see :func:`top_scores`)."""
        return top_scores(self.artifact_dir, count) if self.written_to_store else pd.DataFrame()

    @property
    def quality(self) -> str:
        """``ok`` or ``poor``."""
        return self.metadata["quality"]["status"]


def run(
    spec: InstanceSpec,
    as_of: pd.Timestamp,
    home: Path,
    store: object,
    *,
    events_path: Path | None = None,
    dsn: str | None = None,
    force_retrain: bool = True,
    factors: int | None = None,
    min_auc: float | None = None,
    attempt: str | None = None,
    instance_file: str = "<instance>",
) -> RunResult:
    """Run every step of :data:`customer_ai.flow.STEPS` in order, as Airflow does: train and score as of ``as_of``.

    The run is one attempt (``attempt``, default a fresh ``cli-...`` id), recorded in the store's attempts: its
    start, a failed step (then the error is raised again), a poor model or its publish.  A model that fails the
    quality gate stops the run there, exactly as in Airflow: the store keeps its published runs and current
    scores; the result holds the model's metadata and no scores, and its ``artifact_dir`` is the attempt's staging
    folder (left for inspection until the next run of the date).

    The run holds the instance's run lock, a lease in the store (:mod:`customer_ai.run_lock`), from its first
    step to its commit, so runs of one instance never mix, whichever machines they run on.

    Raises
    ------
    customer_ai.store.lease.RunInProgressError
        When another run of the instance holds its run lock; the message says who.
    """
    attempt = attempt or artifacts.new_attempt_id("cli")
    actions = {
        "validate_events": lambda: validate_events(
            spec,
            as_of,
            home,
            events_path=events_path,
            dsn=dsn,
            store=store,
            attempt=attempt,
            origin=_origin(),
            instance_file=instance_file,
        ),
        "build_training_set": lambda: build_training_set(
            spec, as_of, home, force_retrain=force_retrain, attempt=attempt
        ),
        "train": lambda: train(spec, as_of, home, attempt=attempt),
        GATE: lambda: quality_gate(spec, as_of, home, store, min_auc=min_auc, attempt=attempt),
        "plan_scoring": lambda: plan_scoring(spec, as_of, home, attempt=attempt),
        "score_partition": lambda partition: score_partition(
            spec, as_of, home, partition, factors=factors, inputs=inputs, attempt=attempt
        ),
        "combine_scores": lambda: combine_scores(spec, as_of, home, attempt=attempt),
        "validate_scores": lambda: validate_scores(spec, as_of, home, attempt=attempt),
        "track_outcomes": lambda: track_outcomes(spec, as_of, home, store, attempt=attempt),
        "write_report": lambda: write_report(spec, as_of, home, store, attempt=attempt),
        "publish": lambda: publish(spec, as_of, home, store, min_auc=min_auc, attempt=attempt),
    }
    folder = artifacts.staging_dir(home, spec.name, as_of, attempt)  # validate_events starts it afresh
    inputs = ScoringInputs()  # the partitions of this run share the loaded model
    with run_lock.holding(store, spec.name, attempt, _origin(), process_scope()) as held:
        _say_if_the_definition_changed(spec, home, store)
        returned: dict | None = None
        for declared in STEPS:
            try:
                if declared.name == "publish":
                    held.check()  # a run whose lease was taken over stops before its commit (which refuses it too)
                if declared.mapped:  # once per partition, in turn: memory follows the partition's size
                    for partition in returned["partitions"]:  # type: ignore[index]
                        actions[declared.name](partition)
                    inputs = ScoringInputs()  # let the model go
                else:
                    returned = actions[declared.name]()
                artifacts.release_memory()  # a step's peak does not stack on what the last one left
            except QualityGateError as exc:
                logger.warning("%s", exc)
                model = artifacts.read_json(folder / "model.json")
                status, reason = model_verdict(spec, model, _gate(spec, min_auc))
                metadata = {**model, "quality": {**model["quality"], "status": status, "reason": reason}}
                return RunResult(metadata=metadata, artifact_dir=folder, written_to_store=False)
            except BaseException as exc:
                record_failure(spec, as_of, store, attempt=attempt, step_name=declared.name, error=exc)
                raise
    final = as_path(returned["artifacts"])  # type: ignore[index]
    return RunResult(
        metadata=artifacts.read_json(final / "metadata.json"),
        artifact_dir=final,
        written_to_store=True,
    )


def _origin() -> str:
    """Say which process runs the command: its id and host, as the run lock names it."""
    return f"the customer-ai command (process {os.getpid()} on {platform.node()})"
