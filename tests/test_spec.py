"""Tests for customer_ai.spec: loading, defaults, path resolution, hashing and error messages."""

from __future__ import annotations

import copy
import re
import time
import tracemalloc
from pathlib import Path

import pytest

from customer_ai.features import FeaturePlan, feature_infos
from customer_ai.spec import FactorOrigin, InstanceSpec, SpecError, factor_origin, load_spec, parse_spec

from conftest import BASE_SPEC, make_spec

EXAMPLE_YAML = """\
name: repurchase_30d
description: Will a recently active customer buy again within 30 days?
propensity: conversion
events:
  path: examples/online_retail/events.parquet
  columns: {profile_id: customer, timestamp: ts}
goal:
  occurrence: will_occur
  match: any
  events:
    - where: [{field: event_type, op: eq, value: purchase}]
    - where: [{field: event_type, op: eq, value: purchase}, {field: value, op: gte, value: 50}]
  window_days: 30
eligibility:
  lookback_days: 365
  match: any
  events:
    - where: [{field: event_type, op: eq, value: purchase}]
  exclude:
    - where: [{field: event_type, op: eq, value: test_order}]
profiles:
  path: examples/online_retail/profiles.parquet
  columns: [country]
custom_events:
  - name: cancellation
    where: [{field: event_type, op: eq, value: cancellation}]
training:
  snapshots: 6
  snapshot_every_days: 30
  min_positives: 500
  min_negatives: 500
output:
  factors: 5
  buckets: {medium: 25, high: 75}
schedule: "@weekly"
"""

MINIMAL_YAML = """\
name: minimal
propensity: churn
events: {table: events}
goal:
  occurrence: will_not_occur
  events: [{where: [{field: event_type, op: eq, value: purchase}]}]
  window_days: 60
"""


def write(folder: Path, text: str, name: str = "instance.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def goal_with(*conditions: dict, **changes: object) -> dict:
    goal = copy.deepcopy(BASE_SPEC["goal"])
    goal["events"] = [{"where": list(conditions)}]
    goal.update(changes)
    return goal


def where_of(spec: InstanceSpec, pattern: int = 0) -> list[tuple[str, str, object]]:
    return [(c.field, c.op, c.value) for c in spec.goal.events[pattern].where]


# --- loading the example ----------------------------------------------------------------------------------------


@pytest.fixture
def example(tmp_path: Path) -> InstanceSpec:
    return load_spec(write(tmp_path, EXAMPLE_YAML))


def test_example_top_level_values(example: InstanceSpec, tmp_path: Path) -> None:
    assert example.name == "repurchase_30d"
    assert example.description == "Will a recently active customer buy again within 30 days?"
    assert example.propensity == "conversion"
    assert example.schedule == "@weekly"
    assert example.base_dir == tmp_path.resolve()


def test_example_events_source(example: InstanceSpec) -> None:
    assert example.events.path == "examples/online_retail/events.parquet"
    assert example.events.table is None
    assert example.events.connection is None
    assert example.events.columns == {"profile_id": "customer", "timestamp": "ts"}


def test_example_goal(example: InstanceSpec) -> None:
    goal = example.goal
    assert goal.occurrence == "will_occur"
    assert goal.match == "any"
    assert goal.window_days == 30
    assert len(goal.events) == 2
    assert where_of(example, 0) == [("event_type", "eq", "purchase")]
    assert where_of(example, 1) == [("event_type", "eq", "purchase"), ("value", "gte", 50)]


def test_example_eligibility(example: InstanceSpec) -> None:
    eligibility = example.eligibility
    assert eligibility.lookback_days == 365
    assert eligibility.match == "any"
    assert [[(c.field, c.op, c.value) for c in p.where] for p in eligibility.events] == [
        [("event_type", "eq", "purchase")]
    ]
    assert [[(c.field, c.op, c.value) for c in p.where] for p in eligibility.exclude] == [
        [("event_type", "eq", "test_order")]
    ]


def test_example_profiles_and_custom_events(example: InstanceSpec) -> None:
    assert example.profiles is not None
    assert example.profiles.path == "examples/online_retail/profiles.parquet"
    assert example.profiles.columns == ["country"]
    assert example.profiles.id_column == "profile_id"
    assert [c.name for c in example.custom_events] == ["cancellation"]
    assert [(c.field, c.op, c.value) for c in example.custom_events[0].where] == [("event_type", "eq", "cancellation")]


def test_example_training_and_output(example: InstanceSpec) -> None:
    training = example.training
    assert (training.snapshots, training.snapshot_every_days) == (6, 30)
    assert (training.min_positives, training.min_negatives) == (500, 500)
    assert training.min_auc == 0.65
    assert training.max_event_types == 10
    assert training.seed == 42
    assert example.output.factors == 5
    assert example.output.buckets == {"medium": 25.0, "high": 75.0}


def test_defaults_when_sections_are_left_out(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, MINIMAL_YAML))
    assert spec.description == ""
    assert spec.goal.match == "any"
    assert spec.eligibility.lookback_days == 365
    assert spec.eligibility.match == "any"
    assert spec.eligibility.events == []
    assert spec.eligibility.exclude == []
    assert spec.profiles is None
    assert spec.custom_events == []
    assert spec.training.snapshots == 6
    assert spec.training.snapshot_every_days == 30
    assert spec.training.min_positives == 500
    assert spec.training.min_negatives == 500
    assert spec.training.min_auc == 0.65
    assert spec.output.factors == 5
    assert spec.output.buckets == {"medium": 25.0, "high": 75.0}
    assert spec.schedule == "@weekly"
    assert spec.events.table == "events"
    assert spec.events.path is None
    assert spec.events.columns == {}


def test_parse_spec_without_base_dir_uses_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = parse_spec(copy.deepcopy(BASE_SPEC))
    assert spec.base_dir == Path.cwd()
    assert spec.resolve("events.parquet") == tmp_path.resolve() / "events.parquet"


def test_spec_is_frozen(example: InstanceSpec) -> None:
    with pytest.raises(ValueError, match="frozen"):
        example.name = "other"  # type: ignore[misc]


# --- paths ------------------------------------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_file_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    instance = write(tmp_path / "instances", EXAMPLE_YAML)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    spec = load_spec(instance)
    folder = (tmp_path / "instances").resolve()
    assert spec.resolve(spec.events.path) == folder / "examples" / "online_retail" / "events.parquet"
    assert spec.profiles is not None
    assert spec.resolve(spec.profiles.path) == folder / "examples" / "online_retail" / "profiles.parquet"
    assert spec.resolve("../data/e.csv") == tmp_path.resolve() / "data" / "e.csv"


def test_relative_file_name_resolves_against_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "sub", EXAMPLE_YAML)
    monkeypatch.chdir(tmp_path)
    spec = load_spec("sub/instance.yaml")
    assert spec.base_dir == (tmp_path / "sub").resolve()
    assert spec.resolve("e.csv") == (tmp_path / "sub" / "e.csv").resolve()


def test_absolute_path_is_kept(example: InstanceSpec, tmp_path: Path) -> None:
    absolute = tmp_path / "other" / "events.csv"
    assert example.resolve(str(absolute)) == absolute


def test_home_path_is_expanded(example: InstanceSpec) -> None:
    assert example.resolve("~/events.csv") == Path.home() / "events.csv"


# --- hash -------------------------------------------------------------------------------------------------------


def test_spec_hash_is_short_hex_and_repeatable(example: InstanceSpec, tmp_path: Path) -> None:
    digest = example.spec_hash()
    assert re.fullmatch(r"[0-9a-f]{16}", digest)
    assert example.spec_hash() == digest
    assert load_spec(tmp_path / "instance.yaml").spec_hash() == digest


def test_spec_hash_ignores_the_file_location(tmp_path: Path) -> None:
    first = load_spec(write(tmp_path / "a", EXAMPLE_YAML))
    second = load_spec(write(tmp_path / "b" / "deeper", EXAMPLE_YAML, name="renamed.yaml"))
    assert first.base_dir != second.base_dir
    assert first.spec_hash() == second.spec_hash()


