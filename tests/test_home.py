"""The home's interface on a local folder and on a real S3 server: paths, whole files, folder moves and removals."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest
from s3_support import new_bucket

from customer_ai import files
from customer_ai.home import HomeError, as_path, clear_downloads, fetch, fetch_tree, is_local, move, put, remove_tree


@pytest.fixture(params=["local", "s3"])
def home(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    if request.param == "local":
        return tmp_path / "home"
    env = request.getfixturevalue("s3_env")
    return as_path(f"s3://{new_bucket(env)}/home")


def test_local_paths_stay_paths_and_urls_become_bucket_paths(s3_env: dict[str, str]) -> None:
    assert as_path("/tmp/x") == Path("/tmp/x")
    assert type(as_path("/tmp/x")) is type(Path("/tmp/x"))
    assert as_path("file:///tmp/x") == Path("/tmp/x")
    assert as_path("~/x") == Path.home() / "x"
    assert is_local(as_path("/tmp/x"))
    bucket = as_path("s3://some-bucket/prefix")
    assert not is_local(bucket)
    assert (bucket.protocol, bucket.path, str(bucket / "a" / "b.txt")) == (
        "s3",
        "some-bucket/prefix",
        "s3://some-bucket/prefix/a/b.txt",
    )
    assert as_path(bucket) is bucket


def test_a_protocol_without_its_file_system_is_refused_naming_what_to_install() -> None:
    with pytest.raises(HomeError, match=r"^nosuchprotocol://bucket/x: "):
        as_path("nosuchprotocol://bucket/x")


def test_files_are_written_whole_read_back_and_listed(home: object) -> None:
    folder = home / "artifacts" / "unit" / "2024-01-01" / ".cli-0123456789.staging"
    files.reset_dir(folder)
    files.write_json(folder / "plan.json", {"b": 1, "a": [1, 2]})
    files.write_frame(folder / "scores.parquet", pd.DataFrame({"profile_id": ["p1", "p2"], "probability": [0.1, 0.9]}))
    assert files.read_json(folder / "plan.json") == {"a": [1, 2], "b": 1}
    assert files.read_json_object(folder / "plan.json", ["a"])["b"] == 1
    assert files.read_frame(folder / "scores.parquet")["probability"].tolist() == [0.1, 0.9]
    assert pd.read_parquet(fetch(folder / "scores.parquet"))["profile_id"].tolist() == ["p1", "p2"]
    assert sorted(p.name for p in folder.iterdir()) == ["plan.json", "scores.parquet"]
    with pytest.raises(files.FileContentError, match=r"missing.json: is missing"):
        files.read_json_object(folder / "missing.json")


def test_the_copies_of_bucket_files_are_removed_when_a_task_clears_them(home: object) -> None:
    files.write_json(home / "x" / "plan.json", {"a": 1})
    copy = fetch(home / "x" / "plan.json")
    assert copy.exists()
    clear_downloads()
    assert copy.exists() == is_local(home)  # a local home's file is itself: never removed
    assert files.read_json(home / "x" / "plan.json") == {"a": 1}  # and fetched afresh after
    clear_downloads()


def test_a_folder_moves_whole_and_is_removed(home: object) -> None:
    staging = home / "runs" / ".cli-0123456789.staging"
    files.write_text(staging / "a.txt", "first")
    files.write_text(staging / "nested" / "b.txt", "second")
    sealed = home / "runs" / "cli-0123456789"
    move(staging, sealed)
    assert not staging.exists()
    assert (sealed / "a.txt").read_text() == "first"
    assert (sealed / "nested" / "b.txt").read_text() == "second"
    local = fetch_tree(sealed)
    assert is_local(local)
    assert (local / "a.txt").read_text() == "first"
    copy = files.copy_dir(sealed, home / "runs" / "copy")
    assert (copy / "nested" / "b.txt").read_text() == "second"
    remove_tree(sealed)
    assert not sealed.exists()
    remove_tree(sealed)  # nothing there: nothing happens
    with pytest.raises(FileNotFoundError):
        fetch(sealed / "a.txt")


def test_a_local_file_is_put_whole(home: object, tmp_path: Path) -> None:
    local = tmp_path / "model.txt"
    local.write_text("tree\n")
    target = home / "models" / "unit" / "v1" / "model.txt"
    target.parent.mkdir(parents=True, exist_ok=True)
    put(local, target)
    assert target.read_text() == "tree\n"


def test_a_bucket_whose_file_system_is_not_installed_names_the_extra_to_install() -> None:
    if importlib.util.find_spec("gcsfs") is not None:  # not in the test environment: [gcs] is documented, not tested
        pytest.skip("gcsfs is installed here")
    message = r'^gs://bucket/x: the file system of gs:// is not installed \(.+\): pip install "customer-ai\[gcs\]"$'
    with pytest.raises(HomeError, match=message):
        as_path("gs://bucket/x")
