"""Exact order statistics of numbers that come in parts: a run's probabilities, read a partition at a time.

A run's percentiles and the report's score quantiles are values at given ranks among every profile's probability.
Sorting all of them holds 8 bytes per profile; :func:`order_statistics` finds the same values holding one part and
a bounded number of candidates, by radix selection over the numbers' bits: each pass over the parts counts the
values by their next 16 bits below the bits already known (a histogram of 65,536 bins per distinct prefix), which
narrows every rank to one bin, until the values left with a rank's prefix are few enough to be kept and sorted. A
64-bit number needs at most four passes after the first; in practice two or three.

The values are exactly those of ``np.sort(np.concatenate(parts))[ranks]`` (zero and minus zero, which compare
equal, may come back one for the other); NaN is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["DEFAULT_KEEP", "linear_quantiles", "order_statistics"]

DEFAULT_KEEP = 1 << 20  # at most this many candidate values kept at once (8 MB) besides one part and the histograms
_BITS = 16  # bits resolved per pass: a histogram of 65,536 counts
_SIGN = np.uint64(1 << 63)


def _keys(values: np.ndarray) -> np.ndarray:
    """Return unsigned 64-bit keys that sort as the float64 ``values`` do.

    A positive number's bits with the sign bit set; a negative number's bits all flipped.
    """
    bits = np.ascontiguousarray(values, dtype="float64").view(np.uint64)
    return np.where(bits & _SIGN, ~bits, bits | _SIGN)


def _values(keys: np.ndarray) -> np.ndarray:
    """Return the float64 values of keys made by :func:`_keys`."""
    keys = np.asarray(keys, dtype=np.uint64)
    return np.where(keys & _SIGN, keys & ~_SIGN, ~keys).view("float64")


@dataclass
class _Search:
    """What is known of the values at some ranks.

    Their first ``depth`` bits (``prefix``), how many values share those bits (``count``; -1: not counted yet)
    and each rank's place among them (``within``).
    """

    prefix: int
    depth: int
    count: int
    within: list[int]
    targets: list[int]  # positions in the caller's ranks


def _under(keys: np.ndarray, search: _Search) -> np.ndarray:
    """Return the keys whose first ``search.depth`` bits are ``search.prefix``."""
    if search.depth == 0:
        return keys
    return keys[(keys >> np.uint64(64 - search.depth)) == np.uint64(search.prefix)]


def order_statistics(
    parts: Callable[[], Iterable[np.ndarray]], ranks: Sequence[int], *, keep: int = DEFAULT_KEEP
) -> np.ndarray:
    """Return the values at 0-based ``ranks`` among all the parts' numbers, as a sort of them all would give.

    Parameters
    ----------
    parts : callable
        Called once per pass, it gives the parts again, in any order (each a 1-D array of float64 values).
    ranks : sequence of int
        0-based ranks, each below the number of values; in any order, repeats allowed.
    keep : int, default :data:`DEFAULT_KEEP`
        The most candidate values kept at once (a rank's values are sorted once they are at most this many).

    Returns
    -------
    numpy.ndarray
        ``float64``, aligned with ``ranks``.

    Raises
    ------
    ValueError
        For a NaN among the values, or a rank outside ``0 .. n - 1``.

    Examples
    --------
    >>> order_statistics(lambda: [np.array([3.0, 1.0]), np.array([2.0])], [0, 2]).tolist()
    [1.0, 3.0]
    """
    ranks = [int(rank) for rank in ranks]
    result = np.zeros(len(ranks), dtype="float64")
    if not ranks:
        return result
    searches = [_Search(prefix=0, depth=0, count=-1, within=ranks, targets=list(range(len(ranks))))]
    while searches:
        searches = _pass(parts, searches, result, keep)
    return result


def _pass(
    parts: Callable[[], Iterable[np.ndarray]], searches: list[_Search], result: np.ndarray, keep: int
) -> list[_Search]:
    """Read the parts once and return what is still to be searched; write the values found into ``result``.

    The searches with the fewest values are kept whole while they fit in ``keep``; the others count their values'
    next bits.
    """
    keeping: list[_Search] = []
    for search in sorted(searches, key=lambda s: s.count):
        if 0 <= search.count <= keep - sum(k.count for k in keeping):
            keeping.append(search)
    counting = [search for search in searches if all(search is not k for k in keeping)]
    kept, histograms, total = _read(parts, keeping, counting)
    for search, ordered in zip(keeping, kept, strict=True):
        if len(ordered) != search.count:
            raise ValueError("the parts changed from one pass to the next: read them as they were")
        result[search.targets] = _values(ordered[search.within])
    following: dict[tuple[int, int], _Search] = {}
    for histogram, search in zip(histograms, counting, strict=True):
        if search.depth == 0:
            _check_ranks(search.within, total)
        elif int(histogram.sum()) != search.count:
            raise ValueError("the parts changed from one pass to the next: read them as they were")
        ends = np.cumsum(histogram)
        for rank, target in zip(search.within, search.targets, strict=True):
            bin_ = int(np.searchsorted(ends, rank, side="right"))
            prefix, depth = (search.prefix << _BITS) | bin_, search.depth + _BITS
            if depth == 64:  # every bit known: the value itself
                result[target] = _values(np.array([prefix], dtype=np.uint64))[0]
                continue
            found = following.setdefault((prefix, depth), _Search(prefix, depth, int(histogram[bin_]), [], []))
            found.within.append(rank - (int(ends[bin_ - 1]) if bin_ else 0))
            found.targets.append(target)
    return list(following.values())


def _read(
    parts: Callable[[], Iterable[np.ndarray]], keeping: list[_Search], counting: list[_Search]
) -> tuple[list[np.ndarray], list[np.ndarray], int]:
    """Read every part once: return the keys of each of ``keeping``, its counts for each of ``counting``, the total.

    The kept keys come sorted; the counts are of the 16 bits below each search's known ones.
    """
    kept: list[list[np.ndarray]] = [[] for _ in keeping]
    histograms = [np.zeros(1 << _BITS, dtype="int64") for _ in counting]
    low_bits = np.uint64((1 << _BITS) - 1)
    total = 0
    for part in parts():
        values = np.asarray(part, dtype="float64")
        if np.isnan(values).any():
            raise ValueError("order statistics of values with NaN among them: NaN has no place in an order")
        keys = _keys(values)
        total += len(keys)
        for into, search in zip(kept, keeping, strict=True):
            into.append(_under(keys, search))
        for at, search in enumerate(counting):
            bins = (_under(keys, search) >> np.uint64(64 - search.depth - _BITS)) & low_bits
            histograms[at] += np.bincount(bins, minlength=1 << _BITS)
    ordered = [np.sort(np.concatenate(k)) if k else np.zeros(0, dtype=np.uint64) for k in kept]
    return ordered, histograms, total


def _check_ranks(ranks: list[int], count: int) -> None:
    wrong = [rank for rank in ranks if not 0 <= rank < count]
    if wrong:
        raise ValueError(f"rank {wrong[0]} is outside 0 .. {count - 1}: the parts hold {count:,} values")


def linear_quantiles(parts: Callable[[], Iterable[np.ndarray]], count: int, quantiles: Sequence[float]) -> np.ndarray:
    """Return ``np.percentile(all values, 100 * quantiles)`` (linear interpolation) from the parts' order statistics.

    Parameters
    ----------
    parts : callable
        As for :func:`order_statistics`.
    count : int
        How many values the parts hold (at least 1).
    quantiles : sequence of float
        Quantiles from 0 to 1.

    Examples
    --------
    >>> linear_quantiles(lambda: [np.array([0.0, 10.0])], 2, [0.25]).tolist()
    [2.5]
    """
    at = np.asarray(quantiles, dtype="float64") * (count - 1)
    below = np.floor(at).astype("int64")
    above = np.minimum(below + 1, count - 1)
    values = order_statistics(parts, [*below, *above])
    low, high = values[: len(at)], values[len(at) :]
    fraction = at - below
    # NumPy's own interpolation (numpy.lib._function_base_impl._lerp), so that the values are np.percentile's
    step = high - low
    return np.where(fraction >= 0.5, high - step * (1 - fraction), low + step * fraction)
