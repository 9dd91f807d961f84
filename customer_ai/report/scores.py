"""The score sections of the report: the distribution of this run's scores, and their history across runs.

:func:`score_bins` and :func:`score_history` compute the numbers both show; the history reads the scores of
the instance's earlier published runs and the store's record of every run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from customer_ai.home import fetch
from customer_ai.report.figures import _history_figure, _scores_figure, _svg
from customer_ai.report.folder import ScoreSummary, _RunFiles
from customer_ai.report.html import _BUCKETS, _int, _num, _p, _pct, _section, _table
from customer_ai.scoring import BucketRule, top_score_notes
from customer_ai.spec import InstanceSpec

# --- score distribution ----------------------------------------------------------------------------------------


def score_bins(score: np.ndarray, bucket: np.ndarray, width: int = 5) -> pd.DataFrame:
    """Return profiles per score bin of ``width`` points (the last bin includes 100), per bucket.

    Columns ``low_score``, ``high_score`` (the bin is ``[low, high)``, the last ``[low, 100]``), ``profiles``,
    then one count column per bucket (``low``, ``medium``, ``high``).
    """
    by_score = np.zeros((101, len(_BUCKETS)), dtype="int64")
    np.add.at(by_score, (np.asarray(score, dtype="int64"), pd.Index(_BUCKETS).get_indexer(bucket)), 1)
    return _bins(by_score, width)


def _bins(by_score: np.ndarray, width: int = 5) -> pd.DataFrame:
    """Return :func:`score_bins` of the profiles counted per score (0-100) and bucket."""
    edges = list(range(0, 100, width))
    which = np.minimum(np.arange(101) // width, len(edges) - 1)
    rows = []
    for i, low in enumerate(edges):
        inside = by_score[which == i].sum(axis=0)
        row = {"low_score": low, "high_score": min(low + width, 100), "profiles": int(inside.sum())}
        row.update({b: int(n) for b, n in zip(_BUCKETS, inside, strict=True)})
        rows.append(row)
    return pd.DataFrame(rows)


def _score_range(by_score: np.ndarray, column: int) -> str:
    """Return the lowest and highest score of a bucket's profiles (a dash without any)."""
    scored = np.flatnonzero(by_score[:, column])
    return f"{scored[0]}–{scored[-1]}" if len(scored) else "–"


def run_rule(spec: InstanceSpec, run: _RunFiles) -> BucketRule:
    """Return the bucket rule of the run (as its folder keeps it; a run from before rules were kept: the rule then)."""
    return BucketRule.of_run(run.bucket_rule or (run.metadata or {}).get("bucket_rule"), spec.output)


def _thresholds(rule: BucketRule, by_score: np.ndarray) -> dict[str, float]:
    """Return the score each bucket above ``low`` starts at, for the histogram.

    On the score that is the rule's threshold; on the rank, the lowest score in the bucket (an empty bucket is
    left out).
    """
    if rule.by == "score":
        return {"medium": rule.medium, "high": rule.high}
    starts = {}
    for column, name in enumerate(_BUCKETS[1:], start=1):
        held = np.flatnonzero(by_score[:, column])
        if len(held):
            starts[name] = float(held[0])
    return starts


_RULE_CHOICE = {
    "auto": " The rule was chosen for this run (output.buckets_by: auto): on the score when every bucket holds "
    "profiles and the high bucket holds at least 5% of them or spans at least 5 score points, else by rank.",
    "instance": " The rule is the instance file's (output.buckets_by).",
}


def _scores_section(spec: InstanceSpec, run: _RunFiles) -> str:
    scores = run.scores
    bins = _bins(scores.by_score)
    rule = run_rule(spec, run)
    figure = _scores_figure(_thresholds(rule, scores.by_score), bins)
    total = scores.profiles
    bucket_rows = []
    for column, (b, members) in enumerate(scores.buckets.items()):
        bucket_rows.append(
            (
                b,
                _int(members),
                _pct(members / total if total else None),
                _score_range(scores.by_score, column),
                _pct(scores.sums[b] / members if members else None),
            )
        )
    expected = sum(scores.sums.values())
    top = scores.top
    to_reach = spec.outcome_words().to_reach
    parts = [
        _p(
            f"{total:,} profiles scored. The score is the calibrated probability of the goal ({spec.goal_in_words()}) "
            f"in percent: of 100 profiles with a score of 30, about 30 are expected to {to_reach}. Of all {total:,}, "
            f"about {expected:,.0f} are expected to {to_reach}."
        ),
        _svg(figure, "scores-histogram", "Profiles per 5-point score bin, coloured by bucket"),
        _p(f"Buckets {rule.in_words()}.{_RULE_CHOICE[rule.chosen]}", "bucket-rule"),
        _table(["bucket", "profiles", "share", "scores", "mean probability"], bucket_rows, caption="Bucket counts"),
        *[_p(note, "notes") for note in (top_score_notes(rule, top) if top is not None else [])],
        _table(
            ["scores", "profiles", *_BUCKETS],
            [
                (
                    f"{r.low_score}–{r.high_score - 1 if r.high_score < 100 else 100}",
                    _int(r.profiles),
                    _int(r.low),
                    _int(r.medium),
                    _int(r.high),
                )
                for r in bins.itertuples(index=False)
            ],
            caption="Profiles per 5-point score bin",
        ),
    ]
    return _section("scores", parts)


