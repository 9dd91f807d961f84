"""Saved audiences: cuts of the scores kept as rules in the profile store and applied to every later run.

A marketer saves a cut of the audience builder (or ``customer-ai audience save``): the profiles at or above a
**score**, at or above a **percentile**, or the **top N** by probability.  The store keeps the rule with who saved
it and when (:meth:`customer_ai.store.base._Store.save_audience`), never a list of profiles: the run that follows
applies every saved audience of its instance beside the instance file's segments, so an audience follows the
scores as they change.  The instance file stays the definition of the goal; a saved audience never changes it (nor
the run's definition hash).

A saved audience takes a segment's place in a run: its members are in ``segments.parquet`` and the store's
membership, its size in the run's ``metadata.json``, and ``segment export`` writes it.  Its name follows the rules
of a segment's name and may not be one of the instance's segments; when the instance file later gains a segment of
the same name, the file's segment wins and runs skip the saved audience (and say so) until it is renamed.

A top N is the first N profiles by probability, then profile id (the order of every segment and of ``show``): over
a run scored in partitions, :func:`top_boundaries` finds the N-th profile of the whole run in two passes over its
scores, holding one probability bin's profiles at most, and each partition is then cut against it alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from customer_ai.audiences import CUT_KINDS, PROBABILITY_BINS, probability_bins

__all__ = [
    "AUDIENCE_NAME",
    "AudienceCut",
    "AudienceError",
    "SavedAudience",
    "Standing",
    "applicable",
    "applied_of",
    "checked_audience",
    "name_problem",
    "new_audience",
    "resolve_cuts",
    "standing",
    "top_boundaries",
]

AUDIENCE_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")  # a segment's name (customer_ai.spec.Segment)
_DEFAULT_SEGMENTS = ("low", "medium", "high")  # customer_ai.spec.DEFAULT_SEGMENTS (spec imports pydantic)
_RANGES = {"score": (0, 100), "percentile": (1, 100), "top": (1, None)}


class AudienceError(ValueError):
    """A saved audience that cannot be saved as given: the message says which part is wrong and why."""


@dataclass(frozen=True)
class SavedAudience:
    """A saved audience: its name, its rule (``cut`` and ``at``), who saved it and when (``YYYY-MM-DDTHH:MM:SSZ``)."""

    name: str
    cut: str
    at: int
    saved_by: str = ""
    saved_at: str = ""

    def rule(self) -> dict[str, Any]:
        """Return the rule as the store keeps it: ``{"cut": ..., "at": ...}``."""
        return {"cut": self.cut, "at": self.at}

    def words(self) -> str:
        """Return the rule in words: ``score at least 70``, ``the top 5,000 profiles by probability``."""
        if self.cut == "top":
            return f"the top {self.at:,} profiles by probability"
        return f"{self.cut} at least {self.at}"

    def record(self) -> dict[str, Any]:
        """Return what a run's ``metadata.json`` keeps of it: name, rule, words, who and when."""
        return {
            "name": self.name,
            **self.rule(),
            "words": self.words(),
            "saved_by": self.saved_by,
            "saved_at": self.saved_at,
        }


