"""What the report reads of a run folder: its files (:class:`_RunFiles`) and the instance's published runs.

The model and the scores are required; the source summary, the evaluation, the tracked outcomes, the metadata
and the validation results are optional and None when absent, so that a run's staging folder can be reported on
too.  The instance's published runs are found through the store (:func:`_published_folders`).

Of the scores only the columns the sections use are held (:data:`SCORE_COLUMNS`): the factors, hundreds of bytes
per profile, are read by the factors section alone, and only for a bounded sample of rows (:func:`read_sample`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from customer_ai import artifacts
from customer_ai.home import fetch
from customer_ai.outcomes import read_tracked

SCORE_COLUMNS = ["probability", "score", "bucket"]  # what the report reads of every profile's score


@dataclass
class _RunFiles:
    """The files of a run folder that the report reads; optional ones are None when absent."""

    folder: Path
    model: dict
    scores: pd.DataFrame  # the SCORE_COLUMNS of every profile
    scores_file: Path  # a local copy of scores.parquet (fetched once), for the factors' sampled read
    source: dict | None
    evaluation: dict | None
    metadata: dict | None
    drift: dict | None
    validation: dict[str, dict | None]
    tracked: dict[str, pd.DataFrame]  # outcomes of past runs this run found, by their as-of date

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
        return cls(
            folder=folder,
            model=artifacts.read_json(folder / "model.json"),
            scores=pd.read_parquet(scores_file, columns=SCORE_COLUMNS),
            scores_file=scores_file,
            source=optional("source.json"),
            evaluation=optional("evaluation.json"),
            metadata=optional("metadata.json"),
            drift=optional("drift.json"),
            validation={stage: optional(f"validation/{stage}.json") for stage in ("events", "training_set", "scores")},
            tracked=read_tracked(folder),
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