# --- score history ---------------------------------------------------------------------------------------------


_HISTORY_COLUMNS = ["as_of", "profiles", *_BUCKETS, "p10", "p25", "p50", "p75", "p90", "mean"]


def score_history(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Return per run date the profiles, bucket shares and score quantiles of its scores.

    Parameters
    ----------
    frames : dict
        As-of date (text) to that run's scores (columns ``probability`` and ``bucket``).

    Returns
    -------
    pandas.DataFrame
        One row per date, oldest first: ``as_of``, ``profiles``, ``low``, ``medium``, ``high`` (shares),
        ``p10``, ``p25``, ``p50``, ``p75``, ``p90`` (of the score, the probability in percent) and ``mean``.
    """
    rows = [_history_row(date, ScoreSummary.of(lambda frame=frames[date]: [frame])) for date in sorted(frames)]
    return pd.DataFrame(rows, columns=_HISTORY_COLUMNS)


def _history_row(date: str, summary: ScoreSummary) -> dict[str, object]:
    """Return the row of :func:`score_history` of one run's scores."""
    n = summary.profiles
    row: dict[str, object] = {"as_of": date, "profiles": n}
    row.update({b: count / n if n else float("nan") for b, count in summary.buckets.items()})
    row.update(summary.quantiles)
    row["mean"] = sum(summary.sums.values()) * 100 / n if n else float("nan")
    return row


def _read_runs(store: object, instance: str) -> pd.DataFrame | None:
    reader = getattr(store, "read_runs", None)
    return None if reader is None else reader(instance)


def _history_section(as_of: pd.Timestamp, run: _RunFiles, runs: pd.DataFrame | None, folders: dict[str, Path]) -> str:
    today = f"{as_of:%Y-%m-%d}"
    # each past run's scores are summed up a row group at a time, as this run's
    rows = [
        _history_row(date, ScoreSummary.read(fetch(folder / "scores.parquet")))
        for date, folder in sorted(folders.items())
        if date < today and (folder / "scores.parquet").exists()
    ]
    rows.append(_history_row(today, run.scores))
    history = pd.DataFrame(rows, columns=_HISTORY_COLUMNS)
    figure = _history_figure(history)
    statuses: dict[str, tuple[str, str, str]] = {}
    if runs is not None and len(runs):
        for row in runs.itertuples(index=False):
            if row.as_of >= today:  # this run's own row comes from its folder: the same before and after publishing
                continue
            metrics = json.loads(row.metrics) if row.metrics else {}
            statuses[row.as_of] = (
                row.status,
                row.model_version,
                _num(metrics.get("model_roc_auc", metrics.get("roc_auc"))),
            )
    dates = sorted(set(history["as_of"]) | set(statuses))
    by_date = history.set_index("as_of")
    table_rows = []
    for date in dates:
        status, version, auc = statuses.get(date, ("this run" if date == today else "–", "", ""))
        if date == today and date not in statuses:
            version = run.model.get("model_version", "")
            auc = _num(run.model.get("validation", {}).get("metrics", {}).get("model_roc_auc"))
        if date in by_date.index:
            h = by_date.loc[date]
            cells = [
                _int(h["profiles"]),
                *(_pct(h[b]) for b in _BUCKETS),
                _num(h["p10"], 0),
                _num(h["p50"], 0),
                _num(h["p90"], 0),
            ]
        else:
            cells = ["no scores published"] + ["–"] * 6
        table_rows.append((date, status, version, auc, *cells))
    parts = [
        _p(
            "How the scores of this instance moved from run to run: the share of profiles in each bucket, and "
            "where the scores lie. A sudden shift is worth a look: a change in the data, in the customers, or in "
            "the model."
        ),
        _svg(figure, "history-buckets", "Bucket shares and score levels per run"),
        _table(
            [
                "as of",
                "status",
                "model",
                "held-out ROC AUC",
                "profiles",
                *_BUCKETS,
                "10th pct score",
                "median score",
                "90th pct score",
            ],
            table_rows,
            caption="Runs of this instance",
        ),
    ]
    return _section("history", parts)