def test_spec_hash_ignores_key_order(tmp_path: Path) -> None:
    reordered = MINIMAL_YAML.replace("name: minimal\n", "") + "name: minimal\n"
    assert load_spec(write(tmp_path / "a", MINIMAL_YAML)).spec_hash() == (
        load_spec(write(tmp_path / "b", reordered)).spec_hash()
    )


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("  window_days: 30\n", "  window_days: 31\n"),
        ("value: 50}", "value: 60}"),
        ("propensity: conversion\n", ""),  # the goal's polarity below, with the propensity following it
        ("occurrence: will_occur\n  match: any", "occurrence: will_occur\n  match: all"),
    ],
    ids=["window_days", "threshold", "occurrence", "match"],
)
def test_spec_hash_changes_with_the_goal(tmp_path: Path, old: str, new: str) -> None:
    assert EXAMPLE_YAML.count(old) == 1
    original = load_spec(write(tmp_path / "a", EXAMPLE_YAML))
    text = EXAMPLE_YAML.replace(old, new)
    if not new:
        text = text.replace("occurrence: will_occur", "occurrence: will_not_occur")
    changed = load_spec(write(tmp_path / "b", text))
    assert changed.goal != original.goal
    assert changed.spec_hash() != original.spec_hash()


# --- goal in words ----------------------------------------------------------------------------------------------


def test_goal_in_words_for_the_example(example: InstanceSpec) -> None:
    assert example.goal_in_words() == "purchase or (purchase with value >= 50) occurs within 30 days"


def test_goal_in_words_single_event(spec: InstanceSpec) -> None:
    assert spec.goal_in_words() == "purchase occurs within 30 days"


@pytest.mark.parametrize(
    ("condition", "words"),
    [
        ({"field": "event_type", "op": "ne", "value": "view"}, "event_type != view"),
        ({"field": "event_type", "op": "in", "value": ["a", "b"]}, "event_type in ['a', 'b']"),
        ({"field": "event_type", "op": "not_in", "value": ["a"]}, "event_type not in ['a']"),
        ({"field": "value", "op": "gt", "value": 5}, "value > 5"),
        ({"field": "value", "op": "lt", "value": 5}, "value < 5"),
        ({"field": "value", "op": "lte", "value": 5}, "value <= 5"),
        ({"field": "page", "op": "contains", "value": "cart"}, "page contains cart"),
        ({"field": "coupon", "op": "exists"}, "coupon is set"),
        ({"field": "coupon", "op": "exists", "value": True}, "coupon is set"),
        ({"field": "coupon", "op": "exists", "value": False}, "coupon is empty"),
    ],
)
def test_goal_in_words_operators(condition: dict, words: str) -> None:
    spec = make_spec(goal=goal_with(condition, occurrence="will_not_occur", window_days=60))
    assert spec.goal_in_words() == f"{words} does not occur within 60 days"


def test_goal_in_words_match_all() -> None:
    goal = goal_with({"field": "event_type", "op": "eq", "value": "purchase"}, match="all", window_days=7)
    goal["events"].append({"where": [{"field": "event_type", "op": "eq", "value": "review"}]})
    assert make_spec(goal=goal).goal_in_words() == "purchase and review occurs within 7 days"


# --- errors from parse_spec -------------------------------------------------------------------------------------


def spec_error(**overrides: object) -> str:
    with pytest.raises(SpecError) as info:
        make_spec(**overrides)
    return str(info.value)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("Repurchase", "String should match pattern '^[a-z0-9_]+$'"),
        ("re-purchase", "String should match pattern '^[a-z0-9_]+$'"),
        ("two words", "String should match pattern '^[a-z0-9_]+$'"),
        ("", "String should match pattern '^[a-z0-9_]+$'"),
        ("a" * 64, "String should have at most 63 characters"),
    ],
)
def test_bad_name(name: str, reason: str) -> None:
    assert spec_error(name=name) == f"unit.yaml: name: {reason}"


@pytest.mark.parametrize("name", ["repurchase_30d", "a" * 63, "30d"])
def test_good_name(name: str) -> None:
    assert make_spec(name=name).name == name


def test_name_with_trailing_newline_is_rejected() -> None:
    assert spec_error(name="abc\n").startswith("unit.yaml: name: String should match pattern")


def test_unknown_propensity() -> None:
    assert spec_error(propensity="upsell") == "unit.yaml: propensity: Input should be 'conversion' or 'churn'"


@pytest.mark.parametrize(
    ("overrides", "location"),
    [
        ({"nmae": "x"}, "nmae"),
        ({"goal": goal_with({"field": "event_type", "op": "eq", "value": "x"}, windw_days=3)}, "goal.windw_days"),
        (
            {"goal": goal_with({"field": "event_type", "op": "eq", "value": "x", "vlaue": 1})},
            "goal.events[0].where[0].vlaue",
        ),
        ({"events": {"path": "e.csv", "colums": {}}}, "events.colums"),
        ({"training": {"snapshot": 3}}, "training.snapshot"),
        ({"output": {"factor": 3}}, "output.factor"),
    ],
)
def test_unknown_key(overrides: dict, location: str) -> None:
    message = spec_error(**overrides)
    assert message == f"unit.yaml: {location}: unknown key (check its spelling and indentation)"


def test_missing_required_key() -> None:
    data = copy.deepcopy(BASE_SPEC)
    del data["goal"]
    with pytest.raises(SpecError, match=r"^unit\.yaml: goal: Field required$"):
        parse_spec(data, source="unit.yaml")


@pytest.mark.parametrize(
    ("condition", "reason"),
    [
        ({"field": "event_type", "op": "in", "value": "purchase"}, "operator 'in' needs a non-empty list as value"),
        ({"field": "event_type", "op": "not_in", "value": []}, "operator 'not_in' needs a non-empty list as value"),
        ({"field": "event_type", "op": "exists", "value": "yes"}, "operator 'exists' takes true, false or no value"),
        ({"field": "event_type", "op": "exists", "value": 1}, "operator 'exists' takes true, false or no value"),
        ({"field": "event_type", "op": "eq"}, "operator 'eq' needs a value"),
        ({"field": "value", "op": "gte", "value": None}, "operator 'gte' needs a value"),
        ({"field": "event_type", "op": "contains", "value": 5}, "operator 'contains' needs a string value"),
        ({"field": "event_type", "op": "eq", "value": ["a"]}, "operator 'eq' needs a single value, not a list"),
        ({"field": "event_type", "op": "ne", "value": {"a": 1}}, "operator 'ne' needs a single value, not a dict"),
    ],
)
def test_condition_value_must_fit_operator(condition: dict, reason: str) -> None:
    # Errors raised by the condition's own check are reported at the condition, not at its ``value`` key.
    assert spec_error(goal=goal_with(condition)) == f"unit.yaml: goal.events[0].where[0]: {reason}"


def test_condition_error_names_the_right_index() -> None:
    goal = goal_with({"field": "event_type", "op": "eq", "value": "purchase"})
    goal["events"].append(
        {"where": [{"field": "event_type", "op": "eq", "value": "purchase"}, {"field": "value", "op": "gte"}]}
    )
    assert spec_error(goal=goal) == "unit.yaml: goal.events[1].where[1]: operator 'gte' needs a value"


def test_unknown_operator() -> None:
    message = spec_error(goal=goal_with({"field": "event_type", "op": "like", "value": "x"}))
    assert message.startswith("unit.yaml: goal.events[0].where[0].op: Input should be 'eq', 'ne', 'in'")


def test_empty_field_name() -> None:
    message = spec_error(goal=goal_with({"field": "", "op": "eq", "value": "x"}))
    assert message.startswith("unit.yaml: goal.events[0].where[0].field: String should have at least 1 character")


def test_empty_where_and_empty_goal_events() -> None:
    assert spec_error(goal=goal_with()).startswith("unit.yaml: goal.events[0].where: List should have at least 1 item")
    goal = copy.deepcopy(BASE_SPEC["goal"])
    goal["events"] = []
    assert spec_error(goal=goal).startswith("unit.yaml: goal.events: List should have at least 1 item")


@pytest.mark.parametrize("window_days", [0, 3651])
def test_window_days_range(window_days: int) -> None:
    message = spec_error(goal=goal_with({"field": "event_type", "op": "eq", "value": "x"}, window_days=window_days))
    assert message.startswith("unit.yaml: goal.window_days: Input should be")


