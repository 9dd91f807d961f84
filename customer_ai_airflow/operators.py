"""Thin operators: each stores its arguments and, in ``execute``, calls one step of :mod:`customer_ai.steps`.

Every task works "as of" its run's date: the data interval end (the logical date for manual runs) at
midnight UTC, so a backfill reproduces what would have been scored then.  The tasks of one DAG run are one attempt
of the run (:func:`attempt_of`): they share its staging folder, and every failed try of a task leaves a row in the
store's attempts.  Heavy imports (pandas, LightGBM, Great Expectations) happen inside ``execute``, never when the
DAG file is parsed.  Bad data and a poor model fail their task at once (no retries: retrying cannot fix them);
infrastructure errors (a database that is down) are retried with back-off.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from customer_ai_airflow.run_notes import run_as_of

__all__ = [
    "BuildTrainingSetOperator",
    "CombineScoresOperator",
    "CustomerAIOperator",
    "InvalidInstanceOperator",
    "PlanScoringOperator",
    "STEP_OPERATORS",
    "PublishScoresOperator",
    "QualityGateOperator",
    "ScorePartitionOperator",
    "TrackOutcomesOperator",
    "TrainModelOperator",
    "ValidateEventsOperator",
    "ValidateScoresOperator",
    "WriteReportOperator",
    "as_of_from_context",
    "attempt_of",
]


def as_of_from_context(context: Any):  # noqa: ANN201 - a pandas Timestamp, imported lazily
    """Return the run's as-of date, midnight UTC.

    A manual run triggered with ``as_of`` in its configuration (the trigger form's field, or ``conf``) is as of
    that date; when it is empty, and for every other run (scheduled, backfill), the as-of date is the data
    interval end, else the logical date, else ``run_after``.

    Raises
    ------
    AirflowFailException
        When the given ``as_of`` is not a ``YYYY-MM-DD`` date (not retried: retrying cannot fix it).
    """
    from customer_ai.windows import as_of_timestamp

    run = context.get("dag_run")
    as_of = run_as_of(
        getattr(run, "run_type", None),
        getattr(run, "conf", None),
        context.get("data_interval_end"),
        context.get("logical_date"),
        getattr(run, "run_after", None),
    )
    try:
        return as_of_timestamp(as_of)
    except ValueError as exc:
        raise AirflowFailException(f"trigger parameter as_of: {exc}") from None


def attempt_of(context: Any) -> str:  # noqa: ANN401
    """Return the attempt id of the task's DAG run: the same for every task and every try of that run."""
    from customer_ai.artifacts import attempt_id

    run = context["dag_run"]
    return attempt_id(run.dag_id, run.run_id)


def _try_number(context: Any) -> int:  # noqa: ANN401
    ti = context.get("ti") or context.get("task_instance")
    number = getattr(ti, "try_number", None)
    return number if isinstance(number, int) and number > 0 else 1


class CustomerAIOperator(BaseOperator):
    """Base of the step operators.

    Parameters
    ----------
    instance_path : str
        The instance YAML file.  The run's first task reads it and freezes the definition into the run's folder;
        every later task of the run uses that frozen copy, so an edit of the file during a run changes nothing
        of it (:func:`customer_ai.steps.run_definition`).
    instance_name : str, optional
        The instance's name, which locates the run's folder; read from the file when not given.
    """

    ui_color = "#e8f1fb"
    starts_the_run = False  # the run's first task waits for the run lock while another run holds it
    template_fields: Sequence[str] = ("instance_path",)  # e.g. "{{ var.value.customer_ai_instances }}/x.yaml"

    def __init__(self, *, instance_path: str, instance_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.instance_path = instance_path
        self.instance_name = instance_name

    def execute(self, context: Any) -> dict | list:
        """Load the run's definition and as-of date, then run this operator's step holding the instance's run lock.

        A failure is recorded in the store's attempts; the run's last failure (not retried) frees the run lock.
        """
        from customer_ai.artifacts import BrokenModelError, default_home
        from customer_ai.home import clear_downloads
        from customer_ai.run_lock import holding, lock_minutes
        from customer_ai.store.lease import RunInProgressError, dag_scope

        as_of = as_of_from_context(context)
        attempt = attempt_of(context)
        home = default_home()
        spec = self.definition(home, as_of, attempt)
        self.log.info("%s as of %s, attempt %s (%s)", spec.name, f"{as_of:%Y-%m-%d}", attempt, self.instance_path)
        run = context["dag_run"]
        minutes = lock_minutes()
        origin = f"Airflow DAG run {run.dag_id} / {run.run_id}, task {self.task_id}"
        try:
            with holding(
                self.open_store(home),
                spec.name,
                attempt,
                origin,
                dag_scope(run.dag_id),
                minutes=minutes,
                wait_seconds=minutes * 60 + 30 if self.starts_the_run else 0.0,  # a dead run's lease expires
                release=False,  # the next task of the run takes it on; the commit frees it
            ):
                return self.run_step(spec, as_of, home, context, attempt)
        except Exception as exc:
            if not _is_poor(exc):  # a poor model is recorded by the quality gate itself
                self._record_failure(spec, as_of, home, attempt=attempt, error=exc, try_number=_try_number(context))
            error: Exception = exc
            if isinstance(exc, RunInProgressError) and not self.starts_the_run:  # taken over: retrying cannot help
                error = AirflowFailException(f"this run lost its run lock (its lease expired): {exc}")
            elif isinstance(exc, BrokenModelError):  # set aside already: a retry of this task cannot find it again
                error = AirflowFailException(f"{exc}; trigger the run again: it trains a new model")
            if isinstance(error, AirflowFailException) or _try_number(context) > (self.retries or 0):
                self._release(home, spec.name, attempt)  # the run ends here: the next need not wait for the lease
            if error is exc:
                raise
            raise error from exc
        finally:
            clear_downloads()  # a worker keeps no task's copies of bucket files

    def _release(self, home, instance: str, attempt: str) -> None:  # noqa: ANN001
        """Free the run lock of the attempt that ends here; a store that cannot be reached is only logged."""
        try:
            self.open_store(home).release_lock(instance, attempt)
        except Exception as unreachable:  # the lease then expires by itself
            self.log.warning("the run lock could not be freed (it expires by itself): %s", unreachable)

    def _record_failure(self, spec, as_of, home, *, attempt: str, error: Exception, try_number: int) -> None:  # noqa: ANN001
        """Append this try's failure to the store's attempts; a store that cannot be opened is only logged."""
        from customer_ai.steps import record_failure

        try:
            store = self.open_store(home)
        except Exception as unreachable:  # the step's own error is what fails the task
            self.log.warning("the failure could not be recorded in the store: %s", unreachable)
            return
        step_name = self.task_id.split(".")[-1]
        record_failure(spec, as_of, store, attempt=attempt, step_name=step_name, error=error, try_number=try_number)

    def definition(self, home, as_of, attempt: str):  # noqa: ANN001, ANN201 - Path, Timestamp -> InstanceSpec
        """Return the definition the run froze at its first task (a task that cannot find it fails, not retried)."""
        from customer_ai.frozen import FrozenDefinitionError
        from customer_ai.spec import load_spec
        from customer_ai.steps import run_definition

        name = self.instance_name or load_spec(self.instance_path).name
        try:
            return run_definition(name, as_of, home, attempt)
        except FrozenDefinitionError as exc:
            raise AirflowFailException(str(exc)) from exc

    def run_step(self, spec, as_of, home, context: Any, attempt: str) -> dict | list:  # noqa: ANN001
        """Run the step; subclasses implement it."""
        raise NotImplementedError

    @staticmethod
    def open_store(home):  # noqa: ANN001, ANN205
        """Return the profile store configured for Airflow (see :mod:`customer_ai_airflow.connections`)."""
        from customer_ai.store import open_store
        from customer_ai_airflow.connections import store_address

        address, schema = store_address()
        return open_store(address, home, schema)


def _is_poor(exc: BaseException) -> bool:
    from customer_ai.steps import QualityGateError

    return isinstance(exc, QualityGateError) or isinstance(exc.__cause__, QualityGateError)


def _param(context: Any, name: str, kind: type) -> Any:  # noqa: ANN401 - int, float or bool
    """Return the run's parameter ``name`` converted to ``kind``, or None when the run has none."""
    value = context["params"].get(name)
    return None if value is None else kind(value)


def _fail_on(errors: tuple[type[BaseException], ...], call, *args: Any, **kwargs: Any) -> dict:  # noqa: ANN001
    """Run ``call``; turn the given (data) errors into a failure that is not retried."""
    try:
        return call(*args, **kwargs)
    except errors as exc:
        raise AirflowFailException(str(exc)) from exc


class ValidateEventsOperator(CustomerAIOperator):
    """Freeze the run's definition, load the events, validate them with Great Expectations, keep the run's window."""

    starts_the_run = True

    def definition(self, home, as_of, attempt: str):  # noqa: ANN001, ANN201, ARG002
        """Return the instance file's definition as it is now: this task freezes it for the run."""
        from customer_ai.spec import load_spec

        return load_spec(self.instance_path)

    def run_step(self, spec, as_of, home, context: Any, attempt: str) -> dict:  # noqa: ANN001, D102
        from customer_ai import steps
        from customer_ai.conditions import ConditionError
        from customer_ai.events import EventsError
        from customer_ai.validation import DataValidationError
        from customer_ai_airflow.connections import events_dsn

        dsn = events_dsn(spec.events.connection) if spec.events.table else None
        errors = (EventsError, DataValidationError, ConditionError)
        run = context["dag_run"]
        return _fail_on(
            errors,
            steps.validate_events,
            spec,
            as_of,
            home,
            dsn=dsn,
            store=self.open_store(home),
            attempt=attempt,
            origin=f"Airflow DAG run {run.dag_id} / {run.run_id}",
            try_number=_try_number(context),
            instance_file=self.instance_path,
        )


class BuildTrainingSetOperator(CustomerAIOperator):
    """Build and validate the training set, unless retraining is not due (params.force_retrain forces it)."""

    def run_step(self, spec, as_of, home, context: Any, attempt: str) -> dict:  # noqa: ANN001, D102
        from customer_ai import steps
        from customer_ai.estimator import InsufficientDataError
        from customer_ai.history import InsufficientHistoryError
        from customer_ai.validation import DataValidationError

        force = bool(_param(context, "force_retrain", bool))
        errors = (InsufficientDataError, InsufficientHistoryError, DataValidationError)
        return _fail_on(errors, steps.build_training_set, spec, as_of, home, force_retrain=force, attempt=attempt)


class TrainModelOperator(CustomerAIOperator):
    """Train and calibrate a model, or point the run at the model being reused."""

    def run_step(self, spec, as_of, home, context: Any, attempt: str) -> dict:  # noqa: ANN001, D102
        from customer_ai import steps

        return steps.train(spec, as_of, home, attempt=attempt)


class QualityGateOperator(CustomerAIOperator):
    """Stop the run when the model is poor; the store keeps the previous scores and records why."""

    def run_step(self, spec, as_of, home, context: Any, attempt: str) -> dict:  # noqa: ANN001, D102
        from customer_ai import steps

        store = self.open_store(home)
        min_auc = _param(context, "min_auc", float)
        return _fail_on(
            (steps.QualityGateError,),
            steps.quality_gate,
            spec,
            as_of,
            home,
            store,
            min_auc=min_auc,
            attempt=attempt,
            try_number=_try_number(context),
        )


class PlanScoringOperator(CustomerAIOperator):
    """Split the eligible profiles into hash partitions; return the partition numbers to map the scoring over.

    The return value (the XCom the next task is expanded over) is the list ``[0, 1, ..., n - 1]``; the plan's
    summary (profiles, partition sizes) goes to the log.
    """

    def run_step(self, spec, as_of, home, context: Any, attempt: str) -> list[int]:  # noqa: ANN001, D102
        from customer_ai import steps

        planned = steps.plan_scoring(spec, as_of, home, attempt=attempt)
        self.log.info("%s profiles in partitions of %s", f"{planned['profiles']:,}", planned["sizes"])
        return planned["partitions"]


class ScorePartitionOperator(CustomerAIOperator):
    """Score one partition's profiles with their influential factors (params.factors sets how many).

    Parameters
    ----------
    partition : int
        The partition number; the DAG maps this operator over the partitions (``.partial().expand()``).
    """

    def __init__(self, *, partition: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.partition = partition

    def run_step(self, spec, as_of, home, context: Any, attempt: str) -> dict:  # noqa: ANN001, D102
        from customer_ai import steps

        factors = _param(context, "factors", int)
        return steps.score_partition(spec, as_of, home, int(self.partition), factors=factors, attempt=attempt)


class CombineScoresOperator(CustomerAIOperator):
    """Put the partitions' scores together: percentiles and buckets over every scored profile."""

    def run_step(self, spec, as_of, home, context: Any, attempt: str) -> dict:  # noqa: ANN001, D102
        from customer_ai import steps
        from customer_ai.drift import DriftStopError

        # data that drifted past the stop does not change with a retry
        return _fail_on((DriftStopError,), steps.combine_scores, spec, as_of, home, attempt=attempt)


class ValidateScoresOperator(CustomerAIOperator):
    """Validate the scores with Great Expectations before anything is written to the store."""

    def run_step(self, spec, as_of, home, context: Any, attempt: str) -> dict:  # noqa: ANN001, D102
        from customer_ai import steps
        from customer_ai.validation import DataValidationError

        return _fail_on((DataValidationError,), steps.validate_scores, spec, as_of, home, attempt=attempt)


class PublishScoresOperator(CustomerAIOperator):
    """Publish the run (seal its folder, commit it to the store in one transaction); its outlet Asset follows.

    The Asset event is emitted by Airflow when this task succeeds, so always after the commit; a try repeated after
    a commit (the worker died before reporting success) commits the same sealed folder again and emits the event
    then.  The event's ``extra`` names the run (as-of date, run id, model version, profiles), so a consumer that
    sees it twice sees the same run.
    """

    def run_step(self, spec, as_of, home, context: Any, attempt: str) -> dict:  # noqa: ANN001, D102
        from customer_ai import steps

        min_auc = _param(context, "min_auc", float)
        summary = steps.publish(spec, as_of, home, self.open_store(home), min_auc=min_auc, attempt=attempt)
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = {
                "as_of": summary["as_of"],
                "run_id": summary["run_id"],
                "model_version": summary["model_version"],
                "scored_profiles": summary["scored_profiles"],
            }
        return summary


class TrackOutcomesOperator(CustomerAIOperator):
    """Find what came true for every past run whose goal window has closed; the store records it at publish."""

    def run_step(self, spec, as_of, home, context: Any, attempt: str) -> dict:  # noqa: ANN001, D102
        from customer_ai import steps

        return steps.track_outcomes(spec, as_of, home, self.open_store(home), attempt=attempt)


class WriteReportOperator(CustomerAIOperator):
    """Write the run's HTML report (the "Customer AI" view in the Airflow UI links to it)."""

    def run_step(self, spec, as_of, home, context: Any, attempt: str) -> dict:  # noqa: ANN001, D102
        from customer_ai import steps

        return steps.write_report(spec, as_of, home, self.open_store(home), attempt=attempt)


# the operator of each step in customer_ai.flow.STEPS, by step name
STEP_OPERATORS: dict[str, type[CustomerAIOperator]] = {
    "validate_events": ValidateEventsOperator,
    "build_training_set": BuildTrainingSetOperator,
    "train": TrainModelOperator,
    "quality_gate": QualityGateOperator,
    "plan_scoring": PlanScoringOperator,
    "score_partition": ScorePartitionOperator,
    "combine_scores": CombineScoresOperator,
    "validate_scores": ValidateScoresOperator,
    "track_outcomes": TrackOutcomesOperator,
    "write_report": WriteReportOperator,
    "publish": PublishScoresOperator,
}


class InvalidInstanceOperator(BaseOperator):
    """Stands in for an instance file that cannot be loaded: running it fails with the file's error."""

    ui_color = "#f8d7da"

    def __init__(self, *, message: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message

    def execute(self, context: Any) -> None:
        """Fail with the instance file's error."""
        raise AirflowFailException(self.message)
