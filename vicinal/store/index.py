"""A derived index of a results folder, so that reading it again does not decode every result file.

At 10,000 result files most of ``vicinal leaderboard``'s time went to JSON-decoding them, although most
of each file repeats its neighbours: every seed of a suite carries the same metric descriptions,
protocols, suite settings and environment. The index (one JSON file in the cache folder per results
folder) stores each distinct block once and, per file, only what is its own (metrics, history, timing,
ids), with the file's size, modification time and inode. A file whose stat no longer matches is read
from disk again; so is a file modified within two seconds of the index being written (a same-size
rewrite within the file system's timestamp granularity could otherwise go unseen: git's "racily clean"
entries). The index is never the source of truth — deleting it only costs one full read — and it holds
plain JSON values, nothing that could run code.

Results read through the index share their blocks (the same dict for every seed's ``metric_info``):
readers must treat a :class:`~vicinal.store.results.Result`'s dicts as read-only, as the leaderboard and the
report do (a test checks it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import time
from pathlib import Path
from typing import Any

from vicinal.core.errors import VicinalError
from vicinal.core.io import atomic_write, decode_json

#: 2: ``declares`` is shared too (every seed of a suite declares the same).
VERSION = 2
RACY_NS = 2_000_000_000


def index_file(results_dir: Path, cache_dir: Path) -> Path:
    """Where the index of ``results_dir`` lives in ``cache_dir``."""
    try:
        where = str(results_dir.resolve())
    except (OSError, RuntimeError):  # a symbolic link loop (RuntimeError before Python 3.13): said later
        where = os.path.abspath(results_dir)
    key = hashlib.sha256(where.encode()).hexdigest()[:16]
    return cache_dir / "result-index" / f"{key}.json"


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino]


#: The parts of a result that repeat between files (every seed of a suite has the same metric descriptions,
#: protocols, settings, data and environment): stored once in the index. The rest is each file's own.
SHARED = (
    "metric_info",
    "declares",
    "protocol",
    "method_info",
    "suite_spec",
    "data",
    "environment",
    "reported",
)


class ResultIndex:
    """The index of one results folder: read it, look files up, record newly read ones, write it back."""

    def __init__(self, file: Path):
        self.file = file
        self._blocks: list[Any] = []
        self._entries: dict[str, dict[str, Any]] = {}
        self._written_ns = 0
        #: This read's files by relative path: (stat, document, index entry it came from or None, the
        #: ids of its shared blocks in ``_out``).
        self._current: dict[str, tuple[list[int], dict[str, Any], dict[str, Any] | None, dict[str, int]]] = {}
        #: The blocks of the index this read will write, each distinct block once (see ``_block``).
        self._out: list[Any] = []
        self._ids: dict[bytes, int] = {}
        self._carried: dict[int, int] = {}
        #: Whether something read holds what only the standard library's JSON writes (NaN): see save.
        self._lenient = False
        try:
            data, self._lenient = decode_json(file.read_bytes())
            if data.get("version") == VERSION:
                self._blocks, self._entries = data["blocks"], data["files"]
                self._written_ns = int(data["written_ns"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass  # no index yet, or an unusable one: everything is read from the files

    def _block(self, value: Any) -> int:
        # Identified by its pickle, which tells True, 1 and 1.0 apart and keeps key order (it orders the
        # leaderboard's columns), as JSON text would, at an eighth of json.dumps' cost (which was a third
        # of a first read of 10,000 files). Equal blocks whose pickles differ (other object sharing) are
        # merely stored twice. Nothing here is ever unpickled.
        key = pickle.dumps(value, protocol=5)
        i = self._ids.get(key)
        if i is None:
            i = self._ids[key] = len(self._out)
            self._out.append(value)
        return i

    def _carry(self, old: int) -> int:  # each block of the old index is encoded once, not once per file
        if old not in self._carried:
            self._carried[old] = self._block(self._blocks[old])
        return self._carried[old]

    def document(self, path: Path, rel: str) -> Any:
        """The decoded JSON of the result file at ``path`` (``rel``: its path in the results folder), from
        the index when it is known unchanged, else from the file. Raises ValueError for an unreadable
        file, as :func:`vicinal.store.results.read_result` does.

        Either way, equal shared blocks of the documents of one read are one object, so a reader can
        convert each once (``Result.from_json``'s memo): on a first read of 10,000 files that conversion,
        not the JSON decoding, was most of the time."""
        try:
            stamp = _stamp(path.stat())
        except OSError as exc:
            raise ValueError(f"not readable JSON ({exc})") from None
        entry = self._entries.get(rel)
        if entry is not None and entry["stat"] == stamp and stamp[1] < self._written_ns - RACY_NS:
            doc = dict(entry["own"])
            doc.update((key, self._blocks[i]) for key, i in entry["shared"].items())
            shared: dict[str, int] = {}
        else:
            entry = None
            try:
                doc, lenient = decode_json(path.read_bytes())
            except (OSError, ValueError) as exc:
                raise ValueError(f"not readable JSON ({exc})") from None
            self._lenient |= lenient
            if isinstance(doc, dict):
                shared = {key: self._block(doc[key]) for key in SHARED if key in doc}
                doc.update((key, self._out[i]) for key, i in shared.items())
        if isinstance(doc, dict):
            self._current[rel] = (stamp, doc, entry, shared)
        return doc

    def save(self) -> None:
        """Write the index of what this read found, if anything changed; a cache folder that cannot be
        written only costs the next reader the full read."""
        unchanged = all(entry is not None for _, _, entry, _ in self._current.values())
        if unchanged and set(self._current) == set(self._entries):
            return
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            return

        files = {}
        for rel, (stamp, doc, entry, shared) in self._current.items():
            if entry is not None:
                own, shared = entry["own"], {key: self._carry(i) for key, i in entry["shared"].items()}
            else:
                own = {k: v for k, v in doc.items() if k not in SHARED}
            files[rel] = {"stat": stamp, "own": own, "shared": shared}
        # Every block in _out belongs to a file of this read (a fresh file's, or one carried just above),
        # so a deleted file's blocks are not written.
        index = {"version": VERSION, "written_ns": time.time_ns(), "blocks": self._out, "files": files}
        if self._lenient:  # a NaN read must be written as NaN, which orjson cannot do
            data = json.dumps(index, separators=(",", ":")).encode("utf-8")
        else:  # 15× faster: tens of MB at 10,000 files
            import orjson

            data = orjson.dumps(index)
        # Renamed into place but not fsynced: the index is derived data, and a torn one is not valid JSON,
        # so it is ignored; an fsync of tens of MB costs seconds on a busy disk.
        with contextlib.suppress(OSError, VicinalError):
            atomic_write(self.file, lambda tmp: Path(tmp).write_bytes(data))
