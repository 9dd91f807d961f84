"""The predicted value section of the report: what each profile's goal events are expected to be worth.

Only a run whose goal has a value (``goal.value``) has it.  It reads the value model's part of ``model.json``
(``value``: how it was fitted and its metrics on held-out profiles) and the ``expected_value`` column of
``scores.parquet``, a row group at a time: the run's groups by expected value are found by exact order statistics
(:func:`customer_ai.quantiles.order_statistics`), so no more than one row group's values is held.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from customer_ai import artifacts
from customer_ai.outcome_metrics import best_of
from customer_ai.quantiles import order_statistics
from customer_ai.report.figures import _svg, _value_figure
from customer_ai.report.folder import _RunFiles
from customer_ai.report.html import _folded, _int, _missing, _money, _num, _p, _pairs, _pct, _section, _table
from customer_ai.spec import InstanceSpec
from customer_ai.value_model import VALUE_BASELINE_NAMES, VALUE_BASELINE_WORDS, value_verdict

VALUE_GROUPS = 10  # the run's profiles are cut into this many groups by expected value, as the held-out deciles


def value_deciles(parts: Callable[[], Iterable[np.ndarray]], groups: int = VALUE_GROUPS) -> pd.DataFrame:
    """Return the profiles, mean, total and share of the run's expected value in groups of its order.

    The values are ordered highest first and cut at places ``floor(g * n / groups)`` for ``g = 0 .. groups``, as
    :func:`customer_ai.outcome_metrics.decile_table` cuts the held-out profiles.  Each group's total is a
    difference of two sums of the highest values: the ``k`` highest add up to the values above the ``k``-th highest
    plus that value as often as it is needed to make ``k``, so ties cut through give each side its share.

    Parameters
    ----------
    parts : callable
        Called once per pass, it gives the values in parts (1-D float arrays without NaN), in any order.
    groups : int, default :data:`VALUE_GROUPS`
        How many groups.

    Returns
    -------
    pandas.DataFrame
        One row per group: ``group`` (1 = the highest values), ``profiles``, ``mean``, ``total``, ``share`` (of
        the total of all values); the mean is NaN in an empty group, the share NaN when all values add up to 0.
    """
    profiles = sum(len(part) for part in parts())
    cuts = np.arange(groups + 1) * profiles // groups
    highest = np.zeros(groups + 1)  # the sum of the cuts[g] highest values
    taken = np.array([int(k) for k in cuts if k > 0], dtype="int64")
    if len(taken):
        nth = order_statistics(parts, [profiles - k for k in taken])  # the k-th highest value, for each k taken
        above = np.zeros(len(taken))
        counted = np.zeros(len(taken), dtype="int64")
        for part in parts():
            for at, value in enumerate(nth):
                over = part[part > value]
                above[at] += over.sum()
                counted[at] += len(over)
        highest[groups + 1 - len(taken) :] = above + (taken - counted) * nth
    totals = np.diff(highest)
    sizes = np.diff(cuts)
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.DataFrame(
            {
                "group": np.arange(1, groups + 1),
                "profiles": sizes,
                "mean": np.where(sizes > 0, totals / sizes, np.nan),
                "total": totals,
                "share": totals / highest[-1] if highest[-1] else np.full(groups, np.nan),
            }
        )


def _expected_values(run: _RunFiles) -> Callable[[], Iterable[np.ndarray]]:
    """Return the parts of the run's expected values (a row group each, NaN left out) for :func:`value_deciles`."""

    def parts() -> Iterable[np.ndarray]:
        for part in artifacts.read_row_groups(run.scores_file, ["expected_value"]):
            values = part["expected_value"].to_numpy(dtype="float64")
            yield values[~np.isnan(values)]

    return parts


def _poor_words(value: dict, spec: InstanceSpec) -> str | None:
    """Return why the value model is poor, or None when it is not.

    Poor when the quality gate says so (:func:`customer_ai.value_model.value_verdict` with
    ``training.min_value_gini_gain``) or, whatever gain the gate asks, when it ranks no better than its best
    baseline.
    """
    metrics = value.get("metrics") or {}
    status, said = value_verdict(metrics, spec.training.min_value_gini_gain)
    if status == "poor":
        return said
    gini = metrics.get("normalised_gini")
    best = best_of(metrics.get("baselines"), "normalised_gini")
    if _missing(gini) or best is None or gini > best[1]:
        return None
    return (
        f"its normalised Gini {gini:.3f} is not above {VALUE_BASELINE_WORDS.get(best[0], best[0])} {best[1]:.3f} "
        f"(the quality gate lets it through: training.min_value_gini_gain is {spec.training.min_value_gini_gain:g})"
    )


def _best_baseline(metrics: dict) -> tuple[str, dict]:
    """Return the held-out metrics' best baseline in words and its measures (a dash and nothing without one)."""
    best = best_of(metrics.get("baselines"), "normalised_gini")
    if best is None:
        return "–", {}
    return VALUE_BASELINE_NAMES.get(best[0], best[0]), metrics["baselines"][best[0]]


def _metric_rows(metrics: dict, currency: str | None, best: dict) -> list[tuple[str, str, str, str]]:
    """Return the held-out metrics' rows: the metric, the value model's, the best baseline's (``best``), its meaning."""
    ratio = metrics.get("total_ratio")
    return [
        (
            "normalised Gini",
            _num(metrics.get("normalised_gini")),
            _num(best.get("normalised_gini")),
            "how well the order of the profiles by expected value finds those who spent most: 1 is the order of what "
            "they really spent, 0 a random order",
        ),
        (
            "Spearman",
            _num(metrics.get("spearman")),
            "–",
            "the rank correlation of the expected and the realised amounts, from -1 to 1",
        ),
        (
            "decile error",
            _pct(metrics.get("decile_error")),
            "–",
            "by how much the mean predicted amount of a tenth of the profiles misses its mean realised amount, "
            "relative to the mean realised amount of all, on average over the ten tenths",
        ),
        (
            "predicted / realised total",
            _num(ratio),
            "–",
            f"{_money(metrics.get('total_predicted'), currency)} predicted against "
            f"{_money(metrics.get('total_realised'), currency)} realised: 1 is the right level, "
            f"{_num(ratio, 2)} means the total is {_level_words(ratio)}",
        ),
    ]