def checked_audience(name: object, rule: Mapping[str, Any], saved_by: str = "", saved_at: str = "") -> SavedAudience:
    """Return the saved audience ``name`` with ``rule``, checked.

    Parameters
    ----------
    name : str
        Its name: a lower-case letter, then lower-case letters, digits and ``_``, at most 40 in all; not ``low``,
        ``medium`` or ``high`` (every run's segments by bucket).
    rule : mapping
        ``cut`` (``score``, ``percentile`` or ``top``) and ``at``: a whole number, 0 to 100 for a score, 1 to 100
        for a percentile, at least 1 for a top N.
    saved_by, saved_at : str
        Who saved it and when, as the store keeps them.

    Raises
    ------
    AudienceError
        Saying which part is wrong and what it may be.
    """
    if not isinstance(name, str) or not AUDIENCE_NAME.fullmatch(name):
        raise AudienceError(
            f"audience name {name!r}: use a lower-case letter, then lower-case letters, digits and _ (at most 40)"
        )
    if name in _DEFAULT_SEGMENTS:
        raise AudienceError(f"audience name {name!r} is the segment of the bucket {name} in every run: choose another")
    unknown = sorted(set(rule) - {"cut", "at"})
    if unknown:
        raise AudienceError(f"audience {name}: a rule has a cut and an at, not {', '.join(map(repr, unknown))}")
    cut, at = rule.get("cut"), rule.get("at")
    if cut not in CUT_KINDS:
        raise AudienceError(f"audience {name}: a cut is by {', '.join(CUT_KINDS[:-1])} or {CUT_KINDS[-1]}, not {cut!r}")
    low, high = _RANGES[cut]
    if isinstance(at, bool) or not isinstance(at, int | np.integer) or at < low or (high is not None and at > high):
        span = f"{low} to {high}" if high is not None else f"at least {low}"
        raise AudienceError(f"audience {name}: a cut by {cut} is at a whole number {span}, not {at!r}")
    return SavedAudience(name, str(cut), int(at), saved_by, saved_at)


def name_problem(name: str, segments: Iterable[str]) -> str | None:
    """Return why ``name`` cannot be an audience beside the instance's ``segments`` (its file's names), else None."""
    if name in set(segments):
        return (
            f"{name!r} is a segment of the instance file: a saved audience never replaces it (the file wins); "
            "choose another name"
        )
    return None


def new_audience(
    instance: str, name: object, rule: Mapping[str, Any], saved_by: str, segments: Iterable[str]
) -> SavedAudience:
    """Return the audience ``name`` with ``rule`` about to be saved for ``instance``, whose file has ``segments``.

    Raises
    ------
    AudienceError
        As :func:`checked_audience` does, or when the name is one of the instance file's segments
        (:func:`name_problem`).
    """
    audience = checked_audience(name, rule, saved_by)
    problem = name_problem(audience.name, segments)
    if problem:
        raise AudienceError(f"audience {audience.name} of {instance}: {problem}")
    return audience


def applicable(
    saved: Sequence[SavedAudience], segments: Iterable[str]
) -> tuple[list[SavedAudience], list[dict[str, str]]]:
    """Return the saved audiences a run applies and those it skips (``name`` and ``reason``), in the given order.

    A saved audience whose name the instance file took for a segment after it was saved is skipped: the file's
    segment wins.
    """
    names = set(segments)
    applied = [audience for audience in saved if audience.name not in names]
    skipped = [
        {"name": a.name, "reason": f"the instance file now has a segment named {a.name}: rename or delete the audience"}
        for a in saved
        if a.name in names
    ]
    return applied, skipped


def applied_of(metadata: Mapping[str, Any]) -> dict[str, dict]:
    """Return the saved audiences a run applied, by name, as its ``metadata.json`` keeps them (``audiences``)."""
    return {str(a.get("name")): a for a in metadata.get("audiences") or [] if isinstance(a, dict)}


@dataclass(frozen=True)
class Standing:
    """Where a saved audience stands against a run.

    ``state`` is ``skipped`` (the instance file has a segment of its name), ``no_run`` (there is no run yet),
    ``later`` (saved after the run: the next run applies it), ``changed`` (the run applied the audience's rule of
    then, ``then`` in words: the next run applies this one) or ``applied``; ``size`` is its members in the run.
    """

    state: str
    size: int = 0
    then: str = ""


def standing(
    audience: SavedAudience,
    file_segments: Iterable[str],
    applied: Mapping[str, Mapping[str, Any]] | None,
    sizes: Mapping[str, int],
) -> Standing:
    """Return where ``audience`` stands against a run that applied ``applied`` (None: no run) with segment ``sizes``."""
    if audience.name in set(file_segments):
        return Standing("skipped")
    if applied is None:
        return Standing("no_run")
    then = applied.get(audience.name)
    if then is None:
        return Standing("later")
    size = int(sizes.get(audience.name, 0))
    if (then.get("cut"), then.get("at")) != (audience.cut, audience.at):
        return Standing("changed", size, str(then.get("words")))
    return Standing("applied", size)


