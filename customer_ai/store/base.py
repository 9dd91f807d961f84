"""What both profile stores share: the tables' columns, the row checks and the rules of a run's write."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import numbers
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from customer_ai.progress import logger
from customer_ai.saved_audiences import AudienceError, SavedAudience, checked_audience
from customer_ai.store.lease import LockLostError, RunInProgressError, RunLease, busy_message, lease_verdict

__all__ = [
    "ATTEMPT_STATUSES",
    "AudienceExistsError",
    "OPTIONAL_SCORE_COLUMNS",
    "StoreAddressError",
    "StoreDamagedError",
    "StoreMissingError",
    "StoreUnavailableError",
    "StoreVersionError",
]

_SCORE_COLUMNS = (
    "instance",
    "profile_id",
    "as_of",
    "probability",
    "score",
    "percentile",
    "bucket",
    "propensity",
    "model_version",
    "expected_value",
    "days_to_next",
    "next_by",
    "factors",
)
_RUN_COLUMNS = (
    "instance",
    "as_of",
    "model_version",
    "status",
    "reason",
    "metrics",
    "scored_profiles",
    "written_at",
    "run_id",
)
# one row per step of an attempt that started, failed, stopped at the quality gate or published; never updated
_ATTEMPT_COLUMNS = (
    "id",
    "instance",
    "as_of",
    "attempt",
    "step",
    "try_number",
    "status",
    "reason",
    "model_version",
    "metrics",
    "run_id",
    "recorded_at",
)
ATTEMPT_STATUSES = ("started", "failed", "poor", "ok")
_OUTCOME_COLUMNS = (
    "instance",
    "as_of",
    "grouping",
    "group",
    "profiles",
    "predicted_rate",
    "realised_rate",
    "predicted_value",  # a goal with a value: each group's mean expected and realised value (else NULL)
    "realised_value",
    "tracked_at",
)
SCORE_BATCH_ROWS = 500_000  # rows of a score_batches frame: tens of MB
_REQUIRED_SCORE_COLUMNS = ("profile_id", "probability", "score", "percentile", "bucket", "propensity", "model_version")
# what a goal may predict beside the probability, missing where it predicts nothing: the expected sum of its events'
# amounts (goals with a value), the median days from the as-of date to the next event and that day (YYYY-MM-DD)
# what a goal may predict beside the probability: missing (NULL) in the rows of runs that predicted none of it
OPTIONAL_SCORE_COLUMNS = ("expected_value", "days_to_next", "next_by")
_BATCH_SCORE_COLUMNS = _REQUIRED_SCORE_COLUMNS + OPTIONAL_SCORE_COLUMNS  # what score_batches reads
# the dtypes both stores return, whatever the backend and even when no row matches
_SCORE_DTYPES = {
    "instance": "str",
    "profile_id": "str",
    "as_of": "str",
    "probability": "float64",
    "score": "int64",
    "percentile": "int64",
    "bucket": "str",
    "propensity": "str",
    "model_version": "str",
    "expected_value": "float64",
    "days_to_next": "float64",
    "next_by": "object",  # YYYY-MM-DD, None where missing
    "factors": "object",
}
_RUN_DTYPES = {
    "instance": "str",
    "as_of": "str",
    "model_version": "str",
    "status": "str",
    "reason": "str",
    "metrics": "str",
    "scored_profiles": "int64",
    "written_at": "str",
    "run_id": "str",
}
_ATTEMPT_DTYPES = {
    "id": "int64",
    "instance": "str",
    "as_of": "str",
    "attempt": "str",
    "step": "str",
    "try_number": "int64",
    "status": "str",
    "reason": "str",
    "model_version": "str",
    "metrics": "str",
    "run_id": "str",
    "recorded_at": "str",
}
_OUTCOME_DTYPES = {
    "instance": "str",
    "as_of": "str",
    "grouping": "str",
    "group": "str",
    "profiles": "int64",
    "predicted_rate": "float64",
    "realised_rate": "float64",
    "predicted_value": "float64",
    "realised_value": "float64",
    "tracked_at": "str",
}
# the groups of each grouping, in their natural order (deciles: 1 holds the highest scores)
_OUTCOME_GROUPS = {"all": ("all",), "bucket": ("low", "medium", "high"), "decile": tuple(map(str, range(1, 11)))}
_DEFAULT_SEGMENTS = ("low", "medium", "high")  # listed first by segment_names, as a run writes them
# rows written as JSONB (PostgreSQL schema version 3 and earlier, kept by the migration) have no key order: factors
# read back get the order the scoring code writes
_FACTOR_KEYS = ("feature", "description", "value", "contribution", "importance", "effect")
_DEFAULT_SCHEMA = "customer_ai"
_SCHEMA_ENV = "CUSTOMER_AI_STORE_SCHEMA"
_CONNECT_TIMEOUT_SECONDS = 5
# what a reader of a store that needs a migration says to do
MIGRATE_HINT = (
    "migrate it with `customer-ai migrate` and the same --home or --store (a run of any instance migrates it "
    "too); nothing was changed"
)


class StoreUnavailableError(ConnectionError):
    """The profile store cannot do its part: its server cannot be reached, its disk is full, its file is locked.

    Worth a retry (the command exits 3).  The message names the file, or host, port and database, never a password.
    """


class StoreDamagedError(StoreUnavailableError):
    """The profile store's file is damaged (cut short, overwritten): the message names the file and what is wrong."""


class StoreAddressError(ValueError):
    """A store address customer-ai cannot use; the message shows it with its password masked."""


class StoreMissingError(StoreAddressError):
    """A store opened for reading does not exist (yet): nothing was run with it, or its address is mistyped."""


class AudienceExistsError(ValueError):
    """A saved audience of the same name exists: the message says who saved it and when."""


class StoreVersionError(ValueError):
    """A store of another schema version than this customer-ai's: one to migrate first, or a newer one."""


# ---------------------------------------------------------------------------------------------------------------
# shared rules


class _RunValues(NamedTuple):
    model_version: Any
    status: Any
    reason: Any
    metrics: dict
    run_id: str


class _AttemptValues(NamedTuple):
    attempt: str
    step: str
    try_number: int
    status: str
    reason: str
    model_version: str
    metrics: dict
    run_id: str


@dataclass(frozen=True)
class _ScoreColumns:
    """A run's checked scores, column by column; ``factors`` as given (lists of dicts, or their JSON text).

    ``expected_value`` and ``days_to_next`` are NaN where missing, ``next_by`` (Arrow dates) null where missing.
    """

    profile_id: pa.Array
    probability: np.ndarray
    score: np.ndarray
    percentile: np.ndarray
    bucket: pa.Array
    propensity: pa.Array
    model_version: pa.Array
    expected_value: np.ndarray
    days_to_next: np.ndarray
    next_by: pa.Array
    factors: pd.Series

    def __len__(self) -> int:
        return len(self.probability)

    def rows(self, factor_texts: list[str]) -> Iterable[tuple]:
        """Yield the staged columns row by row, ``factor_texts`` as the factors (for a row-wise insert).

        A missing ``expected_value``, ``days_to_next`` or ``next_by`` is None (NULL); ``next_by`` is ``YYYY-MM-DD``.
        """
        columns = [
            self.profile_id.to_pylist(),
            self.probability.tolist(),
            self.score.tolist(),
            self.percentile.tolist(),
            self.bucket.to_pylist(),
            self.propensity.to_pylist(),
            self.model_version.to_pylist(),
            _nullable(self.expected_value).to_pylist(),
            _nullable(self.days_to_next).to_pylist(),
            self.next_by.cast(pa.string()).to_pylist(),
            factor_texts,
        ]
        return zip(*columns, strict=True)


