"""The ``customer-ai`` command: run, check, explain and backtest instances without Airflow.

Exit status: 0 success; 1 the model failed the quality gate (without ``--allow-poor``), or for ``show``: the
instance (or the date asked for) has attempts but no published run; 2 bad input (instance file, events, too little
data, arguments, profiles that drifted past ``monitoring.drift_stop``), with a message that says what is wrong and
where; 3 the profile store or the events database
cannot be reached or is damaged, or the machine fails (a full disk, a read-only home); 4 another run of the same
instance is in progress in the same home; 5 an unexpected error, a bug (its traceback is printed).
"""

from __future__ import annotations

import argparse
import csv
import errno
import json
import logging
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from customer_ai.home import HomeError, as_path, is_local

__all__ = ["main"]

EXIT_OK, EXIT_POOR, EXIT_INPUT, EXIT_UNAVAILABLE, EXIT_BUSY, EXIT_BUG = 0, 1, 2, 3, 4, 5
CUT_CHOICES = ("score", "percentile", "top")  # customer_ai.audiences.CUT_KINDS (that module imports pandas)


class UsageError(ValueError):
    """A command-line argument that cannot be used."""


def _as_of(text: str):  # noqa: ANN202 - pandas is imported lazily
    from customer_ai.windows import as_of_timestamp

    try:
        return as_of_timestamp(text)
    except ValueError as exc:
        raise UsageError(f"--as-of: {exc}") from None


def _common(sub: argparse.ArgumentParser) -> None:
    """Add the arguments of every command on one instance: its file, ``--home`` and ``--store``."""
    sub.add_argument("instance", type=Path, help="instance YAML file")
    sub.add_argument(
        "--home",
        type=str,
        default=None,
        help="folder for artifacts and the embedded store (default: $CUSTOMER_AI_HOME or ~/.customer-ai)",
    )
    sub.add_argument(
        "--store",
        default=None,
        help="profile store address, e.g. sqlite:///path/store.sqlite "
        "(default: $CUSTOMER_AI_STORE or <home>/store.sqlite)",
    )


def _audience_parser(commands: Any) -> None:  # noqa: ANN401 - argparse's subparsers action
    """Add ``audience save``, ``audience list`` and ``audience delete`` to ``commands``."""
    audience = commands.add_parser(
        "audience", help="save, list or delete an instance's saved audiences (cuts every later run applies)"
    )
    audience_commands = audience.add_subparsers(dest="audience_command", required=True)
    save = audience_commands.add_parser(
        "save", help="save a cut of the scores as an audience: a rule, applied by every later run as a segment"
    )
    _common(save)
    save.add_argument("name", help="its name: lower-case letters, digits and _ (a segment's name)")
    save.add_argument("--cut", required=True, choices=CUT_CHOICES, help="score, percentile or top (N)")
    save.add_argument(
        "--at", required=True, type=int, help="score at least (0-100), percentile at least (1-100), or N (from 1)"
    )
    save.add_argument("--by", help="who saves it (default: this system user)")
    save.add_argument("--replace", action="store_true", help="replace a saved audience of the same name")
    listed = audience_commands.add_parser("list", help="print an instance's saved audiences and their sizes")
    _common(listed)
    delete = audience_commands.add_parser(
        "delete", help="delete a saved audience: later runs no longer apply it (published runs keep its members)"
    )
    _common(delete)
    delete.add_argument("name", help="the saved audience")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="customer-ai",
        description="Calibrated propensity scores with influential factors, from an event log and a goal.",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress messages on stderr")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="train as of a date and score every eligible profile")
    _common(run)
    run.add_argument("--as-of", required=True, help="as-of date YYYY-MM-DD (UTC midnight)")
    run.add_argument("--events", type=Path, help="canonical event file (.parquet/.csv) replacing the instance's")
    run.add_argument("--scores-out", type=Path, help="also write the scores here (.csv or .parquet)")
    run.add_argument("--allow-poor", action="store_true", help="exit 0 even if the model fails the quality gate")
    run.add_argument("--top", type=int, default=5, help="profiles to print with their factors (default 5)")

    check = commands.add_parser(
        "check", help="validate an instance file (and its event file, if present); list its saved audiences"
    )
    _common(check)
    check.add_argument("--events", type=Path, help="canonical event file to check the conditions against")

    explain = commands.add_parser("explain", help="print one profile's score and influential factors")
    _common(explain)
    explain.add_argument("profile_id", help="the profile")
    explain.add_argument("--as-of", help="a past as-of date (default: the current score)")

    show = commands.add_parser(
        "show", help="print an instance's current (newest published) run, its newest attempt and its top profiles"
    )
    _common(show)
    show.add_argument("--as-of", help="show the run of this date (YYYY-MM-DD) instead of the latest")
    show.add_argument("--top", type=int, default=5, help="profiles to print with their factors (default 5)")

    segment = commands.add_parser("segment", help="read an instance's segments from the store")
    segment_commands = segment.add_subparsers(dest="segment_command", required=True)
    export = segment_commands.add_parser(
        "export", help="write one segment's profiles with their scores and factors to a file (no retraining)"
    )
    _common(export)
    export.add_argument(
        "segment", help="segment name: low, medium, high, one of the instance file's segments or a saved audience"
    )
    export.add_argument("--as-of", help="the run's as-of date (default: the newest published run)")
    export.add_argument("--out", type=Path, required=True, help="output file, .csv or .parquet")
    export.add_argument(
        "--raw-csv",
        action="store_true",
        help="write text cells of a CSV exactly, even those a spreadsheet would run as a formula (=, +, -, @, ...)",
    )

    _audience_parser(commands)

    report = commands.add_parser("report", help="write a run's HTML report (offline, one file)")
    _common(report)
    report.add_argument("--as-of", help="the run's as-of date (default: the newest published run)")
    report.add_argument("--out", type=Path, help="output .html file (default: report.html in the run's folder)")

    migrate = commands.add_parser(
        "migrate", help="bring a profile store written by an earlier version to this one's schema (run does it too)"
    )
    migrate.add_argument("--home", type=str, default=None, help="the home whose embedded store to migrate")
    migrate.add_argument("--store", default=None, help="its address (default: $CUSTOMER_AI_STORE or the home's)")

    unlock = commands.add_parser(
        "unlock", help="free an instance's run lock that a dead run left (it says who held it)"
    )
    _common(unlock)

    backtest = commands.add_parser("backtest", help="score past dates and measure against what happened")
    backtest.add_argument("instance", type=Path, help="instance YAML file")
    backtest.add_argument("--as-of", action="append", required=True, help="as-of date; repeat for several")
    backtest.add_argument("--events", type=Path, help="canonical event file replacing the instance's")
    backtest.add_argument("--json-out", type=Path, help="write all metrics as JSON here")
    return parser


