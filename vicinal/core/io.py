"""Atomic writes: a file is either its old version or its complete new one, never half-written.

A temporary file is written beside the target and renamed into place. Its name carries the writer's
process id, so a file left behind by a killed process (``kill -9`` during a checkpoint save) is
recognised and removed by the next write to the same target, while a concurrent writer's file is left
alone.
"""

from __future__ import annotations

import errno
import gc
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vicinal.core.errors import ResourceError


def write_fault(exc: OSError, path: Path) -> ResourceError:
    """One message for the environment faults a write can meet; the caller's finished work is untouched."""
    folder = path.parent
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ResourceError(
            f"no space left on {folder} while writing {path.name}; free some space and run "
            "the same command again (finished results are kept)"
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ResourceError(f"cannot write to {folder}: {exc.strerror}; choose a writable folder")
    if exc.errno == errno.EISDIR:
        return ResourceError(f"{path} is a folder; give a file name")
    return ResourceError(f"cannot write {path}: {exc.strerror or exc}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale(path: Path) -> None:
    """Delete temporaries of ``path`` left by writers that no longer run."""
    for tmp in path.parent.glob(f".{path.stem}.pid*.*"):
        pid = tmp.name[len(path.stem) + 5 :].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def temporary_beside(path: Path) -> Path:
    """A fresh temporary path beside ``path`` in this module's naming (so leftovers of killed writers are
    swept), for writers that must fill the file themselves, e.g. through a memory map."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(path)
        fd, tmp = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.stem}.pid{os.getpid()}.", suffix=path.suffix or ".tmp"
        )
    except OSError as exc:
        raise write_fault(exc, path) from None
    os.close(fd)
    return Path(tmp)


def reserve(tmp: Path, size: int, target: Path) -> None:
    """Allocate ``size`` bytes of ``tmp`` on disk now. A memory-mapped file is otherwise sparse, and a
    full disk then kills the process (SIGBUS) at the first page written instead of raising an error."""
    try:
        fd = os.open(tmp, os.O_RDWR)
        try:
            os.posix_fallocate(fd, 0, size)
        finally:
            os.close(fd)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_fault(exc, target) from None


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    if path.is_dir():
        raise ResourceError(f"{path} is a folder; give a file name")
    tmp = str(temporary_beside(path))
    try:
        write(tmp)
        publish(Path(tmp), path)
    except OSError as exc:
        raise write_fault(exc, path) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def publish(tmp: Path, path: Path) -> None:
    """Rename a finished temporary file (:func:`temporary_beside`) into place, with the permissions any
    file the user writes gets. mkstemp creates it private (0600); results, reports and generated sets
    are meant to be shared, so every file vicinal writes takes the umask's usual mode (0644 under 022)."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


def probe_writable(folder: Path, what: str) -> None:
    """Fail before any work starts when ``folder`` cannot hold results: create it and a file in it."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ResourceError(f"the {what} {folder} is a file, not a folder; choose a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ResourceError(
            f"the {what} {folder} is not writable ({exc.strerror or exc}); choose another folder"
        ) from None


def probe_output_file(path: Path) -> None:
    """Fail early when ``path`` cannot be written as a file (a folder, or in an unwritable folder)."""
    path = Path(path)
    if path.is_dir():
        raise ResourceError(f"{path} is a folder; give a file name")
    probe_writable(path.parent if str(path.parent) else Path("."), "output folder")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    atomic_write(path, write)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` atomically. Serialised in memory first: torch's own file writer turns a full disk
    into an opaque C++ error, a plain Python write raises ENOSPC that can be reported."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


# ---------------------------------------------------------------- reading JSON fast


def decode_json(data: bytes) -> tuple[Any, bool]:
    """JSON ``data`` decoded, and whether the standard library had to decode it.

    orjson decodes result files about 2.5× faster than the standard library, but only strict JSON; the
    standard library writes (and reads) non-finite numbers as ``NaN``/``Infinity`` (and reads integers
    beyond 64 bits), so such data is decoded by it instead, and the caller learns it: orjson would
    write a NaN back as ``null``. Raises ValueError (both libraries' errors are one) for data that is
    not JSON or not UTF-8.
    """
    import json

    import orjson

    try:
        return orjson.loads(data), False
    except orjson.JSONDecodeError:
        return json.loads(data.decode("utf-8")), True


@contextmanager
def bulk_allocation() -> Iterator[None]:
    """Pause the cyclic garbage collector while many acyclic objects are made (decoding thousands of
    JSON files): each collection would traverse everything decoded so far, which made a first read of
    10,000 result files take twice as long. Reference counting still frees what is dropped."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
