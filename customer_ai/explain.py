"""Influential factors: the top signed TreeSHAP contributions of each profile, in words.

Contributions come from LightGBM's ``pred_contrib`` (exact TreeSHAP) scaled onto the calibrated log-odds, so
a profile's contributions plus the base value add up to the log-odds of the probability it is shown.
``importance`` says how much one factor moves the odds: ``high`` when it multiplies or divides them by at
least 1.5, ``medium`` by at least 1.15, ``low`` otherwise; ``effect`` says the same in words with the
direction: "raises the chance a lot", "raises the chance", "raises the chance a little", "lowers the chance
...".  The chance is always the chance of the goal, which is what the probability is: for a churn instance
"raises the chance" means more likely to not come back.

No two factors of a profile say the same thing.  When several features of a profile would read alike ("no
purchase in the last 365 days" from a count, a recency and a total; "country is Portugal" from an attribute
and "country mostly Portugal" from the events, see :meth:`FeatureInfo.claim`), they become one factor: the
words, feature and value of the one with the largest absolute contribution, carrying the sum of their
contributions.  A statement that follows from a stronger one of the same profile ("no purchase in the last
30 days" beside "no purchase in the last 365 days", either beside "no activity in the last 365 days", "at
most one active day" beside "active on 1 day", see :meth:`FeatureInfo.bound`) is merged the same way into the
stronger one, whose words are kept whatever the sizes.  No weight is lost: the factors of a profile, when all
are listed, still add up with the base value to the log-odds of its probability; and ``k`` factors come back
whenever the profile has at least ``k`` distinct statements with a non-zero summed contribution.  The
repeat-buying model's chance, expected count and chance of still being active are one model's reading of the
profile: they are one factor, in the words of the chance (:attr:`FeatureInfo.family`).

A factor reads as a reason.  A number is placed among the training profiles (the binned training rows stored
with the model, ``drift_reference``): "4 purchases in the last 90 days (more than 81% of customers)", "last
purchase 120 days ago (longer ago than 64% of customers)", or "(typical of customers)" when neither more nor
fewer than half lie on one side.  The share is a lower bound read from the bins, so it is never overstated.
Where a plain reading of the value argues one way (:attr:`FeatureInfo.lean`: many purchases for buying again)
and its contribution goes the other, the factor says so and why.  Where the profile has a repeat-buying
estimate, the statement about its history is "already reflected in the repeat-buying model's chance, which this
corrects": that model reads the goal events' count, recency and age, and the trees adjust its chance.  Otherwise
the model "reads this the other way for profiles like this one": a contribution is always relative to the rest
of the profile, and its other values, or the range this value lies in, turn it round.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from customer_ai.features import FeatureInfo

__all__ = [
    "CHANCE",
    "EXPECTED_VALUE",
    "HIGH_ODDS_FACTOR",
    "MEDIUM_ODDS_FACTOR",
    "effect_of",
    "importance_of",
    "place_among",
    "reads_as",
    "top_factors",
]

HIGH_ODDS_FACTOR = 1.5
MEDIUM_ODDS_FACTOR = 1.15

_HIGH_LOG_ODDS = math.log(HIGH_ODDS_FACTOR)
_MEDIUM_LOG_ODDS = math.log(MEDIUM_ODDS_FACTOR)
_DEGREE = {"high": " a lot", "medium": "", "low": " a little"}
_CONTRARY = "for profiles like this one the model reads this the other way"
# the repeat-buying model reads the goal events' count, recency and age: what they say is in its chance already
_CORRECTS = "already reflected in the repeat-buying model's chance, which this corrects"
_CHUNK_ROWS = 65_536
CHANCE = "the chance"  # what the propensity model's contributions move (on the log-odds)
EXPECTED_VALUE = "the expected value"  # what the value model's move (on the log of the expected value)


def importance_of(contribution: float) -> str:
    """Return ``low``/``medium``/``high`` for a contribution on the log-odds scale."""
    size = abs(contribution)
    if size >= _HIGH_LOG_ODDS:
        return "high"
    if size >= _MEDIUM_LOG_ODDS:
        return "medium"
    return "low"


def effect_of(contribution: float, subject: str = CHANCE) -> str:
    """Return a contribution's effect on the chance of the goal in words, e.g. "lowers the chance a lot".

    The degree follows :func:`importance_of`: "a lot" for ``high``, nothing for ``medium``, "a little" for
    ``low``.  A zero contribution "does not change the chance".  ``subject`` names what moves:
    :data:`EXPECTED_VALUE` for the value model's contributions, on the log of the expected value ("raises the
    expected value a lot": multiplies it by at least 1.5).
    """
    return _effect(contribution, importance_of(contribution), subject)


def _effect(contribution: float, importance: str, subject: str = CHANCE) -> str:
    if contribution == 0:
        return f"does not change {subject}"
    verb = "raises" if contribution > 0 else "lowers"
    return f"{verb} {subject}{_DEGREE[importance]}"


def _plain(value: object) -> object:
    """Return a JSON-ready scalar (None for missing)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (np.floating, float)):
        return round(float(value), 4)
    if isinstance(value, (np.integer, int)):
        return int(value)
    return str(value)