@dataclass(frozen=True)
class AudienceCut:
    """A saved audience cut against one run: for a top N, the run's N-th profile (``boundary``), else None.

    ``boundary`` is the (probability, profile id) of the last member: a profile is a member when its probability is
    higher, or equal and its id not after it.  A top N of a run without profiles has no boundary and no member.
    """

    audience: SavedAudience
    boundary: tuple[float, str] | None = None

    @property
    def name(self) -> str:
        """Return the audience's name, which is its segment's."""
        return self.audience.name

    def mask(self, scores: pd.DataFrame) -> np.ndarray:
        """Return which rows of ``scores`` (``probability``, ``score``, ``percentile``, ``profile_id``) are members."""
        cut, at = self.audience.cut, self.audience.at
        if cut != "top":
            return scores[cut].to_numpy(dtype="int64") >= at
        if self.boundary is None:
            return np.zeros(len(scores), dtype=bool)
        probability = scores["probability"].to_numpy(dtype="float64")
        last_probability, last_id = self.boundary
        ids = scores["profile_id"].astype(str).to_numpy(dtype=object)
        return (probability > last_probability) | ((probability == last_probability) & (ids <= last_id))


def top_boundaries(parts: Callable[[], Iterable[pd.DataFrame]], sizes: Iterable[int]) -> dict[int, tuple[float, str]]:
    """Return the N-th profile of a run by probability, then profile id, for each N of ``sizes``.

    Parameters
    ----------
    parts : callable
        Returns the run's scores in parts (``probability`` and ``profile_id``), afresh each call: it is called twice,
        once to count the profiles by probability bin (:data:`customer_ai.audiences.PROBABILITY_BINS`), once to read
        those of the bins an N ends in.
    sizes : iterable of int
        The Ns, each at least 1.

    Returns
    -------
    dict
        N -> (probability, profile id) of the N-th profile, or of the last one for an N above the run's size; no
        entry when the run has no profile.
    """
    wanted = sorted(set(sizes))
    if not wanted:
        return {}
    counts = np.zeros(PROBABILITY_BINS, dtype="int64")
    for part in parts():
        counts += np.bincount(probability_bins(part["probability"]), minlength=PROBABILITY_BINS)
    total = int(counts.sum())
    if total == 0:
        return {}
    down = counts[::-1].cumsum()  # profiles down to each bin, the highest first
    ends: dict[int, tuple[int, int]] = {}  # N -> (bin of its N-th profile, its rank within that bin from 1)
    for n in wanted:
        reached = min(n, total)
        k = int(np.searchsorted(down, reached))
        ends[n] = (PROBABILITY_BINS - 1 - k, reached - (int(down[k - 1]) if k > 0 else 0))
    needed = np.array(sorted({b for b, _ in ends.values()}))
    found = []
    for part in parts():
        inside = np.isin(probability_bins(part["probability"]), needed)
        if inside.any():
            found.append(
                pd.DataFrame(
                    {
                        "probability": part["probability"].to_numpy(dtype="float64")[inside],
                        "profile_id": part["profile_id"].astype(str).to_numpy(dtype=object)[inside],
                    }
                )
            )
    rows = pd.concat(found, ignore_index=True)
    rows["bin"] = probability_bins(rows["probability"])
    rows = rows.sort_values(["probability", "profile_id"], ascending=[False, True], kind="stable")
    out = {}
    for n, (b, rank) in ends.items():
        row = rows.loc[rows["bin"] == b].iloc[rank - 1]
        out[n] = (float(row["probability"]), str(row["profile_id"]))
    return out


def resolve_cuts(saved: Sequence[SavedAudience], parts: Callable[[], Iterable[pd.DataFrame]]) -> list[AudienceCut]:
    """Return ``saved`` cut against one run, whose scores ``parts`` returns (see :func:`top_boundaries`).

    The run's scores are read only when an audience is a top N.
    """
    boundaries = top_boundaries(parts, [a.at for a in saved if a.cut == "top"])
    return [AudienceCut(a, boundaries.get(a.at) if a.cut == "top" else None) for a in saved]