def _home(args: argparse.Namespace) -> Path:  # or a bucket's UPath
    """Return the home folder: ``--home``, else ``$CUSTOMER_AI_HOME`` or ``~/.customer-ai``; refuse a file."""
    from customer_ai.artifacts import default_home

    try:
        if args.home is not None:
            home, option = as_path(args.home), "--home"
        else:
            home, option = default_home(), "CUSTOMER_AI_HOME" if os.environ.get("CUSTOMER_AI_HOME") else "home"
    except HomeError as exc:
        raise UsageError(f"home {exc}") from None
    if not is_local(home):  # a bucket: nothing there is a file that could stand in the way
        return home
    for path in (home, *home.parents):  # the home, or the nearest folder it would be created in
        if path.exists():
            if not path.is_dir():
                what = "is a file" if path == home else f"lies under {path}, which is a file"
                raise UsageError(f"{option} {home}: {what}, not a folder (the home holds the artifacts and the store)")
            break
    return home


def _store(args: argparse.Namespace, *, create: bool = True):  # noqa: ANN202 - the store type, imported lazily
    """Return the store of ``--store`` (or ``$CUSTOMER_AI_STORE``, or the home's).

    Only ``run`` creates and migrates it; the readers (``create=False``) create, migrate and write nothing, and
    learn here that the store does not exist, needs a migration or is damaged, before they print anything.
    """
    from customer_ai.store import open_store

    store = open_store(args.store or os.environ.get("CUSTOMER_AI_STORE"), _home(args), create=create)
    if not create:
        store.check()
    return store


def _printable(text: object) -> str:
    """Return ``text`` safe for a terminal: control characters (newlines, escape sequences) shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def _print_profile(row: dict, out=None, currency: str | None = None, *, timed: bool = False) -> None:  # noqa: ANN001
    out = sys.stdout if out is None else out  # looked up now: a test may have replaced sys.stdout
    worth = _number_of(row, "expected_value")
    days = _number_of(row, "days_to_next")
    said = f"  expected value {_money(worth, currency)}" if worth is not None else ""
    if days is not None:
        said += f"  next goal event by {row['next_by']} ({days:.1f} days)"
    elif timed:  # a run with timing whose median for this profile lies beyond what it can tell
        said += "  next goal event: not within the horizon"
    print(
        f"  {_printable(row['profile_id']):>10}  probability {row['probability']:.3f}  score {row['score']:>3}  "
        f"percentile {row['percentile']:>3}  bucket {row['bucket']}{said}",
        file=out,
    )
    _print_factors(row["factors"], out)


def _number_of(row: dict, column: str) -> float | None:
    """Return a score row's optional number, or None where it is missing (NaN or None)."""
    value = row.get(column)
    return None if value is None or math.isnan(value) else float(value)


def _print_factors(factors: list[dict], out) -> None:  # noqa: ANN001
    from customer_ai.explain import effect_of

    for factor in factors:
        contribution = factor["contribution"]
        sign = "+" if contribution > 0 else "-"
        effect = factor.get("effect") or effect_of(contribution)  # factors stored before "effect" existed
        size = f"{contribution:+.2f}" if abs(contribution) >= 0.005 else f"{contribution:+.1g}"  # never "+0.00"
        print(f"      {sign} {_printable(factor['description'])}  ({_printable(effect)}, {size})", file=out)


def _money(amount: float, currency: str | None) -> str:
    """Return an amount as the instance writes money: "GBP 1,234.50", "$1,234.50", "1,234.50"."""
    from customer_ai.features import money_prefix

    return f"{money_prefix(currency)}{amount:,.2f}"


def _describe_timing(timing: dict, window_days: int) -> str:
    """Return the line of ``run`` and ``show`` that says how many profiles got a next date, and how it was judged."""
    text = (
        f"next goal event: a date for {timing['dated']:,} of {timing['profiles']:,} profiles (a median within "
        f"{timing['limit_days']:g} days), {timing['within_window']:,} of them within the {window_days}-day window"
    )
    metrics = timing.get("metrics") or {}
    if isinstance(metrics.get("concordance"), (int, float)):
        baselines = {k: v.get("concordance") for k, v in (metrics.get("baselines") or {}).items()}
        known = [f"{k} {v:.3f}" for k, v in baselines.items() if isinstance(v, (int, float))]
        text += f" (held out: concordance {metrics['concordance']:.3f}"
        text += f", baselines: {', '.join(known)}" if known else ""
        share = metrics.get("bought_by_median")
        if isinstance(share, (int, float)) and not math.isnan(share):
            text += f"; {share:.0%} of {metrics.get('counted', 0):,} bought by their median"
        text += ")"
    return _printable(text)


def _describe_value(value: dict, currency: str | None) -> str:
    """Return the line of ``run`` and ``show`` that says the run's expected value and how its model did held out."""
    from customer_ai.outcome_metrics import best_of
    from customer_ai.value_model import VALUE_BASELINE_WORDS

    text = (
        f"expected value (the goal events' {value['field']}) in the next {value['window_days']} days: "
        f"{_money(value['total'], currency)} in all"
    )
    if value.get("per_profile") is not None:
        text += f", {_money(value['per_profile'], currency)} per profile"
    metrics = value.get("metrics") or {}
    if isinstance(metrics.get("normalised_gini"), (int, float)):
        best = best_of(metrics.get("baselines"), "normalised_gini")
        text += f" (held out: normalised Gini {metrics['normalised_gini']:.3f}"
        text += f", {VALUE_BASELINE_WORDS.get(best[0], best[0])} {best[1]:.3f}" if best is not None else ""
        ratio = metrics.get("total_ratio")
        text += f", predicted over realised total {ratio:.2f})" if isinstance(ratio, (int, float)) else ")"
    return _printable(text)