def test_condition_in_eligibility_and_custom_events_locations() -> None:
    bad = {"field": "event_type", "op": "in", "value": "x"}
    assert spec_error(eligibility={"exclude": [{"where": [bad]}]}).startswith(
        "unit.yaml: eligibility.exclude[0].where[0]: operator 'in'"
    )
    assert spec_error(custom_events=[{"name": "c", "where": [bad]}]).startswith(
        "unit.yaml: custom_events[0].where[0]: operator 'in'"
    )


@pytest.mark.parametrize(
    "events",
    [
        {"path": "events.parquet", "table": "events"},
        {},
        {"columns": {"profile_id": "customer"}},
    ],
    ids=["both", "neither", "columns-only"],
)
def test_events_needs_exactly_one_source(events: dict) -> None:
    assert spec_error(events=events) == (
        "unit.yaml: events: give exactly one of 'path' (a .parquet or .csv file) or 'table'"
    )


@pytest.mark.parametrize("path", ["events.txt", "events.json", "events"])
def test_events_path_extension(path: str) -> None:
    assert spec_error(events={"path": path}) == f"unit.yaml: events: path '{path}' must end in .parquet or .csv"


@pytest.mark.parametrize("path", ["events.CSV", "data/Events.Parquet"])
def test_events_path_extension_is_case_insensitive(path: str) -> None:
    assert make_spec(events={"path": path}).events.path == path


def test_table_source_is_accepted() -> None:
    spec = make_spec(events={"table": "public.events", "connection": "postgresql://db/x"})
    assert (spec.events.table, spec.events.connection, spec.events.path) == ("public.events", "postgresql://db/x", None)


def test_non_canonical_column_key() -> None:
    message = spec_error(events={"path": "e.csv", "columns": {"customer": "profile_id", "ts": "timestamp"}})
    assert message.startswith("unit.yaml: events.columns: ")
    assert "['customer', 'ts'] are not canonical" in message
    assert "(use ['event_type', 'profile_id', 'timestamp', 'value'])" in message


@pytest.mark.parametrize(
    ("buckets", "reason"),
    [
        ({"medium": 75, "high": 75}, "the 'medium' threshold must be below the 'high' threshold"),
        ({"medium": 80, "high": 20}, "the 'medium' threshold must be below the 'high' threshold"),
        ({"medium": 10}, "buckets needs both 'medium' and 'high' score thresholds"),
    ],
)
def test_bucket_thresholds(buckets: dict, reason: str) -> None:
    assert spec_error(output={"buckets": buckets}) == f"unit.yaml: output.buckets: {reason}"


@pytest.mark.parametrize(
    ("buckets", "location"),
    [({"medium": 0, "high": 50}, "output.buckets.medium"), ({"medium": 50, "high": 100}, "output.buckets.high")],
)
def test_bucket_thresholds_strictly_between_0_and_100(buckets: dict, location: str) -> None:
    assert spec_error(output={"buckets": buckets}).startswith(f"unit.yaml: {location}: Input should be")


def test_duplicate_custom_event_names() -> None:
    where = [{"field": "event_type", "op": "eq", "value": "x"}]
    custom = [
        {"name": "cancel", "where": where},
        {"name": "refund", "where": where},
        {"name": "cancel", "where": where},
    ]
    assert spec_error(custom_events=custom) == (
        "unit.yaml: custom_events: custom event names must be unique; repeated: ['cancel']"
    )


@pytest.mark.parametrize("name", ["Cancel", "1cancel", "_cancel", "c" * 41])
def test_custom_event_name_rules(name: str) -> None:
    where = [{"field": "event_type", "op": "eq", "value": "x"}]
    assert spec_error(custom_events=[{"name": name, "where": where}]).startswith("unit.yaml: custom_events[0].name: ")


def test_profiles_need_columns() -> None:
    assert spec_error(profiles={"path": "p.csv", "columns": []}).startswith(
        "unit.yaml: profiles.columns: List should have at least 1 item"
    )


def test_several_problems_one_line_each() -> None:
    lines = spec_error(name="Bad", propensity="upsell").splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("unit.yaml: name: ")
    assert lines[1].startswith("unit.yaml: propensity: ")


@pytest.mark.parametrize("data", [None, [], ["name", "x"], "name: x", 3])
def test_non_mapping_data(data: object) -> None:
    with pytest.raises(SpecError, match=r"^unit\.yaml: the file must hold a mapping of keys"):
        parse_spec(data, source="unit.yaml")


# --- errors from load_spec --------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(
        SpecError, match=re.escape(f"{path}: cannot read the instance file (No such file or directory)")
    ):
        load_spec(path)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("name: x\ngoal: [a, b\n", "at line 3, column 1: expected ',' or ']'"),
        ("name: x\n  propensity: churn\n", "at line 2, column 13: mapping values are not allowed here"),
        ("name: x\n\tpropensity: churn\n", "at line 2, column 1: found character '\\t' that cannot start any token"),
    ],
)
def test_invalid_yaml(tmp_path: Path, text: str, where: str) -> None:
    path = write(tmp_path, text, name="broken.yaml")
    with pytest.raises(SpecError, match=re.escape(f"{path}: not valid YAML {where}")):
        load_spec(path)


@pytest.mark.parametrize("text", ["- a\n- b\n", "", "just a string\n", "42\n"])
def test_non_mapping_document(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text, name="odd.yaml")
    with pytest.raises(SpecError, match=re.escape(f"{path}: the file must hold a mapping of keys (name, propensity")):
        load_spec(path)


def test_load_spec_errors_name_the_file_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE_YAML.replace("op: gte, value: 50", "op: gte"), name="unit.yaml")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value) == f"{path}: goal.events[1].where[1]: operator 'gte' needs a value"
    assert "unit.yaml: goal.events[1].where[1]" in str(info.value)


def test_load_spec_unknown_key_from_file(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE_YAML.replace("  window_days: 30\n", "  windowdays: 30\n"))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    lines = str(info.value).splitlines()
    assert f"{path}: goal.windowdays: unknown key (check its spelling and indentation)" in lines
    assert f"{path}: goal.window_days: Field required" in lines


def test_spec_hash_ignores_description_and_schedule_but_not_the_window() -> None:
    base = make_spec()
    assert make_spec(description="other words", schedule="@daily").spec_hash() == base.spec_hash()
    goal = copy.deepcopy(BASE_SPEC["goal"]) | {"window_days": 60}
    assert make_spec(goal=goal).spec_hash() != base.spec_hash()


def test_an_end_date_changes_neither_hash_and_may_not_come_before_the_start() -> None:
    base = make_spec()
    ended = make_spec(end_date="2011-12-04")
    assert ended.end_date.isoformat() == "2011-12-04"
    assert base.end_date is None
    assert (ended.spec_hash(), ended.model_hash()) == (base.spec_hash(), base.model_hash())
    message = spec_error(start_date="2011-12-05", end_date="2011-12-04")
    assert message == (
        "unit.yaml: end_date: 2011-12-04 is before start_date 2011-12-05: the schedule would have no date to run"
    )
    assert spec_error(schedule=None, end_date="2011-12-04") == (
        "unit.yaml: end_date: 2011-12-04 ends a repeating schedule, and schedule is None: leave end_date out, or "
        "give a cron expression or preset such as '@weekly'"
    )
    assert make_spec(schedule="@once").schedule == "@once"  # without an end, any schedule


def test_a_key_repeated_in_the_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "name: first\nname: second\n")
    with pytest.raises(SpecError, match=r"line 2, column 1: key 'name' appears twice in the same mapping"):
        load_spec(path)


def test_base_dir_cannot_be_set_from_the_file() -> None:
    data = copy.deepcopy(BASE_SPEC) | {"base_dir": "/etc"}
    with pytest.raises(SpecError, match=r"unit.yaml: base_dir: unknown key"):
        parse_spec(data, source="unit.yaml")


# --- propensity and the goal's polarity -------------------------------------------------------------------------

PURCHASE_GOAL = {"match": "any", "events": [{"where": [{"field": "event_type", "op": "eq", "value": "purchase"}]}]}


@pytest.mark.parametrize(("occurrence", "propensity"), [("will_occur", "conversion"), ("will_not_occur", "churn")])
def test_propensity_follows_the_goal_when_left_out(occurrence: str, propensity: str) -> None:
    spec = make_spec(goal={**PURCHASE_GOAL, "occurrence": occurrence, "window_days": 30})
    assert spec.propensity == propensity


