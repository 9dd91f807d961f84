"""Hash partitions of profiles: which part of a run's events and scoring each profile falls in, and how many parts.

A profile's partition is a keyed 64-bit hash of its id (the UTF-8 bytes, :func:`pandas.util.hash_array`) modulo
the partition count: the same on every process and machine, unlike Python's salted ``hash()``, and
independent of the other profiles, so a profile stays in its partition whoever else is scored.  Partitions
decide where and in what memory profiles are scored, never their scores (see :mod:`customer_ai.steps`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from customer_ai.spec import MAX_PARTITIONS

__all__ = ["EVENTS_PER_PARTITION", "partition_count", "partition_of"]

EVENTS_PER_PARTITION = 5_000_000  # ``auto``: about 100,000 profiles of 50 events; a partition's task stays near 1 GB
_PARTITION_KEY = "customerai-parts"  # 16 bytes: the hash key (changing it moves profiles between partitions)


def partition_of(profile_ids: pd.Index | np.ndarray, count: int) -> np.ndarray:
    """Return each profile's partition, ``0 .. count - 1``.

    Parameters
    ----------
    profile_ids : pandas.Index or numpy.ndarray
        Profile ids (strings).
    count : int
        The number of partitions, at least 1.

    Returns
    -------
    numpy.ndarray
        ``int64`` partition numbers aligned with ``profile_ids``.
    """
    if count < 1:
        raise ValueError(f"the partition count must be at least 1, not {count}")
    ids = np.asarray(profile_ids, dtype=object)
    if len(ids) == 0:
        return np.zeros(0, dtype="int64")
    hashed = pd.util.hash_array(ids.astype(str).astype(object), hash_key=_PARTITION_KEY, categorize=False)
    return (hashed % np.uint64(count)).astype("int64")


def partition_count(setting: str | int, events: int) -> int:
    """Return how many partitions a run's events are split into (and its profiles scored in).

    Parameters
    ----------
    setting : "auto" or int
        ``scoring.partitions``: a fixed count, or ``auto`` for one partition per :data:`EVENTS_PER_PARTITION`
        events (rounded up; one below that, at most 256).
    events : int
        How many events the run reads from its source (a file's count may include events outside the run's
        window: it bounds what is read).
    """
    if setting != "auto":
        return int(setting)
    return min(MAX_PARTITIONS, max(1, math.ceil(events / EVENTS_PER_PARTITION)))
