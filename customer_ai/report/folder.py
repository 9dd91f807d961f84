"""What the report reads of a run folder: its files (:class:`_RunFiles`) and the instance's published runs.

The model and the scores are required; the source summary, the evaluation, the tracked outcomes, the metadata
and the validation results are optional and None when absent, so that a run's staging folder can be reported on
too.  The instance's published runs are found through the store (:func:`_published_folders`).

No profile's score is held: the scores are summed up a row group (a partition) at a time into a
:class:`ScoreSummary` (profiles per score and bucket, the probabilities' sums, the score quantiles, found exactly by
:func:`customer_ai.quantiles.linear_quantiles`); the factors, hundreds of bytes per profile, are read by the factors
section alone, and only for a bounded sample of rows (:func:`read_sample`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from customer_ai import artifacts
from customer_ai.evaluation import expected_reach, window_rates
from customer_ai.home import fetch
from customer_ai.outcomes import read_tracked
from customer_ai.quantiles import linear_quantiles
from customer_ai.scoring import BUCKET_RULE_FILE, score_of
from customer_ai.spec import DEFAULT_SEGMENTS

SCORE_COLUMNS = ["probability", "bucket"]  # what the report reads of every profile's score, a row group at a time
BUCKETS = DEFAULT_SEGMENTS  # the buckets, low to high: each is also a segment of every run
QUANTILES = (10, 25, 50, 75, 90)  # the score percentiles the history shows


@dataclass(frozen=True)
class ScoreSummary:
    """What the report shows of a run's scores, added up a part (a row group) at a time.

    ``by_score`` counts the profiles per score (rows 0-100) and bucket (columns: :data:`BUCKETS`); ``sums`` adds
    up their probabilities per bucket; ``quantiles`` holds the score percentiles of :data:`QUANTILES` (``p10``,
    ... as ``np.percentile`` of every score, the probability in percent, gives them), NaN without profiles.
    """

    by_score: np.ndarray
    sums: dict[str, float]
    quantiles: dict[str, float]

    @property
    def profiles(self) -> int:
        """How many profiles were scored."""
        return int(self.by_score.sum())

    @property
    def buckets(self) -> dict[str, int]:
        """Profiles per bucket."""
        return {b: int(n) for b, n in zip(BUCKETS, self.by_score.sum(axis=0), strict=True)}

    @property
    def top(self) -> int | None:
        """The highest score (None without profiles)."""
        scored = np.flatnonzero(self.by_score.sum(axis=1))
        return int(scored[-1]) if len(scored) else None

    @classmethod
    def of(cls, parts: Callable[[], Iterable[pd.DataFrame]]) -> ScoreSummary:
        """Return the summary of scores in parts (frames with ``probability`` and ``bucket``; called once per pass).

        Raises
        ------
        ValueError
            For a bucket other than :data:`BUCKETS`.
        """
        by_score = np.zeros((101, len(BUCKETS)), dtype="int64")
        sums = dict.fromkeys(BUCKETS, 0.0)
        for part in parts():
            column = pd.Index(BUCKETS).get_indexer(part["bucket"])
            if (column < 0).any():
                raise ValueError(f"bucket {part['bucket'].iloc[int(np.argmax(column < 0))]!r} is not one of {BUCKETS}")
            probability = part["probability"].to_numpy(dtype="float64")
            np.add.at(by_score, (score_of(probability), column), 1)
            for at, bucket in enumerate(BUCKETS):
                sums[bucket] += float(probability[column == at].sum())
        profiles = int(by_score.sum())
        quantiles = dict.fromkeys((f"p{q}" for q in QUANTILES), float("nan"))
        if profiles:
            scores = lambda: (part["probability"].to_numpy(dtype="float64") * 100 for part in parts())  # noqa: E731
            found = linear_quantiles(scores, profiles, [q / 100 for q in QUANTILES])
            quantiles = {f"p{q}": float(value) for q, value in zip(QUANTILES, found, strict=True)}
        return cls(by_score=by_score, sums=sums, quantiles=quantiles)

    @classmethod
    def read(cls, path: Path) -> ScoreSummary:
        """Return the summary of a scores file (a local ``scores.parquet``), read a row group at a time."""
        return cls.of(lambda: artifacts.read_row_groups(path, SCORE_COLUMNS))


@dataclass
class _RunFiles:
    """The files of a run folder that the report reads; optional ones are None when absent."""

    folder: Path
    model: dict
    scores: ScoreSummary  # what the sections show of every profile's score
    scores_file: Path  # a local copy of scores.parquet (fetched once), for the factors' sampled read
    expected: dict | None  # how many profiles are expected to reach the goal (expected_reach); None: not known
    source: dict | None
    evaluation: dict | None
    metadata: dict | None
    drift: dict | None
    validation: dict[str, dict | None]
    tracked: dict[str, pd.DataFrame]  # outcomes of past runs this run found, by their as-of date
    bucket_rule: dict | None = None  # the rule the run's buckets followed (scoring.BucketRule); None: not kept

    @classmethod
    def read(cls, folder: Path) -> _RunFiles:
        for required in ("model.json", "scores.parquet"):
            if not (folder / required).exists():
                raise FileNotFoundError(
                    f"{folder / required} is missing: a report needs a run folder whose model was trained and "
                    "whose profiles were scored"
                )

        def optional(name: str) -> dict | None:
            path = folder / name
            return artifacts.read_json(path) if path.exists() else None

        scores_file = fetch(folder / "scores.parquet")
        model = artifacts.read_json(folder / "model.json")
        rates = window_rates(model.get("label_counts", {}).get("snapshots", []))
        parts = (part["probability"].to_numpy() for part in artifacts.read_row_groups(scores_file, ["probability"]))
        return cls(
            folder=folder,
            model=model,
            scores=ScoreSummary.read(scores_file),
            scores_file=scores_file,
            expected=expected_reach(parts, rates),
            source=optional("source.json"),
            evaluation=optional("evaluation.json"),
            metadata=optional("metadata.json"),
            drift=optional("drift.json"),
            validation={stage: optional(f"validation/{stage}.json") for stage in ("events", "training_set", "scores")},
            tracked=read_tracked(folder),
            bucket_rule=optional(BUCKET_RULE_FILE),
        )


def _published_folders(instance: str, home: Path, runs: pd.DataFrame | None) -> dict[str, Path]:
    """Return the folder of each published run (``runs``, the store's ``read_runs``; None: none), by as-of date."""
    return {} if runs is None else artifacts.published_folders(home, instance, runs)


def read_sample(path: Path, columns: list[str], size: int) -> pd.DataFrame:
    """Return the rows of a Parquet file that ``DataFrame.sample(size, random_state=0)`` picks of it, in its order.

    The file is read one row group at a time and only the picked rows of each are kept, so that memory holds the
    sample and one row group's ``columns``, never the whole file's.

    Parameters
    ----------
    path : pathlib.Path
        A local Parquet file (one written with its default index, whose rows are labelled by their positions).
    columns : list of str
        The columns to read.
    size : int
        How many rows to pick; a file of at most ``size`` rows is read whole, in its order.

    Returns
    -------
    pandas.DataFrame
        ``pd.read_parquet(path, columns=columns)`` when the file has at most ``size`` rows, else
        ``pd.read_parquet(path, columns=columns).sample(size, random_state=0)``: the same rows, order and index.
    """
    file = pq.ParquetFile(path)
    rows = file.metadata.num_rows
    if rows <= size:
        return pd.read_parquet(path, columns=columns)
    # the positions DataFrame.sample draws (pandas.core.sample.sample, with np.random.RandomState(random_state))
    positions = np.random.RandomState(0).choice(rows, size=size, replace=False)
    ascending = np.sort(positions)
    kept = []
    start = 0
    for group in range(file.num_row_groups):
        stop = start + file.metadata.row_group(group).num_rows
        first, last = np.searchsorted(ascending, [start, stop])
        if last > first:
            kept.append(file.read_row_group(group, columns=columns).take(ascending[first:last] - start))
        start = stop
    # kept holds the picked rows in the file's order; searchsorted gives each drawn position's place among them
    frame = pa.concat_tables(kept).take(np.searchsorted(ascending, positions)).to_pandas()
    frame.index = pd.Index(positions)
    return frame
