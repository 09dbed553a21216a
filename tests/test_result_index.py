"""The result index (vicinal.store.index): reading a results folder through it gives exactly the results
the files hold — after changes, deletions and same-size rewrites too — and the readers that share its
blocks between results (leaderboard, report) do not modify them."""

from __future__ import annotations

import json
import os

import pytest
from synthetic import write_suite

from vicinal.board.boards import build_boards
from vicinal.board.formats import FORMATS
from vicinal.board.report import build_report
from vicinal.store.index import index_file
from vicinal.store.results import load_store


def _snapshot(store) -> list:
    return [(str(r.path), r.to_json()) for r in store.results], sorted(map(str, store.skipped))


@pytest.fixture
def folder(tmp_path):
    results = tmp_path / "results"
    write_suite(results)
    (results / "toy" / "m0" / "broken.json").write_text("{not json")
    return results, index_file(results, tmp_path / "cache")


def _age(index) -> None:
    """Make the index look written long after the files (they are then trusted, not racily clean)."""
    data = json.loads(index.read_text())
    data["written_ns"] += 10 * 10**9
    index.write_text(json.dumps(data))


def test_the_index_gives_what_the_files_hold(folder):
    results, index = folder
    plain = _snapshot(load_store(results))
    assert _snapshot(load_store(results, index=index)) == plain  # builds the index
    assert index.is_file()
    _age(index)
    assert _snapshot(load_store(results, index=index)) == plain  # served from it
    assert plain[1] and "broken.json" in plain[1][0]  # unreadable files are still reported


def test_changed_added_and_removed_files_are_seen(folder):
    results, index = folder
    load_store(results, index=index)
    _age(index)
    first = sorted((results / "toy").rglob("*-seed0.json"))[0]
    doc = json.loads(first.read_text())
    doc["metrics"]["acc"] = 0.123456
    tmp = first.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, first)  # as vicinal writes: a new file under the old name
    extra = first.with_name("zz-extra.json")
    extra.write_text(json.dumps({**doc, "seed": 9}))
    gone = sorted((results / "toy").rglob("*-seed1.json"))[0]
    gone.unlink()
    assert _snapshot(load_store(results, index=index)) == _snapshot(load_store(results))
    by_path = {r.path: r for r in load_store(results, index=index).results}
    assert by_path[first].metrics["acc"] == 0.123456 and extra in by_path and gone not in by_path


def test_a_same_size_rewrite_right_after_indexing_is_seen(folder):
    """A rewrite in place, same size, within the file system's timestamp granularity keeps size, inode and
    possibly mtime: files modified this close to the index's writing are always read again."""
    results, index = folder
    first = sorted((results / "toy").rglob("*-seed0.json"))[0]
    load_store(results, index=index)
    stat = first.stat()
    text = first.read_text()
    doc = json.loads(text)
    old = f'"acc": {json.dumps(doc["metrics"]["acc"])}'
    new = old[:-1] + ("1" if old[-1] != "1" else "2")
    assert old in text
    first.write_text(text.replace(old, new, 1))
    os.utime(first, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the same mtime, as a coarse clock gives
    assert first.stat().st_size == stat.st_size and first.stat().st_ino == stat.st_ino
    assert _snapshot(load_store(results, index=index)) == _snapshot(load_store(results))


def test_a_broken_or_unwritable_index_costs_only_time(folder, tmp_path):
    results, index = folder
    plain = _snapshot(load_store(results))
    index.parent.mkdir(parents=True)
    index.write_text("{garbage")
    assert _snapshot(load_store(results, index=index)) == plain
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    assert _snapshot(load_store(results, index=blocked / "sub" / "index.json")) == plain


@pytest.mark.filterwarnings("ignore:constrained_layout not applied")  # the report's, on this tiny suite
def test_readers_leave_shared_results_alone(folder):
    """Results read through the index share dicts; rendering every format and the report must not change
    them (a reader that mutated one would change every seed's)."""
    results, index = folder
    load_store(results, index=index)
    _age(index)
    store = load_store(results, index=index)
    assert store.results[0].metric_info is store.results[1].metric_info  # shared, as designed
    before = _snapshot(store)
    for by in (None, "corruption", "severity", "eps"):
        boards = build_boards(store, by=by)
        for render in FORMATS.values():
            render(boards)
    build_boards(store, metrics=["all"])
    build_report(store, progress=lambda *a: None)
    assert _snapshot(store) == before == _snapshot(load_store(results))


def test_the_index_is_per_results_folder(tmp_path):
    assert index_file(tmp_path / "a", tmp_path / "c") != index_file(tmp_path / "b", tmp_path / "c")
    assert index_file(tmp_path / "a", tmp_path / "c").parent == tmp_path / "c" / "result-index"


def test_non_finite_numbers_survive_the_index(folder):
    """orjson reads strict JSON only and would write a NaN back as null: a file holding NaN or Infinity
    (the standard library writes them) is read by the standard library, and the index keeps the NaN."""
    results, index = folder
    first = sorted((results / "toy").rglob("*-seed0.json"))[0]
    doc = json.loads(first.read_text())
    doc["metrics"].update(acc=float("nan"), nll=float("inf"))
    first.write_text(json.dumps(doc))  # NaN, Infinity: as vicinal's writer would
    load_store(results, index=index)
    assert "NaN" in index.read_text() and "Infinity" in index.read_text()
    _age(index)
    (result,) = [r for r in load_store(results, index=index).results if r.path == first]
    assert result.metrics["acc"] != result.metrics["acc"] and result.metrics["nll"] == float("inf")
    indexed, plain = load_store(results, index=index), load_store(results)
    assert json.dumps(_snapshot(indexed)) == json.dumps(_snapshot(plain))


def test_equal_blocks_are_one_object_on_the_first_read_too(folder):
    """Every seed's metric descriptions and declarations are converted once, on a first read (no index
    yet) as on later ones: the results share the typed objects, and the index stores each block once."""
    results, index = folder
    for attempt in ("first read", "from the index"):
        store = load_store(results, index=index)
        toy = [r for r in store.results if r.suite == "toy"]
        assert len(toy) > 2, attempt
        assert len({id(r.metric_info) for r in toy}) == 1, attempt
        assert len({id(r.declares) for r in toy}) == 1, attempt
        _age(index)
    data = json.loads(index.read_text())
    texts = [json.dumps(b, sort_keys=True) for b in data["blocks"]]
    assert len(texts) == len(set(texts))  # no block stored twice