def _write_scores(folder: Path, path: Path) -> None:
    """Write a run folder's scores to a CSV or Parquet file, a partition (row group) at a time.

    The factors stay the JSON text ``scores.parquet`` holds: no profile's are decoded, and no more than one
    partition's scores are in memory.
    """
    from customer_ai import artifacts  # noqa: PLC0415 - pandas and Arrow: only for the commands that need them

    parts = artifacts.read_row_groups(as_path(folder) / "scores.parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".parquet":
        artifacts.write_frames(path, parts)
    elif path.suffix.lower() == ".csv":
        for number, part in enumerate(parts):
            # every text field quoted: a carriage return or a separator inside an id must not split a row
            part.to_csv(path, index=False, quoting=csv.QUOTE_NONNUMERIC, mode="a" if number else "w", header=not number)
    else:
        raise UsageError(f"--scores-out {path}: use a .csv or .parquet file name")


def _check_writable(path: Path, option: str = "--scores-out") -> None:
    """Refuse an output file that cannot be written, before any work is done."""
    import tempfile

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}-"):
            pass
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO):
            raise  # the machine failing, not a bad place to write: main says so (exit 3)
        raise UsageError(f"{option} {path}: cannot write there ({exc.strerror or exc})") from None
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a folder; give a file name ending in .csv or .parquet")


def _events_dsn(spec) -> str | None:  # noqa: ANN001
    """Return the database address of a table event source, from the spec or the environment."""
    if spec.events.table is None:
        return None
    connection = spec.events.connection
    if connection and "://" in connection:
        return connection
    names = [f"CUSTOMER_AI_CONN_{connection.upper()}", f"AIRFLOW_CONN_{connection.upper()}"] if connection else []
    names.append("CUSTOMER_AI_EVENTS_DSN")
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    raise UsageError(
        f"instance {spec.name}: events come from table {spec.events.table!r}; set one of {', '.join(names)} "
        "to its postgresql:// address"
    )


def _cmd_run(args: argparse.Namespace) -> int:
    from customer_ai import steps
    from customer_ai.run_lock import lock_minutes
    from customer_ai.spec import load_spec

    spec = load_spec(args.instance)
    as_of = _as_of(args.as_of)
    try:
        lock_minutes()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.scores_out is not None and args.scores_out.suffix.lower() not in (".csv", ".parquet"):
        raise UsageError(f"--scores-out {args.scores_out}: use a .csv or .parquet file name")
    if args.scores_out is not None:
        _check_writable(args.scores_out)
    store = _store(args)
    store.read_runs(spec.name)  # reach the store now, not after the training
    dsn = None if args.events else _events_dsn(spec)
    instance_file = str(Path(args.instance).resolve())
    result = steps.run(spec, as_of, _home(args), store, events_path=args.events, dsn=dsn, instance_file=instance_file)
    meta = result.metadata
    print(f"{spec.name} as of {meta['as_of']}: {meta['goal']}")
    print(f"model {meta['model_version']}: {meta['quality']['status']} ({meta['quality']['reason']})")
    print(_validation_line(meta["validation"]))
    for note in meta.get("history", {}).get("notes", []):
        print(f"history: {note}")
    print(f"artifacts: {result.artifact_dir}")
    if not result.written_to_store:
        print(
            f"warning: the model is poor: {meta['quality']['reason']}; the run stopped at the quality gate "
            "(nothing scored or published: the store keeps its runs and scores; the attempt's files above are kept "
            "until the next run of this date)",
            file=sys.stderr,
        )
        return EXIT_OK if args.allow_poor else EXIT_POOR
    if args.scores_out is not None:
        _write_scores(result.artifact_dir, args.scores_out)
    print(_describe_buckets(spec, meta))
    if meta.get("value"):
        print(_describe_value(meta["value"], spec.output.currency))
    if meta.get("timing"):
        print(_describe_timing(meta["timing"], spec.goal.window_days))
    print(f"store: {store}")
    if args.scores_out is not None:
        print(f"scores: {args.scores_out}")
    if args.top > 0 and meta["scored_profiles"]:
        print(f"top {min(args.top, meta['scored_profiles'])} profiles:")
        for row in result.top(args.top).to_dict("records"):
            _print_profile(row, currency=spec.output.currency, timed=spec.output.timing)
    return EXIT_OK


def _describe_buckets(spec, meta: dict) -> str:  # noqa: ANN001
    """Return the line of a run's bucket counts and the rule they followed."""
    from customer_ai.scoring import BucketRule

    buckets = ", ".join(f"{k} {meta['buckets'][k]:,}" for k in ("low", "medium", "high"))
    rule = BucketRule.of_run(meta.get("bucket_rule"), spec.output)
    return f"scored {meta['scored_profiles']:,} profiles ({buckets}); buckets {rule.in_words()}"


def _validation_line(validation: dict) -> str:
    """Describe the held-out metrics a model was judged on, in one line."""
    metrics = validation["metrics"]
    auc = metrics.get("model_roc_auc", metrics["roc_auc"])
    return (
        f"measured on {metrics['n']:,} held-out profiles of {validation['snapshot']}: ROC AUC {auc:.3f}, "
        f"calibration error {metrics['calibration_error']:.3f} (chance alone: "
        f"{metrics.get('calibration_error_floor', float('nan')):.3f}), Brier {metrics['brier']:.3f}, "
        f"top-decile lift {metrics['top_decile_lift']:.2f}"
    )


