"""Tests for customer_ai.conditions: one mask per operator, missing values, type coercion, AND/OR."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd
import pytest

from customer_ai.conditions import (
    ConditionError,
    condition_mask,
    patterns_mask,
    rule_problems,
    unknown_fields,
    value_field_problems,
    where_mask,
)
from customer_ai.spec import Condition, EventPattern

from conftest import make_events, make_spec

T, F = True, False


@pytest.fixture
def events() -> pd.DataFrame:
    """Four events; row 1 has no value and no country, row 3 has a value but no country."""
    return make_events(
        [
            ("a", "2011-01-01", "purchase", 10.0, {"country": "UK"}),
            ("b", "2011-01-02", "view", None, {"country": None}),
            ("c", "2011-01-03", "purchase", 60.0, {"country": "France"}),
            ("d", "2011-01-04 12:00", "cart", 0.0, {"country": None}),
        ]
    )


def mask(events: pd.DataFrame, field: str, op: str, value: object = None) -> list[bool]:
    result = condition_mask(events, Condition(field=field, op=op, value=value))
    assert isinstance(result, np.ndarray)
    assert result.dtype == bool
    assert result.shape == (len(events),)
    return result.tolist()


def test_fixture_order(events: pd.DataFrame) -> None:
    assert events["profile_id"].tolist() == ["a", "b", "c", "d"]
    assert events["value"].isna().tolist() == [F, T, F, F]
    assert events["country"].isna().tolist() == [F, T, F, T]


@pytest.mark.parametrize(
    ("field", "op", "value", "expected"),
    [
        ("event_type", "eq", "purchase", [T, F, T, F]),
        ("event_type", "ne", "purchase", [F, T, F, T]),
        ("value", "eq", 10, [T, F, F, F]),
        ("value", "ne", 10, [F, F, T, T]),
        ("value", "gt", 10, [F, F, T, F]),
        ("value", "gte", 10, [T, F, T, F]),
        ("value", "lt", 10, [F, F, F, T]),
        ("value", "lte", 10, [T, F, F, T]),
        ("value", "gte", 0, [T, F, T, T]),
        ("value", "gt", 9.5, [T, F, T, F]),
        ("event_type", "in", ["purchase", "cart"], [T, F, T, T]),
        ("event_type", "not_in", ["purchase", "cart"], [F, T, F, F]),
        ("event_type", "contains", "ar", [F, F, F, T]),
        ("event_type", "contains", "purchase", [T, F, T, F]),
        ("event_type", "contains", "Purchase", [F, F, F, F]),
        ("country", "exists", None, [T, F, T, F]),
        ("country", "exists", True, [T, F, T, F]),
        ("country", "exists", False, [F, T, F, T]),
        ("value", "exists", None, [T, F, T, T]),
        ("value", "exists", False, [F, T, F, F]),
    ],
)
def test_operators(events: pd.DataFrame, field: str, op: str, value: object, expected: list[bool]) -> None:
    assert mask(events, field, op, value) == expected


@pytest.mark.parametrize(
    ("field", "op", "value", "expected"),
    [
        ("country", "eq", "UK", [T, F, F, F]),
        ("country", "ne", "UK", [F, F, T, F]),
        ("country", "in", ["UK", "France"], [T, F, T, F]),
        ("country", "not_in", ["UK"], [F, F, T, F]),
        ("country", "gt", "G", [T, F, F, F]),
        ("country", "lt", "G", [F, F, T, F]),
        ("country", "lte", "UK", [T, F, T, F]),
        ("country", "gte", "A", [T, F, T, F]),
        ("country", "contains", "a", [F, F, T, F]),
        ("value", "ne", 999, [T, F, T, T]),
        ("value", "not_in", [999], [T, F, T, T]),
        ("value", "lt", 1e9, [T, F, T, T]),
        ("value", "contains", "0", [T, F, T, T]),
    ],
)
def test_missing_values_never_satisfy_comparisons(
    events: pd.DataFrame, field: str, op: str, value: object, expected: list[bool]
) -> None:
    assert mask(events, field, op, value) == expected


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("eq", "10", [T, F, F, F]),
        ("gte", "10.0", [T, F, T, F]),
        ("lt", "60", [T, F, F, T]),
        ("in", ["10", 60], [T, F, T, F]),
        ("not_in", ["10"], [F, F, T, T]),
    ],
)
def test_numeric_column_with_numeric_string(events: pd.DataFrame, op: str, value: object, expected: list[bool]) -> None:
    assert mask(events, "value", op, value) == expected


@pytest.mark.parametrize("value", ["abc", "", "10 euros"])
def test_numeric_column_with_non_numeric_string(events: pd.DataFrame, value: str) -> None:
    with pytest.raises(ConditionError, match=rf"condition on 'value' compares a numeric column with {value!r}"):
        mask(events, "value", "gte", value)


def test_numeric_column_in_list_with_non_numeric_string(events: pd.DataFrame) -> None:
    with pytest.raises(ConditionError, match=r"condition on 'value' compares a numeric column with 'ten'"):
        mask(events, "value", "in", [10, "ten"])


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("gte", "2011-01-02", [F, T, T, T]),
        ("gt", "2011-01-02", [F, F, T, T]),
        ("lt", "2011-01-02", [T, F, F, F]),
        ("lte", "2011-01-02", [T, T, F, F]),
        ("eq", "2011-01-02", [F, T, F, F]),
        ("ne", "2011-01-02", [T, F, T, T]),
        ("eq", "2011-01-04T12:00:00", [F, F, F, T]),
        ("gte", "2011-01-04T12:00:00.000001", [F, F, F, F]),
        ("lt", "2011-01-04T12:00:00", [T, T, T, F]),
        ("in", ["2011-01-01", "2011-01-03"], [T, F, T, F]),
        ("not_in", ["2011-01-01"], [F, T, T, T]),
    ],
)
def test_timestamp_column_with_date_string(events: pd.DataFrame, op: str, value: object, expected: list[bool]) -> None:
    assert mask(events, "timestamp", op, value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # 2011-01-02 01:00 in Paris (+01:00) is 2011-01-02 00:00 UTC: the instant of row 1.
        ("2011-01-02T01:00:00+01:00", [F, T, T, T]),
        ("2011-01-02T00:00:00Z", [F, T, T, T]),
        ("2011-01-02T00:00:01Z", [F, F, T, T]),
        (datetime.date(2011, 1, 3), [F, F, T, T]),
        (datetime.datetime(2011, 1, 2, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=1))), [F, T, T, T]),
    ],
)
def test_timestamp_gte_converts_to_utc(events: pd.DataFrame, value: object, expected: list[bool]) -> None:
    assert mask(events, "timestamp", "gte", value) == expected


def test_yaml_number_matches_its_text_in_a_text_column(events: pd.DataFrame) -> None:
    # YAML reads `value: 10` as a number; ids and codes are text in the events, so the number is compared as text.
    frame = make_events([("10", "2011-01-01", "purchase"), ("10.5", "2011-01-01", "purchase")])
    assert mask(frame, "profile_id", "eq", "10") == [T, F]
    assert mask(frame, "profile_id", "eq", 10) == [T, F]
    assert mask(frame, "profile_id", "eq", 10.0) == [T, F]
    assert mask(frame, "profile_id", "in", [10.5]) == [F, T]
    assert mask(frame, "profile_id", "eq", True) == [F, F]


def test_a_condition_date_that_is_not_a_date_names_the_field() -> None:
    frame = make_events([("a", "2011-01-01", "purchase")])
    with pytest.raises(ConditionError, match=r"condition on 'timestamp' \(gte\): 'soon' is not a date"):
        mask(frame, "timestamp", "gte", "soon")


def test_ordering_string_column_against_number_is_a_condition_error(events: pd.DataFrame) -> None:
    with pytest.raises(ConditionError, match=r"condition on 'country' \(gt 5\): "):
        mask(events, "country", "gt", 5)


def test_unknown_field(events: pd.DataFrame) -> None:
    with pytest.raises(ConditionError) as info:
        mask(events, "coutry", "eq", "UK")
    assert str(info.value) == (
        "condition on field 'coutry': the events have no such column "
        "(columns: profile_id, timestamp, event_type, value, country)"
    )


def test_unknown_field_with_exists(events: pd.DataFrame) -> None:
    with pytest.raises(ConditionError, match=r"condition on field 'coupon'.*\(columns: profile_id, timestamp"):
        mask(events, "coupon", "exists")


def test_empty_events() -> None:
    empty = make_events([("a", "2011-01-01", "purchase")]).iloc[0:0]
    assert mask(empty, "event_type", "eq", "purchase") == []
    assert where_mask(empty, [Condition(field="value", op="gte", value=1)]).tolist() == []


def cond(field: str, op: str, value: object = None) -> Condition:
    return Condition(field=field, op=op, value=value)


def test_where_mask_is_and(events: pd.DataFrame) -> None:
    where = [cond("event_type", "eq", "purchase"), cond("value", "gte", 50)]
    assert where_mask(events, where).tolist() == [F, F, T, F]
    assert where_mask(events, where[:1]).tolist() == [T, F, T, F]
    assert where_mask(events, where[1:]).tolist() == [F, F, T, F]
    assert where_mask(events, [cond("event_type", "eq", "purchase"), cond("country", "eq", "UK")]).tolist() == [
        T,
        F,
        F,
        F,
    ]


def test_where_mask_empty_is_all_true(events: pd.DataFrame) -> None:
    assert where_mask(events, []).tolist() == [T, T, T, T]


def test_where_mask_propagates_condition_error(events: pd.DataFrame) -> None:
    with pytest.raises(ConditionError, match="'nope'"):
        where_mask(events, [cond("event_type", "eq", "purchase"), cond("nope", "eq", 1)])


def test_patterns_mask_is_or(events: pd.DataFrame) -> None:
    patterns = [
        EventPattern(where=[cond("event_type", "eq", "view")]),
        EventPattern(where=[cond("event_type", "eq", "purchase"), cond("value", "gte", 50)]),
    ]
    assert patterns_mask(events, patterns).tolist() == [F, T, T, F]
    assert patterns_mask(events, patterns[:1]).tolist() == [F, T, F, F]
    assert patterns_mask(events, patterns[1:]).tolist() == [F, F, T, F]


def test_patterns_mask_empty_is_all_false(events: pd.DataFrame) -> None:
    assert patterns_mask(events, []).tolist() == [F, F, F, F]


def test_masks_do_not_modify_events(events: pd.DataFrame) -> None:
    before = events.copy()
    where_mask(events, [cond("value", "gte", "10"), cond("timestamp", "lt", "2011-02-01")])
    pd.testing.assert_frame_equal(events, before)


# --- rules no event matches, fields the events lack ---------------------------------------------------------------

REFUND = {"where": [{"field": "event_type", "op": "eq", "value": "refund"}]}
PURCHASE = {"where": [{"field": "event_type", "op": "eq", "value": "purchase"}]}
TYPES = "; the events' types are purchase, cart, view"  # two purchases, then one each by name


def test_a_goal_no_event_matches_is_an_error_in_words(events: pd.DataFrame) -> None:
    spec = make_spec(goal={"occurrence": "will_occur", "events": [REFUND], "window_days": 14})
    assert rule_problems(spec, events) == (
        [f"no event matches goal.events[0] (refund): nobody can reach the goal, so no model can learn it{TYPES}"],
        [],
    )
    churn = make_spec(goal={"occurrence": "will_not_occur", "events": [REFUND], "window_days": 14})
    (error,), _ = rule_problems(churn, events)
    assert error.endswith(
        ": every profile would reach the goal (nobody does these events), so no model can learn it" + TYPES
    )


def test_a_pattern_of_a_goal_met_by_others_is_a_warning_unless_all_must_match(events: pd.DataFrame) -> None:
    spec = make_spec(goal={"occurrence": "will_occur", "events": [PURCHASE, REFUND], "window_days": 14})
    assert rule_problems(spec, events) == (
        [],
        ["no event matches goal.events[1] (refund): the goal is met through its other patterns only"],
    )
    every = make_spec(
        goal={"occurrence": "will_occur", "match": "all", "events": [PURCHASE, REFUND], "window_days": 14}
    )
    (error,), warnings = rule_problems(every, events)
    assert error.startswith(
        "no event matches goal.events[1] (refund): the rule needs every one of its patterns (match: all): nobody"
    )
    assert warnings == []


def test_eligibility_exclusions_and_custom_events_that_match_nothing(events: pd.DataFrame) -> None:
    spec = make_spec(
        eligibility={"events": [REFUND], "exclude": [{"where": [{"field": "value", "op": "gt", "value": 1000}]}]},
        custom_events=[{"name": "refunds", "where": REFUND["where"]}, {"name": "buys", "where": PURCHASE["where"]}],
    )
    errors, warnings = rule_problems(spec, events)
    assert errors == [f"no event matches eligibility.events[0] (refund): no profile is eligible to be scored{TYPES}"]
    assert warnings == [
        "no event matches eligibility.exclude[0] (value > 1000): it excludes nobody",
        "no event matches custom_events[0], refunds (refund): its features are the same for every profile",
    ]
    assert rule_problems(make_spec(), events) == ([], [])


def test_rule_problems_name_the_pattern_whose_field_is_missing(events: pd.DataFrame) -> None:
    spec = make_spec(custom_events=[{"name": "big", "where": [{"field": "amount", "op": "gt", "value": 5}]}])
    with pytest.raises(ConditionError, match=r"^custom_events\[0\]: condition on field 'amount': the events have no"):
        rule_problems(spec, events)


def test_unknown_fields_name_each_condition_on_a_column_the_events_lack() -> None:
    spec = make_spec(
        goal={
            "occurrence": "will_occur",
            "events": [{"where": [{"field": "evnt_type", "op": "eq", "value": 1}]}],
            "window_days": 7,
        },
        custom_events=[
            {
                "name": "big",
                "where": [{"field": "value", "op": "gt", "value": 5}, {"field": "amount", "op": "gt", "value": 5}],
            }
        ],
    )
    columns = ["profile_id", "timestamp", "event_type", "value"]
    assert unknown_fields(spec, columns, "events.parquet") == [
        "goal.events[0].where[0] tests field 'evnt_type', which the events of events.parquet do not have (their "
        "columns: profile_id, timestamp, event_type, value)",
        "custom_events[0].where[1] tests field 'amount', which the events of events.parquet do not have (their "
        "columns: profile_id, timestamp, event_type, value)",
    ]
    assert unknown_fields(make_spec(), columns) == []


def test_a_goals_value_field_must_be_a_column_of_numbers() -> None:
    valued = make_spec(goal={**make_spec().goal.model_dump(mode="json"), "value": {"field": "amount"}})
    columns = ["profile_id", "timestamp", "event_type", "amount"]
    assert value_field_problems(valued, columns, ["amount"], "events.parquet") == []
    assert value_field_problems(valued, columns, [], "events.parquet") == [
        "goal.value.field is 'amount', which is not a column of numbers in the events of events.parquet: its "
        "amounts are summed"
    ]
    assert value_field_problems(valued, columns[:3], []) == [
        "goal.value.field is 'amount', which the events do not have (their columns: profile_id, timestamp, event_type)"
    ]
    assert value_field_problems(make_spec(), columns[:3], []) == []  # a goal without a value