@dataclass(frozen=True)
class _Bins:
    """One feature's training bins, read once: inner ``edges`` and the profiles with a value before each bin."""

    edges: tuple[float, ...]
    before: tuple[int, ...]  # profiles with a value in the bins before bin i (one more entry: all of them)

    @classmethod
    def of(cls, reference: dict | None) -> _Bins | None:
        """Return the bins of a ``drift_reference`` entry of numbers, or None (text, no bins, no value)."""
        if not reference or reference.get("kind") not in ("number", "scale") or "counts" not in reference:
            return None
        before = (0, *itertools.accumulate(int(c) for c in reference["counts"][:-1]))  # the last count: missing
        return cls(tuple(float(e) for e in reference["edges"]), before) if before[-1] else None

    def place(self, value: float) -> tuple[int, float] | None:
        """Return :func:`place_among`'s answer for ``value``."""
        if not math.isfinite(value):
            return None
        at, present = bisect.bisect_right(self.edges, value), self.before[-1]
        below, above = self.before[at] / present, (present - self.before[at + 1]) / present
        if below > 0.5:
            return 1, below
        if above > 0.5:
            return -1, above
        return 0, 0.0


def place_among(reference: dict | None, value: float) -> tuple[int, float] | None:
    """Return where ``value`` lies among the training profiles' present values, from one feature's bins.

    Parameters
    ----------
    reference : dict or None
        One feature's entry of a model's ``drift_reference`` (:func:`customer_ai.drift.drift_reference`): inner
        ``edges``, bin ``counts`` (the last: missing values).  Text features and None give no place.
    value : float
        A present value.

    Returns
    -------
    tuple of (int, float), or None
        ``(1, share)`` when more than half of the profiles with a value lie below it, ``share`` of them at least
        (the profiles in its own bin are counted on neither side); ``(-1, share)`` when more than half lie above;
        ``(0, 0.0)`` otherwise.  None without bins of numbers or for a value that is not a finite number.
    """
    bins = _Bins.of(reference)
    return None if bins is None else bins.place(value)


def reads_as(
    info: FeatureInfo, value: object, contribution: float, reference: dict | None, *, modelled: bool = False
) -> str:
    """Return a factor's words: the value's description, its place among customers and, if contrary, why.

    See the module's description.  ``reference`` is the feature's entry of the model's ``drift_reference``;
    ``modelled`` says the profile has a repeat-buying estimate, which a contrary statement about its history
    corrects.
    """
    return _words(info, value, contribution, _Bins.of(reference), modelled=modelled)


