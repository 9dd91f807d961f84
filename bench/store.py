"""Benchmark: a run's scores with their factors and segments committed to the profile store (``publish``'s commit).

Usage: ``.venv/bin/python bench/store.py [--profiles 100000 1000000] [--repeats 3]
[--store postgresql://127.0.0.1:5432/test] [--stores postgres sqlite] [--commit REV]``.

The scores are made by the code a run uses: the seeded log of ``bench/generate.py`` for a sample of 20,000
profiles, its feature plan and point-in-time features (``plan_features``, ``build_features``), TreeSHAP-like
contributions drawn at random for them, ``top_factors`` (``output.factors`` = 5 per profile, with their words),
then ``N`` profiles with ``score_frame`` over seeded probabilities, each taking the factors of one sampled profile,
written by ``write_frame`` as the ``score`` step writes ``scores.parquet`` (factors as JSON text).  The file is
made once per size and seed under ``var/bench/store/`` and reused.

Every repeat writes into a fresh store (PostgreSQL: a new schema, dropped afterwards; SQLite: a new file): first
the previous week's run is published whole (``customer_ai.steps.publish``, not timed); then this week's run is laid
out as its attempt's staging folder (``scores.parquet``, ``model.json``) and sealed as ``publish`` seals it (segment
membership computed into ``segments.parquet``, ``metadata.json``, the rename; not timed), and the timed part is the
commit of that sealed folder, ``customer_ai.steps._commit``, the one store transaction of ``publish``: the current
scores of 1M profiles are replaced as in a weekly run.  Its time is split into phases by wrapping what it calls
(self time: nested phases are not counted twice): reading the Parquet files (scores, segments), each SQL statement
by the table it writes (``COPY`` into staging, history, current scores, segments, the run and attempt rows and
other SQL) and the commit; what is left is Python work outside them (the scores to pandas, row checks, encoding for
SQLite).  Prints per store the median of ``--repeats`` runs (each run's total shown) and profiles per second for
the whole commit and per phase.

``--commit REV`` runs the ``customer_ai`` package of that git commit (exported with ``git archive`` to a
temporary folder, first on ``sys.path``) on the same files, to measure a baseline while the tree holds changes; the
commit must publish through a sealed folder as this one does (``steps._commit``, issue 17 onwards).
"""

from __future__ import annotations

import argparse
import io
import secrets
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = 20_000  # profiles whose features and factors are computed; the others reuse them
START, DAYS = "2023-01-01", 365
AS_OF, PREVIOUS = "2024-01-01", "2023-12-25"
MODEL_VERSION = "20240101-bench00000"
PYTHON = "pandas + checks (Python)"
PHASES = (
    "read parquet",
    PYTHON,
    "COPY to staging",
    "history",
    "current scores",
    "segments (write)",
    "run, attempt, other SQL",
    "commit",
)


