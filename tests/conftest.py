"""Shared test helpers: tiny inline event logs and instance specs."""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import pytest

from customer_ai.events import canonicalize
from customer_ai.spec import InstanceSpec, parse_spec

ROOT = Path(__file__).resolve().parents[1]
RETAIL_EVENTS = ROOT / "examples" / "online_retail" / "events.parquet"

BASE_SPEC: dict = {
    "name": "unit",
    "propensity": "conversion",
    "events": {"path": "events.parquet"},
    "goal": {
        "occurrence": "will_occur",
        "match": "any",
        "events": [{"where": [{"field": "event_type", "op": "eq", "value": "purchase"}]}],
        "window_days": 30,
    },
    "eligibility": {"lookback_days": 365},
    "training": {"snapshots": 2, "snapshot_every_days": 30, "min_positives": 1, "min_negatives": 1},
}


def make_spec(**overrides: object) -> InstanceSpec:
    """Return a valid spec built from BASE_SPEC with top-level keys replaced by ``overrides``."""
    data = copy.deepcopy(BASE_SPEC)
    data.update(copy.deepcopy(overrides))
    return parse_spec(data, source="unit.yaml", base_dir=ROOT)


def make_events(rows: list[tuple]) -> pd.DataFrame:
    """Return canonical events from ``(profile_id, timestamp, event_type[, value[, extras dict]])`` tuples."""
    records = []
    for row in rows:
        record = {"profile_id": row[0], "timestamp": row[1], "event_type": row[2]}
        record["value"] = row[3] if len(row) > 3 else None
        if len(row) > 4:
            record.update(row[4])
        records.append(record)
    return canonicalize(pd.DataFrame.from_records(records), source="inline")


def ts(text: str) -> pd.Timestamp:
    """Return a UTC timestamp."""
    return pd.Timestamp(text, tz="UTC")


@pytest.fixture
def spec() -> InstanceSpec:
    return make_spec()