def _cmd_check(args: argparse.Namespace) -> int:
    from customer_ai.segments import data_dependent_factors, factor_problems
    from customer_ai.spec import SpecError, load_spec

    spec = load_spec(args.instance)
    source = args.events or (spec.resolve(spec.events.path) if spec.events.path else None)
    summary = f"{args.instance}: ok: {spec.name} ({spec.propensity}): {spec.goal_in_words()}"
    unchecked = ", ".join(data_dependent_factors(spec))
    skipped = (
        f"were skipped, with the segment factors that depend on them ({unchecked})" if unchecked else "were skipped"
    )
    if source is None:
        print(summary)
        print(f"events come from table {spec.events.table!r}: the data checks need the database and {skipped}")
        _print_saved_audiences(args, spec)
        return EXIT_OK
    if not Path(source).exists() and not Path(source).is_symlink():  # a dangling link or a loop: the loader says
        if args.events:
            raise UsageError(f"--events {source}: file not found")
        print(summary)
        print(f"warning: the events file {source} does not exist (yet): the data checks {skipped}", file=sys.stderr)
        _print_saved_audiences(args, spec)
        return EXIT_OK
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    from customer_ai.conditions import ConditionError, rule_problems, value_field_problems
    from customer_ai.events import load_event_file

    events = load_event_file(source, None if args.events else spec.events.columns)
    try:
        rule_errors, rule_warnings = rule_problems(spec, events)
    except ConditionError as exc:
        raise ConditionError(f"{args.instance}: {exc} (in {source})") from None
    numeric = [c for c in events.columns if is_numeric_dtype(events[c]) and not is_bool_dtype(events[c])]
    rule_errors += value_field_problems(spec, list(events.columns), numeric)
    factor_errors, factor_warnings = factor_problems(spec, events)
    if rule_errors or factor_errors:
        lines = [f"{line} (in {source})" for line in rule_errors] + factor_errors
        raise SpecError("\n".join(f"{args.instance}: {line}" for line in lines))
    print(summary)  # only once every check that can fail has passed
    for line in rule_warnings + factor_warnings:
        print(f"warning: {args.instance}: {line}", file=sys.stderr)
    if len(events):
        span = f"{events['timestamp'].min():%Y-%m-%d} .. {events['timestamp'].max():%Y-%m-%d}"
    else:
        span = "no events"
    print(f"{source}: {len(events):,} events, {events['profile_id'].nunique():,} profiles, {span}")
    _print_saved_audiences(args, spec)
    return EXIT_OK


def _cmd_explain(args: argparse.Namespace) -> int:
    from customer_ai.spec import load_spec

    spec = load_spec(args.instance)
    as_of = None if args.as_of is None else f"{_as_of(args.as_of):%Y-%m-%d}"
    store = _store(args, create=False)
    scores = store.read_scores(spec.name, as_of=as_of, profile_id=args.profile_id)
    if scores.empty:
        when = f"as of {args.as_of}" if args.as_of else "currently"
        who = _printable(repr(args.profile_id))
        print(f"profile {who} has no {spec.name} score {when} in {store}", file=sys.stderr)
        return EXIT_INPUT
    row = scores.iloc[0].to_dict()
    from customer_ai.steps import published_run

    meta = _run_metadata(args, spec, published_run(spec, str(row["as_of"]), store))
    goal = meta["goal"] if meta else spec.goal_in_words()  # what the run scored, as in show
    print(f"{spec.name} as of {row['as_of']} (model {row['model_version']}): {goal}")
    _note_other_definition(args, spec, meta)
    _print_profile(row, currency=spec.output.currency, timed=bool((meta or {}).get("timing")))
    worth = _number_of(row, "expected_value")
    if worth is not None:
        run = published_run(spec, str(row["as_of"]), store)
        factors = None if run is None else _value_factors(_run_folder(args, spec, run), str(row["profile_id"]))
        window = (meta or {}).get("value", {}).get("window_days", spec.goal.window_days)
        print(
            f"  expected value {_money(worth, spec.output.currency)} in the next {window} days; its factors (on the "
            "log of the expected value):"
        )
        if factors is None:
            print("      (the run's folder no longer holds its factors)")
        else:
            _print_factors(factors, sys.stdout)
    return EXIT_OK


def _value_factors(folder: Path, profile_id: str) -> list[dict] | None:
    """Return a profile's factors of its expected value from a run folder's scores, or None when not there."""
    import pyarrow.parquet as pq

    from customer_ai.home import fetch

    path = as_path(folder) / "scores.parquet"
    if not path.exists():
        return None
    local = fetch(path)  # in a bucket home, one download for both reads
    if "value_factors" not in pq.read_schema(local).names:
        return None
    found = pq.read_table(local, columns=["value_factors"], filters=[("profile_id", "=", profile_id)])
    return json.loads(found["value_factors"][0].as_py()) if found.num_rows else None


def _run_folder(args: argparse.Namespace, spec, run: dict) -> Path:  # noqa: ANN001
    """Return the folder of a published run (a row of the store's runs)."""
    from customer_ai.artifacts import run_dir

    return run_dir(_home(args), spec.name, _as_of(str(run["as_of"])), str(run["run_id"]))


def _run_metadata(args: argparse.Namespace, spec, run: dict | None) -> dict | None:  # noqa: ANN001
    """Return the metadata of a published run (a row of the store's runs), if its folder holds it."""
    from customer_ai.artifacts import read_json

    if run is None:
        return None
    path = _run_folder(args, spec, run) / "metadata.json"
    return read_json(path) if path.exists() else None


def _describe_attempt(row: dict) -> str:
    """Say in one line where an attempt stands, from its last row in the store's attempts."""
    when = f"as of {row['as_of']}, attempt {row['attempt'] or '(unnamed)'}"
    at = f" at {row['step']}" if row["step"] else ""
    tried = f" (try {row['try_number']})" if row["try_number"] > 1 else ""
    stamp = f" on {row['recorded_at']}"
    if row["status"] == "ok":
        return f"{when}: published run {row['run_id'] or row['as_of']}{stamp}"
    if row["status"] == "started":
        return f"{when}: {row['reason'] or 'started'}{stamp}; nothing recorded since (still running, or killed)"
    return f"{when}: {row['status']}{at}{tried}{stamp}: {row['reason']}"


