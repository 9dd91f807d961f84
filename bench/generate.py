"""A seeded generator of realistic customer event logs at any size, with planted, time-varying propensities.

Usage: ``.venv/bin/python bench/generate.py --profiles 100000 --seed 0 --out var/bench/data/100k`` writes
``events.parquet``, ``profiles.parquet`` and ``instance.yaml`` (will a customer who bought in the last year buy
again within 30 days) into the folder.

How the log is made (all vectorised over the profiles of a block, one step per day):

- **Activity**: each profile has a heavy-tailed (log-normal) rate of sessions per day that drifts up or down over
  the year, rises on weekends and before the holidays, jumps in short bursts (a few days at four times the rate)
  and falls to almost nothing in dormant spells (weeks to months); 30 % of the profiles join during the year and
  30 % churn (stop for good) some time after joining.
- **Sessions**: a visit, one or more product views, an add-to-cart when the session buys or abandons a cart, and
  the purchase; a few purchases are cancelled (fully or in part) up to three weeks later.
- **Planted propensity**: a session buys with probability ``sigmoid(logit)``, where the logit is the profile's own
  level plus a slope that drifts it over the year, plus the profile's recent sessions and abandoned carts (whose
  weight grows over the year, so what predicts a purchase changes with the date), minus a cool-down after a
  purchase, plus a holiday lift and a small country effect.  "Purchase within 30 days" is thus learnable from
  the past events, but not trivially, and the right answer changes over the year.

Profiles are generated in blocks of :data:`BLOCK_PROFILES`, each from its own random stream (the seed and the
block's number), so the output depends only on ``(profiles, seed, start, days)`` and memory stays bounded by one
block while writing files.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

__all__ = [
    "BLOCK_PROFILES",
    "COUNTRIES",
    "EVENT_TYPES",
    "EventBlock",
    "generate_events",
    "instance_spec",
    "iter_blocks",
    "profile_ids",
    "write_dataset",
]

BLOCK_PROFILES = 50_000  # profiles per block: about 2.5M events, a few hundred MB while it is built
EVENT_TYPES = ("visit", "product_view", "add_to_cart", "purchase", "cancellation")
COUNTRIES = ("DE", "FR", "GB", "ES", "IT", "NL", "PL", "SE", "BE", "AT", "PT", "IE")
_COUNTRY_SHARE = np.array([0.24, 0.18, 0.16, 0.1, 0.09, 0.06, 0.05, 0.04, 0.03, 0.02, 0.02, 0.01])
_COUNTRY_LOGIT = np.array([0.0, -0.1, 0.15, -0.2, -0.15, 0.1, -0.3, 0.2, 0.0, 0.1, -0.25, 0.05])
_HOUR_SHARE = np.array([1, 0.5, 0.3, 0.2, 0.2, 0.3, 0.8, 1.5, 2, 2.2, 2.4, 2.6, 2.8, 2.6, 2.4, 2.4, 2.6, 3, 3.6,
                        4, 4, 3.4, 2.4, 1.6])  # fmt: skip
_HOUR_SHARE = _HOUR_SHARE / _HOUR_SHARE.sum()
_SESSION_RATE_MEDIAN = 0.026  # sessions per day of the median profile; tuned for ~50 events per profile-year
_DAY_S = 86_400
_SECOND_US = 1_000_000
_VISIT, _VIEW, _CART, _PURCHASE, _CANCELLATION = range(5)


@dataclass(frozen=True)
class EventBlock:
    """The events and profiles of one block of profiles, as arrays (profile numbers are global, from 0).

    Attributes
    ----------
    profile : numpy.ndarray
        int64 profile number of each event.
    timestamp_us : numpy.ndarray
        int64 microseconds since the epoch (UTC).
    event_type : numpy.ndarray
        int8 index into :data:`EVENT_TYPES`.
    value : numpy.ndarray
        float64 amount on purchases and cancellations, NaN elsewhere.
    first_profile : int
        Number of the block's first profile.
    country : numpy.ndarray
        int8 index into :data:`COUNTRIES`, one per profile of the block.
    """

    profile: np.ndarray
    timestamp_us: np.ndarray
    event_type: np.ndarray
    value: np.ndarray
    first_profile: int
    country: np.ndarray


def profile_ids(first: int, count: int) -> np.ndarray:
    """Return the text ids of profiles ``first .. first + count - 1``: ``p0000000``, ``p0000001``, ...

    Fixed width, so that text order is number order.
    """
    return np.array([f"p{i:07d}" for i in range(first, first + count)], dtype=object)


def _holiday_lift(day_of_year: np.ndarray) -> np.ndarray:
    """0 most of the year, rising to 1 from mid-November to Christmas, then back to 0."""
    return np.clip((day_of_year - 319) / 38, 0, 1) * (day_of_year <= 358)


def _spells(rng: np.random.Generator, size: int, days: int, *, chance: float, lasting: tuple[int, int]) -> np.ndarray:
    """Return a (days, size) mask of spells: each starts on a day with ``chance`` and lasts ``low .. high - 1`` days.

    ``lasting`` is ``(low, high)``; spells that overlap merge into one.
    """
    starts = rng.binomial(days, chance, size)
    profile = np.repeat(np.arange(size), starts)
    first = rng.integers(0, days, len(profile))
    last = np.minimum(first + rng.integers(*lasting, len(profile)), days)
    change = np.bincount(first * size + profile, minlength=(days + 1) * size)
    change -= np.bincount(last * size + profile, minlength=(days + 1) * size)
    return np.cumsum(change.reshape(days + 1, size)[:days], axis=0) > 0


def _simulate_days(rng: np.random.Generator, size: int, start: pd.Timestamp, days: int) -> tuple:
    """Draw the sessions of every (day, profile), then step through the days for purchases and abandoned carts.

    Returns the (profile, day, sessions, purchases, carts) of every day with a session, ordered by day, and the
    profiles' countries.
    """
    joins_late = rng.random(size) < 0.3
    join = np.where(joins_late, rng.integers(0, days, size), 0)
    churns = rng.random(size) < 0.3
    churn = np.where(churns, join + rng.exponential(120, size).astype(np.int64) + 1, days)
    session_rate = _SESSION_RATE_MEDIAN * rng.lognormal(0.0, 1.1, size)
    activity_slope = rng.normal(0.0, 0.7, size)  # log change of the session rate over the year
    purchase_level = rng.normal(-2.3, 0.9, size)
    purchase_slope = rng.normal(0.0, 1.2, size)  # logit change of the purchase rate over the year
    country = rng.choice(len(COUNTRIES), size, p=_COUNTRY_SHARE).astype(np.int8)
    purchase_level += _COUNTRY_LOGIT[country]
    dates = pd.date_range(start, periods=days, freq="D")
    holiday = _holiday_lift(dates.day_of_year.to_numpy())
    day_factor = (1.0 + 0.5 * holiday) * np.where(dates.day_of_week.to_numpy() >= 5, 1.25, 1.0)
    year_phase = np.arange(days) / 365 - 0.5
    bursts = _spells(rng, size, days, chance=1 / 45, lasting=(2, 9))
    dormant = _spells(rng, size, days, chance=1 / 250, lasting=(20, 121))

    # sessions per (day, profile): they depend on no state, so they are drawn a slice of days at a time
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for low in range(0, days, 61):
        span = slice(low, min(low + 61, days))
        day = np.arange(days)[span, None]
        rate = session_rate * np.exp(np.outer(year_phase[span], activity_slope)) * day_factor[span, None]
        rate *= np.where(bursts[span], 4.0, 1.0) * np.where(dormant[span], 0.05, 1.0)
        rate *= (day >= join) & (day < churn)
        sessions = rng.poisson(rate)
        on_day, profile = np.nonzero(sessions)
        found.append((on_day + low, profile, sessions[on_day, profile]))
    on_day, profile, sessions = (np.concatenate(parts) for parts in zip(*found, strict=True))

    # purchases depend on each profile's recent sessions, carts and last purchase: decayed lazily, when read
    session_decay, cart_decay = np.exp(-1 / 14), np.exp(-1 / 10)
    recent_sessions, sessions_day = np.zeros(size), np.zeros(size, dtype=np.int64)
    recent_carts, carts_day = np.zeros(size), np.zeros(size, dtype=np.int64)
    last_purchase = np.full(size, -1_000)
    purchases = np.zeros(len(profile), dtype=np.int64)
    carts = np.zeros(len(profile), dtype=np.int64)
    bounds = np.searchsorted(on_day, np.arange(days + 1))
    for t in range(days):
        rows = slice(bounds[t], bounds[t + 1])
        active, count = profile[rows], sessions[rows]
        if not len(active):
            continue
        before_sessions = recent_sessions[active] * session_decay ** (t - sessions_day[active])
        before_carts = recent_carts[active] * cart_decay ** (t - carts_day[active])
        logit = (
            purchase_level[active]
            + purchase_slope[active] * year_phase[t]
            + 0.35 * np.log1p(before_sessions)
            + (0.2 + 1.0 * t / max(days - 1, 1)) * np.log1p(before_carts)
            - 1.2 * (t - last_purchase[active] < 11)
            + 0.8 * holiday[t]
        )
        bought = rng.binomial(count, 1 / (1 + np.exp(-logit)))
        carted = rng.binomial(count - bought, 0.12)
        purchases[rows], carts[rows] = bought, carted
        recent_sessions[active], sessions_day[active] = before_sessions + count, t
        recent_carts[active], carts_day[active] = before_carts + carted, t
        last_purchase[active[bought > 0]] = t
    return profile, on_day, sessions, purchases, carts, country


def _time_order(seconds: np.ndarray, profile: np.ndarray) -> np.ndarray:
    """Return the stable order by time, then profile, of whole seconds and profile numbers (both non-negative).

    One packed int64 key sorts several times faster than ``numpy.lexsort`` on the two columns.
    """
    profile_bits = max(int(profile.max(initial=0)).bit_length(), 1)
    if int(seconds.max(initial=0)).bit_length() + profile_bits > 62:
        return np.lexsort((profile, seconds))
    return np.argsort((seconds << profile_bits) | profile, kind="stable")


def _rank_within(counts: np.ndarray) -> np.ndarray:
    """For groups of the given sizes laid end to end, each row's position in its group (0, 1, ...)."""
    starts = np.cumsum(counts) - counts
    return np.arange(int(counts.sum())) - np.repeat(starts, counts)