def _nullable(values: np.ndarray) -> pa.Array:
    """Return numbers as an Arrow float64 array, NaN as null (a missing value, written as NULL)."""
    return pa.array(values, pa.float64(), from_pandas=True)


def _as_of_text(as_of: object) -> str:
    """Return an as-of date as ``YYYY-MM-DD``; accept that text, a date or a timestamp."""
    if isinstance(as_of, dt.datetime | pd.Timestamp):
        return f"{as_of:%Y-%m-%d}"
    if isinstance(as_of, dt.date):
        return as_of.isoformat()
    try:
        return dt.date.fromisoformat(str(as_of)).isoformat()
    except ValueError:
        raise ValueError(f"as-of date {as_of!r} is not a date (use YYYY-MM-DD)") from None


def _text(column: pd.Series) -> pa.Array:
    """Return a column as Arrow text, each value as ``str()`` writes it."""
    if _is_text(column):
        return _one_chunk(pa.array(column)).cast(pa.string())
    return pa.array(column.astype(object).map(str).to_numpy(dtype=object), type=pa.string())


def _one_chunk(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    if not isinstance(array, pa.ChunkedArray):
        return array
    return array.chunk(0) if array.num_chunks == 1 else array.combine_chunks()


def _is_text(column: pd.Series) -> bool:
    """Whether a column holds only text, in Arrow memory (as ``str`` or Arrow string columns do)."""
    if isinstance(column.dtype, pd.ArrowDtype):
        return pa.types.is_string(column.dtype.pyarrow_dtype) or pa.types.is_large_string(column.dtype.pyarrow_dtype)
    return isinstance(column.dtype, pd.StringDtype) and column.dtype.storage == "pyarrow"


def _where(what: str, instance: str, as_of: str, part: int | None) -> str:
    """Name what a check refuses: ``scores for <instance> as of <date>``, with the part's number if given."""
    return f"{what} for {instance} as of {as_of}" + ("" if part is None else f", part {part}")


def _score_columns(instance: str, as_of: str, scores: pd.DataFrame, part: int | None = None) -> _ScoreColumns:
    """Check a run's scores (or a part of them) and return them as columns.

    A required column has no missing value; ``expected_value`` and ``days_to_next`` are numbers from 0 (neither
    negative nor infinite), ``next_by`` dates: each of the three may be missing, in some rows or as a column.
    """
    where = _where("scores", instance, as_of, part)
    empty = [c for c in _REQUIRED_SCORE_COLUMNS if scores[c].isna().any()]
    if empty:
        raise ValueError(f"{where}: missing values in {empty}; nothing written")
    factors = scores["factors"] if "factors" in scores.columns else pd.Series([None] * len(scores), dtype=object)
    profile_id = _text(scores["profile_id"])
    return _ScoreColumns(
        profile_id,
        scores["probability"].to_numpy(dtype="float64"),
        _whole(scores["score"]),
        _whole(scores["percentile"]),
        _text(scores["bucket"]),
        _text(scores["propensity"]),
        _text(scores["model_version"]),
        _amounts(where, "expected_value", scores.get("expected_value"), profile_id),
        _amounts(where, "days_to_next", scores.get("days_to_next"), profile_id),
        _dates(where, "next_by", scores.get("next_by"), profile_id),
        factors.reset_index(drop=True),
    )


def _examples(profile_id: pa.Array, values: Sequence, bad: np.ndarray) -> list[tuple]:
    """Return the first three refused values (where ``bad``) with their profiles, as ``(profile_id, value)``."""
    rows = np.flatnonzero(bad)[:3]
    return [(profile_id[int(i)].as_py(), values[int(i)]) for i in rows]


def _amounts(where: str, name: str, column: pd.Series | None, profile_id: pa.Array) -> np.ndarray:
    """Return an optional column of numbers from 0 as float64, NaN where missing (all NaN without the column).

    Refuses a column that holds something other than numbers, and a negative or infinite number.
    """
    if column is None:
        return np.full(len(profile_id), np.nan)
    if column.dtype == object:
        column = column.infer_objects()  # numbers and None, as a column of lists gives them
    if column.isna().all():
        return np.full(len(column), np.nan)
    if pd.api.types.is_bool_dtype(column.dtype) or not pd.api.types.is_numeric_dtype(column.dtype):
        raise ValueError(f"{where}: {name} is not a number (a column of {column.dtype}); nothing written")
    values = column.to_numpy(dtype="float64", na_value=np.nan)
    bad = ~np.isnan(values) & ~((values >= 0) & (values < np.inf))
    if bad.any():
        raise ValueError(
            f"{where}: {name} is negative or infinite in {int(bad.sum()):,} of {len(bad):,} rows "
            f"(e.g. {_examples(profile_id, values.tolist(), bad)}); nothing written"
        )
    return values


def _dates(where: str, name: str, column: pd.Series | None, profile_id: pa.Array) -> pa.Array:
    """Return an optional column of dates as Arrow dates, null where missing (all null without the column).

    Takes ``YYYY-MM-DD`` text, dates, and timestamps (the date of their own time zone, as for an as-of date).
    Refuses anything else, and text that is not a day of the calendar in that form (``2024-02-30``, ``2024-2-1``).
    """
    if column is None or column.isna().all():
        return pa.nulls(len(profile_id) if column is None else len(column), pa.date32())
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        column = column.dt.tz_localize(None)
    if pd.api.types.is_datetime64_dtype(column.dtype):
        return pa.array(column.to_numpy(dtype="datetime64[D]"), pa.date32(), from_pandas=True)
    try:
        values = _one_chunk(pa.array(column, from_pandas=True))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        values = None  # mixed kinds of values
    if values is not None and (pa.types.is_date(values.type) or pa.types.is_timestamp(values.type)):
        return values.cast(pa.date32())
    if values is None or not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        shown = column.dropna().head(3).tolist()
        raise ValueError(f"{where}: {name} is not a date (e.g. {shown}; give YYYY-MM-DD); nothing written")
    values = values.cast(pa.string())
    days = pc.strptime(values, "%Y-%m-%d", unit="s", error_is_null=True).cast(pa.date32())
    # strptime takes 2024-2-1 and rolls 2024-02-30 over: a date is its own text written back (and has a year 1 on)
    same = pc.and_(pc.equal(days.cast(pa.string()), values), pc.greater_equal(days, pa.scalar(dt.date.min)))
    same = pc.fill_null(same, False)
    bad = pc.and_(pc.is_valid(values), pc.invert(same)).to_numpy(zero_copy_only=False)
    if bad.any():
        raise ValueError(
            f"{where}: {name} is not a date (YYYY-MM-DD) in {int(bad.sum()):,} of {len(bad):,} rows "
            f"(e.g. {_examples(profile_id, values.to_pylist(), bad)}); nothing written"
        )
    return days


def _whole(column: pd.Series) -> np.ndarray:
    """Return a column of whole numbers as int64 (a fraction is cut toward zero, as ``int()`` does)."""
    if pd.api.types.is_integer_dtype(column.dtype):
        return column.to_numpy(dtype="int64")
    return np.fromiter((int(v) for v in column), dtype="int64", count=len(column))


def _member_table(
    instance: str, as_of: str, segments: pd.DataFrame | None, scored: pa.Array, part: int | None = None
) -> pa.Table:
    """Check a run's (or a part's) segment membership against its scores; return it as ``segment, profile_id``."""
    if segments is None:
        return pa.table({"segment": pa.array([], pa.string()), "profile_id": pa.array([], pa.string())})
    where = _where("segments", instance, as_of, part)
    missing = [c for c in ("segment", "profile_id") if c not in segments.columns]
    if missing:
        raise ValueError(f"{where}: missing columns {missing}; nothing written")
    empty = [c for c in ("segment", "profile_id") if segments[c].isna().any()]
    if empty:
        raise ValueError(f"{where}: missing values in {empty}; nothing written")
    members = pa.table({"segment": _text(segments["segment"]), "profile_id": _text(segments["profile_id"])})
    if pc.any(pc.equal(members["segment"], "")).as_py():
        raise ValueError(f"{where}: a segment without a name; nothing written")
    unscored = pc.unique(members["profile_id"].filter(pc.invert(pc.is_in(members["profile_id"], value_set=scored))))
    if len(unscored):
        shown = sorted(unscored.to_pylist())[:3]
        raise ValueError(
            f"{where}: {len(unscored):,} members have no score in this {'run' if part is None else 'part'} "
            f"(e.g. {shown}); nothing written"
        )
    if members.group_by(["segment", "profile_id"]).aggregate([]).num_rows < members.num_rows:
        counted = Counter(zip(*members.to_pydict().values(), strict=True))
        repeated = sorted(m for m, n in counted.items() if n > 1)[:3]
        raise ValueError(f"{where}: a profile listed twice in one segment (e.g. {repeated}); nothing written")
    return members


class _Part(NamedTuple):
    """One checked part of a run: its scores as columns, its members, and how errors about it name it."""

    rows: _ScoreColumns
    members: pa.Table
    where: str


def _checked_parts(
    instance: str, as_of: str, parts: Iterable[tuple[pd.DataFrame, pd.DataFrame | None]], *, numbered: bool
) -> Iterator[_Part]:
    """Check each part of a run as it is read (:func:`_score_columns`, :func:`_member_table`) and yield it.

    Only the part being checked or written is held: each is let go before the next one is read.  With
    ``numbered``, errors name the part (``part 1`` is the first).
    """
    number = 0
    for scores, segments in parts:
        number += 1
        part = number if numbered else None
        rows = _score_columns(instance, as_of, scores, part)
        members = _member_table(instance, as_of, segments, rows.profile_id, part)
        checked = _Part(rows, members, _where("scores", instance, as_of, part))
        del scores, segments, rows, members
        yield checked
        del checked


def _first_then_rest(first: list[_Part], rest: Iterator[_Part]) -> Iterator[_Part]:
    """Yield the part ``first`` holds, taken out of it (so that nothing holds it once written), then ``rest``."""
    if first:
        yield first.pop()
    yield from rest


def _append_parts(writer: _Writer, parts: Iterable[_Part]) -> int:
    """Append each part's history rows and members; return the number of rows appended."""
    scored = 0
    for part in parts:
        try:
            writer.append_history(part.rows)
        except _ScoredTwiceError as exc:
            raise ValueError(f"{part.where}: a profile is scored twice ({exc}); nothing written") from exc
        writer.append_segments(part.members)
        scored += len(part.rows)
        del part  # let it go before the next part is read
    return scored


@dataclass(frozen=True)
class _OutcomeRow:
    grouping: str
    group: str
    profiles: int
    predicted_rate: float | None
    realised_rate: float | None
    predicted_value: float | None  # per profile; None for a run without a value
    realised_value: float | None
    tracked_at: str | None = None  # ``YYYY-MM-DDTHH:MM:SSZ``; None: the time of the write

    def values(self) -> tuple:
        """Return the row's values after its instance and date, in the order of the outcomes' columns."""
        return (
            self.grouping,
            self.group,
            self.profiles,
            self.predicted_rate,
            self.realised_rate,
            self.predicted_value,
            self.realised_value,
            self.tracked_at,
        )


def _outcome_number(where: str, name: str, value: Any) -> float | None:
    """Return an outcome's number as a float, None for a missing one (NaN, None or NA); refuse one that is not."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {name} {value!r} is not a number; nothing written") from None


def _rate(where: str, name: str, value: Any) -> float | None:
    """Return a rate in [0, 1] as a float, None for a missing one (a group without profiles)."""
    rate = _outcome_number(where, name, value)
    if rate is not None and not 0.0 <= rate <= 1.0:
        raise ValueError(f"{where}: {name} {value!r} is not a rate from 0 to 1; nothing written")
    return rate


def _amount(where: str, name: str, value: Any) -> float | None:
    """Return a mean amount (at least 0, finite) as a float, None for a missing one."""
    amount = _outcome_number(where, name, value)
    if amount is not None and (not math.isfinite(amount) or amount < 0):
        raise ValueError(f"{where}: {name} {value!r} is not an amount of at least 0; nothing written")
    return amount


def _outcome_group(where: str, grouping: Any, group: Any) -> str:
    """Return a group as text (a decile may come as a number) after checking it belongs to its grouping."""
    if not isinstance(grouping, str) or grouping not in _OUTCOME_GROUPS:
        raise ValueError(f"{where}: grouping {grouping!r} is not one of {', '.join(_OUTCOME_GROUPS)}; nothing written")
    integral = isinstance(group, numbers.Real) and not isinstance(group, bool) and float(group).is_integer()
    text = str(int(group)) if integral else str(group)
    if text not in _OUTCOME_GROUPS[grouping]:
        raise ValueError(
            f"{where}: group {group!r} of grouping {grouping!r} is not one of "
            f"{', '.join(_OUTCOME_GROUPS[grouping])}; nothing written"
        )
    return text


def _outcome_rows(instance: str, as_of: str, outcomes: pd.DataFrame) -> list[_OutcomeRow]:
    """Check the realised outcomes of a run and return them as rows."""
    where = f"outcomes for {instance} as of {as_of}"
    required = ("grouping", "group", "profiles", "predicted_rate", "realised_rate")
    missing = [c for c in required if c not in outcomes.columns]
    if missing:
        raise ValueError(f"{where}: missing columns {missing}; nothing written")
    rows = []
    for r in outcomes.itertuples(index=False):
        record = dict(zip(outcomes.columns, r, strict=True))
        group = _outcome_group(where, record["grouping"], record["group"])
        profiles = record["profiles"]
        if isinstance(profiles, bool) or not isinstance(profiles, numbers.Real) or not float(profiles).is_integer():
            raise ValueError(
                f"{where}: profiles {profiles!r} of group {group!r} is not a whole number; nothing written"
            )
        if profiles < 0:
            raise ValueError(f"{where}: profiles {profiles!r} of group {group!r} is negative; nothing written")
        rows.append(
            _OutcomeRow(
                record["grouping"],
                group,
                int(profiles),
                _rate(where, "predicted_rate", record["predicted_rate"]),
                _rate(where, "realised_rate", record["realised_rate"]),
                _amount(where, "predicted_value", record.get("predicted_value")),
                _amount(where, "realised_value", record.get("realised_value")),
                _tracked_at(where, record.get("tracked_at")),
            )
        )
    keys = [(r.grouping, r.group) for r in rows]
    if len(set(keys)) < len(keys):
        repeated = sorted(k for k, n in Counter(keys).items() if n > 1)
        raise ValueError(f"{where}: a group listed twice {repeated}; nothing written")
    return rows


def _tracked_at(where: str, value: Any) -> str | None:
    """Return a ``tracked_at`` time as ``YYYY-MM-DDTHH:MM:SSZ`` (None for a missing one: the time of the write)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)) or value == "":
        return None
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: tracked_at {value!r} is not a time; nothing written") from None
    if pd.isna(stamp):  # NaT: a missing time in a column of times
        return None
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return f"{stamp:%Y-%m-%dT%H:%M:%SZ}"