def _note_other_definition(args: argparse.Namespace, spec, meta: dict | None) -> None:  # noqa: ANN001
    """Say when the run scored another definition of the instance than the file given holds now."""
    if meta and meta.get("spec_hash") != spec.spec_hash():
        print(
            f"note: this run scored another definition of {spec.name} than {args.instance} holds now "
            f"(spec {meta.get('spec_hash')} then, {spec.spec_hash()} now; file's goal: {spec.goal_in_words()})"
        )


def _no_run_message(spec, runs, date: str, store) -> str:  # noqa: ANN001
    """Say that an instance has no run of ``date``, with the dates of its published runs (the newest ten)."""
    dates = runs["as_of"].tolist()
    known = ", ".join(dates[-10:]) if dates else "none"
    return (
        f"{spec.name} has no run as of {date} in {store} (published runs as of: "
        f"{'..., ' if len(dates) > 10 else ''}{known})"
    )


def _describe_expected(expected: dict, to_reach: str = "reach the goal") -> str:
    """Return the line of ``show`` that says how many profiles are expected to reach the goal, with its range."""
    text = f"expected to {to_reach}: {expected['expected']:,.0f} of {expected['profiles']:,} profiles"
    if expected.get("low") is None:
        return text + " (one window of history: no range)"
    return (
        text + f" ({expected['low']:,.0f} to {expected['high']:,.0f} if the base rate moves as much as it did "
        "between the model's past windows)"
    )


def _describe_drift(drift: dict) -> str:
    """Return the drift line of ``show``: the status, the largest index, what moved most, the scores' move."""
    if drift["status"] == "unknown":
        return f"drift: not measured ({drift.get('reason', 'no reference')})"
    text = f"drift: {drift['status']} (largest stability index of a feature {drift['largest_psi']:.3f})"
    if drift["status"] != "ok" and drift.get("moved_most"):
        text += f"; moved most: {drift['moved_most'][0]}"
    scores = drift.get("scores") or {}
    if "psi" in scores:
        text += (
            f"; scores against the run as of {scores['previous_as_of']}: stability index {scores['psi']:.3f}, "
            f"mean probability {scores['mean_now']:.3f} (then {scores['mean_previous']:.3f})"
        )
    return _printable(text)


def _describe_quality(metrics: dict) -> str:
    """Say a run's quality grade and what it means, with the held-out numbers it comes from."""
    from customer_ai.quality import quality_grade

    grade, meaning = quality_grade(metrics)
    numbers = [
        f"{label} {metrics[key]:.{digits}f}"
        for key, label, digits in (
            ("top_decile_lift", "top-tenth lift", 2),
            ("calibration_error", "calibration error", 3),
            ("model_roc_auc", "ROC AUC", 3),
        )
        if isinstance(metrics.get(key), (int, float))
    ]
    return f"quality: {grade}: {meaning}" + (f" (held out: {', '.join(numbers)})" if numbers else "")


def _cmd_show(args: argparse.Namespace) -> int:
    from customer_ai.spec import load_spec

    spec = load_spec(args.instance)
    date = None if args.as_of is None else f"{_as_of(args.as_of):%Y-%m-%d}"
    store = _store(args, create=False)
    runs = store.read_runs(spec.name)
    attempts = store.read_attempts(spec.name, as_of=date)
    if runs.empty and store.latest_attempt(spec.name) is None:
        print(f"{spec.name} has no runs in {store}", file=sys.stderr)
        return EXIT_INPUT
    chosen = runs if date is None else runs.loc[runs["as_of"] == date]
    if chosen.empty and attempts.empty:
        print(_no_run_message(spec, runs, date, store), file=sys.stderr)
        return EXIT_INPUT
    shown = None if chosen.empty else chosen.iloc[-1].to_dict()
    newest = None if attempts.empty else attempts.iloc[-1].to_dict()
    meta = _run_metadata(args, spec, shown)
    # what the run really scored, not what the file says today (another file may share the name)
    print(f"{spec.name}: {meta['goal'] if meta else spec.goal_in_words()}")
    if shown is not None:
        which = "latest run" if shown["as_of"] == runs["as_of"].iloc[-1] else "run"
        print(f"{which} as of {shown['as_of']}, model {shown['model_version']}: {shown['status']}: {shown['reason']}")
        print(_describe_quality(json.loads(shown["metrics"]) if shown["metrics"] else {}))
        _note_other_definition(args, spec, meta)
        if meta:
            _print_run_summary(spec, meta)
        saved = store.read_audiences(spec.name)
        if saved or (meta or {}).get("audiences"):
            _print_run_audiences(spec, saved, meta)
        folder = _run_folder(args, spec, shown)
        print(f"artifacts: {folder}")
        if (folder / "report.html").exists():
            print(f"report: {folder / 'report.html'}")
    else:
        print(f"no run of {spec.name} {'was published yet' if date is None else f'as of {date} was published'}")
    if newest is not None and not (
        shown is not None and newest["status"] == "ok" and newest["run_id"] == shown["run_id"]
    ):
        print(f"newest attempt: {_describe_attempt(newest)}")
    print(f"store: {store}")
    if shown is None:
        return EXIT_POOR
    # the shown run's own profiles (the history rows of its date, which are the current scores when it is current): a
    # run published between the reads above and this one cannot put another run's profiles under this run's header
    scores = store.read_scores(spec.name, as_of=shown["as_of"], limit=max(args.top, 0))  # the top only, never all
    if args.top > 0 and len(scores):
        print(f"top {len(scores)} profiles:")
        for row in scores.head(args.top).to_dict("records"):
            _print_profile(row, currency=spec.output.currency, timed=spec.output.timing)
    return EXIT_OK


def _print_run_audiences(spec, saved: list, meta: dict | None) -> None:  # noqa: ANN001
    """Print the saved audiences against the run (``show``), then those the run applied that were deleted since."""
    print("saved audiences:")
    if saved:
        print("\n".join(_audience_lines(spec, saved, meta)))
    names = {a.name for a in saved}
    sizes = (meta or {}).get("segments") or {}
    for gone in (meta or {}).get("audiences") or []:
        if gone["name"] not in names:
            print(
                f"  {_printable(gone['name'])}: {gone['words']}: {sizes.get(gone['name'], 0):,} profiles in this run; "
                "deleted since (later runs do not apply it)"
            )


