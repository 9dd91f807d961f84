"""The influential factors section of the report: which features drive the scores, overall and per bucket.

:func:`factor_long` and :func:`factor_summary` turn the factors stored with each profile's score into one
summary per feature; beyond :data:`MAX_FACTOR_PROFILES` profiles they are summarised over a fixed random sample,
the only factors read (:func:`~customer_ai.report.folder.read_sample`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from customer_ai.features import FeatureInfo, FeaturePlan, feature_infos
from customer_ai.report.figures import _bucket_figure, _overall_figure, _svg
from customer_ai.report.folder import _RunFiles, read_sample
from customer_ai.report.html import _BUCKETS, _num, _p, _pct, _section, _short, _table, _template_words
from customer_ai.spec import InstanceSpec

MAX_FACTOR_PROFILES = 100_000  # factors are summarised over a fixed random sample beyond this many profiles
_TOP_FEATURES = 12


def factor_long(factors: Iterable[object]) -> pd.DataFrame:
    """Return each profile's factors as rows, one per (profile, factor).

    Columns ``profile`` (the profile's position), ``rank`` (0 = its top factor), ``feature``, ``description``,
    ``value``, ``contribution``.  ``factors`` holds per profile a JSON text (as in ``scores.parquet``) or a
    list of factor dicts.
    """
    records = []
    for position, item in enumerate(factors):
        listed = json.loads(item) if isinstance(item, str) else (item or [])
        for rank, factor in enumerate(listed):
            records.append(
                (
                    position,
                    rank,
                    str(factor.get("feature", "")),
                    str(factor.get("description", "")),
                    factor.get("value"),
                    float(factor.get("contribution", 0.0)),
                )
            )
    return pd.DataFrame.from_records(
        records, columns=["profile", "rank", "feature", "description", "value", "contribution"]
    )


def _typical(values: pd.Series, descriptions: pd.Series, info: FeatureInfo | None) -> str:
    """Return a typical value in words: the median's (or commonest category's) description, else the commonest text."""
    if values.empty:
        return ""
    if info is not None:
        present = values.dropna()
        if len(present) * 2 < len(values):
            return info.missing
        try:
            if info.style == "text" or info.categorical:
                return info.describe(present.astype(str).mode().iloc[0])
            return info.describe(float(np.median(present.astype("float64"))))
        except (TypeError, ValueError, KeyError, IndexError):
            pass
    return str(descriptions.mode().iloc[0])


def factor_summary(long: pd.DataFrame, profiles: int, infos: dict[str, FeatureInfo] | None = None) -> pd.DataFrame:
    """Return per feature how much and how often it drives the scores of ``profiles`` profiles.

    Parameters
    ----------
    long : pandas.DataFrame
        The factors of those profiles, from :func:`factor_long`.
    profiles : int
        How many profiles (those without factors count too).
    infos : dict, optional
        Feature name to :class:`~customer_ai.features.FeatureInfo`, to put typical values in words; without
        one, the commonest description stands for the typical value.

    Returns
    -------
    pandas.DataFrame
        One row per feature, the most influential first: ``feature``, ``mean_abs`` (mean absolute
        contribution on the log-odds, a factor not among a profile's listed factors counting zero),
        ``mean_raise`` and ``mean_lower`` (the positive and the negative parts of that mean), ``top_share``
        (share of profiles whose top factor it is), ``listed_share`` (share listing it), ``raises_share``
        (share of its listings that raise the chance), ``typical_raises`` and ``typical_lowers`` (a typical
        value, in words, where it raises and where it lowers the chance).
    """
    infos = infos or {}
    columns = [
        "feature",
        "mean_abs",
        "mean_raise",
        "mean_lower",
        "top_share",
        "listed_share",
        "raises_share",
        "typical_raises",
        "typical_lowers",
    ]
    if profiles == 0 or long.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for feature, group in long.groupby("feature", sort=False):
        contribution = group["contribution"]
        up, down = group.loc[contribution > 0], group.loc[contribution < 0]
        info = infos.get(str(feature))
        rows.append(
            {
                "feature": feature,
                "mean_abs": float(contribution.abs().sum() / profiles),
                "mean_raise": float(up["contribution"].sum() / profiles),
                "mean_lower": float(down["contribution"].sum() / profiles),
                "top_share": float((group["rank"] == 0).sum() / profiles),
                "listed_share": float(group["profile"].nunique() / profiles),
                "raises_share": float(len(up) / len(group)),
                "typical_raises": _typical(up["value"], up["description"], info),
                "typical_lowers": _typical(down["value"], down["description"], info),
            }
        )
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(["mean_abs", "feature"], ascending=[False, True], kind="stable").reset_index(drop=True)


def _feature_infos(spec: InstanceSpec, model: dict) -> dict[str, FeatureInfo]:
    try:
        plan = FeaturePlan.from_dict(model["features"]["plan"])
        return {info.name: info for info in feature_infos(plan, spec)}
    except (KeyError, TypeError, ValueError, AttributeError):  # a model of another definition: words from the texts
        return {}


def _feature_labels(model: dict) -> Callable[[str], str]:
    descriptions = model.get("features", {}).get("descriptions", {})

    def label(name: str) -> str:
        template = descriptions.get(name)
        return _short(_template_words(template) if template else name)

    return label


def _factors_section(spec: InstanceSpec, run: _RunFiles) -> str:
    sampled = run.scores.profiles > MAX_FACTOR_PROFILES
    scores = read_sample(run.scores_file, ["bucket", "factors"], MAX_FACTOR_PROFILES)
    long = factor_long(scores["factors"])
    infos = _feature_infos(spec, run.model)
    label = _feature_labels(run.model)
    overall = factor_summary(long, len(scores), infos)
    parts = [
        _p(
            "Each profile's score comes with the factors that moved it most (TreeSHAP contributions on the "
            "log-odds). Overall, a factor's influence is its mean absolute contribution over all profiles (zero "
            "where it is not among a profile's listed factors); green raises the chance of the goal, red lowers "
            'it. "Top factor" counts the profiles for which it is the strongest.'
        )
    ]
    if sampled:
        parts.append(
            _p(f"Summarised over a random sample of {MAX_FACTOR_PROFILES:,} of the {run.scores.profiles:,} profiles.")
        )
    if overall.empty:
        parts.append(_p("No profile has influential factors."))
        return _section("factors", parts)
    top = overall.head(_TOP_FEATURES)
    parts.append(_svg(_overall_figure(top, label), "factors-overall", "The most influential factors over all profiles"))
    parts.append(
        _table(
            [
                "factor",
                "influence",
                "top factor for",
                "listed for",
                "raises the chance in",
                "typically, where it raises",
                "typically, where it lowers",
            ],
            [
                (
                    label(r.feature),
                    _num(r.mean_abs),
                    _pct(r.top_share),
                    _pct(r.listed_share),
                    _pct(r.raises_share),
                    _short(r.typical_raises),
                    _short(r.typical_lowers),
                )
                for r in overall.itertuples(index=False)
            ],
            caption="Influential factors over all profiles",
        )
    )
    per_bucket = {}
    bucket_of = scores["bucket"].to_numpy()
    for b in _BUCKETS:
        members = np.flatnonzero(bucket_of == b)
        subset = long.loc[long["profile"].isin(members)]
        per_bucket[b] = factor_summary(subset, len(members), infos)
    figure = _bucket_figure(per_bucket, list(top["feature"]), label)
    parts.append(_svg(figure, "factors-buckets", "Influence of the main factors in each bucket"))
    rows = []
    for b in _BUCKETS:
        summary = per_bucket[b].head(5)
        for r in summary.itertuples(index=False):
            typical = r.typical_raises if r.raises_share >= 0.5 else r.typical_lowers
            direction = "raises" if r.raises_share >= 0.5 else "lowers"
            rows.append(
                (b, label(r.feature), _num(r.mean_abs), _pct(r.top_share), f"mostly {direction}", _short(typical))
            )
    parts.append(
        _table(
            ["bucket", "factor", "influence", "top factor for", "effect", "typical value"],
            rows,
            caption="The five main factors of each bucket",
        )
    )
    return _section("factors", parts)