def _run_values(run: dict) -> _RunValues:
    return _RunValues(
        run["model_version"], run["status"], run["reason"], run.get("metrics") or {}, str(run.get("run_id") or "")
    )


def _attempt_values(instance: str, as_of: str, attempt: dict) -> _AttemptValues:
    """Check an attempt row (status, step, try number) and return it with its defaults filled in."""
    where = f"attempt of {instance} as of {as_of}"
    status = attempt.get("status")
    if status not in ATTEMPT_STATUSES:
        raise ValueError(f"{where}: status {status!r} is not one of {', '.join(ATTEMPT_STATUSES)}; nothing written")
    try_number = attempt.get("try_number", 1)
    if isinstance(try_number, bool) or not isinstance(try_number, numbers.Integral) or try_number < 0:
        raise ValueError(f"{where}: try_number {try_number!r} is not a whole number from 0; nothing written")
    return _AttemptValues(
        attempt=str(attempt.get("attempt") or ""),
        step=str(attempt.get("step") or ""),
        try_number=int(try_number),
        status=status,
        reason=str(attempt.get("reason") or ""),
        model_version=str(attempt.get("model_version") or ""),
        metrics=attempt.get("metrics") or {},
        run_id=str(attempt.get("run_id") or ""),
    )


def _becomes_current(as_of: str, newest_ok: str | None) -> bool:
    """Whether a published run's scores replace the current ones.

    ``newest_ok`` is the newest as-of date of the instance's published runs (before this run's row is written) or
    of its current scores, whichever is later (stores migrated from before attempts were kept may hold current
    scores of a date without a run row): an older backfill never replaces newer current scores.
    """
    return newest_ok is None or as_of >= newest_ok