def _print_run_summary(spec, meta: dict) -> None:  # noqa: ANN001
    """Print what ``show`` says of a run from its metadata: buckets, expected reach and value, drift."""
    print(_describe_buckets(spec, meta))
    if meta.get("expected"):
        print(_describe_expected(meta["expected"], spec.outcome_words().to_reach))
    if meta.get("value"):
        print(_describe_value(meta["value"], spec.output.currency))
    if meta.get("timing"):
        print(_describe_timing(meta["timing"], spec.goal.window_days))
    if meta.get("drift"):
        print(_describe_drift(meta["drift"]))


def _published_date(args: argparse.Namespace, spec, store) -> str:  # noqa: ANN001
    """Return the as-of date of the published run to read: ``--as-of``, else the newest published run."""
    if args.as_of is None:
        latest = store.latest_run(spec.name)
        if latest is None:
            raise UsageError(f"{spec.name} has no published run in {store}{_newest_attempt_note(store, spec.name)}")
        return latest["as_of"]
    date = f"{_as_of(args.as_of):%Y-%m-%d}"
    runs = store.read_runs(spec.name)
    if runs.loc[runs["as_of"] == date].empty:
        attempts = store.read_attempts(spec.name, as_of=date)
        if not attempts.empty:
            raise UsageError(
                f"no run of {spec.name} as of {date} was published in {store}; newest attempt: "
                f"{_describe_attempt(attempts.iloc[-1].to_dict())}"
            )
        raise UsageError(_no_run_message(spec, runs, date, store))
    return date


def _newest_attempt_note(store, instance: str) -> str:  # noqa: ANN001
    """Return ``; newest attempt: ...`` for an instance with attempts, else ``: run it first``."""
    newest = store.latest_attempt(instance)
    return ": run it first" if newest is None else f"; newest attempt: {_describe_attempt(newest)}"


def _write_export(frame, path: Path) -> None:  # noqa: ANN001
    """Write a flat frame as CSV (text quoted, numbers not, UTF-8) or Parquet, beside ``path`` then renamed.

    A full disk or a read-only folder is the machine failing (``main`` says so, exit 3); another refusal of the
    path is bad input.
    """
    from customer_ai.files import write_atomically

    def write(staging: Path) -> None:
        if path.suffix.lower() == ".parquet":
            frame.to_parquet(staging, index=False)
        else:
            frame.to_csv(staging, index=False, quoting=csv.QUOTE_NONNUMERIC, encoding="utf-8")

    try:
        write_atomically(path, write)
    except OSError as exc:
        if exc.errno in _MACHINE_HINTS:
            raise
        raise UsageError(f"--out {path}: cannot write there ({exc.strerror or exc})") from None


def _cmd_segment_export(args: argparse.Namespace) -> int:
    from customer_ai.segments import export_frame
    from customer_ai.spec import DEFAULT_SEGMENTS, load_spec

    spec = load_spec(args.instance)
    if args.out.suffix.lower() not in (".csv", ".parquet"):
        raise UsageError(f"--out {args.out}: use a .csv or .parquet file name")
    if args.raw_csv and args.out.suffix.lower() != ".csv":
        raise UsageError(f"--raw-csv: only for a .csv file, not {args.out} (a Parquet file is always written exactly)")
    store = _store(args, create=False)
    as_of = _published_date(args, spec, store)  # read (a store missing or damaged is said) before --out is made
    _check_writable(args.out, "--out")
    stored = store.segment_names(spec.name, as_of)
    saved = [a.name for a in store.read_audiences(spec.name)]
    known = list(dict.fromkeys([*DEFAULT_SEGMENTS, *(s.name for s in spec.segments), *saved, *stored]))
    if args.segment not in known:
        raise UsageError(
            f"unknown segment {_printable(repr(args.segment))} of {spec.name} as of {as_of}; known: {', '.join(known)}"
        )
    members = store.read_segment(spec.name, args.segment, as_of)
    spreadsheet = args.out.suffix.lower() == ".csv" and not args.raw_csv  # the file a person opens in a spreadsheet
    flat, neutralised = export_frame(members, spec.output.factors, spreadsheet=spreadsheet)
    _write_export(flat, args.out)
    if neutralised:
        print(
            f"note: {neutralised:,} text cells start with =, +, -, @, a tab or a carriage return: written with a ' in "
            "front so that a spreadsheet shows them as text instead of running them (--raw-csv writes them exactly)",
            file=sys.stderr,
        )
    if args.segment not in stored:
        print(
            f"warning: segment {args.segment} has no member in the run of {spec.name} as of {as_of}: nobody "
            "matched it, or it did not exist yet when that run was written (re-run the date to fill it; a saved "
            "audience is applied by the runs after it was saved)",
            file=sys.stderr,
        )
    print(f"{spec.name} segment {args.segment} as of {as_of}: {len(members):,} profiles written to {args.out}")
    return EXIT_OK


def _cmd_segment(args: argparse.Namespace) -> int:
    return {"export": _cmd_segment_export}[args.segment_command](args)


