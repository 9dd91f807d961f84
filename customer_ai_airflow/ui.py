"""The "Customer AI" view of Airflow's UI: every instance's latest run, and each run's report.

Airflow's API server mounts :data:`app` under :data:`URL_PREFIX` (:mod:`customer_ai_airflow.plugin` registers
it, with a navigation entry that shows it inside the UI).  Every route requires an Airflow login, checked by
Airflow's own ``requires_authenticated`` dependency: the JWT the UI holds in its ``_token`` cookie, or an
``Authorization: Bearer`` header.  Without one the API server answers 401, and 403 for a token it did not sign.

The table reads what the tasks write: the published runs and the attempts of the profile store the tasks use (the
``customer_ai_store`` connection, else ``CUSTOMER_AI_STORE``, else the embedded SQLite file in the home folder),
and the ``metadata.json`` and ``report.html`` of the run folder the store names.  Each row shows the current run
(the one whose scores are in the store) and, when a later attempt failed, stopped at the quality gate or is still
running, that attempt beside it.  A store that cannot be read shows its error in the rows instead of breaking the
page.

Each instance has a page (:mod:`customer_ai_airflow.instance_page`): its segments and downloads, a profile
look-up, an audience builder and its saved audiences; :mod:`customer_ai_airflow.routes` holds the routes and who
may use them.

Airflow imports plugin modules in every component, a task's process included: this module imports the standard
library only, and builds the FastAPI app (FastAPI, Airflow's API security, pandas through the package) when the
first request reaches it.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import re
import threading
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "URL_PREFIX",
    "InstanceRow",
    "UnknownPageError",
    "app",
    "create_app",
    "instance_rows",
    "instances_folder",
    "known_instances",
    "render_not_found",
    "render_table",
    "report_file",
]

URL_PREFIX = "/customer-ai"  # where Airflow mounts the view on its API server
# an instance's DAG id is this and its name (customer_ai_airflow.dags.DAG_PREFIX: that module imports Airflow)
DAG_PREFIX = "customer_ai__"
BUCKETS = ("low", "medium", "high")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TABLE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'self'"
# a report is self-contained (inline styles and SVG, data: images) and runs no script on Airflow's origin
_REPORT_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class UnknownPageError(LookupError):
    """A report the view cannot serve; ``status`` is the HTTP status, the message says why in words."""

    def __init__(self, message: str, status: int = 404) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class InstanceRow:
    """One line of the table: an instance file, its current run and its newest attempt.

    ``status`` is ``ok`` for a published run; without one, the newest attempt's status (``failed``, ``poor``,
    ``started``), else ``none``; ``invalid`` for a file that cannot be loaded and ``error`` when the store cannot be
    read.  ``message`` says why (for a run, it is the run's reason).  ``buckets``, ``value``, ``timing`` and ``report``
    come from the published run's folder.  ``attempt`` describes the newest attempt when it is not the current run's
    publish (a later attempt that failed, was poor or is still running), else it is empty.
    """

    name: str
    goal: str
    status: str
    as_of: str | None = None
    roc_auc: float | None = None
    calibration_error: float | None = None
    grade: str = ""  # the quality grade in a word (customer_ai.quality); empty without a published run
    grade_meaning: str = ""  # what the grade means, in one sentence
    drift: str = ""  # ok, warn or unknown (see customer_ai.drift); empty without a published run
    single_period: bool = False  # the model was trained and judged on one period: no check across time
    expected: dict = field(default_factory=dict)  # profiles expected to reach the goal: expected, low, high
    largest_psi: float | None = None
    scored_profiles: int | None = None
    buckets: dict[str, int] = field(default_factory=dict)
    bucket_rule: str = ""  # the rule the buckets followed, in a few words (customer_ai.scoring.BucketRule.short)
    bucket_rule_words: str = ""  # ... and in a sentence, with why an automatic rule ranked the run
    report: bool = False
    message: str = ""
    attempt: str = ""
    attempt_status: str = ""
    value: dict = field(default_factory=dict)  # a goal with a value: the run's expected total and per_profile
    currency: str = ""  # how the instance writes money (output.currency), for the value
    timing: dict = field(default_factory=dict)  # with output.timing: the run's profiles, dated and within_window


SINGLE_PERIOD_WORDS = "trained and judged on one period: no check across time (the history is short)"


def instances_folder() -> Path:
    """Return the folder of instance files: ``$CUSTOMER_AI_INSTANCES``, else a source checkout's ``instances/``.

    The view runs in Airflow's API server, not where the DAG file is parsed: Airflow's components share the folder
    through ``CUSTOMER_AI_INSTANCES`` (what :func:`customer_ai_airflow.dags.dags_from_folder` reads by default).
    """
    return Path(os.environ.get("CUSTOMER_AI_INSTANCES") or Path(__file__).resolve().parents[1] / "instances")


def _instance_files(folder: Path) -> list[Path]:
    return sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])


def _load(folder: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Return (spec by instance name, reason by file stem) for the files of ``folder``, as the DAG file reads them."""
    from customer_ai.spec import SpecError, load_spec

    specs: dict[str, Any] = {}
    owners: dict[str, Path] = {}
    invalid: dict[str, str] = {}
    for path in _instance_files(folder):
        try:
            spec = load_spec(path)
        except SpecError as exc:
            invalid[path.stem] = str(exc)
            continue
        except Exception as exc:  # as the DAG file does: one file never hides the others
            invalid[path.stem] = f"{path}: could not be read: {type(exc).__name__}: {exc}"
            continue
        if spec.name in owners:
            invalid[path.stem] = f"{path}: name: {spec.name!r} is already used by {owners[spec.name]}"
            continue
        specs[spec.name] = spec
        owners[spec.name] = path
    return specs, invalid


def known_instances(folder: Path) -> set[str]:
    """Return the names of the instances whose files in ``folder`` load (the only names a URL may hold)."""
    return set(_load(folder)[0])


def _number(value: Any) -> float | None:  # noqa: ANN401 - whatever a metrics dict holds
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def run_folder(home: Path, name: str, run: dict) -> Path:
    """Return the folder of a published run (a row of the store's runs): the one the store names."""
    from customer_ai.artifacts import run_dir

    return run_dir(home, name, dt.date.fromisoformat(run["as_of"]), run["run_id"])


def run_metadata(folder: Path, run: dict) -> dict | None:
    """Return the ``metadata.json`` of the run in ``folder``, or None when it cannot be read or is another run's.

    A folder of a run published before run ids holds the newest run of its date, which may not be ``run``: its
    model version tells.
    """
    try:
        metadata = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return metadata if metadata.get("model_version") == run["model_version"] else None


def _published(home: Path, name: str, run: dict) -> tuple[dict[str, int], bool, dict[str, float], dict[str, int]]:
    """Return the run's bucket counts, whether its report exists, its expected value and its dates, from its folder.

    The folder is the one the store names; the expected value (``total`` and ``per_profile``, from
    ``metadata.json["value"]``) is empty for a goal without a value, and the dates (``profiles``, ``dated`` and
    ``within_window``, from ``metadata.json["timing"]``) without ``output.timing``.
    """
    folder = run_folder(home, name, run)
    metadata = run_metadata(folder, run)
    if metadata is None:
        return {}, False, {}, {}
    counts = metadata.get("buckets") or {}
    buckets = {bucket: int(counts[bucket]) for bucket in BUCKETS if isinstance(counts.get(bucket), int)}
    worth = metadata.get("value") or {}
    value = {key: _number(worth.get(key)) for key in ("total", "per_profile")}
    value = {key: number for key, number in value.items() if number is not None}
    dates = metadata.get("timing") or {}
    timing = {key: dates[key] for key in ("profiles", "dated", "within_window") if isinstance(dates.get(key), int)}
    report = (folder / "report.html").is_file()
    return buckets, report, value if "total" in value else {}, timing if "dated" in timing else {}


def _attempt_text(row: dict) -> str:
    """Say where an attempt stands, from its last row in the store's attempts."""
    where = f" at {row['step']}" if row["step"] else ""
    tried = f" (try {row['try_number']})" if row["try_number"] > 1 else ""
    head = f"newest attempt, as of {row['as_of']}, {row['recorded_at']}: {row['status']}{where}{tried}"
    if row["status"] == "started":
        return f"{head}: nothing recorded since (still running, or killed)"
    return f"{head}: {row['reason']}"


def _run_row(spec: Any, home: Path, run: dict | None, attempt: dict | None) -> InstanceRow:  # noqa: ANN401
    goal = spec.goal_in_words()
    shows_run = (
        attempt is not None
        and run is not None
        and (attempt["status"], attempt["run_id"])
        == (
            "ok",
            run["run_id"],
        )
    )
    newer = "" if attempt is None or shows_run else _attempt_text(attempt)
    newer_status = "" if attempt is None or shows_run else str(attempt["status"])
    if run is None:
        if attempt is None:
            return InstanceRow(name=spec.name, goal=goal, status="none", message="no run yet")
        return InstanceRow(
            name=spec.name,
            goal=goal,
            status=str(attempt["status"]),
            as_of=str(attempt["as_of"]),
            message="no run published yet",
            attempt=newer,
            attempt_status=newer_status,
        )
    from customer_ai.quality import quality_grade  # noqa: PLC0415 (pure Python; imported where it is used)
    from customer_ai.scoring import BucketRule  # noqa: PLC0415

    metrics = run.get("metrics") or {}
    buckets, report, value, timing = _published(home, spec.name, run)
    grade, meaning = quality_grade(metrics)
    rule = BucketRule.of_run(metrics.get("bucket_rule"), spec.output)
    return InstanceRow(
        name=spec.name,
        goal=goal,
        status=str(run["status"]),
        as_of=str(run["as_of"]),
        roc_auc=_number(metrics.get("model_roc_auc", metrics.get("roc_auc"))),
        calibration_error=_number(metrics.get("calibration_error")),
        grade=grade,
        grade_meaning=meaning,
        drift=str((metrics.get("drift") or {}).get("status") or "unknown"),
        largest_psi=_number((metrics.get("drift") or {}).get("largest_psi")),
        single_period=bool(metrics.get("single_period")),
        expected={k: v for k, v in (metrics.get("expected") or {}).items() if v is not None},
        scored_profiles=int(run["scored_profiles"]),
        buckets=buckets,
        bucket_rule=rule.short(),
        bucket_rule_words=f"buckets {rule.in_words()}",
        report=report,
        message=str(run.get("reason") or ""),
        attempt=newer,
        attempt_status=newer_status,
        value=value,
        currency=(spec.output.currency or "") if value else "",
        timing=timing,
    )


def instance_rows(folder: Path, home: Path, open_store: Callable[[], Any]) -> list[InstanceRow]:
    """Return a row per instance file in ``folder`` with its current run and newest attempt from the store.

    Parameters
    ----------
    folder : pathlib.Path
        The instance files (``*.yaml``, ``*.yml``).
    home : pathlib.Path
        The customer-ai home folder (run folders under ``artifacts/``).
    open_store : callable
        Returns the profile store; called once.  When it or a read fails, the rows it concerns say why.

    Returns
    -------
    list of InstanceRow
        Sorted by instance name (by file name for a file that cannot be loaded).
    """
    specs, invalid = _load(folder)
    rows = [InstanceRow(name=stem, goal="", status="invalid", message=reason) for stem, reason in invalid.items()]
    store, store_error = None, ""
    if specs:
        try:
            store = open_store()
        except Exception as exc:  # any failure to reach the store is shown, never raised
            store_error = _error_text(exc)
    for name, spec in specs.items():
        if store is None:
            rows.append(InstanceRow(name=name, goal=spec.goal_in_words(), status="error", message=store_error))
            continue
        try:
            rows.append(_run_row(spec, home, store.latest_run(name), store.latest_attempt(name)))
        except Exception as exc:  # one unreadable store or run folder must not break the page
            rows.append(InstanceRow(name=name, goal=spec.goal_in_words(), status="error", message=_error_text(exc)))
    return sorted(rows, key=lambda row: row.name)


def _error_text(exc: BaseException) -> str:
    return f"the profile store cannot be read: {type(exc).__name__}: {exc}"


def report_file(home: Path, known: Iterable[str], name: str, as_of: str, open_store: Callable[[], Any]) -> Path:
    """Return the report of instance ``name``'s run published as of ``as_of``; check both before building the path.

    The run's folder is the one the store names (``open_store`` returns the store; called only for a known
    instance and a real date).

    Raises
    ------
    UnknownPageError
        404 when ``name`` is not a known instance or no run published as of ``as_of`` has a report; 400 when
        ``as_of`` is not a ``YYYY-MM-DD`` date; 503 when the store cannot be read.
    """
    from customer_ai.artifacts import run_dir

    if name not in set(known):
        raise UnknownPageError(f"there is no instance named {name!r}")
    if not _DATE.fullmatch(as_of):
        raise UnknownPageError(f"{as_of!r} is not an as-of date (use YYYY-MM-DD, for example 2011-12-11)", 400)
    try:
        day = dt.date.fromisoformat(as_of)
    except ValueError:
        raise UnknownPageError(f"{as_of!r} is not an as-of date (no such day in the calendar)", 400) from None
    try:
        runs = open_store().read_runs(name)
    except Exception as exc:  # shown as a page, never raised
        raise UnknownPageError(_error_text(exc), 503) from None
    published = runs.loc[runs["as_of"] == as_of]
    try:
        path = None if published.empty else run_dir(home, name, day, str(published["run_id"].iloc[0])) / "report.html"
    except ValueError:  # a run row naming no run folder: never a path outside the date's folder
        path = None
    if path is None or not path.is_file():
        raise UnknownPageError(f"{name} has no report as of {as_of} (no run of that date was published with one)")
    return path


# ---------------------------------------------------------------------------------------------------------------
# HTML: every text from a file, the store or the URL goes through html.escape

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #1a202c; }
h1 { font-size: 1.4rem; margin: 0 0 0.25rem; }
p.note { color: #4a5568; margin: 0 0 1rem; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #e2e8f0; padding: 0.45rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f7fafc; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.status { font-weight: 600; border-radius: 0.25rem; padding: 0.1rem 0.4rem; }
.status-ok { background: #c6f6d5; } .status-poor { background: #feebc8; }
.status-failed, .status-error, .status-invalid { background: #fed7d7; } .status-none { background: #edf2f7; }
.status-started { background: #bee3f8; }
.drift-ok { color: #276749; } .drift-warn { background: #feebc8; padding: 2px 6px; border-radius: 3px; }
.drift-unknown { color: #718096; }
.range { color: #718096; font-size: 0.8rem; white-space: nowrap; }
.message { color: #4a5568; font-size: 0.8rem; max-width: 32rem; white-space: pre-wrap; }
.meaning { color: #4a5568; font-size: 0.75rem; max-width: 18rem; }
.grade { font-weight: 600; } .grade-excellent, .grade-good { color: #276749; } .grade-poor { color: #9b2c2c; }
.attempt { color: #9b2c2c; font-size: 0.8rem; max-width: 32rem; white-space: pre-wrap; margin-top: 0.25rem; }
.attempt-started { color: #4a5568; }
.error { color: #9b2c2c; } .empty { color: #4a5568; }
.notice { background: #c6f6d5; padding: 0.5rem 0.75rem; border-radius: 0.25rem; }
form { margin: 0.5rem 0; } div.note, span.note { color: #4a5568; font-size: 0.75rem; }
"""


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>{body}</body></html>\n"
    )


def _cell(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _count(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def _ranged_cell(css: str, text: str | None = None, beneath: str | None = None) -> str:
    """Return a number cell of class ``css``: ``text`` (empty without), with ``beneath`` in small type under it."""
    under = f'<div class="range">{beneath}</div>' if beneath else ""
    return f'<td class="num {css}">{text or ""}{under}</td>'


def _expected_cell(row: InstanceRow) -> str:
    """Return the cell of the profiles expected to reach the goal, with the range past windows give."""
    if "expected" not in row.expected:
        return _ranged_cell("expected")
    low = row.expected.get("low")
    beneath = None if low is None else f"{low:,.0f} to {row.expected['high']:,.0f}"
    return _ranged_cell("expected", f"{row.expected['expected']:,.0f}", beneath)


def money(amount: float, currency: str | None) -> str:
    """Return an amount as the instance writes money ("GBP 1,234.50", "$1,234.50"), escaped for the page."""
    from customer_ai.features import money_prefix

    return f"{html.escape(money_prefix(currency))}{amount:,.2f}"


def _value_cell(row: InstanceRow) -> str:
    """Return the cell of the run's expected value, in the instance's currency, with the amount per profile beneath."""
    if "total" not in row.value:
        return _ranged_cell("expected-value")
    per_profile = row.value.get("per_profile")
    beneath = None if per_profile is None else f"{money(per_profile, row.currency)} per profile"
    return _ranged_cell("expected-value", money(row.value["total"], row.currency), beneath)


def _timing_cell(row: InstanceRow) -> str:
    """Return the cell of the run's dates: the profiles given one of all scored, those within the window beneath."""
    if "dated" not in row.timing:
        return _ranged_cell("next-event")
    of = f" of {row.timing['profiles']:,}" if "profiles" in row.timing else ""
    within = row.timing.get("within_window")
    beneath = None if within is None else f"{within:,} within the window"
    return _ranged_cell("next-event", f"{row.timing['dated']:,}{of} dated", beneath)


def _grade_cell(row: InstanceRow) -> str:
    """Return the quality cell: the grade in a word, and what it means beneath it."""
    if not row.grade:
        return '<td class="quality"></td>'
    grade, meaning = html.escape(row.grade), html.escape(row.grade_meaning)
    word = f'<span class="grade grade-{grade}">{grade}</span>'
    return f'<td class="quality">{word}<div class="meaning">{meaning}</div></td>'


def _drift_cell(row: InstanceRow) -> str:
    """Return the drift cell: the status, with the largest stability index of a feature when it was measured."""
    if not row.drift:
        return '<td class="drift"></td>'
    status = html.escape(row.drift)
    largest = "" if row.largest_psi is None else f" ({row.largest_psi:.2f})"
    return f'<td class="drift"><span class="drift-{status}">{status}{largest}</span></td>'


def _rule_cell(row: InstanceRow) -> str:
    """Return the cell of the bucket rule: in a few words, and the whole sentence beneath."""
    if not row.bucket_rule:
        return '<td class="bucket-rule"></td>'
    words = html.escape(row.bucket_rule_words)
    return f'<td class="bucket-rule">{html.escape(row.bucket_rule)}<div class="meaning">{words}</div></td>'


def _row_html(row: InstanceRow, valued: bool = False, timed: bool = False) -> str:
    """Return a row of the table; ``valued``, ``timed``: the table has the expected value, the next event column."""
    name = html.escape(row.name)
    dag = f'<a href="../dags/{DAG_PREFIX}{name}" target="_top">{name}</a>' if row.status != "invalid" else name
    report = "no report"
    if row.report and row.as_of:
        href = f"instances/{html.escape(row.name)}/runs/{html.escape(row.as_of)}/report"
        report = f'<a class="report" href="{href}">report</a>'
    if row.status == "ok":  # its current run's segments, profiles and audiences
        report += f' <a class="audiences" href="instances/{name}">segments, profiles, audiences</a>'
    message = f'<div class="message">{html.escape(row.message)}</div>' if row.status != "ok" else ""
    if row.status == "ok" and row.single_period:
        message = f'<div class="message single-period">{html.escape(SINGLE_PERIOD_WORDS)}</div>'
    if row.attempt:
        status = html.escape(row.attempt_status)
        message += f'<div class="attempt attempt-{status}">{html.escape(row.attempt)}</div>'
    cells = [
        f'<td class="instance">{dag}</td>',
        f'<td class="goal">{html.escape(row.goal)}</td>',
        f'<td class="as-of">{html.escape(row.as_of or "")}</td>',
        f'<td><span class="status status-{html.escape(row.status)}">{html.escape(row.status)}</span>{message}</td>',
        f'<td class="num roc-auc">{_cell(row.roc_auc, 3)}</td>',
        f'<td class="num calibration-error">{_cell(row.calibration_error, 3)}</td>',
        _grade_cell(row),
        _drift_cell(row),
        f'<td class="num scored-profiles">{_count(row.scored_profiles)}</td>',
        _expected_cell(row),
        *([_value_cell(row)] if valued else []),
        *([_timing_cell(row)] if timed else []),
        *(f'<td class="num bucket-{bucket}">{_count(row.buckets.get(bucket))}</td>' for bucket in BUCKETS),
        _rule_cell(row),
        f"<td>{report}</td>",
    ]
    return f'<tr data-instance="{name}">{"".join(cells)}</tr>'


def render_table(rows: list[InstanceRow], folder: Path) -> str:
    """Return the view's page: a table of the instances' latest runs (``folder`` is named when it is empty).

    The expected value column is there only when a run shown has one (its goal has a value), and the next goal event
    column only when a run shown has dates (its instance has ``output.timing``).
    """
    valued = any(row.value for row in rows)
    timed = any(row.timing for row in rows)
    headers = ["Instance", "Goal", "As of", "Status", "ROC AUC", "Calibration error", "Quality", "Drift"]
    headers += ["Scored profiles"]
    headers += ["Expected to reach the goal"]
    headers += ["Expected value"] if valued else []
    headers += ["Next goal event"] if timed else []
    headers += [f"{bucket.capitalize()}" for bucket in BUCKETS] + ["Buckets by", "Report"]
    head = "".join(f"<th>{html.escape(text)}</th>" for text in headers)
    if rows:
        body = "".join(_row_html(r, valued, timed) for r in rows)
        content = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    else:
        content = f'<p class="empty">No instance files (*.yaml) in {html.escape(str(folder))}.</p>'
    note = (
        "The current run of every instance (the one whose scores are in the profile store): held-out ROC AUC and "
        "calibration error of its model, its drift (ok, or warn when a feature of the scored profiles moved from "
        "the training rows past the instance's warning; the largest stability index in brackets; the report's "
        '"Drift since training" says which), the profiles it scored, how many of them are expected to reach the goal '
        "(the sum of their probabilities; below it, the range if the base rate moves as much as it did between the "
        "model's past windows), how many fell in each bucket and the rule the buckets followed (on the score, or by "
        "rank in the run when the score would leave a bucket empty or the high bucket a sliver). A later "
        "attempt that failed, stopped at the quality gate or is still running is shown beside it, with the reason."
    )
    if valued:
        note += (
            " For a goal with a value, the expected value is what the scored profiles' goal events are expected to be "
            "worth in the goal window, in all (below it, per profile)."
        )
    if timed:
        note += (
            " With timing, the next goal event counts the scored profiles given a date (their median days to the "
            "next goal event lies within the horizon) and, below it, those whose date falls within the goal window."
        )
    return _page("Customer AI", f'<h1>Customer AI</h1><p class="note">{html.escape(note)}</p>{content}')


def render_not_found(message: str, back: str) -> str:
    """Return a short error page saying ``message``, with a link to the table at ``back`` (a relative URL)."""
    return _page(
        "Customer AI: no such report",
        f'<h1>Customer AI</h1><p class="error">{html.escape(message)}</p>'
        f'<p><a href="{html.escape(back)}">All instances</a></p>',
    )


# ---------------------------------------------------------------------------------------------------------------
# the FastAPI app


def _open_store(*, create: bool = False) -> Any:  # noqa: ANN401 - a SQLiteStore or a PostgresStore
    """Return the profile store the tasks write to (see :mod:`customer_ai_airflow.connections`), for reading.

    The view creates, migrates and writes nothing: a store no task has written yet reads as empty (every instance
    without a run), one that needs a migration is shown as each row's error.  Only saving or deleting an audience
    opens it for writing (``create``), once a reader has found it at this version.
    """
    from customer_ai.artifacts import default_home
    from customer_ai.store import open_store
    from customer_ai_airflow.connections import store_address

    address, schema = store_address()
    return open_store(address, default_home(), schema, create=create)


def create_app() -> Any:  # noqa: ANN401 - a fastapi.FastAPI, imported here
    """Return the view's FastAPI app (:func:`customer_ai_airflow.routes.create_app`); every route requires a login."""
    from customer_ai_airflow.routes import create_app as routes_app

    return routes_app()


class _BuiltOnFirstRequest:
    """An ASGI app that builds the view's FastAPI app when the first request reaches it.

    Only Airflow's API server ever sends it a request; every other component that imports the plugin (the
    scheduler, a task's process) is spared importing FastAPI and Airflow's API security for nothing.
    """

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._app: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{__name__}.app"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            with self._lock:
                if self._app is None:
                    self._app = self._build()
        await self._app(scope, receive, send)


app = _BuiltOnFirstRequest(create_app)