def _scores_frame(rows: Iterable[tuple], columns: Sequence[str] = _SCORE_COLUMNS) -> pd.DataFrame:
    """Return score rows (of ``columns``) as a frame of the dtypes both stores give, None for a missing ``next_by``."""
    frame = pd.DataFrame.from_records(list(rows), columns=list(columns))
    frame = frame.astype({c: _SCORE_DTYPES[c] for c in columns})
    if "next_by" in frame.columns:  # from_records makes a column of text, whose missing values are NaN
        frame["next_by"] = frame["next_by"].astype(object).where(frame["next_by"].notna(), None)
    return frame


def _runs_frame(rows: Iterable[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(list(rows), columns=list(_RUN_COLUMNS))
    return frame.astype(_RUN_DTYPES)


def _attempts_frame(rows: Iterable[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(list(rows), columns=list(_ATTEMPT_COLUMNS))
    return frame.astype(_ATTEMPT_DTYPES)


def _metrics_json(metrics: dict) -> str:
    """Return metrics as JSON text with sorted keys (NaN and infinities as null)."""
    return json.dumps(_finite(metrics), sort_keys=True, allow_nan=False, default=_json_default)


def _group_rank(row: tuple) -> tuple:
    """Sort key of an outcome row: as-of date, grouping, then the group in its natural order."""
    grouping, group = row[2], row[3]
    order = _OUTCOME_GROUPS.get(grouping, ())
    return (row[1], grouping, order.index(group) if group in order else len(order), group)


def _outcomes_frame(rows: Iterable[tuple]) -> pd.DataFrame:
    ordered = sorted(rows, key=_group_rank)
    frame = pd.DataFrame.from_records(ordered, columns=list(_OUTCOME_COLUMNS))
    return frame.astype(_OUTCOME_DTYPES)


def _segment_order(names: Iterable[str]) -> list[str]:
    """Return segment names with the default ones first (low, medium, high), then the others by name."""
    names = set(names)
    return [n for n in _DEFAULT_SEGMENTS if n in names] + sorted(names - set(_DEFAULT_SEGMENTS))


def _finite(value: Any) -> Any:
    """Replace NaN and infinities (which JSON cannot hold) by None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _ordered_factors(factors: Any) -> Any:
    if not isinstance(factors, list):
        return factors
    ordered = []
    for factor in factors:
        if isinstance(factor, dict):
            known = {k: factor[k] for k in _FACTOR_KEYS if k in factor}
            factor = known | {k: v for k, v in factor.items() if k not in known}  # noqa: PLW2901
        ordered.append(factor)
    return ordered


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _factor_json(factors: Any, *, finite: bool) -> str:
    """Return one row's factors as JSON text (with ``finite``, NaN and infinities as null)."""
    if finite:
        return json.dumps(_finite(factors), ensure_ascii=False, allow_nan=False, default=_json_default)
    return json.dumps(factors, ensure_ascii=False, default=_json_default)


def _factor_texts(factors: pd.Series, *, finite: bool, check: bool = False) -> pa.Array:
    """Return the JSON text of each row's factors, as Arrow text.

    Lists of dicts are encoded with :func:`json.dumps` (``ensure_ascii=False``), which is how
    :func:`customer_ai.files.write_frame` stores them in ``scores.parquet``: text (as read back from that file) is
    that JSON already and is kept as it is, so a run's factors are not decoded and encoded again on their way to
    the store.  With ``finite``, NaN and infinities (which JSON cannot hold) in lists become null; text that may
    hold them goes through :func:`_finite_texts`.  With ``check``, text is parsed to make sure it is JSON;
    without it the database parses it.
    """
    if _is_text(factors) and not factors.isna().any():
        texts = _one_chunk(pa.array(factors)).cast(pa.string())
        given = range(len(texts))
    else:
        values = factors.tolist()
        given = [i for i, v in enumerate(values) if isinstance(v, str)]
        texts = pa.array([v if isinstance(v, str) else _factor_json(v, finite=finite) for v in values], pa.string())
    if check:
        for i in given:
            json.loads(texts[i].as_py())
    return texts


def _finite_texts(texts: pa.Array) -> pa.Array:
    """Return JSON texts with NaN and infinities as null.

    A text holding ``NaN`` or ``Infinity`` is decoded and encoded again (the same text as from its list), the others
    are kept as they are.
    """
    if not len(texts):
        return texts
    suspect = np.flatnonzero(pc.match_substring_regex(texts, "NaN|Infinity").to_numpy(zero_copy_only=False))
    if not len(suspect):
        return texts
    replaced = texts.to_pylist()
    for i in suspect:
        replaced[i] = _factor_json(json.loads(replaced[i]), finite=True)
    return pa.array(replaced, pa.string())


def _audience_of(instance: str, row: tuple) -> SavedAudience:
    """Return a kept audience row (name, rule as JSON text or parsed, saved_by, saved_at) as a SavedAudience."""
    name, rule_text, saved_by, saved_at = row
    try:
        rule = json.loads(rule_text) if isinstance(rule_text, str) else rule_text
        if not isinstance(rule, dict):
            raise AudienceError(f"audience {name}: its rule is {rule_text!r}, not a cut and an at")
        return checked_audience(name, rule, saved_by, saved_at)
    except (ValueError, TypeError) as exc:
        raise AudienceError(
            f"the saved audience {name!r} of {instance} in the store cannot be applied: {exc}; delete it "
            f"(customer-ai audience delete) and save it again"
        ) from None


def _audiences(instance: str, rows: Iterable[tuple]) -> dict[str, SavedAudience]:
    """Return kept audience rows by name, the oldest first (then by name)."""
    ordered = sorted(rows, key=lambda row: (row[3], row[0]))
    return {row[0]: _audience_of(instance, row) for row in ordered}


def _saved_words(audience: SavedAudience) -> str:
    """Return ``<rule in words>, saved by <who> at <when>`` (a rule that cannot be applied said so)."""
    by = f" by {audience.saved_by}" if audience.saved_by else ""
    rule = audience.words() if audience.cut else "a rule that cannot be applied"
    return f"{rule}, saved{by} at {audience.saved_at}"


class _ScoredTwiceError(Exception):
    """The history refused a profile already scored as of the same date in this write (its primary key)."""


class _Writer(ABC):
    """One write transaction of one instance, holding the instance's writer lock (backend specific).

    A run's scores and membership are written part by part: :meth:`replace_history` and :meth:`replace_segments`
    remove the date's rows, each part is appended (:meth:`append_history`, :meth:`append_segments`), then
    :meth:`replace_current` makes the appended rows current.
    """

    @abstractmethod
    def replace_history(self) -> None:
        """Start replacing the history rows of (instance, as_of): remove them (the run's parts are appended next)."""

    @abstractmethod
    def append_history(self, rows: _ScoreColumns) -> None:
        """Append one part of the run's rows to the history of (instance, as_of).

        Raises :class:`_ScoredTwiceError` when a profile of ``rows`` is there already (from this part or another).
        """

    @abstractmethod
    def newest_ok(self) -> str | None:
        """Return the newest as-of date of the instance's ``ok`` runs (``YYYY-MM-DD``) or None."""

    @abstractmethod
    def replace_current(self) -> None:
        """Make the history rows of (instance, as_of) the instance's current scores (profiles not rescored go)."""

    @abstractmethod
    def upsert_run(self, values: _RunValues, scored_profiles: int) -> None:
        """Insert or replace the run row of (instance, as_of)."""

    @abstractmethod
    def replace_segments(self) -> None:
        """Start replacing the segment membership of (instance, as_of): remove it (the parts' members follow)."""

    @abstractmethod
    def append_segments(self, members: pa.Table) -> None:
        """Append one part's members (text columns ``segment, profile_id``) to the membership of (instance, as_of)."""

    @abstractmethod
    def replace_outcomes(self, as_of: str, rows: list[_OutcomeRow]) -> None:
        """Replace the outcome rows of (instance, ``as_of``) by ``rows`` (stamped with the time of the write)."""

    @abstractmethod
    def append_attempt(self, values: _AttemptValues) -> None:
        """Append a row to the attempts of (instance, as_of); rows are never updated or removed."""

    @abstractmethod
    def newest_publish(self) -> str | None:
        """Return the run folder (``run_id``) of the newest ``ok`` attempt row of (instance, as_of), or None."""

    @abstractmethod
    def now(self) -> dt.datetime:
        """Return the store's clock (UTC): the one clock every machine's leases are compared on."""

    @abstractmethod
    def read_lease(self) -> RunLease | None:
        """Return the instance's run lock row, or None."""

    @abstractmethod
    def write_lease(self, lease: RunLease) -> None:
        """Insert or replace the instance's run lock row."""

    @abstractmethod
    def delete_lease(self) -> None:
        """Remove the instance's run lock row (if any)."""

    @abstractmethod
    def audience_rows(self) -> list[tuple]:
        """Return the instance's saved audiences: (name, rule as JSON text, saved_by, saved_at), in any order."""

    @abstractmethod
    def put_audience(self, name: str, rule: str, saved_by: str) -> None:
        """Insert or replace the instance's saved audience ``name``, saved now (the store's clock)."""

    @abstractmethod
    def remove_audience(self, name: str) -> None:
        """Remove the instance's saved audience ``name`` (if any)."""


class _Store(ABC):
    """The public interface and the rules both stores share; subclasses supply the SQL.

    A store opened with ``create`` (writers: ``run`` and the DAG's tasks) creates and migrates its file, schema and
    tables on first use.  One opened with ``create=False`` (readers) creates, migrates and writes nothing: a store
    that does not exist reads as empty (:meth:`check` says it does not exist), one that needs a migration is
    refused with :class:`StoreVersionError`.
    """

    create: bool = True

    def _refuse_if_read_only(self) -> None:
        if not self.create:
            raise RuntimeError(f"{self!r} was opened for reading (create=False): it is never written")

    @abstractmethod
    def _writing(self, instance: str, as_of: str) -> Any:
        """Return a context manager: one transaction yielding a :class:`_Writer`, committed on success."""

    @abstractmethod
    def _select_segment(self, instance: str, segment: str, as_of: str) -> list[tuple]:
        """Return the history rows of a segment's members (factors parsed) in the order of :meth:`read_scores`."""

    @abstractmethod
    def _select_segment_names(self, instance: str, as_of: str) -> list[str]:
        """Return the names of the segments with members on (instance, as_of), in any order."""

    @abstractmethod
    def _select_outcomes(self, instance: str) -> list[tuple]:
        """Return the outcome rows of an instance (columns of :meth:`read_outcomes`), in any order."""

    @abstractmethod
    def _select_scores(
        self, instance: str, as_of: str | None, profile_id: str | None, limit: int | None = None
    ) -> list[tuple]:
        """Return score rows (factors parsed) in the order of :meth:`read_scores`, the first ``limit`` if given."""

    @abstractmethod
    def _score_rows(self, instance: str, as_of: str, columns: list[str], rows: int) -> Iterator[list[tuple]]:
        """Yield the history rows of (instance, as_of), only ``columns`` (checked names), at most ``rows`` at once."""

    @abstractmethod
    def _select_audiences(self, instance: str) -> list[tuple]:
        """Return the saved audiences of an instance as :meth:`_Writer.audience_rows` does, outside a write."""

    @abstractmethod
    def _select_runs(self, instance: str, status: str | None, latest: bool) -> list[tuple]:
        """Return run rows (metrics as sorted JSON text), oldest first, or only the newest when ``latest``."""

    @abstractmethod
    def _select_attempts(self, instance: str, as_of: str | None, latest: bool) -> list[tuple]:
        """Return attempt rows (metrics as sorted JSON text) in the order written, or only the last when ``latest``."""

    @abstractmethod
    def check(self) -> None:
        """Make sure the store can be used as it was opened, before any work depends on it.

        A store opened with ``create`` is reached (created or migrated if needed).  A store opened for reading
        (``create=False``) must exist, at this version's schema.

        Raises
        ------
        StoreMissingError
            A store opened for reading does not exist.
        StoreVersionError
            A store opened for reading needs a migration (:meth:`migrate`), or the store is newer than this code.
        StoreUnavailableError
            The store cannot be reached or used (:class:`StoreDamagedError` for a damaged file).
        """

    @abstractmethod
    def migrate(self) -> tuple[int, int]:
        """Bring an existing store to this version's schema; return its versions (before, after).

        Works however the store was opened: it is the explicit step a store opened for reading asks for.

        Raises
        ------
        StoreMissingError
            When there is no store to migrate (nothing is created).
        """

    def write_run(
        self,
        instance: str,
        as_of: str,
        scores: pd.DataFrame,
        run: dict,
        *,
        segments: pd.DataFrame | None = None,
        outcomes: dict[str, pd.DataFrame] | None = None,
    ) -> None:
        """Publish one run: its scores, history, segment membership, outcomes and run row in a single transaction.

        This transaction is the run's commit point: the run row names the run's folder (``run_id``), which must be
        complete before it is called, so every reader that finds the run through the store finds all of it, and a
        failure (or a kill) leaves the previous run as it was.  The history rows and the segment membership of
        (instance, as_of) are replaced; the current scores are replaced (profiles not rescored disappear) when
        ``as_of`` is at least the newest published as-of date; the run row of (instance, as_of) is inserted or
        replaced; an ``ok`` row is appended to the attempts, unless the date's newest ``ok`` row already names this
        ``run_id`` (a publish repeated after its commit, say by a retried task, writes the same rows again and no
        second attempt row).

        Parameters
        ----------
        instance : str
            Instance name.
        as_of : str
            As-of date, ``YYYY-MM-DD``.
        scores : pandas.DataFrame
            Columns ``profile_id, probability, score, percentile, bucket, propensity, model_version, factors``
            (factors: lists of dicts, or their JSON text as ``scores.parquet`` holds it, stored as it is), and
            optionally ``expected_value`` and ``days_to_next`` (numbers from 0, NaN or None where missing) and
            ``next_by`` (``YYYY-MM-DD`` text, dates or timestamps; missing values allowed): a column not given is
            missing in every row.
        run : dict
            ``model_version``, ``status`` (must be ``ok``: an attempt that published nothing is recorded with
            :meth:`record_attempt`), ``reason``, ``metrics`` (dict, optional), ``run_id`` (the run folder's name,
            optional), ``attempt`` (the attempt's id, optional).
        segments : pandas.DataFrame, optional
            The run's segment membership, columns ``segment, profile_id`` (as from
            :func:`customer_ai.segments.segment_members`); every member must be among ``scores``.  None writes no
            membership for the date (a previous one is removed with the scores it described).
        outcomes : dict, optional
            Realised outcomes of past runs that this run tracked: their as-of date -> the frame
            :meth:`write_outcomes` takes (``tracked_at`` may be given); each date's rows are replaced.

        Raises
        ------
        ValueError
            When the status is not ``ok``, a required score column has missing values, ``expected_value`` or
            ``days_to_next`` is negative or infinite, ``next_by`` is not a date, a profile is scored twice, a
            member has no score, or an outcome is out of range (nothing is written).
        """
        self._publish(instance, as_of, [(scores, segments)], run, outcomes, numbered=False)

    def write_run_parts(
        self,
        instance: str,
        as_of: str,
        parts: Iterable[tuple[pd.DataFrame, pd.DataFrame | None]],
        run: dict,
        *,
        outcomes: dict[str, pd.DataFrame] | None = None,
    ) -> None:
        """Publish one run whose scores come in parts, as :meth:`write_run` does, holding one part at a time.

        The parts are read one after the other (a generator reading a file row group by row group, say), each
        checked and written inside the run's single transaction, then let go before the next is read; the
        rules of :meth:`write_run` are unchanged.  An empty sequence publishes a run that scored nobody.

        Parameters
        ----------
        instance : str
            Instance name.
        as_of : str
            As-of date, ``YYYY-MM-DD``.
        parts : iterable of (pandas.DataFrame, pandas.DataFrame or None)
            Each part's scores (the columns of :meth:`write_run`'s ``scores``) and its segment members (columns
            ``segment, profile_id``, each among the scores of the same part; None: none in this part).  A
            profile is scored in one part only.
        run : dict
            As for :meth:`write_run`; ``scored_profiles`` is the number of rows of all the parts.
        outcomes : dict, optional
            As for :meth:`write_run`.

        Raises
        ------
        ValueError
            As :meth:`write_run`, for any part (the message names it: ``part 1`` is the first), and when a profile
            is scored twice (nothing is written, whichever part fails).
        """
        self._publish(instance, as_of, parts, run, outcomes, numbered=True)

    def _publish(
        self,
        instance: str,
        as_of: str,
        parts: Iterable[tuple[pd.DataFrame, pd.DataFrame | None]],
        run: dict,
        outcomes: dict[str, pd.DataFrame] | None,
        *,
        numbered: bool,
    ) -> None:
        """Check what can be checked before the transaction, then write the run's parts in it (see write_run)."""
        as_of = _as_of_text(as_of)
        values = _run_values(run)
        if values.status != "ok":
            raise ValueError(
                f"run of {instance} as of {as_of}: only an 'ok' run is published with write_run; an attempt that "
                f"published nothing ({values.status!r}) is recorded with record_attempt"
            )
        tracked = {_as_of_text(d): frame for d, frame in (outcomes or {}).items()}
        outcome_rows = {date: _outcome_rows(instance, date, frame) for date, frame in tracked.items()}
        attempt = _attempt_values(
            instance,
            as_of,
            {
                "attempt": run.get("attempt"),
                "step": "publish",
                "status": "ok",
                "reason": values.reason,
                "model_version": values.model_version,
                "metrics": values.metrics,
                "run_id": values.run_id,
            },
        )
        checked = _checked_parts(instance, as_of, parts, numbered=numbered)
        # the first part is checked before the store is opened: a bad one (write_run's only one) touches nothing
        ahead = list(itertools.islice(checked, 1))
        with self._writing(instance, as_of) as writer:
            self._fence(writer, instance, attempt.attempt)
            writer.replace_history()
            writer.replace_segments()
            scored = _append_parts(writer, _first_then_rest(ahead, checked))
            for date, date_rows in outcome_rows.items():
                writer.replace_outcomes(date, date_rows)
            if _becomes_current(as_of, writer.newest_ok()):
                writer.replace_current()
            writer.upsert_run(values, scored)
            if not values.run_id or writer.newest_publish() != values.run_id:  # a publish repeated after its commit
                writer.append_attempt(attempt)

    @staticmethod
    def _fence(writer: _Writer, instance: str, attempt: str) -> None:
        """Refuse the commit of ``attempt`` when another attempt holds the instance's lease; release it if it is ours.

        Inside the commit's transaction: a run whose lease expired and was taken by another run can never publish
        over that run.
        """
        held = writer.read_lease()
        if held is None:
            return
        if held.attempt == attempt:
            writer.delete_lease()
            return
        now = writer.now()
        if held.expires_at > now:
            raise LockLostError(
                f"attempt {attempt or '(unnamed)'} of {instance} no longer holds the run lock, so it publishes "
                f"nothing: {held.describe(now)}. Its lease was not renewed in time (a stalled or "
                "suspended process?); run it again once the other run is done"
            )

    def take_lock(self, instance: str, attempt: str, origin: str, scope: str, *, minutes: float) -> RunLease:
        """Take the run lock of ``instance`` for ``attempt`` (or renew it, if the attempt holds it already).

        The lease lasts ``minutes`` from now, on the store's clock; see :mod:`customer_ai.store.lease` for who may
        take a lease another attempt held.

        Raises
        ------
        RunInProgressError
            When another attempt holds it; the message says who, since when and until when.
        """
        self._refuse_if_read_only()
        with self._writing(instance, "") as writer:
            now, held = writer.now(), writer.read_lease()
            verdict = lease_verdict(held, attempt, now)
            if verdict == "refuse":
                raise RunInProgressError(busy_message(held, now))  # type: ignore[arg-type]
            acquired = held.acquired_at if verdict == "renew" and held is not None else now
            lease = RunLease(instance, attempt, origin, scope, acquired, now, now + dt.timedelta(minutes=minutes))
            writer.write_lease(lease)
        if verdict == "take" and held is not None and held.attempt != attempt:
            logger.warning("took the run lock of %s from an abandoned run: %s", instance, held.describe(now))
        return lease

    def renew_lock(self, instance: str, attempt: str, *, minutes: float) -> bool:
        """Extend ``attempt``'s lease of ``instance`` to ``minutes`` from now; False when it does not hold it."""
        self._refuse_if_read_only()
        with self._writing(instance, "") as writer:
            held = writer.read_lease()
            if held is None or held.attempt != attempt:
                return False
            now = writer.now()
            writer.write_lease(held._replace(renewed_at=now, expires_at=now + dt.timedelta(minutes=minutes)))
        return True

    def release_lock(self, instance: str, attempt: str | None = None) -> RunLease | None:
        """Free the run lock of ``instance`` if ``attempt`` holds it (any holder's when None); return what it was."""
        self._refuse_if_read_only()
        with self._writing(instance, "") as writer:
            held = writer.read_lease()
            if held is None or (attempt is not None and held.attempt != attempt):
                return None
            writer.delete_lease()
        return held

    def lock_holder(self, instance: str) -> tuple[RunLease | None, dt.datetime]:
        """Return the run lock row of ``instance`` (None when free) and the store's clock now."""
        self._refuse_if_read_only()
        with self._writing(instance, "") as writer:
            return writer.read_lease(), writer.now()

    def record_attempt(self, instance: str, as_of: str, attempt: dict) -> None:
        """Append one row to the attempts of (instance, as_of): a start, a failure or a poor model.

        Attempts are kept, never updated or removed: every start, every failed try of a step, every model stopped
        at the quality gate and every publish leaves a row, so that the newest attempt can be shown next to the run
        that is current.  Scores, history, runs and the current scores are never touched here.

        Parameters
        ----------
        instance : str
            Instance name.
        as_of : str
            As-of date, ``YYYY-MM-DD``.
        attempt : dict
            ``status`` (``started``, ``failed`` or ``poor``), ``attempt`` (the attempt's id), ``step`` (where it
            stopped), ``try_number`` (Airflow's try of the step; default 1), ``reason``, ``model_version`` and
            ``metrics`` (optional).

        Raises
        ------
        ValueError
            For status ``ok`` (a published run is written with :meth:`write_run`, which records its attempt) or a
            status that is not one of :data:`ATTEMPT_STATUSES`.
        """
        as_of = _as_of_text(as_of)
        values = _attempt_values(instance, as_of, attempt)
        if values.status == "ok":
            raise ValueError(
                f"attempt of {instance} as of {as_of}: an 'ok' attempt is the publish of its run, recorded by write_run"
            )
        with self._writing(instance, as_of) as writer:
            writer.append_attempt(values)

    def read_attempts(self, instance: str, as_of: str | None = None) -> pd.DataFrame:
        """Return the attempt rows of an instance (of one as-of date, if given) in the order they were written.

        Columns ``id, instance, as_of, attempt, step, try_number, status, reason, model_version, metrics`` (JSON
        text, sorted keys), ``run_id`` (the published folder, for ``ok``) and ``recorded_at``
        (``YYYY-MM-DDTHH:MM:SSZ``).
        """
        if as_of is not None:
            try:
                as_of = _as_of_text(as_of)
            except ValueError:
                return _attempts_frame([])
        return _attempts_frame(self._select_attempts(instance, as_of, latest=False))

    def latest_attempt(self, instance: str) -> dict | None:
        """Return the last attempt row written for the instance (``metrics`` as a dict), or None."""
        rows = self._select_attempts(instance, None, latest=True)
        if not rows:
            return None
        row = dict(zip(_ATTEMPT_COLUMNS, rows[0], strict=True))
        row["metrics"] = json.loads(row["metrics"])
        row["id"], row["try_number"] = int(row["id"]), int(row["try_number"])
        return row

    def score_batches(
        self, instance: str, as_of: str, columns: Sequence[str], rows: int = SCORE_BATCH_ROWS
    ) -> Iterator[pd.DataFrame]:
        """Yield the scores of one as-of date (history rows) in frames of at most ``rows``, in no particular order.

        Only ``columns`` are read, never the factors: a run of millions of profiles is read in bounded memory (the
        outcomes of a past run, say).  Nothing is yielded for a date without scores.

        The columns have the dtypes of :meth:`read_scores`'s.

        Raises
        ------
        ValueError
            When a column is not one of ``profile_id, probability, score, percentile, bucket, propensity,
            model_version, expected_value, days_to_next, next_by``.
        """
        unknown = [c for c in columns if c not in _BATCH_SCORE_COLUMNS]
        if unknown or not columns:
            raise ValueError(f"scores are read in batches by {', '.join(_BATCH_SCORE_COLUMNS)}; not {unknown}")
        for batch in self._score_rows(instance, _as_of_text(as_of), list(columns), rows):
            yield _scores_frame(batch, columns)

    def read_scores(
        self, instance: str, as_of: str | None = None, profile_id: str | None = None, *, limit: int | None = None
    ) -> pd.DataFrame:
        """Return current scores (or the history of one as-of date), optionally for one profile.

        Rows come by probability descending, then profile id; ``factors`` comes back as lists of dicts.
        ``expected_value`` and ``days_to_next`` are NaN and ``next_by`` (``YYYY-MM-DD``) None where missing (every
        row written before they were stored).  A value of ``as_of`` that is not a date matches nothing.  ``limit``
        keeps only the first rows: the database picks them, so that the top of millions of profiles is read without
        the others.
        """
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be 0 or more, not {limit}")
        if as_of is not None:
            try:
                as_of = _as_of_text(as_of)
            except ValueError:
                return _scores_frame([])  # writes refuse such dates: nothing can match
        return _scores_frame(self._select_scores(instance, as_of, profile_id, limit))

    def read_runs(self, instance: str) -> pd.DataFrame:
        """Return the published runs of an instance, one per as-of date, oldest first.

        ``metrics`` is JSON text with sorted keys; ``run_id`` names the run's folder (empty for a run published
        before run folders had names: its folder is the as-of date's).
        """
        return _runs_frame(self._select_runs(instance, None, latest=False))

    def latest_run(self, instance: str, status: str | None = "ok") -> dict | None:
        """Return the published run with the newest as-of date (the current run), or None.

        The dict has the columns of :meth:`read_runs`, with ``metrics`` as a dict.  Every published run is ``ok``
        (``status`` None matches it too).
        """
        rows = self._select_runs(instance, status, latest=True)
        if not rows:
            return None
        row = dict(zip(_RUN_COLUMNS, rows[0], strict=True))
        row["metrics"] = json.loads(row["metrics"])
        row["scored_profiles"] = int(row["scored_profiles"])
        return row

    def _segment_date(self, instance: str, as_of: str | None) -> str | None:
        """Return the as-of date a segment read is about: the given one, else the newest ``ok`` run's."""
        if as_of is None:
            latest = self.latest_run(instance)
            return None if latest is None else latest["as_of"]
        try:
            return _as_of_text(as_of)
        except ValueError:
            return None  # writes refuse such dates: nothing can match

    def read_segment(self, instance: str, segment: str, as_of: str | None = None) -> pd.DataFrame:
        """Return the members of one segment of one run with their scores, as the run scored them.

        Parameters
        ----------
        instance : str
            Instance name.
        segment : str
            Segment name (``low``, ``medium``, ``high`` or one of the instance file's).
        as_of : str, optional
            The run's as-of date; default: the newest ``ok`` run's.

        Returns
        -------
        pandas.DataFrame
            The columns of :meth:`read_scores` (history rows of that date), by probability descending, then
            profile id; empty when the segment has no member then (or there is no such run).
        """
        as_of = self._segment_date(instance, as_of)
        if as_of is None:
            return _scores_frame([])
        return _scores_frame(self._select_segment(instance, segment, as_of))

    def segment_names(self, instance: str, as_of: str | None = None) -> list[str]:
        """Return the segments with at least one member on (instance, as_of): low, medium, high first, then by name.

        ``as_of`` defaults to the newest ``ok`` run's date.  A segment that matched nobody has no row, so it is
        not listed.
        """
        as_of = self._segment_date(instance, as_of)
        return [] if as_of is None else _segment_order(self._select_segment_names(instance, as_of))

    def write_outcomes(self, instance: str, as_of: str, outcomes: pd.DataFrame) -> None:
        """Replace the realised outcomes of the run of (instance, as_of) in one transaction.

        Parameters
        ----------
        instance : str
            Instance name.
        as_of : str
            The as-of date of the run whose outcomes these are, ``YYYY-MM-DD``.
        outcomes : pandas.DataFrame
            Columns ``grouping`` (``all``, ``bucket`` or ``decile``), ``group`` (``all``; ``low``/``medium``/
            ``high``; ``1``-``10``), ``profiles`` (whole number), ``predicted_rate`` and ``realised_rate`` (0-1,
            missing for a group without profiles), optionally ``predicted_value`` and ``realised_value`` (a goal
            with a value: mean amounts per profile, at least 0; missing otherwise) and ``tracked_at`` (a time; by
            default the time of the write, UTC).

        Raises
        ------
        ValueError
            For an unknown grouping or group, a group listed twice, or a value out of range (nothing is written).
        """
        as_of = _as_of_text(as_of)
        rows = _outcome_rows(instance, as_of, outcomes)
        with self._writing(instance, as_of) as writer:
            writer.replace_outcomes(as_of, rows)

    def read_outcomes(self, instance: str) -> pd.DataFrame:
        """Return the realised outcomes of an instance's runs.

        Columns ``instance, as_of, grouping, group, profiles, predicted_rate, realised_rate, predicted_value,
        realised_value, tracked_at`` (the values NaN for a run without a value; ``tracked_at`` as
        ``YYYY-MM-DDTHH:MM:SSZ``), ordered by as-of date, grouping, then group in its natural order (``all``;
        ``low``, ``medium``, ``high``; deciles 1 to 10).
        """
        return _outcomes_frame(self._select_outcomes(instance))

    def save_audience(self, instance: str, audience: SavedAudience, *, replace: bool = False) -> SavedAudience:
        """Keep ``audience``'s rule for ``instance``, saved by ``audience.saved_by`` now; return it as kept.

        Every later run of the instance applies it (see :mod:`customer_ai.saved_audiences`); runs already published
        keep their membership.  Whether the name clashes with the instance file's segments is for the caller, who
        has the file, to check (:func:`customer_ai.saved_audiences.name_problem`).

        Raises
        ------
        AudienceExistsError
            When the instance has a saved audience of that name and ``replace`` is false (nothing is written).
        AudienceError
            When the audience's name or rule is not one a run can apply.
        """
        checked = checked_audience(audience.name, audience.rule(), audience.saved_by)
        self._refuse_if_read_only()
        with self._writing(instance, "") as writer:
            kept = _audiences(instance, writer.audience_rows())
            if checked.name in kept and not replace:
                raise AudienceExistsError(
                    f"{instance} has a saved audience named {checked.name} already ({_saved_words(kept[checked.name])})"
                    ": delete it first, or choose another name"
                )
            writer.put_audience(checked.name, json.dumps(checked.rule(), sort_keys=True), checked.saved_by)
            saved = _audiences(instance, writer.audience_rows())[checked.name]
        logger.info("saved audience %s of %s: %s", saved.name, instance, _saved_words(saved))
        return saved

    def read_audiences(self, instance: str) -> list[SavedAudience]:
        """Return the saved audiences of ``instance``, the oldest first (then by name).

        Raises
        ------
        AudienceError
            For a kept rule that is not one a run can apply (a row changed by hand); the message names it.
        """
        return list(_audiences(instance, self._select_audiences(instance)).values())

    def delete_audience(self, instance: str, name: str) -> SavedAudience | None:
        """Remove ``instance``'s saved audience ``name``; return it as it was, or None when there was none.

        Later runs no longer apply it; the runs already published keep its membership.
        """
        self._refuse_if_read_only()
        with self._writing(instance, "") as writer:
            rows = [row for row in writer.audience_rows() if row[0] == name]
            if not rows:
                return None
            writer.remove_audience(name)
        try:
            gone = _audience_of(instance, rows[0])
        except AudienceError:  # a rule changed by hand: removed all the same
            gone = SavedAudience(name, "", 0, rows[0][2], rows[0][3])
        logger.info("deleted audience %s of %s: %s", name, instance, _saved_words(gone))
        return gone

    @abstractmethod
    def count_rows(self, instance: str) -> dict[str, int]:
        """Return the row counts of the current scores, the history and the runs of one instance.

        A re-run of a date leaves them as they were; only the attempts (:meth:`read_attempts`) grow.
        """