@pytest.mark.parametrize(("occurrence", "propensity"), [("will_occur", "churn"), ("will_not_occur", "conversion")])
def test_a_propensity_that_contradicts_the_goal_is_refused(occurrence: str, propensity: str) -> None:
    # before: propensity churn with will_occur scored P(purchase) and labelled it churn
    message = spec_error(propensity=propensity, goal={**PURCHASE_GOAL, "occurrence": occurrence, "window_days": 30})
    assert message.startswith(f"unit.yaml: goal: occurrence '{occurrence}' does not fit propensity '{propensity}'")
    assert "leave propensity out" in message


# --- thresholds, history and buckets --------------------------------------------------------------------------


def test_event_check_thresholds_are_overridable_and_checked() -> None:
    spec = make_spec(validation={"thresholds": {"max_duplicate_share": 0.05, "future_tolerance_days": 0}})
    assert spec.validation.thresholds.max_duplicate_share == 0.05
    assert spec.validation.thresholds.future_tolerance_days == 0
    assert spec.validation.thresholds.max_abs_value == 1e12
    assert spec_error(validation={"thresholds": {"max_duplicate_share": 1.5}}) == (
        "unit.yaml: validation.thresholds.max_duplicate_share: Input should be less than or equal to 1"
    )
    assert spec_error(validation={"thresholds": {"max_duplicates": 0.1}}) == (
        "unit.yaml: validation.thresholds.max_duplicates: unknown key (check its spelling and indentation)"
    )
    # thresholds only decide what data is accepted: the same data trains the same model
    assert spec.model_hash() == make_spec().model_hash()


def test_history_policy_and_buckets_by() -> None:
    spec = make_spec(training={"history": "strict", "min_lookback_days": 60}, output={"buckets_by": "percentile"})
    assert (spec.training.history, spec.training.min_lookback_days) == ("strict", 60)
    assert spec.output.buckets_by == "percentile"
    assert make_spec().training.history == "adapt"
    assert make_spec().output.buckets_by == "auto"
    assert spec_error(output={"buckets_by": "rank"}) == (
        "unit.yaml: output.buckets_by: Input should be 'auto', 'score' or 'percentile'"
    )


# --- YAML 1.1 surprises ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("written", ["NO", "no", "yes", "Yes", "on", "OFF", "y", "n"])
def test_condition_values_keep_what_was_written(tmp_path: Path, written: str) -> None:
    # before: YAML 1.1 read NO (Norway) as false, so `country eq NO` silently matched nothing
    text = EXAMPLE_YAML.replace("op: gte, value: 50", f"op: eq, value: {written}").replace(
        "field: value,", "field: country,"
    )
    spec = load_spec(write(tmp_path, text))
    condition = spec.goal.events[1].where[1]
    assert (condition.field, condition.value) == ("country", written)


def test_yaml_true_and_false_stay_booleans(tmp_path: Path) -> None:
    text = EXAMPLE_YAML.replace("op: gte, value: 50", "op: eq, value: true").replace("field: value,", "field: gift,")
    assert load_spec(write(tmp_path, text)).goal.events[1].where[1].value is True


@pytest.mark.parametrize("flag", ["true", "false"])
def test_a_boolean_is_not_a_number(tmp_path: Path, flag: str) -> None:
    # before: window_days: true was a 1-day window
    path = write(tmp_path, EXAMPLE_YAML.replace("  window_days: 30\n", f"  window_days: {flag}\n"))
    with pytest.raises(SpecError, match=f"goal: window_days: expected a number, got {flag}"):
        load_spec(path)


def test_libyaml_reads_what_the_python_parser_reads() -> None:
    import yaml  # noqa: PLC0415

    from customer_ai.spec import _FastUniqueKeyLoader, _UniqueKeyLoader  # noqa: PLC0415

    if yaml.__with_libyaml__:
        assert issubclass(_FastUniqueKeyLoader, yaml.CSafeLoader)  # load_spec parses with libyaml first
    text = EXAMPLE_YAML + SEGMENTS_YAML + "trigger_as_of: 2011-12-11\nnotes: {a: yes, b: NO, c: true, d: 1e3, e: ~}\n"
    fast, plain = yaml.load(text, Loader=_FastUniqueKeyLoader), yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506
    assert fast == plain
    assert repr(fast) == repr(plain)  # the same types too: 1e3 a string, 2011-12-11 a date
    assert fast["notes"] == {"a": "yes", "b": "NO", "c": True, "d": "1e3", "e": None}
    with pytest.raises(yaml.YAMLError, match="key 'name' appears twice"):
        yaml.load("name: a\nname: b\n", Loader=_FastUniqueKeyLoader)  # noqa: S506


# --- segments ---------------------------------------------------------------------------------------------------

SEGMENTS_YAML = """\
segments:
  - name: likely_buyers
    where: [{field: bucket, op: eq, value: high}]
  - name: at_risk_recent
    where: [{field: percentile, op: gte, value: 90}, {factor: days_since_last_event, op: gt, value: 0}]
  - name: named_ids
    where: [{field: profile_id, op: in, value: [12346, "007", NO]}]
"""


def test_segments_load_from_the_file(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, EXAMPLE_YAML + SEGMENTS_YAML))
    assert [s.name for s in spec.segments] == ["likely_buyers", "at_risk_recent", "named_ids"]
    first, second = spec.segments[1].where
    assert (first.field, first.factor, first.op, first.value) == ("percentile", None, "gte", 90)
    assert (second.field, second.factor, second.op, second.value) == (None, "days_since_last_event", "gt", 0)
    assert spec.segments[2].where[0].value == [12346, "007", "NO"]
    assert make_spec().segments == []


def test_segments_do_not_change_the_hashes() -> None:
    base = make_spec()
    with_segments = make_spec(segments=[{"name": "top", "where": [{"field": "score", "op": "gte", "value": 80}]}])
    assert with_segments.spec_hash() == base.spec_hash()
    assert with_segments.model_hash() == base.model_hash()


def test_drift_thresholds_default_to_a_warning_only_and_change_no_hash() -> None:
    base = make_spec()
    assert (base.monitoring.drift_warn, base.monitoring.drift_stop) == (0.1, None)
    watched = make_spec(monitoring={"drift_warn": 0.2, "drift_stop": 0.5})
    assert (watched.monitoring.drift_warn, watched.monitoring.drift_stop) == (0.2, 0.5)
    assert watched.spec_hash() == base.spec_hash()
    assert watched.model_hash() == base.model_hash()


@pytest.mark.parametrize(
    ("monitoring", "reason"),
    [
        ({"drift_warn": 0.3, "drift_stop": 0.2}, "drift_stop (0.2) must be above drift_warn (0.3): a run warns before"),
        ({"drift_warn": 0.1, "drift_stop": 0.1}, "drift_stop (0.1) must be above drift_warn (0.1)"),
        ({"drift_warn": 0}, "monitoring.drift_warn: Input should be greater than 0"),
        ({"drift_warn": "high"}, "monitoring.drift_warn: Input should be a valid number"),
        ({"drift_stop": True}, "drift_stop: expected a number, got true"),
        ({"drift_warm": 0.1}, "drift_warm"),
    ],
)
def test_bad_drift_thresholds_are_refused_with_where(monitoring: dict, reason: str) -> None:
    assert reason in spec_error(monitoring=monitoring)


def segment_error(*where: dict, name: str = "seg") -> str:
    return spec_error(segments=[{"name": name, "where": list(where)}])