def _level_words(ratio: object) -> str:
    """Say how far a predicted over realised total is from the right level."""
    if not isinstance(ratio, int | float) or not np.isfinite(ratio):
        return "not known (nothing was realised)"
    if round(ratio, 2) == 1:
        return "about right"
    return f"{abs(ratio - 1):.0%} {'too high' if ratio > 1 else 'too low'}"


def _model_words(value: dict, field: str, window: int) -> str:
    """Say how the expected value is predicted."""
    scale = value.get("scale")
    scaled = f" by {_num(scale)}" if scale is not None else ""
    return (
        "One LightGBM model with a Tweedie objective predicts it, boosted from each profile's past spend rate (its "
        f"goal events' {field} per 30 days of the history read, scaled to the {window}-day window): the trees learn "
        "how far each profile's next window differs from its past rate. Its factors add up exactly on the log of the "
        f"expected value. Its totals are calibrated: the predictions are scaled{scaled} so that their total on the "
        "calibration half of the validation snapshot equals what those profiles really spent."
    )


def _value_section(spec: InstanceSpec, run: _RunFiles) -> str:
    """Write the predicted value section of a run whose model has a value model (``model.json["value"]``)."""
    value = run.model["value"]
    metrics = value.get("metrics") or {}
    currency = spec.output.currency
    field = value.get("field", "value")
    window = int(run.model.get("history", {}).get("window_days") or spec.goal.window_days)
    deciles = value_deciles(_expected_values(run))
    profiles = int(deciles["profiles"].sum())
    total = float(deciles["total"].sum())
    held_out = metrics.get("deciles") or []
    checked = sum(int(row["profiles"]) for row in held_out)
    _, said = value_verdict(metrics, spec.training.min_value_gini_gain)
    poor = _poor_words(value, spec)
    baseline, best = _best_baseline(metrics)
    parts = [
        _p(
            f"The expected value of a profile is the expected sum of the goal events' {field} in the next {window} "
            "days, zero included: a profile unlikely to reach the goal is expected to be worth little. "
            + _model_words(value, field, window)
        ),
        _p(
            f"This run: {profiles:,} profiles are expected to be worth {_money(total, currency)} in all, "
            f"{_money(total / profiles if profiles else None, currency)} per profile."
        ),
    ]
    missing = run.scores.profiles - profiles
    if missing:
        parts.append(_p(f"{missing:,} scored profiles have no expected value and are left out here.", "missing"))
    if poor:
        parts.append(
            _p(
                f"The value model is poor: {poor}. Ranking the profiles by {baseline} finds those "
                "who spend most as well as its expected values do, or better: read them with care.",
                "missing",
            )
        )
    parts += [
        _svg(
            _value_figure(deciles, held_out, currency or ""),
            "value-deciles",
            "Mean expected value by decile of this run; held out, mean predicted against mean realised",
        ),
        _table(
            ["decile", "profiles", "mean expected value", "total", "share of the run's total"],
            [
                (
                    str(row.group),
                    _int(row.profiles),
                    _money(row.mean, currency),
                    _money(row.total, currency),
                    _pct(row.share),
                )
                for row in deciles.itertuples(index=False)
            ],
            caption="Expected value by decile of this run (1 = the highest expected values)",
        ),
        _p(
            f"Held out: measured on {checked:,} profiles of the validation snapshot "
            f"{run.model.get('validation', {}).get('snapshot', '?')} (its evaluation half), whose outcomes no "
            "fitting step saw: neither the trees, nor early stopping, nor the scaling of the totals, which read the "
            f"calibration half. The quality gate: {said}."
        ),
        _table(
            ["metric", "value model", f"best baseline: {baseline}", "what it means"],
            _metric_rows(metrics, currency, best),
            caption="Held-out metrics of the expected value",
        ),
        _table(
            ["decile", "profiles", "mean predicted", "mean realised"],
            [
                (
                    str(row["group"]),
                    _int(row["profiles"]),
                    _money(row["mean_predicted"], currency),
                    _money(row["mean_realised"], currency),
                )
                for row in held_out
            ],
            caption="Held out: predicted against realised by decile (1 = the highest predicted)",
        ),
        _folded("For analysts: the value model", [_pairs(_analyst_rows(value))]),
    ]
    return _section("value", parts)


def _analyst_rows(value: dict) -> list[tuple[str, object]]:
    """Return the value model's settings and fitted numbers, for whoever tunes it."""
    start = value.get("start") or {}
    return [
        ("model", f"{value.get('model', '?')}; rounds: {value.get('best_iteration', '?')}"),
        (
            "boosting start",
            f"log({start.get('feature', '?')} x {_num(start.get('per_window'))} + {_num(start.get('floor'))}), "
            f"centred at {_num(start.get('center'))}",
        ),
        ("scale of the totals", _num(value.get("scale"))),
        ("parameters", ", ".join(f"{k}={v}" for k, v in sorted((value.get("parameters") or {}).items()))),
        ("features", f"{len(value.get('features') or [])}: " + ", ".join(value.get("features") or [])),
        ("why", value.get("why", "")),
    ]
