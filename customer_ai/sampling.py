"""The training sample of whole profiles, chosen a partition of the profiles at a time with the answer of all at once.

:class:`ProfileSampler` sees the label table of one partition of a run's profiles after another (every profile's
labels are in one partition) and keeps, per stratum, only the candidates with the lowest keyed hash so far, at most
``max_profiles`` of them: the profiles kept in the end are exactly those :func:`customer_ai.estimator.sample_profiles`
keeps from the whole label table, in memory that follows ``max_profiles``, not the run.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

__all__ = ["ProfileSampler", "sample_key"]


def sample_key(seed: int) -> str:
    """Return the 16-character hash key of the profile sample for ``seed`` (unrelated to the split's key)."""
    return hashlib.sha256(f"customerai-sample:{seed}".encode()).hexdigest()[:16]


def _empty_pool() -> pd.DataFrame:
    return pd.DataFrame({"rank": np.zeros(0, dtype=np.uint64), "profile_id": pd.Series([], dtype="str")})


class ProfileSampler:
    """Choose at most ``max_profiles`` whole profiles, stratified by outcome, from label tables added one by one.

    The strata are the profiles with a positive label at some training snapshot (role ``training``) and the
    others; each keeps its share of ``max_profiles``, rounded to the nearest profile, and within a stratum the
    profiles with the lowest hash of their id (keyed by ``seed``; equal hashes by id) are kept.  The validation
    snapshot's labels play no part in the choice.

    Parameters
    ----------
    max_profiles : int
        The most distinct profiles to keep.
    seed : int
        Keys the hash that orders the profiles within a stratum.
    """

    def __init__(self, max_profiles: int, seed: int) -> None:
        self.max_profiles = max_profiles
        self.seed = seed
        self.eligible = 0
        self.positive = 0
        self._pools = {True: _empty_pool(), False: _empty_pool()}
        self._snapshots: dict[pd.Timestamp, dict] = {}

    def add(self, labels: pd.DataFrame) -> None:
        """Add the label table of profiles not added before (columns ``profile_id``, ``as_of``, ``label``, ``role``)."""
        codes, ids = pd.factorize(labels["profile_id"], sort=True)
        role, label = labels["role"].to_numpy(), labels["label"].to_numpy()
        positive = np.zeros(len(ids), dtype=bool)
        positive[codes[(role == "training") & (label == 1)]] = True
        self.eligible += len(ids)
        self.positive += int(positive.sum())
        names = np.asarray(ids, dtype=object)
        rank = pd.util.hash_array(names, hash_key=sample_key(self.seed))
        for stratum, members in ((True, positive), (False, ~positive)):
            candidates = pd.DataFrame({"rank": rank[members], "profile_id": pd.array(names[members], dtype="str")})
            pool = pd.concat([self._pools[stratum], candidates], ignore_index=True)
            pool = pool.sort_values(["rank", "profile_id"], kind="stable", ignore_index=True)
            self._pools[stratum] = pool.iloc[: self.max_profiles]
        for snapshot, rows in labels.groupby("as_of", sort=False):
            entry = self._snapshots.setdefault(snapshot, {"rows": 0, "positives": 0, "training": True})
            entry["rows"] += len(rows)
            entry["positives"] += int(rows["label"].sum())
            entry["training"] = entry["training"] and bool((rows["role"] == "training").all())

    @property
    def sampled(self) -> bool:
        """Whether the cap binds: more eligible profiles were added than ``max_profiles``."""
        return self.eligible > self.max_profiles

    def kept(self) -> pd.Index | None:
        """Return the ids of the profiles kept, in no particular order; None when every profile is kept."""
        if not self.sampled:
            return None
        take_positive = (2 * self.max_profiles * self.positive + self.eligible) // (2 * self.eligible)  # half up
        takes = {True: take_positive, False: self.max_profiles - take_positive}
        ids = [self._pools[stratum]["profile_id"].iloc[:take] for stratum, take in takes.items()]
        return pd.Index(pd.concat(ids, ignore_index=True), name="profile_id")

    def summary(self, kept: pd.DataFrame, snapshots: list[pd.Timestamp], note: str) -> dict:
        """Return what was done (see :func:`customer_ai.estimator.sample_profiles`) from the kept label rows."""
        kept_ids = set(kept["profile_id"].unique())
        positive_kept = len(kept_ids & set(kept.loc[(kept["role"] == "training") & (kept["label"] == 1), "profile_id"]))
        entries = []
        for snapshot in snapshots:
            seen = self._snapshots.get(snapshot)
            if seen is None:
                continue  # no eligible profile then
            at = kept.loc[kept["as_of"] == snapshot]
            entry = {
                "as_of": f"{snapshot:%Y-%m-%d}",
                "role": "training" if seen["training"] else "validation",
                "eligible": seen["rows"],
                "sampled": len(at),
                "eligible_positives": seen["positives"],
                "sampled_positives": int(at["label"].sum()),
            }
            if entry["role"] == "validation":
                entry.update({half: int((at["role"] == half).sum()) for half in ("calibration", "evaluation")})
            entries.append(entry)
        return {
            "max_profiles": self.max_profiles,
            "sampled": self.sampled,
            "eligible_profiles": self.eligible,
            "profiles": len(kept_ids),
            "seed": self.seed,
            "strata": {
                "positive": {"eligible": self.positive, "sampled": positive_kept},
                "other": {"eligible": self.eligible - self.positive, "sampled": len(kept_ids) - positive_kept},
            },
            "snapshots": entries,
            "design": note,
        }
