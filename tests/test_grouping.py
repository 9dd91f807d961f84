"""The suite's own grouping under pytest-xdist (tests/conftest.py): a module's tests run on one worker."""

from __future__ import annotations

import os

import pytest


def test_a_test_id_carries_its_modules_group_when_tests_run_in_parallel(request: pytest.FixtureRequest) -> None:
    if "PYTEST_XDIST_WORKER" not in os.environ or not request.config.getvalue("loadgroup"):
        pytest.skip("grouping applies only to parallel runs by group (the suite's default options)")
    # xdist schedules by the suffix it adds to the id; without it every module's fixtures are built on each worker
    assert request.node.nodeid.endswith("@test_grouping")
