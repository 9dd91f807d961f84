"""Turn the Online Retail invoice lines into canonical customer-ai events and a profile file.

Run from anywhere: ``python examples/online_retail/prepare.py``.  Reads ``online_retail.parquet`` next to this
file and writes ``events.parquet`` and ``profiles.parquet`` beside it.

- One ``purchase`` event per invoice, one ``cancellation`` event per "C" invoice, at the invoice time.
- ``value``: the invoice's sum of quantity * unit price (positive for cancellations too: the amount cancelled).
- Invoice times are local UK time in the source; they are converted to UTC (Europe/London).
- Lines with no customer id are dropped (they cannot be tied to a profile), as are invoices that are
  neither purchases nor cancellations (the two "A" bad-debt adjustments carry no customer).
- Extra columns: ``invoice_no``, ``country``, ``lines`` (invoice lines), ``quantity`` (total units).
- ``profiles.parquet``: one row per customer with the country of most of their invoices.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


def prepare(raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (events, profiles) built from the raw invoice lines."""
    lines = raw.dropna(subset=["CustomerID"]).copy()
    lines["amount"] = lines["Quantity"] * lines["UnitPrice"]
    lines["is_cancellation"] = lines["InvoiceNo"].str.startswith("C")
    invoices = (
        lines.groupby("InvoiceNo", sort=True)
        .agg(
            customer=("CustomerID", "first"),
            local_time=("InvoiceDate", "min"),
            country=("Country", "first"),
            amount=("amount", "sum"),
            lines=("StockCode", "size"),
            quantity=("Quantity", "sum"),
            is_cancellation=("is_cancellation", "first"),
        )
        .reset_index()
    )
    utc = invoices["local_time"].dt.tz_localize("Europe/London", ambiguous="NaT", nonexistent="shift_forward")
    events = pd.DataFrame(
        {
            "profile_id": invoices["customer"].astype("int64").astype(str),
            "timestamp": utc.dt.tz_convert("UTC").astype("datetime64[us, UTC]"),
            "event_type": np.where(invoices["is_cancellation"], "cancellation", "purchase"),
            "value": invoices["amount"].abs().round(2),
            "invoice_no": invoices["InvoiceNo"].astype(str),
            "country": invoices["country"].astype(str),
            "lines": invoices["lines"].astype("int64"),
            "quantity": invoices["quantity"].abs(),
        }
    )
    if events["timestamp"].isna().any():
        raise ValueError("an invoice time fell in a daylight-saving gap or overlap; handle it explicitly")
    events = events.sort_values(["timestamp", "profile_id", "invoice_no"], kind="stable").reset_index(drop=True)
    counts = events.groupby(["profile_id", "country"]).size().reset_index(name="n")
    counts = counts.sort_values(["profile_id", "n", "country"], ascending=[True, False, True], kind="stable")
    profiles = counts.drop_duplicates("profile_id")[["profile_id", "country"]].reset_index(drop=True)
    return events, profiles


def main(folder: Path = HERE) -> int:
    """Write events.parquet and profiles.parquet in ``folder`` from its online_retail.parquet."""
    raw = pd.read_parquet(folder / "online_retail.parquet")
    events, profiles = prepare(raw)
    events.to_parquet(folder / "events.parquet", index=False)
    profiles.to_parquet(folder / "profiles.parquet", index=False)
    print(
        f"{len(events):,} events ({(events.event_type == 'purchase').sum():,} purchases) for "
        f"{events.profile_id.nunique():,} customers, {events.timestamp.min()} to {events.timestamp.max()}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