@pytest.mark.parametrize(
    ("condition", "reason"),
    [
        (
            {"field": "bukket", "op": "eq", "value": "high"},
            "unknown field 'bukket': a segment tests one of profile_id, probability, score, percentile, bucket, "
            "expected_value, days_to_next, "
            "or an influential factor with 'factor: FEATURE'",
        ),
        (
            {"field": "event_type", "op": "eq", "value": "purchase"},
            "unknown field 'event_type': a segment tests one of profile_id, probability, score, percentile, bucket, "
            "expected_value, days_to_next, "
            "or an influential factor with 'factor: FEATURE'",
        ),
        (
            {"field": "percentile", "op": "gte", "value": "ninety"},
            "percentile takes a number from 1 to 100, not 'ninety'",
        ),
        ({"field": "percentile", "op": "gte", "value": 0.9}, "percentile takes a number from 1 to 100, not 0.9"),
        ({"field": "probability", "op": "gt", "value": 90}, "probability takes a number from 0 to 1, not 90"),
        ({"field": "score", "op": "in", "value": [50, "x"]}, "score takes a number from 0 to 100, not 'x'"),
        ({"field": "score", "op": "gte", "value": True}, "score takes a number from 0 to 100, not True"),
        ({"field": "bucket", "op": "eq", "value": "top"}, "bucket is one of low, medium, high, not 'top'"),
        ({"field": "bucket", "op": "in", "value": ["high", "HIGH"]}, "bucket is one of low, medium, high, not 'HIGH'"),
        ({"field": "bucket", "op": "gt", "value": "low"}, "bucket takes eq, ne, in, not_in, not 'gt'"),
        ({"field": "profile_id", "op": "eq", "value": 1.5}, "profile_id is text, not 1.5"),
        ({"field": "profile_id", "op": "lt", "value": "b"}, "profile_id takes eq, ne, in, not_in, contains, not 'lt'"),
        (
            {"field": "score", "op": "exists"},
            "score takes eq, ne, in, not_in, gt, gte, lt, lte, not 'exists' ('exists' applies to factors: every "
            "scored profile has every score column)",
        ),
        (
            {"factor": "Days Since", "op": "gt", "value": 0},
            "factor 'Days Since' is not a feature name (lower-case letters, digits and _, as in purchase_count_30d)",
        ),
        (
            {"factor": "recency", "op": "gt", "value": "high"},
            "factor recency (its contribution) takes a number, not 'high'",
        ),
        (
            {"factor": "recency", "op": "contains", "value": "x"},
            "a factor's contribution is a number: 'contains' does not apply",
        ),
        (
            {"field": "score", "factor": "recency", "op": "gt", "value": 0},
            "give exactly one of 'field' (one of profile_id, probability, score, percentile, bucket, expected_value, "
            "days_to_next) or 'factor' "
            "(a feature name)",
        ),
        (
            {"op": "gt", "value": 0},
            "give exactly one of 'field' (one of profile_id, probability, score, percentile, bucket, expected_value, "
            "days_to_next) or 'factor' "
            "(a feature name)",
        ),
        ({"field": "score", "op": "gte"}, "operator 'gte' needs a value"),
        ({"field": "score", "op": "in", "value": []}, "operator 'in' needs a non-empty list as value"),
    ],
)
def test_bad_segment_conditions_name_the_file_the_place_and_the_reason(condition: dict, reason: str) -> None:
    ok = {"field": "score", "op": "gte", "value": 10}
    assert segment_error(ok, condition) == f"unit.yaml: segments[0].where[1]: {reason}"


@pytest.mark.parametrize(
    ("segments", "message"),
    [
        (
            [{"name": "high", "where": [{"field": "score", "op": "gte", "value": 90}]}],
            "unit.yaml: segments[0].name: 'high' is the default segment of the bucket high (every run has low, "
            "medium and high); give your segment another name",
        ),
        (
            [{"name": "Top-10", "where": [{"field": "score", "op": "gte", "value": 90}]}],
            "unit.yaml: segments[0].name: String should match pattern '^[a-z][a-z0-9_]*$'",
        ),
        (
            [{"name": "top\n", "where": [{"field": "score", "op": "gte", "value": 90}]}],
            "unit.yaml: segments[0].name: String should match pattern '^[a-z][a-z0-9_]*$'",
        ),
        (
            [{"name": "top", "where": []}],
            "unit.yaml: segments[0].where: List should have at least 1 item after validation, not 0",
        ),
        (
            [
                {"name": "top", "where": [{"field": "score", "op": "gte", "value": 90}]},
                {"name": "top", "where": [{"field": "score", "op": "gte", "value": 80}]},
            ],
            "unit.yaml: segments: segment names must be unique; repeated: ['top']",
        ),
        (
            [{"name": "top", "where": [{"field": "score", "op": "gte", "vlaue": 90}]}],
            "unit.yaml: segments[0].where[0].vlaue: unknown key (check its spelling and indentation)",
        ),
        (
            [{"name": "top", "rules": []}],
            "unit.yaml: segments[0].where: Field required\n"
            "unit.yaml: segments[0].rules: unknown key (check its spelling and indentation)",
        ),
    ],
)
def test_bad_segments(segments: list, message: str) -> None:
    assert spec_error(segments=segments) == message


def test_segment_errors_from_a_file_name_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE_YAML + SEGMENTS_YAML.replace("op: gte, value: 90", "op: gte, value: high"))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value) == f"{path}: segments[1].where[0]: percentile takes a number from 1 to 100, not 'high'"


def test_a_huge_number_from_the_file_is_refused(tmp_path: Path) -> None:
    huge = "9" * 400
    text = EXAMPLE_YAML + SEGMENTS_YAML.replace("op: gt, value: 0}", f"op: gt, value: {huge}}}")
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, text))
    assert str(info.value).endswith(
        f"segments[1].where[1]: factor days_since_last_event (its contribution) takes a number; {huge} is too large"
    )


# --- the training sample cap ------------------------------------------------------------------------------------


def test_max_profiles_defaults_to_100_000_and_refuses_fewer_than_1000() -> None:
    assert make_spec().training.max_profiles == 100_000
    assert make_spec(training={"max_profiles": 1000}).training.max_profiles == 1000
    assert spec_error(training={"max_profiles": 999}) == (
        "unit.yaml: training.max_profiles: Input should be greater than or equal to 1000"
    )
    assert spec_error(training={"max_profiles": 2.5}) == (
        "unit.yaml: training.max_profiles: Input should be a valid integer, got a number with a fractional part"
    )


def test_max_profiles_is_in_the_hashes_only_when_it_differs_from_the_default() -> None:
    base = make_spec()
    default = make_spec(training={**BASE_SPEC["training"], "max_profiles": 100_000})
    capped = make_spec(training={**BASE_SPEC["training"], "max_profiles": 50_000})
    assert (default.spec_hash(), default.model_hash()) == (base.spec_hash(), base.model_hash())
    # another cap trains on other profiles: a stored model of the old cap is not reused
    assert capped.model_hash() != base.model_hash()
    assert capped.spec_hash() != base.spec_hash()


def test_the_example_hashes_did_not_change_with_the_cap() -> None:
    # models stored before training.max_profiles existed are still found and reused by their model hash (the spec
    # hash changed with the default bucket rule, output.buckets_by: auto; the model hash, which decides reuse, did
    # not)
    spec = load_spec(Path(__file__).resolve().parents[1] / "instances" / "repurchase_30d.yaml")
    assert (spec.spec_hash(), spec.model_hash()) == ("4692dceaa7f41b38", "505574e30a1aa777")


# --- characters written as UTF-16 surrogate pairs ---------------------------------------------------------------

EMOJI_YAML = """\
name: emoji
description: "Buy again \\ud83d\\ude00 within 30 days?"
propensity: conversion
events: {table: events}
goal:
  occurrence: will_occur
  match: any
  events:
    - where: [{field: event_type, op: eq, value: "VALUE"}]
    - where: [{field: tag, op: in, value: ["plain", "LISTED"]}]
  window_days: 30
"""


def test_a_surrogate_pair_in_a_double_quoted_string_is_one_character(tmp_path: Path) -> None:
    path = write(tmp_path, EMOJI_YAML.replace("VALUE", "smile \\ud83d\\ude00").replace("LISTED", "\\ud83d\\ude00"))
    assert "\\ud83d\\ude00 within" in path.read_text(encoding="utf-8")  # the file holds the escapes themselves
    spec = load_spec(path)
    assert spec.description == "Buy again \U0001f600 within 30 days?"
    assert where_of(spec) == [("event_type", "eq", "smile \U0001f600")]
    assert where_of(spec, 1) == [("tag", "in", ["plain", "\U0001f600"])]
    # the same character written whole, or as one 32-bit escape, is the same spec
    whole = load_spec(
        write(tmp_path / "whole", path.read_text(encoding="utf-8").replace("\\ud83d\\ude00", "\U0001f600"))
    )
    escaped = load_spec(
        write(tmp_path / "escaped", path.read_text(encoding="utf-8").replace("\\ud83d\\ude00", "\\U0001F600"))
    )
    assert whole.description == escaped.description == spec.description
    assert whole.spec_hash() == escaped.spec_hash() == spec.spec_hash()