class Clock:
    """Self time per phase: a call of a wrapped function counts for its phase, minus the phases nested in it."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._stack: list[list] = []  # [phase, started, nested seconds]

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Count the time of the block for ``name``."""
        frame = [name, time.perf_counter(), 0.0]
        self._stack.append(frame)
        try:
            yield
        finally:
            self._stack.pop()
            spent = time.perf_counter() - frame[1]
            self.seconds[name] += spent - frame[2]
            if self._stack:
                self._stack[-1][2] += spent

    def wrap(self, name: str, function: Callable) -> Callable:
        """Return ``function`` counting its calls' time for ``name``."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.phase(name):
                return function(*args, **kwargs)

        return timed


def _statement_phase(statement: object) -> str:
    """Return the phase of an SQL statement from the table it writes."""
    text = statement if isinstance(statement, str) else getattr(statement, "string", None) or repr(statement)
    head = " ".join(str(text).split())[:400]
    target = head.split("SELECT")[0] if head.startswith(("INSERT", "DELETE", "UPDATE", "COPY")) else ""
    for table, phase in (
        ("customer_ai_score_history", "history"),
        ("customer_ai_scores", "current scores"),
        ("customer_ai_current", "current scores"),
        ("customer_ai_segments", "segments (write)"),
    ):
        if table in target:
            return phase
    return "COPY to staging" if head.startswith("COPY") else "run, attempt, other SQL"


@contextmanager
def instrumented(clock: Clock) -> Iterator[None]:
    """Wrap what the commit of a sealed run folder calls so that ``clock`` splits its time into phases."""
    import sqlite3  # noqa: PLC0415

    import pandas as pd  # noqa: PLC0415
    import psycopg2  # noqa: PLC0415
    import psycopg2.extensions  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    class Cursor(psycopg2.extensions.cursor):
        def execute(self, query: Any, vars: Any = None) -> Any:  # noqa: A002 - psycopg2's name
            phase = _statement_phase(query.as_string(self) if hasattr(query, "as_string") else query)
            with clock.phase(phase):
                return super().execute(query, vars)

        def executemany(self, query: Any, vars_list: Any) -> Any:
            phase = _statement_phase(query.as_string(self) if hasattr(query, "as_string") else query)
            with clock.phase(phase):
                return super().executemany(query, vars_list)

        def copy_expert(self, sql: Any, file: Any, size: int = 8192) -> Any:
            with clock.phase(_statement_phase(sql.as_string(self) if hasattr(sql, "as_string") else sql)):
                return super().copy_expert(sql, file, size)

    class Connection(psycopg2.extensions.connection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.cursor_factory = Cursor

        def commit(self) -> None:
            with clock.phase("commit"):
                super().commit()

    class SQLiteConnection(sqlite3.Connection):
        def execute(self, statement: str, *args: Any) -> Any:
            with clock.phase(_statement_phase(statement)):
                return super().execute(statement, *args)

        def executemany(self, statement: str, *args: Any) -> Any:
            with clock.phase(_statement_phase(statement)):
                return super().executemany(statement, *args)

        def commit(self) -> None:
            with clock.phase("commit"):
                super().commit()

    saved = [
        (psycopg2, "connect", psycopg2.connect),
        (sqlite3, "connect", sqlite3.connect),
        (pd, "read_parquet", pd.read_parquet),
        (pq, "read_table", pq.read_table),
    ]
    connect, sqlite_connect = psycopg2.connect, sqlite3.connect
    psycopg2.connect = lambda *a, **k: connect(*a, connection_factory=Connection, **k)
    sqlite3.connect = lambda *a, **k: sqlite_connect(*a, factory=SQLiteConnection, **k)
    pd.read_parquet = clock.wrap("read parquet", pd.read_parquet)
    pq.read_table = clock.wrap("read parquet", pq.read_table)
    try:
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def make_scores(size: int, seed: int, folder: Path) -> Path:
    """Write (once) ``scores.parquet`` of ``size`` profiles as the ``score`` step writes it; return its path."""
    import numpy as np  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415

    from bench.generate import generate_events, instance_spec, profile_ids  # noqa: PLC0415
    from customer_ai.explain import top_factors  # noqa: PLC0415
    from customer_ai.features import build_features, feature_infos, plan_features  # noqa: PLC0415
    from customer_ai.files import write_frame  # noqa: PLC0415
    from customer_ai.scoring import choose_bucket_rule, profiles_per_score, score_frame  # noqa: PLC0415
    from customer_ai.spec import parse_spec  # noqa: PLC0415

    path = folder / f"{size}-seed{seed}" / "scores.parquet"
    if path.exists():
        return path
    started = time.perf_counter()
    spec = parse_spec(instance_spec(size, start=START, days=DAYS), source="bench.yaml", base_dir=ROOT)
    events, attributes = generate_events(SAMPLE, seed=seed, start=START, days=DAYS)
    attributes = attributes.set_index("profile_id")
    as_of = pd.Timestamp(AS_OF, tz="UTC")
    plan = plan_features(events, spec, as_of - pd.Timedelta(days=60), attributes, lookback_days=228)
    profiles = pd.Index(events["profile_id"].unique())
    features = build_features(events, as_of, profiles, spec, plan, attributes=attributes)
    infos = feature_infos(plan, spec)
    rng = np.random.default_rng(seed)
    scale = rng.gamma(1.0, 0.3, size=len(infos) + 1)
    contributions = rng.normal(0.0, 1.0, size=(len(features), len(infos) + 1)) * scale
    contributions[rng.random(contributions.shape) < 0.25] = 0.0  # some features do not matter for a profile
    factors = top_factors(features, contributions, infos, spec.output.factors)
    probability = rng.beta(1.5, 5.0, size=size)
    rule = choose_bucket_rule(spec.output, profiles_per_score(probability))
    scores = score_frame(pd.Index(profile_ids(0, size)), probability, rule)
    scores["propensity"] = spec.propensity
    scores["as_of"] = AS_OF
    scores["model_version"] = MODEL_VERSION
    scores["factors"] = [factors[i] for i in rng.integers(0, len(factors), size=size)]
    write_frame(path, scores)
    print(f"made {path} in {time.perf_counter() - started:.1f} s", flush=True)
    return path


def _stage_run(home: Path, spec: Any, as_of: str, scores: Path, attempt: str) -> Path:
    """Lay out an attempt's staging folder as ``publish`` reads it (``scores.parquet``, ``model.json``); return it."""
    import pandas as pd  # noqa: PLC0415

    from customer_ai import artifacts  # noqa: PLC0415

    folder = artifacts.staging_dir(home, spec.name, pd.Timestamp(as_of, tz="UTC"), attempt)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(scores, folder / "scores.parquet")
    metrics = {"roc_auc": 0.81, "model_roc_auc": 0.81, "brier": 0.15}
    model = {
        "model_version": MODEL_VERSION,
        "as_of": "2023-12-02",
        "reused": False,
        "validation": {"metrics": metrics},
        "history": {},
        "quality": {"status": "ok", "reason": "bench", "min_auc": spec.training.min_auc},
    }
    artifacts.write_json(folder / "model.json", model)
    return folder