def _saved_by(given: str | None) -> str:
    """Return who saves an audience: ``--by``, else this system user."""
    if given is not None:
        if not given.strip():
            raise UsageError("--by: say who saves the audience (a name), not an empty text")
        return given.strip()
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a user without a name (a container's numeric user, say)
        return "unknown"


def _audience_state(spec, audience, meta: dict | None) -> str:  # noqa: ANN001
    """Say where a saved audience stands against the current run (whose metadata is ``meta``)."""
    from customer_ai.saved_audiences import applied_of, standing

    applied = None if meta is None else applied_of(meta)
    now = standing(audience, (s.name for s in spec.segments), applied, (meta or {}).get("segments") or {})
    if now.state == "skipped":
        return "not applied: the instance file has a segment of this name (rename or delete the audience)"
    if now.state == "no_run":
        return "no run yet: the next run applies it"
    if now.state == "later":
        return f"saved after the run as of {meta['as_of']}: the next run applies it"  # type: ignore[index]
    size = f"{now.size:,} profiles in the run as of {meta['as_of']}"  # type: ignore[index]
    return f"{size} by its rule then ({now.then}); the next run applies this one" if now.state == "changed" else size


def _audience_lines(spec, saved: list, meta: dict | None) -> list[str]:  # noqa: ANN001
    """Return a line per saved audience: its rule in words, who saved it and when, and where it stands."""
    return [
        f"  {_printable(a.name)}: {a.words()} (saved by {_printable(a.saved_by or 'unknown')} at {a.saved_at}): "
        f"{_audience_state(spec, a, meta)}"
        for a in saved
    ]


def _print_saved_audiences(args: argparse.Namespace, spec) -> None:  # noqa: ANN001
    """Print the instance's saved audiences for ``check``: nothing without a store, a warning when it is unreadable."""
    from customer_ai.saved_audiences import AudienceError
    from customer_ai.store import StoreMissingError, StoreUnavailableError, StoreVersionError

    try:
        store = _store(args, create=False)
        saved = store.read_audiences(spec.name)
        meta = _run_metadata(args, spec, store.latest_run(spec.name))
    except StoreMissingError:
        return  # nothing was ever run or saved with this home or store
    except (StoreUnavailableError, StoreVersionError, AudienceError, UsageError) as exc:
        print(f"warning: the saved audiences of {spec.name} could not be read: {exc}", file=sys.stderr)
        return
    if not saved:
        return
    print(f"saved audiences of {spec.name} in {store} (every run applies them beside the file's segments):")
    print("\n".join(_audience_lines(spec, saved, meta)))
    for audience in saved:
        if audience.name in {s.name for s in spec.segments}:
            print(
                f"warning: saved audience {audience.name} is not applied by runs: the instance file has a segment of "
                "this name; rename or delete the audience (customer-ai audience delete)",
                file=sys.stderr,
            )


def _audience_now(args: argparse.Namespace, spec, store, audience) -> str | None:  # noqa: ANN001
    """Say what ``audience`` would hold in the current run (from its scores file), or None without one."""
    from customer_ai.audiences import cut_at, scores_file_table
    from customer_ai.home import fetch

    run = store.latest_run(spec.name)
    path = None if run is None else _run_folder(args, spec, run) / "scores.parquet"
    if path is None or not path.exists():
        return None
    table = scores_file_table(fetch(path))
    cut = cut_at(table, audience.cut, min(audience.at, table.profiles) if audience.cut == "top" else audience.at)
    return (
        f"in the current run (as of {run['as_of']}) it would hold {int(cut['size']):,} profiles, "
        f"{float(cut['expected_conversions']):,.1f} expected to {spec.outcome_words().to_reach}"
    )


def _cmd_audience_save(args: argparse.Namespace) -> int:
    from customer_ai.saved_audiences import new_audience
    from customer_ai.spec import load_spec

    spec = load_spec(args.instance)
    rule = {"cut": args.cut, "at": args.at}
    audience = new_audience(spec.name, args.name, rule, _saved_by(args.by), (s.name for s in spec.segments))
    store = _store(args)
    saved = store.save_audience(spec.name, audience, replace=args.replace)
    print(
        f"{spec.name}: saved audience {saved.name}: {saved.words()}, by {_printable(saved.saved_by)} at "
        f"{saved.saved_at}; every later run applies it (segment export writes it after the next run)"
    )
    now = _audience_now(args, spec, store, saved)
    if now:
        print(now)
    return EXIT_OK


def _cmd_audience_list(args: argparse.Namespace) -> int:
    from customer_ai.spec import load_spec

    spec = load_spec(args.instance)
    store = _store(args, create=False)
    saved = store.read_audiences(spec.name)
    if not saved:
        print(f"{spec.name} has no saved audience (save one with `customer-ai audience save` or in the view)")
        return EXIT_OK
    print(f"saved audiences of {spec.name}:")
    print("\n".join(_audience_lines(spec, saved, _run_metadata(args, spec, store.latest_run(spec.name)))))
    return EXIT_OK


def _cmd_audience_delete(args: argparse.Namespace) -> int:
    from customer_ai.spec import load_spec

    spec = load_spec(args.instance)
    _store(args, create=False)  # a store that does not exist is said, never created
    store = _store(args)
    gone = store.delete_audience(spec.name, args.name)
    if gone is None:
        names = ", ".join(a.name for a in store.read_audiences(spec.name)) or "none"
        raise UsageError(f"{spec.name} has no saved audience named {_printable(repr(args.name))}; saved: {names}")
    rule = gone.words() if gone.cut else "a rule that could not be applied"
    print(
        f"{spec.name}: deleted audience {gone.name} ({rule}, saved by {_printable(gone.saved_by or 'unknown')} at "
        f"{gone.saved_at}): later runs no longer apply it; the runs already published keep its members"
    )
    return EXIT_OK


def _cmd_audience(args: argparse.Namespace) -> int:
    commands = {"save": _cmd_audience_save, "list": _cmd_audience_list, "delete": _cmd_audience_delete}
    return commands[args.audience_command](args)


def _cmd_report(args: argparse.Namespace) -> int:
    from customer_ai.report import build_report
    from customer_ai.spec import load_spec

    spec = load_spec(args.instance)
    if args.out is not None and args.out.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"--out {args.out}: use a file name ending in .html")
    store = _store(args, create=False)
    as_of = _as_of(_published_date(args, spec, store))  # read (a store missing or damaged is said) before --out
    from customer_ai.steps import published_run

    folder = _run_folder(args, spec, published_run(spec, as_of, store))
    if not (folder / "model.json").is_file() or not (folder / "scores.parquet").is_file():
        raise UsageError(
            f"the run of {spec.name} as of {as_of:%Y-%m-%d} was published in {folder}, which is missing or no longer "
            "holds its model.json and scores.parquet (moved or deleted?): run that date again to rebuild it"
        )
    if args.out is not None:
        _check_writable(args.out, option="--out")
    path = build_report(spec, as_of, _home(args), store, out=args.out)
    print(f"{spec.name} as of {as_of:%Y-%m-%d}: report written to {path}")
    return EXIT_OK


