"""A run's profile attributes kept per partition: written, read back for given profiles, partitions read only."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from customer_ai.attributes import (
    RunAttributes,
    attributes_path,
    keep_attributes,
    read_run_attributes,
    write_categories,
    write_run_attributes,
)
from customer_ai.events import EventsError, load_profiles
from customer_ai.features import attribute_categories
from customer_ai.partitions import partition_of

IDS = [f"p{i}" for i in range(12)]


def kept(folder: Path, count: int) -> pd.DataFrame:
    frame = pd.DataFrame(
        {"country": [f"c{i % 3}" for i in range(12)], "age": [20.0 + i for i in range(12)]},
        index=pd.Index(IDS, name="profile_id"),
    )
    hashed = partition_of(frame.index, count)
    for partition in range(count):
        write_run_attributes(folder, partition, frame.loc[hashed == partition])
    write_categories(folder, {"country": ["c0", "c1", "c2"], "age": []})
    return frame


def test_the_rows_of_given_profiles_come_back_from_their_partitions_only(tmp_path: Path) -> None:
    whole = kept(tmp_path, 3)
    read: list[int] = []
    attributes = read_run_attributes(tmp_path, 3)
    spy = RunAttributes(attributes.count, attributes.categories, lambda k: read.append(k) or attributes.read(k))
    wanted = pd.Index(["p3", "p7", "nobody"])
    got = spy.of(wanted)
    assert sorted(got.index) == ["p3", "p7"]  # a profile without a row has none
    pd.testing.assert_frame_equal(got.sort_index(), whole.loc[["p3", "p7"]])
    assert sorted(read) == sorted(set(partition_of(wanted, 3).tolist()))
    assert attributes.categories == {"country": ["c0", "c1", "c2"], "age": []}


def test_no_profiles_give_no_rows_with_the_columns(tmp_path: Path) -> None:
    kept(tmp_path, 2)
    got = read_run_attributes(tmp_path, 2).of(pd.Index([], dtype="str"))
    assert len(got) == 0
    assert list(got.columns) == ["country", "age"]


def test_each_partition_file_holds_its_profiles(tmp_path: Path) -> None:
    kept(tmp_path, 4)
    for partition in range(4):
        ids = pd.read_parquet(attributes_path(tmp_path, partition))["profile_id"]
        assert set(partition_of(pd.Index(ids), 4).tolist()) <= {partition}


def test_a_run_folder_without_attributes_says_to_run_its_first_step_again(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="categories.json is missing: run the validate_events step again"):
        read_run_attributes(tmp_path, 2)


# --- keep_attributes: the profile file split by profile, checked as load_profiles checks it -------------------------


def profile_file(folder: Path, name: str, **columns: list) -> Path:
    path = folder / name
    frame = pd.DataFrame(columns)
    if name.endswith(".csv"):
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path)
    return path


@pytest.mark.parametrize(("count", "batch_rows"), [(1, 1_000), (3, 2), (5, 1)])
def test_kept_attributes_are_those_of_the_whole_file_with_its_categories(
    tmp_path: Path, count: int, batch_rows: int
) -> None:
    ids = [17850.0, 13047.0, 12.0, 99.0, 5.0, 7.0, 8.0]
    path = profile_file(
        tmp_path, "profiles.parquet", customer=ids, country=list("UKFRUKD"), age=[30, 40, 1, 2, 3, 4, 5]
    )
    whole = load_profiles(path, ["country", "age"], id_column="customer")
    folder = tmp_path / "run"
    kept, first = keep_attributes(path, ["country", "age"], "customer", folder, count, batch_rows=batch_rows)
    assert first == "17850"
    pd.testing.assert_frame_equal(kept.of(whole.index).sort_index(), whole.sort_index())
    assert kept.categories == attribute_categories(whole) == {"country": ["D", "F", "K", "R", "U"], "age": []}
    assert sorted(p.name for p in (folder / "attributes").iterdir()) == [
        "categories.json",
        *(f"part-{k:05d}.parquet" for k in range(count)),
    ]


def test_a_csv_profile_file_keeps_its_ids_as_written(tmp_path: Path) -> None:
    path = tmp_path / "profiles.csv"
    path.write_text("customer,country\n007,France\n7,UK\n")
    kept, first = keep_attributes(path, ["country"], "customer", tmp_path / "run", 2, batch_rows=1)
    assert first == "007"
    assert kept.of(pd.Index(["007", "7"])).sort_index()["country"].tolist() == ["France", "UK"]


@pytest.mark.parametrize("batch_rows", [1, 2, 1_000])
@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"profile_id": ["1", "2", "1", "3", "2"], "country": list("abcde")}, "4 rows share a profile_id (e.g. '1')"),
        ({"profile_id": [5.0, 6.0, 5.0], "country": list("abc")}, "2 rows share a profile_id (e.g. '5')"),
        ({"profile_id": ["9", "2", "3", "2", "9"], "country": list("abcde")}, "4 rows share a profile_id (e.g. '9')"),
    ],
)
def test_rows_sharing_a_profile_are_counted_over_every_batch_and_partition(
    tmp_path: Path, columns: dict, message: str, batch_rows: int
) -> None:
    path = profile_file(tmp_path, "profiles.parquet", **columns)
    expected = f"{path}: {message}; the profile file needs one row per profile"
    with pytest.raises(EventsError) as whole:
        load_profiles(path, ["country"])
    assert str(whole.value) == expected
    with pytest.raises(EventsError) as split:
        keep_attributes(path, ["country"], "profile_id", tmp_path / "run", 3, batch_rows=batch_rows)
    assert str(split.value) == expected


@pytest.mark.parametrize(
    ("columns", "id_column", "message"),
    [
        (["age"], "profile_id", "missing profile column(s) ['age'] (columns: profile_id, country)"),
        (["country"], "customer", "missing profile column(s) ['customer'] (columns: profile_id, country)"),
    ],
)
def test_a_missing_column_is_named_as_for_a_whole_file(
    tmp_path: Path, columns: list[str], id_column: str, message: str
) -> None:
    path = profile_file(tmp_path, "profiles.csv", profile_id=["1"], country=["UK"])
    with pytest.raises(EventsError) as info:
        keep_attributes(path, columns, id_column, tmp_path / "run", 2)
    assert str(info.value) == f"{path}: {message}"


def test_padded_ids_and_nul_text_are_refused_naming_their_rows(tmp_path: Path) -> None:
    path = tmp_path / "profiles.csv"
    path.write_text("customer,country\nC1,UK\nC3,UK\n C2,France\n")
    with pytest.raises(EventsError, match=re.escape(f"{path}: column 'customer' has 1 ids with white space")):
        keep_attributes(path, ["country"], "customer", tmp_path / "run", 2, batch_rows=2)
    nul = profile_file(tmp_path, "nul.parquet", profile_id=["a", "b", "c"], country=["UK", "F\x00R", "UK"])
    with pytest.raises(EventsError, match=re.escape("column 'country' has 1 values with a NUL character (rows 1, ")):
        keep_attributes(nul, ["country"], "profile_id", tmp_path / "run", 2, batch_rows=1)