def _block(seed: int, number: int, *, first: int, size: int, start: pd.Timestamp, days: int) -> EventBlock:
    rng = np.random.default_rng(np.random.SeedSequence([seed, number]))
    profile, day, sessions, purchases, carts, country = _simulate_days(rng, size, start, days)
    basket = rng.lognormal(np.log(55.0), 0.6, size)  # each profile's typical order value
    cancel_share = rng.beta(1.0, 15.0, size)  # most rarely cancel, a few often

    # sessions: within each (profile, day) the buying sessions come first, then the abandoned carts
    session_profile = np.repeat(profile, sessions)
    session_day = np.repeat(day, sessions)
    rank = _rank_within(sessions)
    buys = rank < np.repeat(purchases, sessions)
    abandons = ~buys & (rank < np.repeat(purchases + carts, sessions))
    count = len(session_profile)
    hour = np.searchsorted(np.cumsum(_HOUR_SHARE), rng.random(count), side="right").clip(0, 23)
    session_start = session_day * _DAY_S + hour * 3_600 + rng.integers(0, 3_600, count)
    views = rng.geometric(0.5, count) + buys
    carted = buys | abandons
    per_session = 1 + views + carted + buys

    # events of each session: visit, views, add_to_cart, purchase, seconds apart
    event_session = np.repeat(np.arange(count), per_session)
    position = _rank_within(per_session)
    event_type = np.full(len(event_session), _VIEW, dtype=np.int8)
    event_type[position == 0] = _VISIT
    after_views = position - views[event_session]
    event_type[(after_views == 1) & carted[event_session]] = _CART
    event_type[(after_views == 2) & buys[event_session]] = _PURCHASE
    gaps = rng.exponential(45.0, len(event_session)).astype(np.int64) + 1
    gaps[position == 0] = 0
    elapsed = np.cumsum(gaps)
    elapsed -= np.repeat(elapsed[np.cumsum(per_session) - per_session], per_session)
    timestamp = session_start[event_session] + elapsed
    event_profile = session_profile[event_session]
    value = np.full(len(event_session), np.nan)
    is_purchase = event_type == _PURCHASE
    value[is_purchase] = np.round(basket[event_profile[is_purchase]] * rng.lognormal(0.0, 0.5, is_purchase.sum()), 2)

    # cancellations: some purchases are returned, in full or in part, within three weeks
    bought = np.flatnonzero(is_purchase)
    cancelled = bought[rng.random(len(bought)) < cancel_share[event_profile[bought]]]
    share = np.where(rng.random(len(cancelled)) < 0.6, 1.0, rng.uniform(0.2, 1.0, len(cancelled)))
    cancel_time = timestamp[cancelled] + rng.integers(3_600, 21 * _DAY_S, len(cancelled))
    cancel_value = np.round(value[cancelled] * share, 2)

    end = days * _DAY_S
    profile_all = np.concatenate([event_profile, event_profile[cancelled]])
    time_all = np.concatenate([timestamp, cancel_time])
    type_all = np.concatenate([event_type, np.full(len(cancelled), _CANCELLATION, dtype=np.int8)])
    value_all = np.concatenate([value, cancel_value])
    inside = time_all < end  # the last sessions of the period and late returns fall after it
    order = _time_order(time_all[inside], profile_all[inside])
    epoch_us = (start - pd.Timestamp("1970-01-01", tz="UTC")) // pd.Timedelta(microseconds=1)
    return EventBlock(
        profile=profile_all[inside][order].astype(np.int64) + first,
        timestamp_us=time_all[inside][order] * _SECOND_US + epoch_us,
        event_type=type_all[inside][order],
        value=value_all[inside][order],
        first_profile=first,
        country=country,
    )


