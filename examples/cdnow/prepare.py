"""Make canonical customer-ai events from CDNOW, fetched from PyPI (the ``lifetimes`` 0.11.3 wheel).

Run: ``python examples/cdnow/prepare.py``; writes ``events.parquet`` beside this file (see README.md).

- One ``purchase`` event per line of ``CDNOW_master.txt``: customer, date (day precision, taken as midnight
  UTC), ``value`` = dollar value, extra column ``cds`` (number of CDs).  Several lines on one customer's day
  are kept as they are: this is what a daily-granular log looks like.
- A handful of lines have a dollar value of 0 (free items); they are kept too.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from registry import wheel_member  # noqa: E402

PACKAGE, VERSION = "lifetimes", "0.11.3"
MEMBER = "lifetimes/datasets/CDNOW_master.txt"
SHA256 = "eff6889ed364c5199d6eacbbeb7a6d559971df4406ac876f322c373f00a072ef"


def prepare(text: bytes) -> pd.DataFrame:
    """Return canonical events from the raw ``CDNOW_master.txt``."""
    raw = pd.read_csv(
        io.BytesIO(text), sep=r"\s+", header=0, names=["customer", "date", "cds", "dollars"], dtype={"customer": str}
    )
    events = pd.DataFrame(
        {
            "profile_id": raw["customer"],
            "timestamp": pd.to_datetime(raw["date"].astype(str), format="%Y%m%d").dt.tz_localize("UTC"),
            "event_type": "purchase",
            "value": raw["dollars"].astype("float64"),
            "cds": raw["cds"].astype("int64"),
        }
    )
    events["timestamp"] = events["timestamp"].astype("datetime64[us, UTC]")
    return events.sort_values(["timestamp", "profile_id"], kind="stable").reset_index(drop=True)


def main(folder: Path = HERE) -> int:
    """Fetch the pinned file and write ``events.parquet`` in ``folder``."""
    events = prepare(wheel_member(PACKAGE, VERSION, MEMBER, SHA256))
    events.to_parquet(folder / "events.parquet", index=False)
    print(
        f"{len(events):,} purchases of {events.profile_id.nunique():,} customers, "
        f"{events.timestamp.min():%Y-%m-%d} to {events.timestamp.max():%Y-%m-%d} -> {folder / 'events.parquet'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