@pytest.mark.parametrize(
    ("value", "location", "half"),
    [
        ("half \\ud83d alone", "goal.events[0].where[0].value", "\\ud83d"),
        ("\\ude00", "goal.events[0].where[0].value", "\\ude00"),
        ("\\ude00\\ud83d", "goal.events[0].where[0].value", "\\ude00"),  # the halves in the wrong order
        ("\\ud83d\\ude00 then \\ud83d", "goal.events[0].where[0].value", "\\ud83d"),  # a pair, then a lone half
    ],
)
def test_half_a_surrogate_pair_is_refused_with_where_it_is(
    tmp_path: Path, value: str, location: str, half: str
) -> None:
    path = write(tmp_path, EMOJI_YAML.replace("VALUE", value).replace("LISTED", "x"))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value) == (
        f"{path}: {location}: holds half of a UTF-16 surrogate pair ({half}) without its other half: no UTF-8 text "
        "can hold it; write the character itself, or escape it as \\UXXXXXXXX"
    )


@pytest.mark.parametrize(
    ("line", "written", "location"),
    [
        ("description: ", 'description: "Buy again \\ud83d within 30 days?"', "description"),
        ("name: ", 'name: "emoji\\udfff"', "name"),
        (
            "    - where: [{field: tag",
            '    - where: [{field: tag, op: in, value: ["plain", "\\ud800"]}]',
            "goal.events[1].where[0].value[1]",
        ),
    ],
)
def test_half_a_surrogate_pair_is_refused_in_any_text_field(
    tmp_path: Path, line: str, written: str, location: str
) -> None:
    lines = EMOJI_YAML.replace("VALUE", "x").replace("LISTED", "x").splitlines()
    changed = [written if text.startswith(line) else text for text in lines]
    assert changed != lines
    path = write(tmp_path, "\n".join(changed) + "\n")
    with pytest.raises(SpecError, match=re.escape(f"{path}: {location}: holds half of a UTF-16 surrogate pair (")):
        load_spec(path)


def test_half_a_surrogate_pair_is_refused_in_parsed_data_too() -> None:
    with pytest.raises(SpecError, match=r"^unit\.yaml: description: holds half of a UTF-16 surrogate pair \(\\ud83d\)"):
        make_spec(description="lone \ud83d")
    assert make_spec(description="pair \ud83d\ude00").description == "pair \U0001f600"


def test_the_instances_hashes_are_those_before_surrogate_pairs_were_joined() -> None:
    # computed with the code before pairs were joined: models of these instances stay theirs (the spec hashes
    # changed with the default bucket rule, output.buckets_by: auto, and not with the pairs)
    expected = {
        "repurchase_30d": ("4692dceaa7f41b38", "505574e30a1aa777"),
        "churn_60d": ("bc6a32e46e9545e0", "92f600c7814c4919"),
    }
    root = Path(__file__).resolve().parents[1] / "instances"
    found = {}
    for name in expected:
        spec = load_spec(root / f"{name}.yaml")
        found[name] = (spec.spec_hash(), spec.model_hash())
    assert found == expected


# --- files that are not UTF-8, too large, or hold values no setting takes (issue 18) ----------------------------


@pytest.mark.parametrize(
    ("content", "where"),
    [
        (b"name: latin\ndescription: caf\xe9\n", "line 2, column 17: byte 0xe9"),  # Latin-1
        (b"\xffname: x\n", "line 1, column 1: byte 0xff"),
        ("name: x\ndescription: d\u00e9j\u00e0 vu\nschedule: '".encode() + b"\xff'\n", "line 3, column 12: byte 0xff"),
    ],
)
def test_a_file_that_is_not_utf8_is_refused_with_the_line_column_and_byte(
    tmp_path: Path, content: bytes, where: str
) -> None:
    # before: UnicodeDecodeError (a traceback, and every DAG gone with the DAG file's import)
    path = tmp_path / "latin.yaml"
    path.write_bytes(content)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value) == f"{path}: {where} is not UTF-8; save the file as UTF-8"


def test_a_utf16_file_is_refused_as_utf16(tmp_path: Path) -> None:
    path = tmp_path / "wide.yaml"
    path.write_bytes(MINIMAL_YAML.encode("utf-16"))  # with its byte order mark, as Windows editors write it
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value) == f"{path}: the file is UTF-16 (it starts with a UTF-16 byte order mark); save it as UTF-8"


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    plain = load_spec(write(tmp_path / "plain", MINIMAL_YAML))
    marked_path = tmp_path / "marked" / "instance.yaml"
    marked_path.parent.mkdir()
    marked_path.write_bytes(b"\xef\xbb\xbf" + MINIMAL_YAML.encode())
    marked = load_spec(marked_path)
    assert marked.name == "minimal"
    assert (marked.spec_hash(), marked.model_hash()) == (plain.spec_hash(), plain.model_hash())


def test_a_file_over_1_mb_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    padding = 1_000_000 - len(MINIMAL_YAML)
    exact = write(tmp_path, MINIMAL_YAML + "#" * (padding - 1) + "\n", name="exact.yaml")
    assert exact.stat().st_size == 1_000_000
    assert load_spec(exact).name == "minimal"
    over = write(tmp_path, MINIMAL_YAML + "#" * padding + "\n", name="over.yaml")
    with pytest.raises(SpecError) as info:
        load_spec(over)
    assert str(info.value) == (
        f"{over}: the file has 1,000,001 bytes; an instance file holds at most 1,000,000 (1 MB): is it the right file?"
    )


def alias_bomb(levels: int) -> str:
    """Return a YAML flow list of ``levels`` nested levels of 9 items, each level 8 aliases of the one below."""
    value = "&a0 [v, v, v, v, v, v, v, v, v]"
    for level in range(1, levels + 1):
        value = f"&a{level} [{value}, " + ", ".join([f"*a{level - 1}"] * 8) + "]"
    return value


def test_a_nested_list_built_from_aliases_is_refused_at_once(tmp_path: Path) -> None:
    # before: 9 levels (9**9 = 387 million values once expanded) passed `check` after 30 s and 3.4 GB
    text = MINIMAL_YAML.replace("value: purchase}", f"value: {alias_bomb(9)}}}").replace("op: eq", "op: in")
    path = write(tmp_path, text)
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(SpecError) as info:
        load_spec(path)
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert str(info.value) == (
        f"{path}: goal.events[0].where[0].value: item 0 is a list: a value is a single value or a flat list of "
        "single values (text, numbers, dates, true or false)"
    )
    assert elapsed < 0.2
    assert peak < 5_000_000


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            [["a", "b"], "c"],
            ".value: item 0 is a list: a value is a single value or a flat list of single values (text, numbers, "
            "dates, true or false)",
        ),
        (
            ["a", {"b": 1}],
            ": operator 'in' needs a flat list of single values (text, numbers, dates, true or false); item 1 is a "
            "mapping",
        ),
    ],
)
def test_a_value_is_a_single_value_or_a_flat_list(value: list, message: str) -> None:
    # before: both accepted (a list never equals an event's value: the rule matched nothing)
    error = spec_error(goal=goal_with({"field": "event_type", "op": "in", "value": value}))
    assert error == f"unit.yaml: goal.events[0].where[0]{message}"


def test_aliases_that_expand_the_file_beyond_a_million_values_are_refused(tmp_path: Path) -> None:
    # each of 1,100 segments shares one list of 1,000 conditions: 1.1 million conditions for pydantic to build
    where = "[" + ", ".join(["*c"] * 1000) + "]"
    segments = "".join(f"  - {{name: s{i}, where: {'&w ' + where if i == 0 else '*w'}}}\n" for i in range(1100))
    text = MINIMAL_YAML.replace("goal:\n", "goal:\n  x: &c {field: score, op: gte, value: 1}\n", 1)
    path = write(tmp_path, text + "segments:\n" + segments)
    started = time.perf_counter()
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert time.perf_counter() - started < 1
    assert str(info.value) == (
        f"{path}: segments: its aliases (*name) expand it to 4,403,301 values; an instance file holds at most "
        "1,000,000: write the repeated parts fewer times"
    )


