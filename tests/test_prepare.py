"""The online-retail example: raw invoice lines -> canonical events and profiles."""

from __future__ import annotations

import importlib.util

import pandas as pd
import pytest

from conftest import RETAIL_EVENTS, ROOT

FOLDER = ROOT / "examples" / "online_retail"


@pytest.fixture(scope="module")
def prepare_module():
    spec = importlib.util.spec_from_file_location("prepare", FOLDER / "prepare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _raw(rows: list[tuple]) -> pd.DataFrame:
    columns = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["InvoiceDate"] = pd.to_datetime(frame["InvoiceDate"])
    return frame


def test_invoices_become_purchase_and_cancellation_events(prepare_module) -> None:
    raw = _raw(
        [
            ("536365", "A", "x", 6.0, "2011-06-01 10:00", 2.5, 17850.0, "United Kingdom"),
            ("536365", "B", "y", 2.0, "2011-06-01 10:00", 1.0, 17850.0, "United Kingdom"),
            ("C536379", "A", "x", -1.0, "2011-06-02 09:00", 2.5, 17850.0, "United Kingdom"),
            ("536400", "A", "x", 1.0, "2011-01-05 12:00", 3.0, 12346.0, "France"),
            ("536401", "A", "x", 5.0, "2011-06-03 12:00", 3.0, None, "United Kingdom"),
        ]
    )
    events, profiles = prepare_module.prepare(raw)
    assert events["profile_id"].tolist() == ["12346", "17850", "17850"]
    assert events["event_type"].tolist() == ["purchase", "purchase", "cancellation"]
    assert events["value"].tolist() == [3.0, 17.0, 2.5]
    # local UK time -> UTC: winter is GMT, summer is BST (UTC+1)
    assert events["timestamp"].tolist() == [
        pd.Timestamp("2011-01-05 12:00", tz="UTC"),
        pd.Timestamp("2011-06-01 09:00", tz="UTC"),
        pd.Timestamp("2011-06-02 08:00", tz="UTC"),
    ]
    assert events["lines"].tolist() == [1, 2, 1]
    assert events["quantity"].tolist() == [1.0, 8.0, 1.0]
    assert profiles.to_dict("records") == [
        {"profile_id": "12346", "country": "France"},
        {"profile_id": "17850", "country": "United Kingdom"},
    ]


def test_committed_events_match_the_script(prepare_module) -> None:
    events, profiles = prepare_module.prepare(pd.read_parquet(FOLDER / "online_retail.parquet"))
    pd.testing.assert_frame_equal(events, pd.read_parquet(RETAIL_EVENTS))
    pd.testing.assert_frame_equal(profiles, pd.read_parquet(FOLDER / "profiles.parquet"))
    assert len(events) == 22_190
    assert (events["event_type"] == "purchase").sum() == 18_536
    assert events["profile_id"].nunique() == 4_372