def _start(start: str) -> pd.Timestamp:
    stamp = pd.Timestamp(start)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    if stamp != stamp.normalize():
        raise ValueError(f"start: {start!r} is not a date (use YYYY-MM-DD)")
    return stamp


def iter_blocks(profiles: int, *, seed: int = 0, start: str = "2023-01-01", days: int = 365) -> Iterator[EventBlock]:
    """Yield the events of ``profiles`` profiles block by block (:data:`BLOCK_PROFILES` profiles each).

    Parameters
    ----------
    profiles : int
        Number of profiles (at least 1).
    seed : int, default 0
        Seed of the random streams; the same arguments give the same events.
    start : str, default "2023-01-01"
        First day of the log (UTC).
    days : int, default 365
        Length of the log; every event lies in ``[start, start + days)``.

    Yields
    ------
    EventBlock
        Events sorted by time, then profile, within the block.
    """
    if profiles < 1:
        raise ValueError(f"profiles: need at least 1, got {profiles}")
    if days < 1:
        raise ValueError(f"days: need at least 1, got {days}")
    first_day = _start(start)
    for number, first in enumerate(range(0, profiles, BLOCK_PROFILES)):
        yield _block(seed, number, first=first, size=min(BLOCK_PROFILES, profiles - first), start=first_day, days=days)


