"""The steps of a run, declared once: the command's ``run`` and the Airflow DAG both follow this list.

This module imports nothing heavy: the DAG file reads it when Airflow parses it.  Each step is a function of
the same name in :mod:`customer_ai.steps` and an operator in ``customer_ai_airflow.operators``.  A poor model
stops a run at :data:`GATE`, in the command and in Airflow alike: nothing after it runs, the store keeps the
published runs and records the poor attempt.  The last step, ``publish``, is the run's commit point: nothing a
reader sees changes before it.  The step marked ``mapped`` runs once per scoring partition: the
step before it returns the partition numbers, which Airflow maps it over (dynamic task mapping) and the command
loops over.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GATE", "STEPS", "Step", "mapped_step", "step_names"]


@dataclass(frozen=True)
class Step:
    """One step of a run.

    Attributes
    ----------
    name : str
        The function in :mod:`customer_ai.steps` and the Airflow task id.
    summary : str
        What it does, in one line.
    retry : bool
        Whether a failure may be retried (infrastructure faults); False where retrying cannot help.
    mapped : bool
        Whether it runs once per scoring partition (its function takes the partition number) instead of once.
    heavy : bool
        Whether it holds the run's events, a training set or a partition's features in memory: what a pool of
        Airflow can cap the concurrency of (the others read and write small files and the store).
    """

    name: str
    summary: str
    retry: bool = True
    mapped: bool = False
    heavy: bool = False


GATE = "quality_gate"

STEPS: tuple[Step, ...] = (
    Step("validate_events", "load the events, validate them and keep those of the run's window", heavy=True),
    Step(
        "build_training_set",
        "label and build features at every snapshot, unless a recent model is reused",
        heavy=True,
    ),
    Step("train", "fit, calibrate and measure a model on held-out profiles, or point at the reused one", heavy=True),
    Step(GATE, "stop here if the model is poor: record the poor run, keep the previous scores", retry=False),
    Step("plan_scoring", "list the eligible profiles and split them into hash partitions", heavy=True),
    Step("score_partition", "score one partition's profiles with their influential factors", mapped=True, heavy=True),
    Step("combine_scores", "put the partitions together: percentiles and buckets over every scored profile"),
    Step("validate_scores", "validate the scores before anything is published"),
    Step("track_outcomes", "find what came true for past runs whose goal window has closed"),
    Step("write_report", "write the run's HTML report: model card, scores, factors, quality, outcomes"),
    Step(
        "publish",
        "seal the run folder, then make it current in the profile store in one transaction (scores, history, "
        "segments, outcomes, run row) and announce the fresh scores",
    ),
)


def step_names() -> list[str]:
    """Return the step names in run order."""
    return [s.name for s in STEPS]


def mapped_step() -> Step:
    """Return the step that runs once per scoring partition (the one after it returns the partitions)."""
    return next(s for s in STEPS if s.mapped)
