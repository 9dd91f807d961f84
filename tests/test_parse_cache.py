"""The DAG file's parse cache: entries valid for one file state and one code stamp, private, never an error."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from customer_ai_airflow.parse_cache import SETTLE_NS, ParseCache, cache_folder, code_stamp

PAST_NS = 1_600_000_000_000_000_000  # 2020-09-13: long settled


def settled(path: Path, text: str, mtime_ns: int = PAST_NS) -> Path:
    path.write_text(text)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def test_a_value_comes_back_while_the_file_and_the_code_are_unchanged(tmp_path: Path) -> None:
    instance = settled(tmp_path / "a.yaml", "name: a\n")
    cache = ParseCache(tmp_path / "cache.json", "stamp1")
    key = cache.key(instance)
    assert key == [PAST_NS, 8]
    assert cache.get(instance, key) is None
    cache.put(instance, key, {"summary": {"name": "a"}})
    cache.save()
    again = ParseCache(tmp_path / "cache.json", "stamp1")
    assert again.get(instance, again.key(instance)) == {"summary": {"name": "a"}}
    assert ParseCache(tmp_path / "cache.json", "stamp2").get(instance, key) is None  # other code: read again


def test_an_edited_file_misses(tmp_path: Path) -> None:
    instance = settled(tmp_path / "a.yaml", "name: a\n")
    cache = ParseCache(tmp_path / "cache.json", "s")
    cache.put(instance, cache.key(instance), {"error": "old"})
    cache.save()
    settled(instance, "name: b\n")  # the same size and time: the one change the key cannot see
    assert ParseCache(tmp_path / "cache.json", "s").get(instance, cache.key(instance)) == {"error": "old"}
    settled(instance, "name: bb\n")
    assert ParseCache(tmp_path / "cache.json", "s").get(instance, cache.key(instance)) is None
    settled(instance, "name: b\n", PAST_NS + 1)
    assert ParseCache(tmp_path / "cache.json", "s").get(instance, cache.key(instance)) is None


def test_a_file_changed_just_now_is_not_cached(tmp_path: Path) -> None:
    instance = tmp_path / "a.yaml"
    instance.write_text("name: a\n")
    cache = ParseCache(tmp_path / "cache.json", "s")
    assert cache.key(instance) is None  # a second edit within the clock's resolution could keep its time
    cache.put(instance, None, {"error": "x"})
    cache.save()
    assert not (tmp_path / "cache.json").exists()
    assert cache.key(tmp_path / "missing.yaml") is None
    old = os.stat(instance).st_mtime_ns - SETTLE_NS - 1
    os.utime(instance, ns=(old, old))
    assert cache.key(instance) == [old, 8]


def test_save_keeps_only_the_files_of_this_parse_and_writes_only_on_a_change(tmp_path: Path) -> None:
    a, b = settled(tmp_path / "a.yaml", "a: 1\n"), settled(tmp_path / "b.yaml", "b: 1\n")
    first = ParseCache(tmp_path / "cache.json", "s")
    first.put(a, first.key(a), 1)
    first.put(b, first.key(b), 2)
    first.save()
    assert sorted(json.loads((tmp_path / "cache.json").read_text())["files"]) == [str(a), str(b)]
    os.utime(tmp_path / "cache.json", ns=(PAST_NS, PAST_NS))
    same = ParseCache(tmp_path / "cache.json", "s")
    assert [same.get(a, same.key(a)), same.get(b, same.key(b))] == [1, 2]
    same.save()
    assert os.stat(tmp_path / "cache.json").st_mtime_ns == PAST_NS  # nothing changed: not written
    b.unlink()
    fewer = ParseCache(tmp_path / "cache.json", "s")
    assert fewer.get(a, fewer.key(a)) == 1
    fewer.save()
    assert list(json.loads((tmp_path / "cache.json").read_text())["files"]) == [str(a)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.yaml", "cache.json"]  # no temporary file left


@pytest.mark.parametrize(
    "content", ["{not json", "[]", '{"stamp": "s", "files": []}', '{"stamp": "s", "files": {"X": 3}}']
)
def test_a_broken_cache_file_is_a_miss(tmp_path: Path, content: str) -> None:
    instance = settled(tmp_path / "X", "a: 1\n")
    (tmp_path / "cache.json").write_text(content.replace('"X"', json.dumps(str(instance))))
    cache = ParseCache(tmp_path / "cache.json", "s")
    assert cache.get(instance, cache.key(instance)) is None
    cache.put(instance, cache.key(instance), 5)
    cache.save()
    assert ParseCache(tmp_path / "cache.json", "s").get(instance, cache.key(instance)) == 5


def test_without_a_file_the_cache_keeps_nothing(tmp_path: Path) -> None:
    instance = settled(tmp_path / "a.yaml", "a: 1\n")
    cache = ParseCache(None, "s")
    cache.put(instance, cache.key(instance), 1)
    cache.save()
    assert cache.get(instance, cache.key(instance)) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.yaml"]


def test_an_unwritable_cache_folder_is_not_an_error(tmp_path: Path) -> None:
    instance = settled(tmp_path / "a.yaml", "a: 1\n")
    cache = ParseCache(tmp_path / "gone" / "cache.json", "s")
    cache.put(instance, cache.key(instance), 1)
    cache.save()  # the folder does not exist: nothing is written, nothing is raised
    assert not (tmp_path / "gone").exists()


def test_the_cache_folder_is_private_or_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUSTOMER_AI_PARSE_CACHE", str(tmp_path / "mine"))
    assert cache_folder() == tmp_path / "mine"
    assert (tmp_path / "mine").stat().st_mode & 0o777 == 0o700
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("CUSTOMER_AI_PARSE_CACHE", str(shared))
    assert cache_folder() is None  # others could plant entries in it
    (tmp_path / "link").symlink_to(tmp_path / "mine")
    monkeypatch.setenv("CUSTOMER_AI_PARSE_CACHE", str(tmp_path / "link"))
    assert cache_folder() is None
    for off in ("off", "OFF"):
        monkeypatch.setenv("CUSTOMER_AI_PARSE_CACHE", off)
        assert cache_folder() is None
        assert ParseCache.for_folder(tmp_path, "s").file is None


def test_the_cache_lives_under_airflows_home_or_the_users_cache_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CUSTOMER_AI_PARSE_CACHE", raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    assert cache_folder() == tmp_path / "airflow" / "customer_ai_parse_cache"
    monkeypatch.delenv("AIRFLOW_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert cache_folder() == tmp_path / "cache" / "customer-ai" / "parse-cache"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    assert cache_folder() == tmp_path / "me" / ".cache" / "customer-ai" / "parse-cache"
    assert (tmp_path / "me" / ".cache" / "customer-ai" / "parse-cache").stat().st_mode & 0o777 == 0o700


def test_one_cache_file_per_instances_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUSTOMER_AI_PARSE_CACHE", str(tmp_path / "cache"))
    one, other = ParseCache.for_folder(tmp_path / "one", "s"), ParseCache.for_folder(tmp_path / "other", "s")
    assert one.file.parent == other.file.parent == tmp_path / "cache"
    assert one.file != other.file
    assert ParseCache.for_folder(tmp_path / "x" / ".." / "one", "s").file == one.file


def test_the_code_stamp_follows_the_version_and_the_files(tmp_path: Path) -> None:
    module = settled(tmp_path / "spec.py", "x = 1\n")
    stamp = code_stamp("0.1.0", [module])
    assert stamp == code_stamp("0.1.0", [module])
    assert len(stamp) == 16
    assert code_stamp("0.1.1", [module]) != stamp
    settled(module, "x = 2\n", PAST_NS + 1)
    assert code_stamp("0.1.0", [module]) != stamp
    assert code_stamp("0.1.0", [module, tmp_path / "gone.py"]) != code_stamp("0.1.0", [module])