def _cmd_migrate(args: argparse.Namespace) -> int:
    from customer_ai.store import open_store

    # opened for reading: a store that does not exist is said, never created; migrate() is the one change allowed
    store = open_store(args.store or os.environ.get("CUSTOMER_AI_STORE"), _home(args), create=False)
    before, after = store.migrate()
    done = "already at" if before == after else f"migrated from schema version {before} to"
    print(f"{store}: {done} schema version {after}")
    return EXIT_OK


def _cmd_unlock(args: argparse.Namespace) -> int:
    from customer_ai.spec import load_spec

    spec = load_spec(args.instance)
    store = _store(args)
    held, now = store.lock_holder(spec.name)
    if held is None:
        print(f"{spec.name}: no run holds its run lock; nothing to free")
        return EXIT_OK
    store.release_lock(spec.name, held.attempt)
    print(f"{spec.name}: freed its run lock: {held.describe(now)}")
    print("(free it only when that run is certainly dead: a run that is still alive goes on and may publish)")
    return EXIT_OK


def _cmd_backtest(args: argparse.Namespace) -> int:
    from customer_ai.backtest import backtest, format_markdown
    from customer_ai.events import check_attribute_join, load_attributes, load_events
    from customer_ai.spec import load_spec

    spec = load_spec(args.instance)
    dates = [_as_of(d) for d in args.as_of]
    events = load_events(spec, args.events)
    attributes = load_attributes(spec)
    check_attribute_join(events, attributes, f"instance {spec.name}")
    results = [backtest(spec, events, as_of, attributes) for as_of in dates]
    print(format_markdown(spec, results))
    if args.json_out is not None:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(results, indent=2) + "\n")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="[customer-ai %(asctime)s] %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    handlers = {
        "run": _cmd_run,
        "check": _cmd_check,
        "explain": _cmd_explain,
        "show": _cmd_show,
        "segment": _cmd_segment,
        "audience": _cmd_audience,
        "backtest": _cmd_backtest,
        "report": _cmd_report,
        "migrate": _cmd_migrate,
        "unlock": _cmd_unlock,
    }
    from customer_ai.artifacts import BrokenModelError
    from customer_ai.backtest import GoalWindowOpenError
    from customer_ai.conditions import ConditionError
    from customer_ai.drift import DriftStopError
    from customer_ai.estimator import InsufficientDataError
    from customer_ai.events import EventsError, EventsUnavailableError
    from customer_ai.history import InsufficientHistoryError
    from customer_ai.saved_audiences import AudienceError
    from customer_ai.spec import SpecError
    from customer_ai.store import AudienceExistsError, StoreAddressError, StoreUnavailableError, StoreVersionError
    from customer_ai.store.lease import LockLostError, RunInProgressError
    from customer_ai.validation import DataValidationError

    # the exit status of each kind of error that ends in a message (first match wins)
    statuses = (
        (
            (
                SpecError,
                EventsError,
                DataValidationError,
                DriftStopError,
                ConditionError,
                InsufficientDataError,
                InsufficientHistoryError,
                GoalWindowOpenError,
                UsageError,
                StoreAddressError,
                StoreVersionError,
                AudienceError,
                AudienceExistsError,
                NotImplementedError,
            ),
            EXIT_INPUT,
        ),
        ((StoreUnavailableError, EventsUnavailableError, BrokenModelError), EXIT_UNAVAILABLE),
        ((RunInProgressError, LockLostError), EXIT_BUSY),
    )
    try:
        return handlers[args.command](args)
    except Exception as exc:  # every error ends in one message and the exit status of its kind
        for kinds, status in statuses:
            if isinstance(exc, kinds):
                print(f"error: {exc}", file=sys.stderr)
                return status
        message = _machine_failure(exc, args) if isinstance(exc, OSError) else None
        if message is None:  # a bug: its traceback, and an exit status of its own (1 means a poor model)
            return _unexpected(args)
        print(f"error: {message}", file=sys.stderr)
        return EXIT_UNAVAILABLE


def _unexpected(args: argparse.Namespace) -> int:
    """Print the traceback of the error being handled and say it is a bug; return :data:`EXIT_BUG`."""
    import traceback

    traceback.print_exc()
    kind = sys.exc_info()[0].__name__  # type: ignore[union-attr]
    print(
        f"error: an unexpected error ({kind}) stopped `customer-ai {args.command}`: a bug, please report it with the "
        "traceback above; nothing a run had not published yet was published",
        file=sys.stderr,
    )
    return EXIT_BUG


# errors of the machine (a full disk, a read-only or forbidden folder) and what to do about each; other OSErrors
# are not expected: a bug, with its traceback
_MACHINE_HINTS = {
    errno.ENOSPC: "the disk is full: free some space, then run again",
    errno.EDQUOT: "the disk quota is used up: free some space, then run again",
    errno.EFBIG: "a limit on the size of files stopped the write (ulimit -f): raise it, then run again",
    errno.EROFS: "the file system is mounted read-only: make it writable{elsewhere}, then run again",
    errno.EACCES: "this user lacks the permission: grant it{elsewhere}, then run again",
    errno.EPERM: "this user lacks the permission: grant it{elsewhere}, then run again",
    errno.EIO: "the device reported an input/output error: check the disk, then run again",
}


def _machine_failure(exc: OSError, args: argparse.Namespace) -> str | None:
    """Say which file the machine failed on, the system's words for it and what to do; None for other errors."""
    hint = _MACHINE_HINTS.get(exc.errno)
    if hint is None:
        return None
    elsewhere = ""
    if args.command == "report" and args.out is None:
        elsewhere = ", or write the report elsewhere with --out FILE"
    elif "home" in vars(args):
        elsewhere = " or give another --home"
    where = "a file" if exc.filename is None else str(exc.filename)
    if exc.filename2 is not None:
        where = f"{where} -> {exc.filename2}"
    verb = "use" if exc.errno in (errno.EACCES, errno.EPERM, errno.EIO) else "write"  # a read may be refused too
    code = errno.errorcode.get(exc.errno, str(exc.errno))
    return f"cannot {verb} {where}: {os.strerror(exc.errno)} ({code}); {hint.format(elsewhere=elsewhere)}"


if __name__ == "__main__":
    sys.exit(main())
