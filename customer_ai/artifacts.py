"""Artifacts on disk: run folders that never change once published, and one immutable folder per trained model.

- Run folders live under ``<home>/artifacts/<instance>/<YYYY-MM-DD>/`` (the as-of date's folder).  A run is one
  *attempt* (an id such as ``cli-3f9c2a71b0`` for the command, ``af-...`` for an Airflow DAG run): it builds
  everything in its staging folder ``.<attempt>.staging`` there, and publishing first *seals* it, renaming it to a
  name of its own, ``<attempt>`` (``<attempt>.2``, ``.3``, ... when that attempt publishes again), then makes it
  current in the profile store in one transaction whose run row names it (``run_id``).  A sealed folder's files
  never change afterwards (only ``customer-ai report`` may write its ``report.html`` again, whole, to show what
  came true since); readers find a run's folder only through the store, so a folder nothing points at (a run
  killed before its commit, a run replaced by a re-run of its date) is invisible to them, and the next run of
  that date removes it.  What a run reads and produces: ``events/part-NNNNN.parquet``, ``source.json``,
  ``training_set.parquet``, ``training_events.parquet``, ``plan.json``, ``model.json``, ``evaluation.json``,
  ``scores.parquet``, ``segments.parquet``, ``outcomes.parquet``, ``validation/*.json``, ``report.html`` and
  ``metadata.json``.  Each file is written beside its final name and renamed into place, so a reader never sees
  half a file.
- Model folder ``<home>/models/<instance>/<model_version>/``: ``model.txt`` (LightGBM), ``model.json`` (versions,
  hashes, windows, label counts, features, parameters, calibration, validation metrics, quality) and
  ``evaluation.json``.  The version is a content hash, so a folder never changes once written; runs refer to it by
  version.  A folder whose files do not read back (JSON that does not parse or lacks a key, a ``model.txt`` whose
  content no longer matches its version) is *broken*: it is moved aside to ``<model_version>.broken-<UTC time>``,
  kept for inspection and never used again, and the run that found it trains a new model instead.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import platform
import re
import secrets
import shutil
import tempfile
from dataclasses import asdict
from importlib import metadata as importlib_metadata
from pathlib import Path

import lightgbm as lgb
import pandas as pd

from customer_ai.estimator import MODEL_KEYS, VALUE_MODEL_FILE, PropensityModel, read_model_text
from customer_ai.files import (
    FOLDER_MODE,
    FileContentError,
    copy_dir,
    read_frame,
    read_json,
    read_json_object,
    read_row_groups,
    release_memory,
    reset_dir,
    write_frame,
    write_frames,
    write_json,
)
from customer_ai.home import as_path, fetch_tree, is_local, move, put, remove_tree
from customer_ai.model import TrainedModel
from customer_ai.progress import logger
from customer_ai.spec import InstanceSpec
from customer_ai.timing_model import TIMING_MODEL_FILE, TimingModel
from customer_ai.value_model import ValueModel

__all__ = [
    "DEFAULT_ATTEMPT",
    "EVALUATION_KEYS",
    "MODEL_FILE_KEYS",
    "BrokenModelError",
    "attempt_id",
    "clear_abandoned",
    "copy_dir",
    "date_dir",
    "default_home",
    "load_model",
    "model_dir",
    "model_folders",
    "model_problem",
    "model_version",
    "new_attempt_id",
    "next_seal",
    "package_versions",
    "published_folders",
    "read_frame",
    "read_row_groups",
    "read_json",
    "read_json_object",
    "release_memory",
    "reset_dir",
    "run_dir",
    "save_model",
    "seal",
    "sealed_runs",
    "set_aside",
    "staging_dir",
    "usable_model",
    "write_frame",
    "write_frames",
    "write_json",
]

_PACKAGES = ("customer-ai", "lightgbm", "pandas", "numpy", "pyarrow", "scikit-learn", "scipy", "pydantic")


class BrokenModelError(RuntimeError):
    """A stored model whose files do not read back; its folder was moved aside and is never used again."""


def default_home() -> Path:
    """Return the home: ``$CUSTOMER_AI_HOME`` (a folder, or a bucket: ``s3://bucket/x``), else ``~/.customer-ai``."""
    return as_path(os.environ.get("CUSTOMER_AI_HOME") or Path.home() / ".customer-ai")


def package_versions() -> dict[str, str]:
    """Return the versions of Python and the packages a model depends on."""
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


DEFAULT_ATTEMPT = "local"  # the attempt of steps called one by one, without an attempt id of their own
# an attempt id is a kind and 10 hex digits (``cli-3f9c2a71b0``), or the default one; nothing else in a date's
# folder (a legacy run's ``validation/`` or ``scoring/``, a user's notes) can be taken for a run or staging folder
_ATTEMPT_TEXT = rf"(?:[a-z]+-[0-9a-f]{{10}}|{DEFAULT_ATTEMPT})"
_ATTEMPT = re.compile(_ATTEMPT_TEXT)
_RUN_ID = re.compile(rf"(?P<attempt>{_ATTEMPT_TEXT})(?:\.(?P<seal>[1-9][0-9]*))?")
_STAGING = re.compile(rf"\.(?P<attempt>{_ATTEMPT_TEXT})\.staging")


def new_attempt_id(kind: str = "cli") -> str:
    """Return a fresh attempt id, ``<kind>-<10 random hex digits>`` (``kind``: lowercase letters)."""
    return _checked_attempt(f"{kind}-{secrets.token_hex(5)}")


def attempt_id(*parts: str, kind: str = "af") -> str:
    """Return the attempt id of something that names itself, such as an Airflow DAG run (its DAG id and run id).

    The same parts always give the same id, so every task and every retry of one DAG run works in one attempt.
    """
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()
    return _checked_attempt(f"{kind}-{digest[:10]}")


def _checked_attempt(attempt: str) -> str:
    if not _ATTEMPT.fullmatch(attempt):
        raise ValueError(f"attempt id {attempt!r} is neither a kind and 10 hex digits (cli-3f9c2a71b0) nor 'local'")
    return attempt


def date_dir(home: Path, instance: str, as_of: pd.Timestamp) -> Path:
    """Return the folder of an as-of date's run folders (and of their attempts' staging folders)."""
    return as_path(home) / "artifacts" / instance / f"{as_of:%Y-%m-%d}"


def run_dir(home: Path, instance: str, as_of: pd.Timestamp, run_id: str) -> Path:
    """Return the sealed run folder ``run_id`` of an as-of date.

    An empty ``run_id`` is a run published before run folders had names of their own: its folder is the date's.

    Raises
    ------
    ValueError
        When ``run_id`` is not a run folder's name (a store row is never trusted to build a path).
    """
    if not run_id:
        return date_dir(home, instance, as_of)
    if not _RUN_ID.fullmatch(run_id):
        raise ValueError(f"{run_id!r} is not the name of a run folder")
    return date_dir(home, instance, as_of) / run_id


def staging_dir(home: Path, instance: str, as_of: pd.Timestamp, attempt: str = DEFAULT_ATTEMPT) -> Path:
    """Return the folder an attempt builds its run in until it is sealed (hidden: no reader lists it)."""
    return date_dir(home, instance, as_of) / f".{_checked_attempt(attempt)}.staging"


def sealed_runs(home: Path, instance: str, as_of: pd.Timestamp, attempt: str) -> list[Path]:
    """Return the sealed run folders of one attempt, in the order they were sealed."""
    folder = date_dir(home, instance, as_of)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        named = _RUN_ID.fullmatch(path.name)
        if named and named["attempt"] == attempt and path.is_dir():
            found.append((int(named["seal"] or 1), path))
    return [path for _, path in sorted(found)]


def next_seal(staging: Path, attempt: str) -> Path:
    """Return the name an attempt's staging folder takes when sealed: ``<attempt>``, then ``<attempt>.2``, ...

    The number follows the attempt's highest sealed folder still there (not the first free one), so a name whose
    folder was removed is not given to other content while a later seal of the attempt exists.  Known before
    sealing, so that the run's metadata can name its folder.
    """
    staging = as_path(staging)
    numbers = [0]
    for path in staging.parent.iterdir():
        named = _RUN_ID.fullmatch(path.name)
        if named and named["attempt"] == attempt:
            numbers.append(int(named["seal"] or 1))
    seal_number = max(numbers) + 1
    return staging.with_name(attempt if seal_number == 1 else f"{attempt}.{seal_number}")


def seal(staging: Path, final: Path) -> Path:
    """Rename an attempt's finished staging folder to its sealed name ``final`` (see :func:`next_seal`).

    The rename is one step: the sealed folder appears whole, and it is never written again.  Returns ``final``.

    Raises
    ------
    FileExistsError
        When ``final`` exists (a sealed folder is never replaced).
    """
    final = as_path(final)
    if final.exists():
        raise FileExistsError(f"{final} exists: a sealed run folder is never replaced")
    move(as_path(staging), final)  # in a bucket a copy, then a removal: nothing points at either before the commit
    return final


def clear_abandoned(home: Path, instance: str, as_of: pd.Timestamp, keep: set[str]) -> list[str]:
    """Remove the run folders of an as-of date that nothing points at, and every attempt's staging folder.

    ``keep`` holds the run ids the store points at (the published run of the date).  Files of a run published
    before run folders had names (directly in the date's folder) are left alone, as is everything else that is
    not a run or staging folder.  Returns the names removed.
    """
    folder = date_dir(home, instance, as_of)
    removed = []
    legacy = folder.parent / f".{as_of:%Y-%m-%d}.staging"  # the staging folder of earlier versions
    if legacy.is_dir():
        remove_tree(legacy)
        removed.append(legacy.name)
    if not folder.is_dir():
        return removed
    for path in sorted(folder.iterdir()):
        if not path.is_dir() or path.name in keep:
            continue
        if _STAGING.fullmatch(path.name) or _RUN_ID.fullmatch(path.name):
            remove_tree(path)
            removed.append(path.name)
    return removed


def published_folders(home: Path, instance: str, runs: pd.DataFrame) -> dict[str, Path]:
    """Return the folder of each published run of ``runs`` (a store's ``read_runs``), by as-of date."""
    return {
        row.as_of: run_dir(home, instance, pd.Timestamp(row.as_of, tz="UTC"), row.run_id)
        for row in runs.itertuples(index=False)
    }


def model_dir(home: Path, instance: str, version: str) -> Path:
    """Return the folder of one trained model."""
    return as_path(home) / "models" / instance / version


_VERSION = re.compile(r"(?P<date>[0-9]{8})-(?P<digest>[0-9a-f]{10})")
MODEL_FILE_KEYS = (*MODEL_KEYS, "model_version", "as_of", "quality.status")  # what a run reads of a stored model
EVALUATION_KEYS = ("model_version", "scorers")


def _digest(
    model_text: bytes,
    slope: float,
    intercept: float,
    value: tuple[bytes, str] | None = None,
    timing: tuple[bytes, str] | None = None,
) -> str:
    digest = hashlib.sha256(model_text)
    digest.update(repr((slope, intercept)).encode())
    for extra in (value, timing):  # a goal's value or timing model: its trees and numbers (none: the hash as before)
        if extra is not None:
            digest.update(extra[0])
            digest.update(extra[1].encode())
    return digest.hexdigest()[:10]


def _timing_numbers(described: dict) -> str:
    """Return the text a timing model's grid and learned intervals (as ``model.json`` keeps them) add to the hash."""
    return repr(("timing", sorted(described["grid"].items()), described["learned_intervals"]))


def _value_numbers(scale: object, start: dict | None) -> str:
    """Return the text a value model's scale and start (as ``model.json`` keeps them) add to the version's hash."""
    kept = None if start is None else tuple(start[k] for k in ("feature", "per_window", "floor", "center"))
    return repr((scale, kept))


def model_version(
    model: TrainedModel, as_of: pd.Timestamp, value: ValueModel | None = None, timing: TimingModel | None = None
) -> str:
    """Return a version id from the as-of date and a hash of the model and its calibration (and value, timing model).

    The hash is that of the text ``model.txt`` holds (and ``value_model.txt`` with its scale, for a goal with a
    value; ``timing_model.txt`` with its grid, with timing), so a stored model's files can be checked against it.
    """
    text = model.booster.model_to_string(num_iteration=model.best_iteration).encode()
    held = None
    if value is not None:
        start = None if value.start is None else asdict(value.start)
        trees = value.booster.model_to_string(num_iteration=value.best_iteration).encode()
        held = (trees, _value_numbers(value.scale, start))
    timed = None
    if timing is not None:
        timed = (
            timing.booster.model_to_string(num_iteration=timing.best_iteration).encode(),
            _timing_numbers(timing.describe()),
        )
    return f"{as_of:%Y%m%d}-{_digest(text, model.calibration.slope, model.calibration.intercept, held, timed)}"


def model_folders(home: Path, instance: str) -> list[Path]:
    """Return the folders of an instance's stored models: those named by a model version, in name order.

    Staging folders (hidden), folders moved aside as broken and anything else are left out.
    """
    parent = as_path(home) / "models" / instance
    if not parent.is_dir():
        return []
    return sorted(p for p in parent.iterdir() if _VERSION.fullmatch(p.name) and p.is_dir())


def model_problem(folder: Path, *, version: str | None = None, evaluation: bool = False) -> str | None:
    """Say what is wrong with a stored model folder, or return None when its files read back whole.

    ``model.json`` must be a JSON object with every key a model needs (:data:`customer_ai.estimator.MODEL_KEYS`)
    and name the folder's version; ``model.txt`` must be a whole LightGBM model holding exactly the text the
    version hashes (with the calibration), so a file cut short or changed in any byte is found without handing it
    to LightGBM, which can crash the process on one; ``evaluation.json``, when there is one (or always, with
    ``evaluation``), must be a JSON object naming the version, with its ``scorers``.  The answer names the file
    and what is wrong with it.

    Parameters
    ----------
    folder : pathlib.Path
        The model's folder.
    version : str, optional
        The version the files must match (default: the folder's name).
    evaluation : bool
        Whether ``evaluation.json`` must be there.

    Raises
    ------
    OSError
        When a file cannot be read at all (``PermissionError``, ...): that is the machine, not the folder.
    """
    folder = as_path(folder)
    version = folder.name if version is None else version
    if not is_local(folder):
        return _bucket_model_problem(folder, version, evaluation=evaluation)
    try:
        meta = read_json_object(folder / "model.json", (*MODEL_KEYS, "model_version"))
        if meta["model_version"] != version:
            return f"{folder / 'model.json'}: names the version {meta['model_version']!r}, not {version!r}"
        text = read_model_text(folder / "model.txt")
        named = _VERSION.fullmatch(version)
        calibration = meta["calibration"]
        value = meta.get("value")
        held = None
        if isinstance(value, dict):
            numbers = _value_numbers(value.get("scale"), value.get("start"))
            held = (read_model_text(folder / VALUE_MODEL_FILE).encode(), numbers)
        timing, timed = meta.get("timing"), None
        if isinstance(timing, dict):
            timed = (read_model_text(folder / TIMING_MODEL_FILE).encode(), _timing_numbers(timing))
        digest = _digest(text.encode(), calibration["slope"], calibration["intercept"], held, timed)
        if named is None or digest != named["digest"]:
            return (
                f"{folder / 'model.txt'}: its content (with the calibration in model.json) hashes to {digest}, not "
                f"to the version's {named['digest'] if named else version!r}: a file changed after it was written"
            )
        path = folder / "evaluation.json"
        if evaluation or path.exists():
            held = read_json_object(path, EVALUATION_KEYS)
            if held["model_version"] != version:
                return f"{path}: names the version {held['model_version']!r}, not {version!r}"
    except FileContentError as exc:
        return str(exc)
    return None


def set_aside(folder: Path, problem: str) -> Path | None:
    """Move a broken model folder aside to ``<name>.broken-<UTC time>`` and say so in the log; return its new path.

    The new name is not a model version: the folder is never listed, reused or loaded again, and stays for
    inspection.  Returns None when the folder is gone already (another process moved it first).
    """
    folder = as_path(folder)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = folder.with_name(f"{folder.name}.broken-{stamp}")
    number = 1
    while target.exists():
        number += 1
        target = folder.with_name(f"{folder.name}.broken-{stamp}-{number}")
    try:
        move(folder, target)
    except FileNotFoundError:
        return None
    logger.warning(
        "model %s is broken: %s; its folder was moved aside to %s (kept for inspection, never used again)",
        folder.name,
        problem,
        target,
    )
    return target


def usable_model(folder: Path, *, evaluation: bool = False) -> bool:
    """Return whether a stored model folder reads back whole; move it aside (:func:`set_aside`) when it does not."""
    problem = model_problem(folder, evaluation=evaluation)
    if problem is None:
        return True
    set_aside(folder, problem)
    return False


def save_model(
    home: Path, instance: str, estimator: PropensityModel, metadata: dict, evaluation: dict | None = None
) -> Path:
    """Store a fitted model under its version, atomically; an existing folder of that version is kept.

    ``metadata`` must hold ``model_version`` (:func:`model_version` of the model); the model adds what it is (see
    :meth:`PropensityModel.describe`).  ``evaluation`` (the held-out evaluation, see
    :func:`customer_ai.backtest.held_out_evaluation`) is stored as ``evaluation.json`` in the same folder, which
    appears whole or not at all.  An existing folder of the version that is broken (see :func:`model_problem`)
    is moved aside and written afresh.

    Raises
    ------
    OSError
        When the files cannot be written (a full disk: ``errno.ENOSPC``, naming the file).
    """
    folder = model_dir(home, instance, metadata["model_version"])
    if folder.exists():
        problem = model_problem(folder, evaluation=evaluation is not None)
        if problem is None:
            return folder
        set_aside(folder, problem)
    if not is_local(folder):
        return _save_bucket_model(folder, estimator, metadata, evaluation)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        staging.chmod(FOLDER_MODE)  # mkdtemp's 0700 would hide the model from other users of a shared home
        _write_checked(staging, folder.name, estimator, metadata, evaluation)
        try:
            staging.rename(folder)
        except OSError:  # another process stored the same version first
            if not (folder / "model.json").exists():
                raise
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def _bucket_model_problem(folder: Path, version: str, *, evaluation: bool) -> str | None:
    """:func:`model_problem` of a model folder in a bucket: checked on a local copy, named by its bucket path."""
    if not (folder / "model.json").exists():
        return f"{folder / 'model.json'}: is missing"
    local = fetch_tree(folder)
    problem = model_problem(local, version=version, evaluation=evaluation)
    return None if problem is None else problem.replace(str(local), str(folder))


def _save_bucket_model(folder: Path, estimator: PropensityModel, metadata: dict, evaluation: dict | None) -> Path:
    """:func:`save_model` into a bucket: written and checked locally, then stored, ``model.json`` last.

    A folder without its ``model.json`` is not a usable model (:func:`model_problem`), so a run that dies while
    storing it leaves nothing that could be used.
    """
    with tempfile.TemporaryDirectory(prefix="customer-ai-model-") as local:
        staging = Path(local)
        _write_checked(staging, folder.name, estimator, metadata, evaluation)
        names = sorted(p.name for p in staging.iterdir())
        for name in [*(n for n in names if n != "model.json"), "model.json"]:
            put(staging / name, folder / name)
    return folder


def _write_checked(
    staging: Path, version: str, estimator: PropensityModel, metadata: dict, evaluation: dict | None
) -> None:
    """Write a model's files into the local folder ``staging`` and check that they read back as ``version``."""
    _write_model(staging, estimator, metadata)
    if evaluation is not None:
        write_json(staging / "evaluation.json", evaluation)
    problem = model_problem(staging, version=version, evaluation=evaluation is not None)
    if problem is not None:
        raise RuntimeError(f"the model written for version {version} does not read back: {problem}")


def _write_model(staging: Path, estimator: PropensityModel, metadata: dict) -> None:
    """Write the model's files; a write the machine refuses raises ``OSError`` naming the file and its errno."""
    try:
        estimator.save(staging, metadata)
    except lgb.basic.LightGBMError as exc:
        if not str(exc).startswith("Cannot write"):
            raise
        # LightGBM says "Cannot write binary data to ..., wrote N of M bytes", without the reason: the same write
        # made by Python meets the same fault (a full disk, a file size limit) and names it
        path = staging / "model.txt"
        model = estimator.model_
        try:
            path.write_text(model.booster.model_to_string(num_iteration=model.best_iteration), encoding="utf-8")
        except OSError as fault:
            if fault.errno is None:
                raise
            raise OSError(fault.errno, os.strerror(fault.errno), str(path)) from exc
        raise  # the fault is gone: LightGBM's own error stands


def load_model(folder: Path, spec: InstanceSpec) -> tuple[PropensityModel, dict]:
    """Load a model stored with :func:`save_model`; return it with its metadata.

    Raises
    ------
    BrokenModelError
        When its files do not read back (see :func:`model_problem`); the folder was moved aside, so the next run
        trains a new model.
    """
    folder = as_path(folder)
    problem = model_problem(folder)
    if problem is None:
        try:
            return PropensityModel.load(folder if is_local(folder) else fetch_tree(folder), spec)
        except FileContentError as exc:
            problem = str(exc)
    moved = set_aside(folder, problem) if folder.exists() else None
    where = f"; its folder was moved aside to {moved}" if moved else ""
    raise BrokenModelError(f"model {folder.name} is broken: {problem}{where}; run again to train a new model")