def _words(info: FeatureInfo, value: object, contribution: float, bins: _Bins | None, *, modelled: bool) -> str:
    """:func:`reads_as` with the feature's bins already read (once per feature, not once per value)."""
    text = info.describe(value)
    absent = info.is_absent(value)
    side, notes = 0, []
    place = None if info.compare is None or absent or bins is None else bins.place(float(value))  # type: ignore[arg-type]
    if place is not None:
        side, share = place
        words = info.compare[0] if side > 0 else info.compare[1]  # type: ignore[index]
        notes.append(f"{words} {min(99, math.floor(share * 100))}% of customers" if side else "typical of customers")
    plain = info.absent_lean if absent else info.lean * side
    if plain and contribution and (contribution > 0) != (plain > 0):
        if modelled and info.family is None:
            notes.append(_CORRECTS)
        else:
            notes.append(_CONTRARY)
    return f"{text} ({'; '.join(notes)})" if notes else text


class _Statements:
    """What each profile's features assert, as integers, for finding factors that say the same thing."""

    def __init__(self, features: pd.DataFrame, infos: list[FeatureInfo]) -> None:
        """Find what each value asserts (see :meth:`FeatureInfo.claim` and :meth:`FeatureInfo.bound`).

        Only values that can repeat another feature's are put into words: the absent ones (a few distinct
        texts per column) and those of a shared ``subject`` close enough to another column's to read the same.
        """
        shape = features.shape
        self._known: dict[str, int] = {}
        self._scopes: dict[str, int] = {"": 0}
        self.claims = np.tile(-1 - np.arange(shape[1], dtype="int64"), (shape[0], 1))  # negative: its column only
        self.scopes = np.full(shape, -1, dtype="int16")  # of the bound a value says (0: any event), -1 none
        self.days = np.zeros(shape, dtype="int32")
        self.at_most = np.zeros(shape, dtype="int32")
        self.absent = np.zeros(shape, dtype=bool)
        numbers: dict[int, np.ndarray] = {}
        for column, info in enumerate(infos):
            raw = features.iloc[:, column]
            absent = raw.isna().to_numpy(copy=True)
            if info.style != "text":
                numbers[column] = pd.to_numeric(raw, errors="coerce").to_numpy(dtype="float64")
                if info.zero is not None:
                    absent |= numbers[column] == 0
            self.absent[:, column] = absent
            self._claim(column, info, raw, absent)
            if info.absence is not None:
                self._bound(column, info, absent, numbers.get(column))
        by_subject: dict[str, list[int]] = {}
        for column, info in enumerate(infos):
            if info.subject is not None:
                by_subject.setdefault(info.subject, []).append(column)
        self.follows = self._join_families(infos)
        for columns in (c for c in by_subject.values() if len(c) > 1):
            for column in columns:
                near = np.zeros(shape[0], dtype=bool)
                for other in columns:
                    both = ~self.absent[:, column] & ~self.absent[:, other]
                    if column in numbers and other in numbers:
                        both &= np.abs(numbers[column] - numbers[other]) <= infos[column].resolution
                    near |= both & (other != column)
                self._claim(column, infos[column], features.iloc[:, column], near)
        self._fresh = len(self._known)  # ids from here on: one per column, for a group led by its own statement

    def _join_families(self, infos: list[FeatureInfo]) -> np.ndarray:
        """Give the present values of each family one claim; return where a member's leader speaks for it."""
        follows = np.zeros(self.claims.shape, dtype=bool)
        families: dict[str, list[int]] = {}
        for column, info in enumerate(infos):
            if info.family is not None:
                families.setdefault(info.family, []).append(column)
        for family, columns in families.items():
            leader = next((c for c in columns if infos[c].leads), None)
            claim = self._known.setdefault(family, len(self._known))  # what FeatureInfo.claim says of a member
            for column in columns:
                present = ~self.absent[:, column]
                self.claims[present, column] = claim
                if leader is not None and column != leader:
                    follows[:, column] = present & ~self.absent[:, leader]
        return follows

    def _claim(self, column: int, info: FeatureInfo, raw: pd.Series, rows: np.ndarray) -> None:
        """Put the claims of ``rows`` of ``column`` into ids, describing each distinct value once."""
        if not rows.any():
            return
        codes, uniques = pd.factorize(raw[rows].astype(object), use_na_sentinel=False)
        claims = [info.claim(value) for value in uniques]
        ids = [-1 - column if c is None else self._known.setdefault(c, len(self._known)) for c in claims]
        self.claims[rows, column] = np.array(ids, dtype="int64")[codes]

    def _bound(self, column: int, info: FeatureInfo, absent: np.ndarray, numbers: np.ndarray | None) -> None:
        """Record the ``(scope, days, at most)`` that the values of ``column`` say."""
        scope, days = info.absence  # type: ignore[misc]
        self.scopes[absent, column] = self._scopes.setdefault(scope, len(self._scopes))
        self.days[absent, column] = days
        self.at_most[absent, column] = info.at_most
        if info.tally is not None and numbers is not None:
            counted = ~absent & np.isfinite(numbers)
            self.scopes[counted, column] = self._scopes.setdefault(info.tally, len(self._scopes))
            self.days[counted, column] = days
            self.at_most[counted, column] = numbers[counted]

    def cover(self) -> np.ndarray:
        """Give each absence the claim of the strongest statement of the profile that implies it.

        Within a scope the strongest is the one allowing the fewest things, then over the most days; it implies
        the absences of its scope over as many days or fewer that allow as many things or more.  "No activity
        in the last N days" implies every absence of N days or fewer.  Returns a mask of the entries taken
        over, so that the stronger statement speaks for the group.
        """
        covered = np.zeros(self.claims.shape, dtype=bool)
        # the any-event scope (0) last: "no activity" takes over what a scope's strongest statement took
        for scope in sorted(self._scopes.values(), reverse=True):
            inside = (self.scopes == scope) & (self.absent if scope == 0 else True)
            rows = np.flatnonzero(inside.any(axis=1))
            if len(rows) == 0:
                continue
            inside = inside[rows]
            days, at_most, absent = self.days[rows], self.at_most[rows], self.absent[rows]
            # fewest things, then most days, then a count before an absence, then the first column
            strength = at_most.astype("int64") * 8192 + (4096 - days) * 2 + absent
            strongest = np.where(inside, strength, np.iinfo("int64").max).argmin(axis=1)
            within = self.scopes[rows] >= 0 if scope == 0 else inside
            implied = within & absent & (days <= days[np.arange(len(rows)), strongest][:, None])
            implied &= at_most >= at_most[np.arange(len(rows)), strongest][:, None]
            implied[np.arange(len(rows)), strongest] = False
            leader = self.claims[rows, strongest]
            leader = np.where(leader >= 0, leader, self._fresh + strongest)
            self.claims[rows, strongest] = leader
            claims = self.claims[rows]
            covered[rows] |= implied & (claims != leader[:, None])
            self.claims[rows] = np.where(implied, leader[:, None], claims)
        return covered