def _events_table(block: EventBlock) -> pa.Table:
    ids = pa.array(profile_ids(block.first_profile, len(block.country)), pa.string())
    return pa.table(
        {
            "profile_id": ids.take(pa.array(block.profile - block.first_profile)),
            "timestamp": pa.array(block.timestamp_us, pa.timestamp("us", tz="UTC")),
            "event_type": pa.array(np.array(EVENT_TYPES, dtype=object)[block.event_type], pa.string()),
            "value": pa.array(block.value, pa.float64(), from_pandas=True),  # NaN -> null
        }
    )


def _profiles_table(block: EventBlock) -> pa.Table:
    return pa.table(
        {
            "profile_id": pa.array(profile_ids(block.first_profile, len(block.country)), pa.string()),
            "country": pa.array(np.array(COUNTRIES, dtype=object)[block.country], pa.string()),
        }
    )


def generate_events(
    profiles: int, *, seed: int = 0, start: str = "2023-01-01", days: int = 365
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Generate a canonical event log and its profile attributes in memory.

    Parameters
    ----------
    profiles : int
        Number of profiles (at least 1); about 50 events each per year on average.
    seed : int, default 0
        Seed; the same arguments give the same frames.
    start : str, default "2023-01-01"
        First day of the log (UTC).
    days : int, default 365
        Length of the log in days.

    Returns
    -------
    events : pandas.DataFrame
        Canonical events (``profile_id``, ``timestamp`` UTC, ``event_type``, ``value``) sorted by timestamp then
        profile id, as :func:`customer_ai.events.canonicalize` leaves them.
    profiles : pandas.DataFrame
        One row per profile: ``profile_id``, ``country``.
    """
    blocks = list(iter_blocks(profiles, seed=seed, start=start, days=days))
    tables = [_events_table(b) for b in blocks]
    table = pa.concat_tables(tables)
    seconds = np.concatenate([b.timestamp_us for b in blocks]) // _SECOND_US
    order = _time_order(seconds - seconds.min(initial=0), np.concatenate([b.profile for b in blocks]))
    events = table.take(pa.array(order)).to_pandas()
    events["profile_id"] = events["profile_id"].astype("str")
    events["event_type"] = events["event_type"].astype("str")
    attributes = pa.concat_tables([_profiles_table(b) for b in blocks]).to_pandas()
    attributes = attributes.astype({"profile_id": "str", "country": "str"})
    return events, attributes


def instance_spec(profiles: int, *, start: str = "2023-01-01", days: int = 365) -> dict:
    """Return the benchmark's instance: will a customer who bought in the last year buy again within 30 days.

    Six snapshots 30 days apart, a 365-day lookback (adapted to the year of history when run near its end), the
    ``cancellation`` and ``large_purchase`` (value >= 200) custom events, ``country`` as a profile attribute, and
    ``min_positives``/``min_negatives`` scaled to the number of profiles.
    """
    floor = int(min(500, max(50, profiles // 100)))
    after = (_start(start) + pd.Timedelta(days=days)).date()
    purchase = {"field": "event_type", "op": "eq", "value": "purchase"}
    return {
        "name": "bench_purchase_30d",
        "description": "Synthetic log: will a customer who bought in the last year buy again within 30 days?",
        "propensity": "conversion",
        "events": {"path": "events.parquet"},
        "goal": {"occurrence": "will_occur", "match": "any", "events": [{"where": [{**purchase}]}], "window_days": 30},
        "eligibility": {"lookback_days": 365, "match": "any", "events": [{"where": [{**purchase}]}]},
        "profiles": {"path": "profiles.parquet", "columns": ["country"]},
        "custom_events": [
            {"name": "cancellation", "where": [{"field": "event_type", "op": "eq", "value": "cancellation"}]},
            {"name": "large_purchase", "where": [{**purchase}, {"field": "value", "op": "gte", "value": 200}]},
        ],
        "training": {"snapshots": 6, "snapshot_every_days": 30, "min_positives": floor, "min_negatives": floor},
        "output": {"factors": 5},
        "schedule": "@weekly",
        "trigger_as_of": after.isoformat(),
    }


def write_dataset(
    out: Path, profiles: int, *, seed: int = 0, start: str = "2023-01-01", days: int = 365
) -> dict[str, int]:
    """Write ``events.parquet``, ``profiles.parquet`` and ``instance.yaml`` into ``out``, one block at a time.

    Each block of profiles is one row group, its events sorted by time; the file as a whole is not (a run sorts
    what it loads).

    Returns
    -------
    dict
        ``profiles`` and ``events`` written.
    """
    out.mkdir(parents=True, exist_ok=True)
    # written beside, then moved in: a reader (or a second writer of the same set) never sees half a file
    staging = Path(tempfile.mkdtemp(prefix=".writing-", dir=out))
    events_written = 0
    event_writer = profile_writer = None
    try:
        for block in iter_blocks(profiles, seed=seed, start=start, days=days):
            events, attributes = _events_table(block), _profiles_table(block)
            event_writer = event_writer or pq.ParquetWriter(staging / "events.parquet", events.schema)
            profile_writer = profile_writer or pq.ParquetWriter(staging / "profiles.parquet", attributes.schema)
            event_writer.write_table(events, row_group_size=len(events) or 1)
            profile_writer.write_table(attributes)
            events_written += len(events)
        for writer in (event_writer, profile_writer):
            if writer is not None:
                writer.close()
        spec = instance_spec(profiles, start=start, days=days)
        (staging / "instance.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        for written in staging.iterdir():
            os.replace(written, out / written.name)
    finally:
        for writer in (event_writer, profile_writer):
            if writer is not None and writer.is_open:
                writer.close()
        shutil.rmtree(staging, ignore_errors=True)
    return {"profiles": profiles, "events": events_written}


def main(argv: list[str] | None = None) -> int:
    """Write a synthetic data set (events, profiles, instance) and print its size and the time taken."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, required=True, help="number of profiles")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--start", default="2023-01-01", help="first day of the log (default 2023-01-01)")
    parser.add_argument("--days", type=int, default=365, help="length of the log in days (default 365)")
    parser.add_argument("--out", type=Path, required=True, help="folder to write into")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    written = write_dataset(args.out, args.profiles, seed=args.seed, start=args.start, days=args.days)
    seconds = time.perf_counter() - started
    print(
        f"{written['profiles']:,} profiles, {written['events']:,} events in {seconds:.1f}s -> {args.out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