def test_a_text_over_10000_characters_is_refused_naming_the_field() -> None:
    assert len(make_spec(description="x" * 10_000).description) == 10_000
    assert spec_error(description="x" * 10_001) == (
        "unit.yaml: description: a text of 10,001 characters; a value holds at most 10,000"
    )
    rule = {"name": "vip", "where": [{"field": "profile_id", "op": "in", "value": ["a", "7" * 12_345]}]}
    assert spec_error(segments=[rule]) == (
        "unit.yaml: segments[0].where[0].value[1]: a text of 12,345 characters; a value holds at most 10,000"
    )


@pytest.mark.parametrize(
    ("written", "what"),
    [
        ("!!set {a, b}", "a set (!!set)"),
        ("!!binary aGVsbG8=", "binary data (!!binary)"),
        ("!!omap [{a: 1}]", "a pair (!!omap or !!pairs)"),
    ],
)
def test_values_yaml_reads_as_something_no_setting_takes_are_refused(tmp_path: Path, written: str, what: str) -> None:
    # before: value: !!set {a, b} was a Python set compared with the events
    path = write(tmp_path, MINIMAL_YAML.replace("value: purchase}", f"value: {written}}}"))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    where = "goal.events[0].where[0].value" + ("[0]" if "omap" in written else "")
    assert str(info.value) == (
        f"{path}: {where}: holds {what}, which no setting takes: write single values (text, numbers, dates, true "
        "or false), lists or mappings"
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        # before: ValueError tracebacks
        (
            "start_date: 2011-02-30",
            " at line 8, column 13: '2011-02-30' is not a valid date (day is out of range for month)",
        ),
        (
            "trigger_as_of: 2011-13-01",
            " at line 8, column 16: '2011-13-01' is not a valid date (month must be in 1..12)",
        ),
        (
            "description: " + "9" * 5000,
            " at line 8, column 14: a number of more than 4,300 digits cannot be read; write it in quotes if it is "
            "text",
        ),
        # before: RecursionError
        ("description: " + "[" * 5000 + "]" * 5000, ": nested too deeply (hundreds of [ or { inside each other)"),
        # before: the parser's words, with a position in characters and no line
        (
            "description: a\x1bb",
            " at line 8, column 15: the character U+001B is not allowed in a YAML file; to mean "
            "it, write it as an escape (\\x1b) in a double-quoted string",
        ),
        (
            "description: a\x00b",
            " at line 8, column 15: the character U+0000 is not allowed in a YAML file (a NUL in a "
            "text file: is it UTF-16? save it as UTF-8); to mean it, write it as an escape (\\x00) in a double-quoted "
            "string",
        ),
    ],
)
def test_values_the_yaml_reader_cannot_build_say_where_they_are(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path, MINIMAL_YAML + line + "\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value) == f"{path}: not valid YAML{message}"


# --- segment factors: names a run can build (issue 18) -------------------------------------------------------------

FEATURE_SPEC = {
    "custom_events": [{"name": "big_buy", "where": [{"field": "value", "op": "gte", "value": 500}]}],
    "profiles": {"path": "profiles.parquet", "columns": ["Home Country", "age"]},
}


def segment_on(factor: str) -> list[dict]:
    return [{"name": "lapsing", "where": [{"factor": factor, "op": "lt", "value": 0}]}]


def built_names(spec: InstanceSpec, lookback: int) -> list[str]:
    """Return every feature name a run of ``spec`` with this lookback can build (all data-dependent ones on)."""
    plan = FeaturePlan(
        lookback_days=lookback,
        event_types=["Add to Cart", "page-view", "purchase", "\u00c4\u00d6"],
        valued_sources=["add_to_cart", "page_view", "purchase", "event", "big_buy"],
        categorical_columns={"Sales Channel": ["app", "web"]},
        profile_columns={"Home Country": ["PT"], "age": []},
        repeat_model=True,
    )
    return [info.name for info in feature_infos(plan, spec)]


def test_every_feature_a_run_can_build_is_a_factor_a_segment_may_test() -> None:
    # spec.py restates how features are named (it cannot import features.py): this keeps the two the same
    adapting = make_spec(**FEATURE_SPEC)
    for lookback in (28, 29, 30, 31, 89, 90, 91, 200, 364, 365):  # what a short history can shorten 365 to
        names = built_names(adapting, lookback)
        assert [n for n in names if factor_origin(adapting, n) is None] == [], lookback
    assert factor_origin(adapting, "purchase_count_200d") == FactorOrigin("event_type", "purchase", adapted=True)
    assert factor_origin(adapting, "purchase_count_30d") == FactorOrigin("event_type", "purchase")
    assert factor_origin(adapting, "big_buy_value_sum") == FactorOrigin("custom_event", "big_buy", valued=True)
    assert factor_origin(adapting, "sales_channel_most_frequent") == FactorOrigin("column", "sales_channel")
    assert factor_origin(adapting, "profile_home_country") == FactorOrigin("spec")
    assert factor_origin(adapting, "goal_chance_30d") == FactorOrigin("repeat_model")
    assert factor_origin(adapting, "activity_ratio_90_200") == FactorOrigin("spec", adapted=True)
    strict = make_spec(**FEATURE_SPEC, training={**BASE_SPEC["training"], "history": "strict"})
    assert [n for n in built_names(strict, 365) if factor_origin(strict, n) is None] == []
    shortened = set(built_names(adapting, 200)) - set(built_names(adapting, 365))
    assert sorted(n for n in shortened if factor_origin(strict, n) is None) == sorted(shortened)
    for lookback in (27, 366):  # below training.min_lookback_days, above the lookback: never
        beyond = set(built_names(adapting, lookback)) - set(built_names(adapting, 365))
        assert beyond, lookback
        assert all(factor_origin(adapting, n) is None for n in beyond), lookback


def test_a_goal_with_a_value_has_its_spend_rate_as_a_factor_a_segment_may_test() -> None:
    valued = make_spec(**FEATURE_SPEC, goal=VALUE_GOAL)
    plan = FeaturePlan(lookback_days=365, repeat_model=True, goal_value="value")
    names = [info.name for info in feature_infos(plan, valued)]
    assert "goal_value_per_30d" in names
    assert [n for n in names if factor_origin(valued, n) is None] == []
    assert factor_origin(make_spec(), "goal_value_per_30d") is None


@pytest.mark.parametrize(
    "factor",
    [
        "purchase_days_since_lst",
        "tenure",
        "purchase_count_400d",
        "purchase_count_007d",
        "activity_ratio_30_400",
        "goal_chance_60d",
        "profile_agee",
        "purchase__count_30d",
        "channel__most_frequent",
    ],
)
def test_a_factor_no_run_can_build_is_refused_when_the_file_is_read(factor: str) -> None:
    assert spec_error(**FEATURE_SPEC, segments=segment_on(factor)).startswith(
        f"unit.yaml: segments[0].where[0]: segment 'lapsing' tests factor {factor!r}, which is not a feature of this "
        "instance; "
    )


def test_the_refusal_of_a_misspelled_factor_lists_the_nearest_names() -> None:
    # before: accepted, and the segment stayed empty at every run
    assert spec_error(segments=segment_on("purchase_days_since_lst")) == (
        "unit.yaml: segments[0].where[0]: segment 'lapsing' tests factor 'purchase_days_since_lst', which is not a "
        "feature of this instance; nearest known names: purchase_days_since_last, purchase_days_since_first, "
        "goal_days_since_first"
    )
    assert spec_error(**FEATURE_SPEC, segments=segment_on("profile_agee")).endswith("nearest known names: profile_age")
    assert spec_error(segments=segment_on("zzz")).endswith(
        "which is not a feature of this instance; no known name is close; feature names are "
        "EVENT_count_Nd, EVENT_days_since_last, EVENT_days_since_first, EVENT_value_sum, EVENT_value_mean (EVENT: an "
        "event type in lower case with _ for other characters, or a custom event; N: 7, 30, 90, 365 below the "
        "lookback, and the lookback), COLUMN_most_frequent (an extra text column of the events), profile_ATTRIBUTE, "
        "tenure_days, days_since_last_event, active_days, gap_mean_days, gap_std_days, activity_ratio_30_90, "
        "activity_ratio_90_LOOKBACK, goal_chance_Wd, goal_expected_Wd, goal_p_alive, goal_repeat_days, "
        "goal_days_since_first, goal_days_per_30d, goal_value_per_30d (a goal with a value)"
    )


@pytest.mark.parametrize("factor", ["goal_expected_30d", "goal_p_alive"])
def test_a_segment_on_a_repeat_buying_output_its_chance_speaks_for_is_refused(factor: str) -> None:
    # the three outputs are one factor, named for the chance: a segment on another would stay empty at every run
    assert spec_error(segments=segment_on(factor)) == (
        f"unit.yaml: segments[0].where[0]: segment 'lapsing' tests factor {factor!r}, which is never a factor of "
        "its own: the repeat-buying model's chance, expected count and chance of still being active are one factor, "
        "goal_chance_30d; test goal_chance_30d instead"
    )
    assert make_spec(segments=segment_on("goal_chance_30d")).segments[0].where[0].factor == "goal_chance_30d"


def test_a_factor_refused_in_the_file_is_refused_with_the_file_name(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE_YAML + SEGMENTS_YAML.replace("days_since_last_event", "days_since_last_evnt"))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value) == (
        f"{path}: segments[1].where[1]: segment 'at_risk_recent' tests factor 'days_since_last_evnt', which is not a "
        "feature of this instance; nearest known names: days_since_last_event, purchase_days_since_last, "
        "test_order_days_since_last"
    )


