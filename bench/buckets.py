"""Check the default bucket rule on every example instance and every real log of docs/evaluation.md.

Usage: ``.venv/bin/python bench/buckets.py [--home var/bench/buckets]``.

Runs ``customer-ai run`` (the default ``buckets_by: auto``) for each goal of ``examples/evaluation.yaml`` as of its
last reported date (its check date when it has none), the example instances of ``instances/`` as of their
``trigger_as_of``, and a rare goal on the online retail log (an order of 100 or more within 14 days), then reads
each run's published scores and prints, per run: the rule it used, the profiles, the share and the mean
probability of each bucket, and the span of the high bucket's scores.  Every run must give three non-empty
buckets whose mean probabilities rise from low to high, and a high bucket holding at least 5% of the profiles or
spanning at least 5 score points; the script exits 1 when one does not.  Needs the prepared logs
(``examples/*/prepare.py``).  Nothing here is fitted on what it reports: the rule is fixed beforehand.
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from customer_ai.scoring import MIN_HIGH_SHARE, MIN_HIGH_SPAN  # noqa: E402
from customer_ai.spec import load_spec  # noqa: E402
from customer_ai.store import SQLiteStore  # noqa: E402

BUCKETS = ("low", "medium", "high")
# a rare goal the default score thresholds leave without a high bucket: an order of 100 or more within 14 days
RARE_GOAL = {
    "name": "big_order_14d",
    "goal": {
        "occurrence": "will_occur",
        "events": [
            {
                "where": [
                    {"field": "event_type", "op": "eq", "value": "purchase"},
                    {"field": "value", "op": "gte", "value": 100},
                ]
            }
        ],
        "window_days": 14,
    },
}


def runs_to_check() -> list[tuple[Path, dt.date]]:
    """Return (instance file, as-of date) of every goal of the evaluation split and every example instance."""
    split = yaml.safe_load((ROOT / "examples" / "evaluation.yaml").read_text())
    chosen: list[tuple[Path, dt.date]] = []
    for data_set in split.values():
        for goal in data_set["goals"]:
            dates = goal.get("reported") or goal.get("checks")
            chosen.append((ROOT / goal["instance"], max(dt.date.fromisoformat(str(d)) for d in dates)))
    for path in sorted((ROOT / "instances").glob("*.yaml")):
        spec = load_spec(path)
        chosen.append((path, spec.trigger_as_of or spec.end_date))
    return chosen


def rare_goal_instance(folder: Path) -> Path:
    """Write the rare goal on the online retail log (the repurchase example with another goal); return its file."""
    data = yaml.safe_load((ROOT / "instances" / "repurchase_30d.yaml").read_text())
    data.update(RARE_GOAL, description="An order of 100 or more within 14 days")
    for source in ("events", "profiles"):
        data[source]["path"] = str((ROOT / "instances" / data[source]["path"]).resolve())
    path = folder / "big_order_14d.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def check_run(instance: Path, as_of: dt.date, home: Path) -> dict:
    """Run ``instance`` as of ``as_of`` with the default rule; return what its published buckets hold."""
    command = [str(ROOT / ".venv" / "bin" / "customer-ai"), "-q", "run", str(instance), "--as-of", f"{as_of}"]
    done = subprocess.run([*command, "--home", str(home)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{instance} as of {as_of} failed:\n{done.stderr[-3000:]}")
    spec = load_spec(instance)
    store = SQLiteStore(home / "store.sqlite")
    run = store.latest_run(spec.name)
    scores = store.read_scores(spec.name, f"{as_of}")
    rule = run["metrics"]["bucket_rule"]
    row = {
        "instance": f"{instance.relative_to(ROOT) if instance.is_relative_to(ROOT) else instance.name}",
        "as_of": f"{as_of}",
        "rule": f"{rule['by']} {rule['medium']:g}/{rule['high']:g}",
        "profiles": len(scores),
    }
    for bucket in BUCKETS:
        members = scores.loc[scores["bucket"] == bucket]
        row[f"{bucket} share"] = len(members) / len(scores)
        row[f"{bucket} mean p"] = float(members["probability"].mean()) if len(members) else np.nan
    high = scores.loc[scores["bucket"] == "high", "score"]
    row["high scores"] = f"{high.min()}-{high.max()}" if len(high) else "-"
    means = [row[f"{b} mean p"] for b in BUCKETS]
    span = int(high.max() - high.min() + 1) if len(high) else 0
    row["meets"] = bool(
        all(row[f"{b} share"] > 0 for b in BUCKETS)
        and means[0] < means[1] < means[2]
        and (row["high share"] >= MIN_HIGH_SHARE or span >= MIN_HIGH_SPAN)
    )
    row["why"] = rule.get("why", "")
    return row


def main() -> int:
    """Run every check, print the table, and return 1 when a run does not meet the rule's promise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=ROOT / "var" / "bench" / "buckets")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        checks = [*runs_to_check(), (rare_goal_instance(Path(folder)), dt.date(2011, 12, 11))]
        for instance, as_of in checks:
            rows.append(check_run(instance, as_of, args.home))
            print(f"{rows[-1]['instance']} as of {as_of}: {rows[-1]['rule']}, meets: {rows[-1]['meets']}", flush=True)
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.float_format", "{:.3f}".format):
        print(table.drop(columns="why").to_string(index=False))
    for row in rows:
        if row["why"]:
            print(f"{row['instance']} as of {row['as_of']}: {row['why']}")
    return 0 if table["meets"].all() else 1


if __name__ == "__main__":
    sys.exit(main())