@contextmanager
def fresh_store(kind: str, dsn: str, home: Path) -> Iterator[Any]:
    """Yield an empty store: a new PostgreSQL schema (dropped afterwards) or a new SQLite file."""
    import psycopg2  # noqa: PLC0415
    from psycopg2 import sql  # noqa: PLC0415

    from customer_ai.store import PostgresStore, SQLiteStore  # noqa: PLC0415

    if kind == "sqlite":
        path = home / f"store-{secrets.token_hex(4)}.sqlite"
        try:
            yield SQLiteStore(path)
        finally:
            path.unlink(missing_ok=True)
        return
    schema = f"bench_store_{secrets.token_hex(4)}"
    try:
        yield PostgresStore(dsn, schema)
    finally:
        connection = psycopg2.connect(dsn)
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        connection.close()


def time_write(kind: str, dsn: str, size: int, scores: Path, work: Path) -> tuple[float, dict[str, float]]:
    """Publish the previous run, seal this run, then time its commit; return the commit's seconds and phases."""
    import pandas as pd  # noqa: PLC0415

    from bench.generate import instance_spec  # noqa: PLC0415
    from customer_ai import artifacts, steps  # noqa: PLC0415
    from customer_ai.spec import parse_spec  # noqa: PLC0415

    spec = parse_spec(instance_spec(size, start=START, days=DAYS), source="bench.yaml", base_dir=ROOT)
    previous, this = pd.Timestamp(PREVIOUS, tz="UTC"), pd.Timestamp(AS_OF, tz="UTC")
    home = Path(tempfile.mkdtemp(prefix="store-bench-", dir=work))
    try:
        with fresh_store(kind, dsn, home) as store:
            attempt = artifacts.new_attempt_id("bench")
            _stage_run(home, spec, PREVIOUS, scores, attempt)
            result = steps.publish(spec, previous, home, store, attempt=attempt)
            assert result["scored_profiles"] == size, result
            attempt = artifacts.new_attempt_id("bench")
            staging = _stage_run(home, spec, AS_OF, scores, attempt)
            folder = steps._seal(spec, this, staging, attempt, spec.training.min_auc)  # as publish seals it
            clock = Clock()
            with instrumented(clock):
                started = time.perf_counter()
                meta = steps._commit(spec, this, folder, store)
                total = time.perf_counter() - started
            assert meta["scored_profiles"] == size, meta
            counts = store.count_rows(spec.name)
            assert counts == {
                "customer_ai_scores": size,
                "customer_ai_score_history": 2 * size,
                "customer_ai_runs": 2,
            }, counts
            latest = store.latest_run(spec.name)
            assert (latest["as_of"], latest["run_id"]) == (AS_OF, folder.name), latest
    finally:
        shutil.rmtree(home, ignore_errors=True)
    phases = dict(clock.seconds)
    phases[PYTHON] = total - sum(phases.values())
    return total, phases


def _export_commit(revision: str, folder: Path) -> str:
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{revision}^{{commit}}"], cwd=ROOT, capture_output=True, check=True, text=True
    ).stdout.strip()
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, "customer_ai"], cwd=ROOT, capture_output=True, check=True
    )
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")
    return commit


def main() -> None:
    """Run the benchmark and print one block per size and store."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--store", default="postgresql://postgres@127.0.0.1:5432/test", help="PostgreSQL address")
    parser.add_argument("--stores", nargs="+", choices=("postgres", "sqlite"), default=["postgres", "sqlite"])
    parser.add_argument("--commit", help="measure the customer_ai package of this git commit instead")
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench" / "store")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="customer-ai-commit-") as exported:
        code = "working tree"
        if args.commit:
            code = f"commit {_export_commit(args.commit, Path(exported))[:10]}"
            sys.path.insert(0, exported)
        sys.path.insert(1 if args.commit else 0, str(ROOT))
        import customer_ai  # noqa: PLC0415
        from customer_ai import steps  # noqa: PLC0415

        print(f"customer_ai from {Path(customer_ai.__file__).parent} ({code})", flush=True)
        if not hasattr(steps, "_commit"):
            parser.error(f"{code} publishes without a sealed run folder (before issue 17): run its own bench/store.py")
        for size in args.profiles:
            scores = make_scores(size, args.seed, args.work)
            for kind in args.stores:
                runs = [time_write(kind, args.store, size, scores, args.work) for _ in range(args.repeats)]
                report(kind, size, runs)


def report(kind: str, size: int, runs: list[tuple[float, dict[str, float]]]) -> None:
    """Print the median total and per-phase seconds of the runs, with profiles per second."""
    total = statistics.median(t for t, _ in runs)
    shown = ", ".join(f"{t:.1f}" for t, _ in runs)
    print(f"{kind} {size:,} profiles: median {total:.2f} s ({shown}) = {size / total:,.0f} profiles/s", flush=True)
    for phase in PHASES:
        seconds = statistics.median(p.get(phase, 0.0) for _, p in runs)
        rate = f"{size / seconds:>12,.0f} profiles/s" if seconds > 0.005 else ""
        print(f"  {phase:26s} {seconds:7.2f} s {rate}", flush=True)


if __name__ == "__main__":
    main()
