"""Data validation with Great Expectations (GX 1.x): one built-in suite per stage, plus the instance's own suites.

A stage's frame (``events``, ``training_set`` or ``scores``) is checked against the built-in suite
``expectations/<stage>.json``, then against each extra suite file, in an ephemeral (in-memory) GX context.
Nothing is stored in a GX project and nothing goes over the network: ``GX_ANALYTICS_ENABLED`` is set to
``false`` before GX is first imported, and the context is configured with analytics and progress bars off.

Suite files are GX 1.x ``ExpectationSuite`` JSON as GX serialises it (``suite.to_json_dict()``), so
``gx.ExpectationSuite(**json.load(f))`` loads them.  Runtime values, such as the run's as-of date, are suite
parameters: an expectation's keyword argument written ``{"$PARAMETER": "not_after"}`` takes
``parameters["not_after"]`` at validation time (GX's ``expectation_parameters``).

Great Expectations is imported inside the functions that need it, so importing this module stays cheap (the
Airflow DAG files import the package when they are parsed).
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
import json
import logging
import math
import os
import re
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from customer_ai.files import write_json
from customer_ai.home import as_path
from customer_ai.windows import rows_where

__all__ = [
    "STAGES",
    "DataValidationError",
    "ExpectationSuiteError",
    "event_checks",
    "exact_duplicates",
    "expectations_dir",
    "load_suite",
    "validate_frame",
]

STAGES = ("events", "training_set", "scores")
EXAMPLES = 5  # distinct unexpected values quoted per failed expectation
_RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 20}
_SUITE_KEYS = {"name", "id", "expectations", "suite_parameters", "meta", "notes"}
_EXPECTATION_KEYS = {"type", "kwargs", "meta", "notes", "description", "severity", "id", "rendered_content"}
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?(Z|[+-]\d{2}:?\d{2})?")
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_$]*")
_COLUMNS_SHOWN = 12
_ID_NAMESPACE = uuid.UUID("5b0e7c1e-4c38-4d1e-9a57-3c1f0f7e2a10")


class DataValidationError(Exception):
    """Data that failed its expectations.  ``str(exc)`` is the readable summary.

    Attributes
    ----------
    summary : str
        One header line per suite, then one line per failed expectation (see :func:`validate_frame`).
    result_path : pathlib.Path or None
        Where the full validation results were written, if anywhere.
    failures : list of dict
        One JSON-ready dict per failed expectation: ``suite``, ``expectation``, ``column``, ``message`` and,
        when known, ``unexpected_count``, ``element_count``, ``unexpected_percent``, ``examples``,
        ``observed``, ``expected``, ``error``.
    report : dict
        What :func:`validate_frame` would have returned.
    """

    def __init__(self, summary: str, result_path: Path | None, failures: list[dict], report: dict | None = None):
        super().__init__(summary)
        self.summary = summary
        self.result_path = result_path
        self.failures = failures
        self.report = report or {}

    def __str__(self) -> str:
        return self.summary

    def __reduce__(self) -> tuple:
        # picklable with all its attributes (a task runner may ship the exception to another process)
        return (type(self), (self.summary, self.result_path, self.failures, self.report))


class ExpectationSuiteError(ValueError):
    """An expectation suite that cannot be used: file missing, not JSON, not a valid suite, or a parameter missing.

    The message starts with the file's path.
    """


def expectations_dir() -> Path:
    """Return the folder of the built-in suites: ``$CUSTOMER_AI_EXPECTATIONS`` or the package's ``expectations``.

    The suites are package data (``customer_ai/expectations/*.json``, found through :mod:`importlib.resources`), so
    an installed package validates as a source checkout does; the project's top-level ``expectations`` folder is a
    link to them.
    """
    configured = os.environ.get("CUSTOMER_AI_EXPECTATIONS")
    if configured:
        return Path(configured)
    return Path(str(importlib.resources.files("customer_ai") / "expectations"))


def _import_gx() -> Any:
    # GX reads the variable when it builds a context; set it before the first import (an explicit value wins)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    # GX logs hundreds of INFO lines per run ("Skipping registering function ... because it is a closure",
    # "Loading 'datasources'"); only its warnings belong in our output, unless the caller set a level itself
    chatter = logging.getLogger("great_expectations")
    if chatter.level == logging.NOTSET:
        chatter.setLevel(logging.WARNING)
    import great_expectations as gx  # noqa: PLC0415  (lazy: importing GX takes seconds)

    return gx


def _pydantic_message(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    seen: dict[str, str] = {}
    for error in errors():
        where = ".".join(str(part) for part in error.get("loc", ())) or "kwargs"
        seen.setdefault(where, error.get("msg", "invalid"))  # a union field repeats itself; its first error says it
    return "; ".join(f"{where}: {msg}" for where, msg in seen.items())


def _expectation_config(path: Path, position: int, item: object) -> Any:
    from great_expectations.exceptions import (  # noqa: PLC0415
        ExpectationNotFoundError,
        InvalidExpectationConfigurationError,
    )
    from great_expectations.expectations.expectation_configuration import (  # noqa: PLC0415
        ExpectationConfiguration,
    )

    label = f"expectation {position}"
    if not isinstance(item, dict):
        raise ExpectationSuiteError(f"{path}: {label} is a {type(item).__name__}, not an object with type and kwargs")
    kind = item.get("type")
    if not isinstance(kind, str) or not kind:
        raise ExpectationSuiteError(f"{path}: {label} has no 'type' (e.g. \"expect_column_values_to_not_be_null\")")
    label = f"{label} ({kind})"
    unknown = sorted(set(item) - _EXPECTATION_KEYS)
    if unknown:
        raise ExpectationSuiteError(
            f"{path}: {label}: unknown key(s) {', '.join(map(repr, unknown))} "
            f"(allowed: {', '.join(sorted(_EXPECTATION_KEYS))})"
        )
    if not isinstance(item.get("kwargs"), dict):
        raise ExpectationSuiteError(f'{path}: {label}: \'kwargs\' must be an object, e.g. {{"column": "profile_id"}}')
    try:
        config = ExpectationConfiguration(**item)
        config.to_domain_obj()  # checks the type exists and its kwargs (GX's suite constructor only logs this)
    except ExpectationNotFoundError:
        raise ExpectationSuiteError(f"{path}: {label}: unknown expectation type {kind!r}") from None
    except (InvalidExpectationConfigurationError, ValueError, TypeError) as exc:
        message = getattr(exc, "message", None) or _pydantic_message(exc)
        raise ExpectationSuiteError(f"{path}: {label}: {message}") from None
    if not config.id:
        # results come back grouped by column; an id maps each one back to its place in the suite
        config.id = str(uuid.uuid5(_ID_NAMESPACE, f"{path.name}#{position}"))
    return config


def load_suite(path: str | Path) -> Any:
    """Load a GX 1.x expectation suite JSON file, checking every expectation.

    Unlike ``gx.ExpectationSuite(**data)``, which logs and drops an expectation it cannot build, this refuses
    the file with a message naming it, the expectation's position and type, and the problem.

    Parameters
    ----------
    path : str or pathlib.Path
        The suite file.

    Returns
    -------
    great_expectations.ExpectationSuite
        A suite that belongs to no GX context.

    Raises
    ------
    ExpectationSuiteError
        When the file is missing, is not JSON, or does not describe a valid suite.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ExpectationSuiteError(f"{path}: expectation suite file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ExpectationSuiteError(f"{path}: cannot read the expectation suite ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExpectationSuiteError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    if not isinstance(data, dict):
        raise ExpectationSuiteError(
            f"{path}: an expectation suite is a JSON object with 'name' and 'expectations', not a {type(data).__name__}"
        )
    unknown = sorted(set(data) - _SUITE_KEYS)
    if unknown:
        raise ExpectationSuiteError(
            f"{path}: unknown key(s) {', '.join(map(repr, unknown))} (allowed: {', '.join(sorted(_SUITE_KEYS))})"
        )
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ExpectationSuiteError(f"{path}: 'name' must be a non-empty string")
    expectations = data.get("expectations")
    if not isinstance(expectations, list):
        raise ExpectationSuiteError(f"{path}: 'expectations' must be a list of expectations")
    gx = _import_gx()
    configs = [_expectation_config(path, position, item) for position, item in enumerate(expectations, start=1)]
    try:
        suite = gx.ExpectationSuite(**{**data, "expectations": configs})
    except (ValueError, TypeError) as exc:
        raise ExpectationSuiteError(f"{path}: {exc}") from None
    if len(suite.expectations) != len(configs):  # pragma: no cover - every config was built above
        raise ExpectationSuiteError(f"{path}: GX dropped {len(configs) - len(suite.expectations)} expectation(s)")
    return suite


def _runtime_value(value: object) -> object:
    """Return a parameter value GX compares correctly with ``datetime64[us, UTC]`` columns.

    GX 1.24 compares a tz-aware column with a tz-aware timestamp correctly, but raises inside the expectation
    (reported as a failure) for a naive datetime or a ``datetime.date``, and turns a date-only string into a
    ``datetime.date``.  So datetimes, dates, ``numpy.datetime64`` and ISO 8601 date strings become UTC
    ``pandas.Timestamp`` values (naive ones are taken as UTC, a date as midnight UTC, as everywhere in the
    package); anything else is passed unchanged.
    """
    if isinstance(value, str):
        if not _ISO_DATE.fullmatch(value.strip()):
            return value
        value = value.strip()
    elif not isinstance(value, dt.date | np.datetime64):  # datetime and Timestamp are dates too
        return value
    stamp = pd.Timestamp(value)
    if stamp is pd.NaT:
        return value
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _parameter_names(config: Any) -> list[tuple[str, str]]:
    return [
        (key, value["$PARAMETER"])
        for key, value in config.kwargs.items()
        if isinstance(value, dict) and isinstance(value.get("$PARAMETER"), str)
    ]


def _check_parameters(path: Path, suite: Any, parameters: Mapping[str, object]) -> None:
    for position, expectation in enumerate(suite.expectations, start=1):
        config = expectation.configuration
        for key, expression in _parameter_names(config):
            if _IDENTIFIER.fullmatch(expression) and expression not in parameters:
                given = ", ".join(sorted(parameters)) or "none"
                raise ExpectationSuiteError(
                    f"{path}: expectation {position} ({config.type}{_on(config.kwargs)}) takes {key} from the "
                    f"suite parameter {expression!r}; pass it in parameters= (given: {given})"
                )


def _is_nested(column: pd.Series) -> bool:
    if column.dtype != object:
        return False
    return bool(column.dropna().map(lambda v: isinstance(v, list | dict | tuple | set | np.ndarray)).any())


def _validatable(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    nested = [str(name) for name in frame.columns if _is_nested(frame[name])]
    return (frame.drop(columns=nested) if nested else frame), nested


def _is_missing(value: object) -> bool:
    if value is None or value is pd.NaT or value is pd.NA:
        return True
    return isinstance(value, float | np.floating) and math.isnan(value)


def _fmt(value: object, quote: bool = True) -> str:
    """Format a value for the summary: strings quoted, missing values as None, timestamps in ISO-like form."""
    if isinstance(value, np.generic):
        value = value.item()
    if _is_missing(value):
        text = "None"
    elif isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, dt.datetime):
        text = str(pd.Timestamp(value))
    elif isinstance(value, dt.date):
        text = value.isoformat()
    elif isinstance(value, str):
        text = repr(value) if quote else value
    elif isinstance(value, dict):  # a row of a multi-column expectation
        text = "(" + ", ".join(_fmt(v, quote) for v in value.values()) + ")"
    elif isinstance(value, list | tuple | set):
        text = _short_list(list(value), quote)
    else:
        text = str(value)
    return text


def _short_list(values: list, quote: bool = True, limit: int = 8) -> str:
    shown = ", ".join(_fmt(v, quote) for v in values[:limit])
    more = f", ... ({len(values)} in all)" if len(values) > limit else ""
    return f"[{shown}{more}]"


def _percent(part: float, whole: float) -> str:
    return "0" if not whole else f"{100 * part / whole:.3g}"


def _columns_of(kwargs: Mapping) -> list[str]:
    if isinstance(kwargs.get("column"), str):
        return [kwargs["column"]]
    if isinstance(kwargs.get("column_list"), list):
        return [str(c) for c in kwargs["column_list"]]
    return [str(kwargs[k]) for k in ("column_A", "column_B") if isinstance(kwargs.get(k), str)]


def _on(kwargs: Mapping) -> str:
    columns = _columns_of(kwargs)
    return f" on {', '.join(columns)}" if columns else ""


def _expected(kwargs: Mapping) -> str | None:
    """Describe what an expectation wanted, from its (parameter-substituted) kwargs."""
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    parts = []
    if low is not None:
        parts.append(f"{'above' if kwargs.get('strict_min') else 'at least'} {_fmt(low)}")
    if high is not None:
        parts.append(f"{'below' if kwargs.get('strict_max') else 'at most'} {_fmt(high)}")
    if parts:
        return " and ".join(parts)
    if isinstance(kwargs.get("value_set"), list | tuple | set):
        return f"one of {_short_list(list(kwargs['value_set']))}"
    if isinstance(kwargs.get("type_list"), list | tuple):
        return f"one of {_short_list(list(kwargs['type_list']), quote=False)}"
    if isinstance(kwargs.get("type_"), str):
        return kwargs["type_"]
    if isinstance(kwargs.get("column_set"), list | tuple | set):
        return f"columns {_short_list(list(kwargs['column_set']), quote=False)}"
    return None


def _exception_message(info: object) -> str | None:
    if not isinstance(info, dict):
        return None
    entries = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    for entry in entries:
        if entry.get("raised_exception"):
            message = str(entry.get("exception_message") or "unknown error").strip()
            message = message.splitlines()[0] if message else "unknown error"
            return message.removeprefix("Error: ")
    return None


def _jsonable(value: object) -> object:
    """Return ``value`` as strict JSON: non-finite floats and timestamps become strings, missing values null."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, dict):
        out: object = {str(k): _jsonable(v) for k, v in value.items()}
    elif isinstance(value, list | tuple | set):
        out = [_jsonable(v) for v in value]
    elif _is_missing(value):
        out = None
    elif isinstance(value, float) and not math.isfinite(value):
        out = str(value)
    elif isinstance(value, dt.datetime):
        out = pd.Timestamp(value).isoformat()
    elif isinstance(value, dt.date):
        out = value.isoformat()
    elif isinstance(value, bool | int | float | str):
        out = value
    else:
        out = str(value)
    return out


def _missing_columns_message(config: Any, missing: list[str], columns: Sequence[str]) -> str:
    shown = ", ".join(columns[:_COLUMNS_SHOWN]) or "none"
    if len(columns) > _COLUMNS_SHOWN:
        shown += f", ... ({len(columns)} in all)"
    which = f"column {missing[0]!r} is" if len(missing) == 1 else f"columns {', '.join(map(repr, missing))} are"
    lead = "" if config.type == "expect_column_to_exist" else "not evaluated, "
    return f"{lead}{which} missing (columns: {shown})"


def _unexpected_rows(details: Mapping, mostly: object, failure: dict) -> str:
    """Describe a row-by-row expectation's unexpected rows; add their count, share and examples to ``failure``."""
    unexpected = int(details["unexpected_count"] or 0)
    rows = int(details["element_count"] or 0)
    present = rows - int(details.get("missing_count") or 0)  # GX ignores missing values in most row checks
    examples: list = []
    for value in details.get("partial_unexpected_list") or []:
        if len(examples) == EXAMPLES:
            break
        if _fmt(value) not in {_fmt(e) for e in examples}:
            examples.append(value)
    of_what = "rows" if present == rows else "non-missing values"
    text = f"{unexpected:,} of {present:,} {of_what} ({_percent(unexpected, present)}%) unexpected"
    if isinstance(mostly, int | float) and mostly < 1:
        text += f" (at most {100 * (1 - mostly):.3g}% allowed)"
    if examples:
        text += f", e.g. {_short_list(examples, limit=EXAMPLES)}"
    failure.update(
        unexpected_count=unexpected,
        element_count=present,
        unexpected_percent=round(100 * unexpected / present, 4) if present else 0.0,
        examples=_jsonable(examples),
    )
    return text


def _failure(suite_name: str, result: Any, columns: Sequence[str]) -> dict:
    """Describe one failed expectation result as a JSON-ready dict with a readable ``message``."""
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    details = result.result or {}
    wanted = _columns_of(kwargs)
    failure: dict = {"suite": suite_name, "expectation": config.type, "column": ", ".join(wanted) or None}
    missing = [c for c in wanted if c not in columns]
    expected = _expected(kwargs)
    error = _exception_message(result.exception_info)
    if missing:
        failure["error"] = "missing column(s): " + ", ".join(missing)
        text = _missing_columns_message(config, missing, columns)
    elif error is not None:
        failure["error"] = error
        text = f"could not be evaluated: {error}"
    elif "unexpected_count" in details and "element_count" in details:
        text = _unexpected_rows(details, kwargs.get("mostly"), failure)
        text += f"; expected {expected}" if expected else ""
    elif "observed_value" in details:
        failure["observed"] = _jsonable(details["observed_value"])
        text = f"observed {_fmt(details['observed_value'], quote=False)}"
        text += f", expected {expected}" if expected else ""
    else:
        text = "failed (see the result file for details)"
    if expected:
        failure["expected"] = expected
    failure["message"] = f"{config.type}{_on(kwargs)}: {text}"
    return failure


def _context(gx: Any) -> Any:
    from great_expectations.data_context.types.base import (  # noqa: PLC0415
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _run_suites(frame: pd.DataFrame, stage: str, suites: list[tuple[Path, Any]], parameters: dict) -> list:
    gx = _import_gx()
    from great_expectations.compatibility.pydantic import ValidationError  # noqa: PLC0415
    from great_expectations.data_context.data_context.context_factory import project_manager  # noqa: PLC0415
    from great_expectations.exceptions import DataContextRequiredError, SuiteParameterError  # noqa: PLC0415

    try:  # get_context makes ours the process-wide current context; give the caller's back afterwards
        previous = project_manager.get_current_project()
    except DataContextRequiredError:
        previous = None
    try:
        context = _context(gx)
        asset = context.data_sources.add_pandas("customer_ai").add_dataframe_asset(stage)
        batch = asset.add_batch_definition_whole_dataframe("frame").get_batch(batch_parameters={"dataframe": frame})
        results = []
        for path, suite in suites:
            try:
                outcome = batch.validate(suite, result_format=_RESULT_FORMAT, expectation_parameters=parameters)
            except SuiteParameterError as exc:
                raise ExpectationSuiteError(f"{path}: {exc.message}") from None
            except ValidationError as exc:  # a parameter value the expectation cannot take
                given = ", ".join(f"{k}={_fmt(v)}" for k, v in parameters.items())
                raise ExpectationSuiteError(
                    f"{path}: a suite parameter does not fit its expectation ({_pydantic_message(exc)}); "
                    f"parameters: {given}"
                ) from None
            order = {e.configuration.id: k for k, e in enumerate(suite.expectations)}
            outcome.results.sort(key=lambda r: order.get(r.expectation_config.id, len(order)))
            results.append(outcome)
        return results
    finally:
        project_manager.set_project(previous)


def exact_duplicates(events: pd.DataFrame) -> np.ndarray:
    """Return which rows repeat an earlier row exactly (every column equal), as ``DataFrame.duplicated`` does.

    Canonical events are sorted by ``timestamp`` then ``profile_id``, so two equal rows sit in a run of rows
    sharing both: only those runs are compared, instead of hashing every column of millions of rows.  Events in
    any other order, or with missing ids or times, are compared whole.
    """
    size = len(events)
    if size < 2 or events["timestamp"].isna().any() or events["profile_id"].isna().any():
        return events.duplicated(keep="first").to_numpy()
    stamps = pd.DatetimeIndex(events["timestamp"]).asi8
    ids = pa.chunked_array(pa.array(events["profile_id"], type=pa.large_string()))
    later, earlier = ids.slice(1), ids.slice(0, size - 1)
    same_stamp = stamps[1:] == stamps[:-1]
    ordered = np.all(stamps[1:] >= stamps[:-1]) and not np.any(
        same_stamp & pc.less(later, earlier).to_numpy(zero_copy_only=False)
    )
    if not ordered:
        return events.duplicated(keep="first").to_numpy()
    same = same_stamp & pc.equal(later, earlier).to_numpy(zero_copy_only=False)
    in_run = np.zeros(size, dtype=bool)
    in_run[1:] |= same
    in_run[:-1] |= same
    repeated = np.zeros(size, dtype=bool)
    repeated[in_run] = rows_where(events, in_run).duplicated(keep="first").to_numpy()
    return repeated


def event_checks(events: pd.DataFrame, thresholds: Any, now: pd.Timestamp) -> tuple[pd.DataFrame, dict]:  # noqa: ANN401
    """Return the events as the built-in event suite checks them, and the suite's parameters.

    Parameters
    ----------
    events : pandas.DataFrame
        Canonical events.
    thresholds : customer_ai.spec.EventThresholds
        The instance's ``validation.thresholds``.
    now : pandas.Timestamp
        The wall clock: events must be dated before ``now + future_tolerance_days``.

    Returns
    -------
    (pandas.DataFrame, dict)
        The events plus the column ``exact_duplicate`` (true on a row whose every column equals an earlier
        row's), and the parameters ``not_after``, ``value_min``, ``value_max`` and ``max_duplicate_share``.
    """
    checked = events.assign(exact_duplicate=exact_duplicates(events))
    parameters = {
        "not_after": (now + pd.Timedelta(days=thresholds.future_tolerance_days)).isoformat(),
        "value_min": -thresholds.max_abs_value,
        "value_max": thresholds.max_abs_value,
        "max_duplicate_share": thresholds.max_duplicate_share,
    }
    return checked, parameters


def validate_frame(
    frame: pd.DataFrame,
    stage: str,
    *,
    parameters: dict | None = None,
    extra_suites: Sequence[Path] = (),
    result_path: Path | None = None,
) -> dict:
    """Validate a frame against the stage's built-in suite, then each extra suite, with Great Expectations.

    The built-in suite is ``<expectations>/<stage>.json`` (see :func:`expectations_dir`): ``events`` needs
    the parameter ``not_after`` (every timestamp must be strictly before it); ``training_set`` and ``scores``
    need none.  Every suite file is loaded and checked before anything is validated.

    Parameters
    ----------
    frame : pandas.DataFrame
        The data.  Columns holding nested values (lists or dicts, such as the scores' ``factors``) are left
        out: no built-in expectation reads them, and GX falls back to pickling the whole frame to fingerprint
        a batch with unhashable cells.
    stage : str
        ``"events"``, ``"training_set"`` or ``"scores"``.
    parameters : dict, optional
        Suite parameter values, e.g. ``{"not_after": pandas.Timestamp("2011-12-10", tz="UTC")}``, referenced from
        suites as ``{"$PARAMETER": "not_after"}``.  Datetimes, dates, ``numpy.datetime64`` and ISO 8601 date
        strings are passed to GX as UTC ``pandas.Timestamp`` values (naive ones taken as UTC, a date as
        midnight UTC): GX 1.24 compares those correctly with ``datetime64[us, UTC]`` columns, but a naive
        datetime, a ``datetime.date`` or a date-only string (which GX turns into a ``datetime.date``) makes
        the comparison raise inside the expectation.
    extra_suites : sequence of pathlib.Path
        More suite files (e.g. the instance's own), applied after the built-in one and reported under their
        own names.
    result_path : pathlib.Path, optional
        Where to write the full results as JSON (GX's result of every suite, plus this summary and the
        failures); written, atomically, before any error is raised.

    Returns
    -------
    dict
        ``{"stage", "suites": [suite names], "success": True, "evaluated": n, "failed": 0,
        "result_path": str or None}``.

    Raises
    ------
    DataValidationError
        When any expectation fails.  Its message has one header line per suite
        (``events: 2 of 11 expectations failed`` or ``events: all 11 expectations passed``) and, under a
        failed suite, one line per failed expectation, e.g.
        ``- expect_column_values_to_not_be_null on profile_id: 3 of 1,000 rows (0.3%) unexpected, e.g. [None]``
        or ``- expect_column_max_to_be_between on timestamp: observed 2012-01-03 00:00:00+00:00, expected
        below 2011-12-10 00:00:00+00:00``.
    ExpectationSuiteError
        When a suite file is missing, malformed, or needs a parameter that was not given.
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"validate_frame needs a pandas DataFrame, not {type(frame).__name__}")
    if not re.fullmatch(r"[A-Za-z0-9_-]+", stage):
        raise ValueError(f"stage must be a simple name such as {', '.join(STAGES)}; got {stage!r}")
    builtin = expectations_dir() / f"{stage}.json"
    if not builtin.exists():
        raise ExpectationSuiteError(
            f"{builtin}: expectation suite file not found (built-in stages: {', '.join(STAGES)}; "
            "the folder is set by CUSTOMER_AI_EXPECTATIONS)"
        )
    paths = [builtin, *(Path(p) for p in extra_suites)]
    suites = [(path, load_suite(path)) for path in paths]
    values = {str(k): _runtime_value(v) for k, v in (parameters or {}).items()}
    for path, suite in suites:
        _check_parameters(path, suite, values)
    data, left_out = _validatable(frame)
    columns = [str(c) for c in data.columns]
    outcomes = _run_suites(data, stage, suites, values)

    lines: list[str] = []
    failures: list[dict] = []
    for suite_outcome in outcomes:
        name = suite_outcome.suite_name
        failed = [r for r in suite_outcome.results if not r.success]
        evaluated = len(suite_outcome.results)
        if not failed:
            lines.append(f"{name}: all {evaluated} expectations passed")
            continue
        lines.append(f"{name}: {len(failed)} of {evaluated} expectations failed")
        for result in failed:
            failure = _failure(name, result, columns)
            failures.append(failure)
            lines.append(f"- {failure['message']}")
    evaluated = sum(len(o.results) for o in outcomes)
    report = {
        "stage": stage,
        "suites": [o.suite_name for o in outcomes],
        "success": not failures,
        "evaluated": evaluated,
        "failed": len(failures),
        "result_path": str(result_path) if result_path is not None else None,
    }
    if result_path is not None:
        lines.append(f"full results: {result_path}")
    summary = "\n".join(lines)
    if result_path is not None:
        write_json(
            as_path(result_path),
            _jsonable(
                {
                    **report,
                    "summary": summary,
                    "rows": len(frame),
                    "columns": columns,
                    "left_out_columns": left_out,
                    "parameters": values,
                    "failures": failures,
                    "results": [
                        {"suite": o.suite_name, "path": str(path), **o.to_json_dict()}
                        for (path, _), o in zip(suites, outcomes, strict=True)
                    ],
                }
            ),
            strict=True,
        )
    if failures:
        raise DataValidationError(summary, as_path(result_path) if result_path is not None else None, failures, report)
    return report