def test_a_churn_goals_outcome_is_said_as_coming_back_or_not() -> None:
    assert tuple(make_spec().outcome_words()) == ("reached the goal", "did not", "reach the goal")
    churn = make_spec(goal={**BASE_SPEC["goal"], "occurrence": "will_not_occur"})
    assert tuple(churn.outcome_words()) == ("did not come back", "came back", "not come back")


def test_the_currency_is_checked_and_changes_neither_hash() -> None:
    base = make_spec()
    pounds = make_spec(output={"currency": "GBP"})
    assert pounds.output.currency == "GBP"
    assert base.output.currency is None
    assert (pounds.spec_hash(), pounds.model_hash()) == (base.spec_hash(), base.model_hash())
    for wrong in ("pounds sterling", "", " GBP", "GBP\n"):
        assert spec_error(output={"currency": wrong}) == (
            f"unit.yaml: output.currency: {wrong!r} is not a currency code or symbol: give one word such "
            "as GBP, EUR or $"
        )


# --- a goal's value and timing (issue "Beyond yes/no") -----------------------------------------------------------

VALUE_GOAL = {**BASE_SPEC["goal"], "value": {"field": "value"}}
CHURN_GOAL = {**BASE_SPEC["goal"], "occurrence": "will_not_occur"}


def test_value_and_timing_at_their_defaults_leave_both_hashes_as_they_were() -> None:
    # the hashes of the base spec before the settings existed (commit a5b054a)
    base = make_spec()
    assert base.goal.value is None
    assert base.output.timing is False
    assert make_spec(output={"timing": False}).spec_hash() == base.spec_hash()
    assert make_spec(output={"timing": False}).model_hash() == base.model_hash()
    assert make_spec(goal={**BASE_SPEC["goal"], "value": None}).spec_hash() == base.spec_hash()


def test_a_value_or_timing_changes_both_hashes_and_the_horizon_the_models() -> None:
    base = make_spec()
    timed = make_spec(output={"timing": True})
    valued = make_spec(goal=VALUE_GOAL)
    for other in (timed, valued):
        assert other.spec_hash() != base.spec_hash()
        assert other.model_hash() != base.model_hash()
    longer = make_spec(output={"timing": True, "timing_horizon_days": 120})
    assert longer.model_hash() != timed.model_hash()
    # the default horizon is three goal windows: written out, it is the same model
    assert make_spec(output={"timing": True, "timing_horizon_days": 90}).model_hash() == timed.model_hash()
    assert timed.timing_horizon() == 90
    assert longer.timing_horizon() == 120


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"goal": {**CHURN_GOAL, "value": {"field": "value"}}},
            "unit.yaml: goal: value: a will_not_occur goal is reached when no goal event happens, so there is "
            "nothing to add up; predict the value of a goal that occurs (will_occur), or leave value out",
        ),
        (
            {"goal": CHURN_GOAL, "output": {"timing": True}},
            "unit.yaml: output: timing: a will_not_occur goal is reached when no goal event happens, so it has no "
            "next time to predict; use timing with a goal that occurs (will_occur), or leave it out",
        ),
        (
            {"output": {"timing": True, "timing_horizon_days": 20}},
            "unit.yaml: output: timing_horizon_days (20) is shorter than the goal's window (30 days): the horizon "
            "must hold the window, whose chance is the score",
        ),
        (
            {"output": {"timing_horizon_days": 60}},
            "unit.yaml: output: timing_horizon_days is set but timing is not: add timing: true, or leave it out",
        ),
    ],
)
def test_a_value_or_timing_a_goal_cannot_have_is_refused_in_words(overrides: dict, message: str) -> None:
    assert spec_error(**overrides) == message


def test_an_instance_file_may_ask_for_a_value_and_timing(tmp_path: Path) -> None:
    text = EXAMPLE_YAML.replace("  window_days: 30\n", "  window_days: 30\n  value: {field: value}\n")
    spec = load_spec(write(tmp_path, text.replace("output:\n", "output:\n  timing: true\n")))
    assert spec.goal.value.field == "value"
    assert spec.output.timing is True
    assert spec.timing_horizon() == 3 * spec.goal.window_days


def test_the_timing_gate_is_in_the_spec_hash_only_when_set_and_never_in_the_model_hash() -> None:
    base = make_spec(output={"timing": True})
    lowered = make_spec(
        output={"timing": True}, training={**BASE_SPEC["training"], "min_timing_concordance_gain": -0.01}
    )
    default = make_spec(output={"timing": True}, training={**BASE_SPEC["training"], "min_timing_concordance_gain": 0})
    assert (default.spec_hash(), default.model_hash()) == (base.spec_hash(), base.model_hash())
    assert lowered.spec_hash() != base.spec_hash()
    assert lowered.model_hash() == base.model_hash()


def test_a_segment_on_the_days_to_the_next_event_needs_timing_and_takes_days() -> None:
    segments = [{"name": "soon", "where": [{"field": "days_to_next", "op": "lt", "value": 14}]}]
    assert spec_error(segments=segments) == (
        "unit.yaml: segments: segments[0] (soon).where[0] tests days_to_next, which a run writes only for an "
        "instance with output.timing: true, or test another field"
    )
    assert make_spec(output={"timing": True}, segments=segments).segments[0].where[0].field == "days_to_next"
    negative = [{"name": "soon", "where": [{"field": "days_to_next", "op": "lt", "value": -1}]}]
    assert "days_to_next is a number of days of at least 0, not -1" in spec_error(
        output={"timing": True}, segments=negative
    )


def test_the_value_gate_is_in_the_spec_hash_only_when_set_and_never_in_the_model_hash() -> None:
    base = make_spec(goal=VALUE_GOAL)
    default = make_spec(goal=VALUE_GOAL, training={**BASE_SPEC["training"], "min_value_gini_gain": 0.0})
    lowered = make_spec(goal=VALUE_GOAL, training={**BASE_SPEC["training"], "min_value_gini_gain": -0.05})
    assert (default.spec_hash(), default.model_hash()) == (base.spec_hash(), base.model_hash())
    assert lowered.spec_hash() != base.spec_hash()
    assert lowered.model_hash() == base.model_hash()  # the same model, judged by another gate


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (
            {"field": "expected_value", "op": "gte", "value": -1},
            "expected_value is an amount of at least 0, not -1",
        ),
        (
            {"field": "expected_value", "op": "gte", "value": "lots"},
            "expected_value takes a number, not 'lots'",
        ),
    ],
)
def test_a_segment_on_the_expected_value_takes_an_amount(condition: dict, message: str) -> None:
    segments = [{"name": "big", "where": [condition]}]
    assert message in spec_error(goal=VALUE_GOAL, segments=segments)
    fine = make_spec(goal=VALUE_GOAL, segments=[{"name": "big", "where": [{**condition, "value": 500}]}])
    assert fine.segments[0].where[0].field == "expected_value"


def test_a_segment_on_the_expected_value_of_a_goal_without_one_is_refused() -> None:
    segments = [{"name": "big", "where": [{"field": "expected_value", "op": "gte", "value": 500}]}]
    assert spec_error(segments=segments) == (
        "unit.yaml: segments: segments[0] (big).where[0] tests expected_value, which a run writes only for a goal "
        "with a value: add goal.value (the field of the events to add up), or test another field"
    )