def _merge_same_claims(contributions: np.ndarray, claims: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Return the contributions with each group of same-claim features summed into one member.

    The member speaking for a group is the one with the largest absolute contribution (the first column on
    ties) among those not ``covered`` by a broader statement; the other members become 0.  Row sums are
    unchanged.
    """
    merged = contributions.copy()
    rows, columns = np.nonzero(claims >= 0)  # only shared statements can repeat one another
    if len(rows) < 2:
        return merged
    claim = claims[rows, columns]
    # not covered first, then the largest; stable sorts keep the columns in order among equals
    preference = covered[rows, columns] * 1e6 - np.abs(contributions[rows, columns])
    by_preference = np.argsort(preference, kind="stable")
    group = rows[by_preference] * (int(claim.max()) + 1) + claim[by_preference]
    in_groups = np.argsort(group, kind="stable")
    by_group, group = by_preference[in_groups], group[in_groups]
    rows, columns = rows[by_group], columns[by_group]
    first = np.ones(len(rows), dtype=bool)
    first[1:] = group[1:] != group[:-1]
    starts = np.flatnonzero(first)
    totals = np.add.reduceat(contributions[rows, columns], starts)
    merged[rows, columns] = 0.0
    merged[rows[starts], columns[starts]] = totals
    return merged


def top_factors(
    features: pd.DataFrame,
    contributions: np.ndarray,
    infos: list[FeatureInfo],
    k: int,
    reference: dict | None = None,
    *,
    subject: str = CHANCE,
) -> list[list[dict]]:
    """Return, per profile, its ``k`` factors with the largest absolute contributions.

    Parameters
    ----------
    features : pandas.DataFrame
        The profiles' feature values, columns in the order of ``infos``.
    contributions : numpy.ndarray
        ``(n_profiles, n_features + 1)``, as from :meth:`TrainedModel.contributions` (last column: base value).
    infos : list of FeatureInfo
        Descriptions of the columns.
    k : int
        Factors per profile.
    reference : dict, optional
        The model's ``drift_reference`` (its training rows in bins), to place each number among the training
        profiles; without it (a model stored before it was kept) factors are not compared.
    subject : str, default :data:`CHANCE`
        What the contributions move, in the ``effect`` words: :data:`EXPECTED_VALUE` for contributions on the log
        of the expected value (the value model's).

    Returns
    -------
    list of list of dict
        Each factor: ``feature``, ``description``, ``value``, ``contribution`` (signed, calibrated log-odds;
        positive raises the probability of the goal), ``importance``, ``effect`` (the contribution in words).
        Features that say the same thing about a profile are one factor carrying the sum of their
        contributions (see the module's description).  Factors with a zero contribution are left out.
    """
    per_feature = np.asarray(contributions, dtype="float64")[:, :-1]
    k = min(k, per_feature.shape[1])
    if k == 0 or len(per_feature) == 0:
        return [[] for _ in range(len(per_feature))]
    values = features.to_numpy(dtype=object)
    merged = np.empty_like(per_feature)
    for start in range(0, len(per_feature), _CHUNK_ROWS):  # bounds the memory of the per-feature statements
        part = slice(start, start + _CHUNK_ROWS)
        statements = _Statements(features.iloc[part], infos)
        covered = statements.cover() | statements.follows
        merged[part] = _merge_same_claims(per_feature[part], statements.claims, covered)
    # stable argsort on -|c| keeps feature order among equal contributions, so output is deterministic
    order = np.argsort(-np.abs(merged), axis=1, kind="stable")[:, :k]
    said: dict[tuple[int, object, bool, bool], tuple[str, object]] = {}  # values repeat: put each into words once
    bins = {info.name: _Bins.of((reference or {}).get(info.name)) for info in infos}
    lead = next((column for column, info in enumerate(infos) if info.leads), None)  # the repeat-buying chance
    result = []
    for row, chosen in enumerate(order):
        modelled = lead is not None and not infos[lead].is_absent(values[row, lead])
        factors = []
        for column in chosen:
            contribution = float(merged[row, column])
            if contribution == 0.0:
                break  # ordered by size: the rest are zero too
            info, value = infos[column], values[row, column]
            key = (column, value, contribution > 0, modelled)
            words = said.get(key)
            if words is None:
                text = _words(info, value, contribution, bins[info.name], modelled=modelled)
                words = said.setdefault(key, (text, _plain(value)))
            importance = importance_of(contribution)
            factors.append(
                {
                    "feature": info.name,
                    "description": words[0],
                    "value": words[1],
                    "contribution": round(contribution, 4),
                    "importance": importance,
                    "effect": _effect(contribution, importance, subject),
                }
            )
        result.append(factors)
    return result
