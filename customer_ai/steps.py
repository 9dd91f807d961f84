"""A run's steps over the files of its run folder: one function per Airflow task, also chained by the command.

validate_events -> build_training_set -> train (or reuse the current model) -> quality_gate -> score
-> validate_scores -> enrich_profiles -> publish.

Each step takes the spec, the as-of date and the home folder, reads what earlier steps wrote in the run folder
(see :mod:`customer_ai.artifacts`) and returns a small JSON-ready dict (what Airflow passes on as XCom).  The
first step copies the events in ``[history_start, as_of)`` into the run folder, so no later step can see an
event at or after the as-of date.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from customer_ai import artifacts
from customer_ai.evaluation import quality_verdict
from customer_ai.events import load_event_table
from customer_ai.features import FeaturePlan, feature_infos
from customer_ai.pipeline import (
    CALIBRATION_NOTE,
    TrainingSet,
    build_training_set,
    load_attributes,
    load_events,
    score_profiles,
    train_model,
)
from customer_ai.progress import logger, step
from customer_ai.spec import InstanceSpec
from customer_ai.validation import validate_frame
from customer_ai.windows import history_start, in_window

__all__ = [
    "QualityGateError",
    "RunResult",
    "build_training_set_step",
    "enrich_profiles",
    "find_reusable_model",
    "publish",
    "quality_gate",
    "read_scores",
    "run",
    "score",
    "train",
    "validate_events",
    "validate_scores",
]

# how far in the future of the wall clock an event may lie before it counts as bad data (clock skew)
FUTURE_TOLERANCE = pd.Timedelta(days=1)


class QualityGateError(RuntimeError):
    """The model failed the quality gate; the reason is the message."""


def _folder(spec: InstanceSpec, as_of: pd.Timestamp, home: Path) -> Path:
    return artifacts.run_dir(home, spec.name, as_of)


def _suites(spec: InstanceSpec, stage: str) -> list[Path]:
    return [spec.resolve(p) for p in getattr(spec.validation, stage)]


def _run_window(spec: InstanceSpec, as_of: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
    training = spec.training
    start = history_start(
        as_of, spec.eligibility.lookback_days, spec.goal.window_days, training.snapshots, training.snapshot_every_days
    )
    return start, as_of


def load_source_events(
    spec: InstanceSpec, as_of: pd.Timestamp, *, events_path: Path | None = None, dsn: str | None = None
) -> pd.DataFrame:
    """Load the instance's events (or a canonical file replacing them); database reads stop at ``as_of``.

    Parameters
    ----------
    spec : InstanceSpec
        The instance.
    as_of : pandas.Timestamp
        The run's as-of date.
    events_path : pathlib.Path, optional
        A canonical event file used instead of the instance's source.
    dsn : str, optional
        Connection string of the database holding ``events.table``.
    """
    if events_path is not None or spec.events.path is not None:
        return load_events(spec, events_path)
    if not dsn:
        raise ValueError(
            f"instance {spec.name}: events come from table {spec.events.table!r} but no database connection was "
            f"given (connection {spec.events.connection!r})"
        )
    start, end = _run_window(spec, as_of)
    return load_event_table(dsn, spec.events.table, spec.events.columns, start=start, end=end)


def validate_events(
    spec: InstanceSpec,
    as_of: pd.Timestamp,
    home: Path,
    *,
    events_path: Path | None = None,
    dsn: str | None = None,
    now: pd.Timestamp | None = None,
) -> dict:
    """Load the events, validate them (Great Expectations) and keep the run's window in the run folder.

    The run folder is emptied first: a re-run of the same as-of date starts from nothing.  Validation covers
    every loaded event, including events after the as-of date (a backfill legitimately has those), but refuses
    events in the future of the wall clock ``now``.
    """
    folder = artifacts.reset_dir(_folder(spec, as_of, home))
    events = load_source_events(spec, as_of, events_path=events_path, dsn=dsn)
    now = now if now is not None else pd.Timestamp.now(tz="UTC")
    with step("validating events"):
        summary = validate_frame(
            events,
            "events",
            parameters={"not_after": (now + FUTURE_TOLERANCE).isoformat()},
            extra_suites=_suites(spec, "events"),
            result_path=folder / "validation" / "events.json",
        )
    start, end = _run_window(spec, as_of)
    in_run = events.loc[in_window(events["timestamp"], start, end)]
    artifacts.write_frame(folder / "events.parquet", in_run.reset_index(drop=True))
    return {
        "events": len(in_run),
        "profiles": int(in_run["profile_id"].nunique()),
        "window": [f"{start:%Y-%m-%d}", f"{end:%Y-%m-%d}"],
        "last_event": None if in_run.empty else f"{in_run['timestamp'].max():%Y-%m-%dT%H:%M:%SZ}",
        "validation": summary,
    }


def _run_events(spec: InstanceSpec, as_of: pd.Timestamp, home: Path) -> pd.DataFrame:
    path = _folder(spec, as_of, home) / "events.parquet"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: run the validate_events step for {spec.name} as of {as_of:%Y-%m-%d}"
        )
    return pd.read_parquet(path)


def find_reusable_model(spec: InstanceSpec, as_of: pd.Timestamp, home: Path) -> dict | None:
    """Return the metadata of the newest good model that a run as of ``as_of`` may reuse, if any.

    A model qualifies when it was trained for the same model definition (``spec.model_hash()``), as of a date
    ``T'`` with ``as_of - retrain_every_days < T' <= as_of``, and meets the current quality gate.
    """
    days = spec.training.retrain_every_days
    if days == 0:
        return None
    candidates = []
    for path in (Path(home) / "models" / spec.name).glob("*/model.json"):
        meta = artifacts.read_json(path)
        trained = pd.Timestamp(meta["as_of"], tz="UTC")
        if (
            meta.get("model_hash") == spec.model_hash()
            and trained <= as_of < trained + pd.Timedelta(days=days)
            and quality_verdict(meta["validation"]["metrics"], spec.training.min_auc)[0] == "ok"
        ):
            candidates.append(meta)
    return max(candidates, key=lambda m: (m["as_of"], m["model_version"])) if candidates else None


def build_training_set_step(
    spec: InstanceSpec, as_of: pd.Timestamp, home: Path, *, force_retrain: bool = False
) -> dict:
    """Build and validate the training set, unless a model trained recently enough can be reused."""
    folder = _folder(spec, as_of, home)
    reusable = None if force_retrain else find_reusable_model(spec, as_of, home)
    if reusable is not None:
        logger.info(
            "retraining not due: reusing model %s trained as of %s", reusable["model_version"], reusable["as_of"]
        )
        result = {"skipped": True, "reuse": reusable["model_version"]}
        artifacts.write_json(folder / "plan.json", result)
        return result
    events = _run_events(spec, as_of, home)
    training_set = build_training_set(spec, events, as_of, load_attributes(spec))
    frame = pd.concat([training_set.labels, training_set.features], axis=1)
    with step("validating the training set"):
        summary = validate_frame(
            frame,
            "training_set",
            extra_suites=_suites(spec, "training_set"),
            result_path=folder / "validation" / "training_set.json",
        )
    artifacts.write_frame(folder / "training_set.parquet", frame)
    counts = training_set.counts()
    plan = {
        "skipped": False,
        "snapshots": [c["as_of"] for c in counts],
        "label_counts": counts,
        "plan": training_set.plan.to_dict(),
    }
    artifacts.write_json(folder / "plan.json", plan)
    return {
        "skipped": False,
        "rows": len(frame),
        "positives": sum(c["positives"] for c in counts),
        "negatives": sum(c["negatives"] for c in counts),
        "validation": summary,
    }


def _read_training_set(folder: Path) -> TrainingSet:
    plan = artifacts.read_json(folder / "plan.json")
    frame = pd.read_parquet(folder / "training_set.parquet")
    labels = frame[["profile_id", "as_of", "label"]].reset_index(drop=True)
    features = frame.drop(columns=["profile_id", "as_of", "label"]).reset_index(drop=True)
    return TrainingSet(
        labels=labels,
        features=features,
        plan=FeaturePlan.from_dict(plan["plan"]),
        snapshots=[pd.Timestamp(s, tz="UTC") for s in plan["snapshots"]],
    )


def train(spec: InstanceSpec, as_of: pd.Timestamp, home: Path) -> dict:
    """Train, calibrate and store a model from the run's training set, or point the run at the reused one.

    Writes ``model.json`` in the run folder (the model's metadata plus ``reused``) and, for a new model, the
    model folder under ``<home>/models``.  A poor model is stored too (for inspection) but marked so.
    """
    folder = _folder(spec, as_of, home)
    plan = artifacts.read_json(folder / "plan.json")
    if plan.get("skipped"):
        meta = artifacts.read_json(artifacts.model_dir(home, spec.name, plan["reuse"]) / "model.json")
        artifacts.write_json(folder / "model.json", {**meta, "reused": True})
        return _model_summary(meta, reused=True)
    training_set = _read_training_set(folder)
    model, metrics = train_model(spec, training_set)
    status, reason = quality_verdict(metrics, spec.training.min_auc)
    version = artifacts.model_version(model, as_of)
    infos = feature_infos(training_set.plan, spec)
    counts = plan["label_counts"]
    meta = {
        "instance": spec.name,
        "model_version": version,
        "as_of": f"{as_of:%Y-%m-%d}",
        "propensity": spec.propensity,
        "goal": spec.goal_in_words(),
        "spec_hash": spec.spec_hash(),
        "model_hash": spec.model_hash(),
        "spec": spec.model_dump(mode="json"),
        "created_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "versions": artifacts.package_versions(),
        "windows": {
            "features": f"[as_of - {spec.eligibility.lookback_days} days, as_of)",
            "label": f"[as_of, as_of + {spec.goal.window_days} days)",
            "snapshots": plan["snapshots"],
        },
        "label_counts": {
            "snapshots": counts,
            "positives": sum(c["positives"] for c in counts),
            "negatives": sum(c["negatives"] for c in counts),
        },
        "features": {
            "descriptions": {i.name: i.template for i in infos},
            "plan": training_set.plan.to_dict(),
        },
        "calibration_method": {"method": "platt", "why": CALIBRATION_NOTE},
        "validation": {"snapshot": plan["snapshots"][0], "metrics": metrics},
        "quality": {"status": status, "reason": reason, "min_auc": spec.training.min_auc},
    }
    stored = artifacts.save_model(home, spec.name, model, meta)
    meta = artifacts.read_json(stored / "model.json")
    artifacts.write_json(folder / "model.json", {**meta, "reused": False})
    return _model_summary(meta, reused=False)


def _gate(spec: InstanceSpec, min_auc: float | None) -> float:
    """Return the quality gate a run applies: the trigger's ``min_auc`` if given, else the instance's."""
    return spec.training.min_auc if min_auc is None else min_auc


def _bucket_counts(scores: pd.DataFrame) -> dict[str, int]:
    return {b: int((scores["bucket"] == b).sum()) for b in ("low", "medium", "high")}


def _model_summary(meta: dict, *, reused: bool) -> dict:
    metrics = meta["validation"]["metrics"]
    return {
        "model_version": meta["model_version"],
        "trained_as_of": meta["as_of"],
        "reused": reused,
        "quality": meta["quality"]["status"],
        "validation_auc": metrics["roc_auc"],
    }


def quality_gate(
    spec: InstanceSpec, as_of: pd.Timestamp, home: Path, store: object, *, min_auc: float | None = None
) -> dict:
    """Let a good model through; record a poor one's run in the store and stop with the reason.

    Raises
    ------
    QualityGateError
        When validation ROC AUC is below ``min_auc`` (default ``training.min_auc``); the store's current scores
        are left as they are.
    """
    meta = artifacts.read_json(_folder(spec, as_of, home) / "model.json")
    metrics = meta["validation"]["metrics"]
    status, reason = quality_verdict(metrics, _gate(spec, min_auc))
    if status != "ok":
        reason = f"model {meta['model_version']} is poor: {reason}; the previous scores are kept"
        store.record_run(  # type: ignore[attr-defined]
            spec.name,
            f"{as_of:%Y-%m-%d}",
            {"model_version": meta["model_version"], "status": "poor", "reason": reason, "metrics": metrics},
        )
        raise QualityGateError(reason)
    return {"status": status, "reason": reason, "model_version": meta["model_version"]}


def score(spec: InstanceSpec, as_of: pd.Timestamp, home: Path, *, factors: int | None = None) -> dict:
    """Score every profile eligible at ``as_of`` with the run's model; write ``scores.parquet``."""
    folder = _folder(spec, as_of, home)
    run_model = artifacts.read_json(folder / "model.json")
    model, meta = artifacts.load_model(artifacts.model_dir(home, spec.name, run_model["model_version"]))
    if factors is not None:
        spec = spec.model_copy(update={"output": spec.output.model_copy(update={"factors": factors})})
    plan = FeaturePlan.from_dict(meta["features"]["plan"])
    scores, _ = score_profiles(
        spec, model, plan, _run_events(spec, as_of, home), as_of, attributes=load_attributes(spec)
    )
    scores.insert(scores.columns.get_loc("factors"), "model_version", meta["model_version"])
    artifacts.write_frame(folder / "scores.parquet", scores)
    return {"scored_profiles": len(scores), "buckets": _bucket_counts(scores), "model_version": meta["model_version"]}


def read_scores(spec: InstanceSpec, as_of: pd.Timestamp, home: Path) -> pd.DataFrame:
    """Return the run's scores with ``factors`` as lists of dicts."""
    scores = pd.read_parquet(_folder(spec, as_of, home) / "scores.parquet")
    scores["factors"] = [json.loads(f) for f in scores["factors"]]
    return scores


def validate_scores(spec: InstanceSpec, as_of: pd.Timestamp, home: Path) -> dict:
    """Validate the run's scores (Great Expectations): ranges, buckets, one row per profile."""
    folder = _folder(spec, as_of, home)
    scores = pd.read_parquet(folder / "scores.parquet")
    return validate_frame(
        scores,
        "scores",
        extra_suites=_suites(spec, "scores"),
        result_path=folder / "validation" / "scores.json",
    )


def enrich_profiles(
    spec: InstanceSpec, as_of: pd.Timestamp, home: Path, store: object, *, min_auc: float | None = None
) -> dict:
    """Write the run's scores, history and run row to the profile store in one transaction.

    ``min_auc`` is the gate the run passed (the trigger's value, else ``training.min_auc``), quoted in the reason.
    """
    folder = _folder(spec, as_of, home)
    scores = read_scores(spec, as_of, home)
    meta = artifacts.read_json(folder / "model.json")
    _, reason = quality_verdict(meta["validation"]["metrics"], _gate(spec, min_auc))
    reason += f"; model trained as of {meta['as_of']}{', reused' if meta.get('reused') else ''}"
    with step(f"writing {len(scores):,} scores to {store}"):
        store.write_run(  # type: ignore[attr-defined]
            spec.name,
            f"{as_of:%Y-%m-%d}",
            scores,
            {
                "model_version": meta["model_version"],
                "status": "ok",
                "reason": reason,
                "metrics": meta["validation"]["metrics"],
            },
        )
    return {"written": len(scores), "store": repr(store)}


def publish(spec: InstanceSpec, as_of: pd.Timestamp, home: Path) -> dict:
    """Write the run's ``metadata.json`` (what was read, which model, what was scored) and return its summary."""
    folder = _folder(spec, as_of, home)
    model = artifacts.read_json(folder / "model.json")
    scores = pd.read_parquet(folder / "scores.parquet", columns=["bucket"])
    summary = {
        "instance": spec.name,
        "as_of": f"{as_of:%Y-%m-%d}",
        "propensity": spec.propensity,
        "goal": spec.goal_in_words(),
        "spec_hash": spec.spec_hash(),
        "model_version": model["model_version"],
        "model_trained_as_of": model["as_of"],
        "model_reused": bool(model.get("reused")),
        "validation": model["validation"],
        "quality": model["quality"],
        "scored_profiles": len(scores),
        "buckets": _bucket_counts(scores),
        "versions": artifacts.package_versions(),
        "artifacts": str(folder),
    }
    artifacts.write_json(folder / "metadata.json", summary)
    return {k: summary[k] for k in ("instance", "as_of", "model_version", "scored_profiles", "buckets", "artifacts")}


@dataclass
class RunResult:
    """What a whole run produced (see :func:`run`)."""

    scores: pd.DataFrame
    metadata: dict
    artifact_dir: Path
    written_to_store: bool

    @property
    def quality(self) -> str:
        """``ok`` or ``poor``."""
        return self.metadata["quality"]["status"]


def run(
    spec: InstanceSpec,
    as_of: pd.Timestamp,
    home: Path,
    store: object,
    *,
    events_path: Path | None = None,
    dsn: str | None = None,
    force_retrain: bool = True,
    factors: int | None = None,
) -> RunResult:
    """Run every step in order, as the command does: train as of ``as_of`` and score every eligible profile.

    A model that fails the quality gate is recorded as a ``poor`` run in the store; its scores are still
    computed and kept in the run folder for inspection but never replace the store's scores.
    """
    validate_events(spec, as_of, home, events_path=events_path, dsn=dsn)
    build_training_set_step(spec, as_of, home, force_retrain=force_retrain)
    train(spec, as_of, home)
    try:
        quality_gate(spec, as_of, home, store)
        passed = True
    except QualityGateError as exc:
        logger.warning("%s", exc)
        passed = False
    score(spec, as_of, home, factors=factors)
    validate_scores(spec, as_of, home)
    if passed:
        enrich_profiles(spec, as_of, home, store)
    publish(spec, as_of, home)
    folder = _folder(spec, as_of, home)
    return RunResult(
        scores=read_scores(spec, as_of, home),
        metadata=artifacts.read_json(folder / "metadata.json"),
        artifact_dir=folder,
        written_to_store=passed,
    )
