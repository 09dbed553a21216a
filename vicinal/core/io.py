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
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vicinal.core.errors import ResourceError

#: What an OS error means for a path, in words (the C library's "File exists" for a folder that is a file,
#: or for a symbolic link that loops, names neither).
_OS_ERRORS = {
    errno.ELOOP: "goes through a symbolic link that loops back on itself",
    errno.ENOTDIR: "goes through a file where a folder should be",
    errno.EEXIST: "exists and is not a folder (a file, or a symbolic link to nothing)",
    errno.ENAMETOOLONG: "is too long a path",
    errno.EACCES: "cannot be reached (permission denied)",
}


def describe_os_error(exc: OSError, path: bool = True) -> str:
    """One line for an OS error: the path (unless ``path`` is False) and what is wrong with it, in words
    where the C library's text does not say it (see :data:`_OS_ERRORS`), else its own."""
    where = f"{exc.filename} " if exc.filename and path else ""
    return f"{where}{_OS_ERRORS.get(exc.errno or 0, exc.strerror or str(exc))}"


def folder_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot be used as a folder (it is a file, a path through a file, a symbolic link
    loop or a dangling link), or None when it is one or does not exist yet."""
    try:
        st = os.stat(folder)
    except FileNotFoundError:
        if os.path.islink(folder):
            return f"is a symbolic link to {os.readlink(folder)}, which does not exist"
        return None
    except OSError as exc:
        return _OS_ERRORS.get(exc.errno or 0, exc.strerror or str(exc))
    return None if stat.S_ISDIR(st.st_mode) else "is a file, not a folder"


def check_folder(folder: Path, what: str) -> None:
    """Raise a ResourceError naming ``what`` when ``folder`` cannot be a folder (:func:`folder_problem`)."""
    problem = folder_problem(Path(folder))
    if problem is not None:
        raise ResourceError(f"the {what} {folder} {problem}; choose a folder")


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
    return ResourceError(f"cannot write {path}: it {describe_os_error(exc, path=False)}")


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


#: Per filesystem (device), how an unnamed file gets its name there, or None where it cannot.
_UNNAMED: dict[int, str | None] = {}
_AT_FDCWD, _AT_EMPTY_PATH = -100, 0x1000


def _link(fd: int, dest: Path, how: str) -> None:
    """Give the unnamed file ``fd`` the name ``dest``: through /proc (any user), or ``linkat`` with
    ``AT_EMPTY_PATH`` (needs CAP_DAC_READ_SEARCH; some kernels refuse the /proc route with EXDEV)."""
    if how == "proc":
        os.link(f"/proc/self/fd/{fd}", dest, follow_symlinks=True)
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.linkat(fd, b"", _AT_FDCWD, os.fsencode(dest), _AT_EMPTY_PATH) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(dest))


def _unnamed_files(folder: Path) -> str | None:
    """How ``folder``'s filesystem names an unnamed (``O_TMPFILE``) file, tried once per filesystem with
    an empty one; None where it makes none or cannot name them (a named temporary is used there)."""
    if not hasattr(os, "O_TMPFILE") or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        device = os.stat(folder).st_dev
    except OSError:
        return None
    if device not in _UNNAMED:
        _UNNAMED[device] = None
        for how in ("proc", "empty-path"):
            try:
                fd = os.open(folder, os.O_RDWR | os.O_TMPFILE, 0o600)
            except OSError:
                break
            probe = Path(folder) / f".vicinal-probe.pid{os.getpid()}"
            try:
                _link(fd, probe, how)
                probe.unlink()
                _UNNAMED[device] = how
                break
            except (OSError, AttributeError):
                continue
            finally:
                os.close(fd)
    return _UNNAMED[device]


class PendingFile:
    """A file of ``size`` bytes that its writer fills through :attr:`fd` (a memory map, say) and that
    appears at ``path`` only when :meth:`commit` is called, complete.

    Where the filesystem allows (Linux, ``O_TMPFILE``), the file has no name until then: a writer that is
    killed (``kill -9``, the machine going down) leaves nothing behind, where a named temporary would
    stay until the next write to the same target swept it. Elsewhere it is a named temporary beside the
    target (swept as :func:`temporary_beside` says). The space is allocated up front: a full disk is an
    error here, not a SIGBUS at the first page written through a memory map. Use it as a context
    manager: leaving the block without :meth:`commit` (an error, Ctrl-C) discards the file."""

    def __init__(self, path: Path, size: int):
        self.path = Path(path)
        self.named: Path | None = None
        self.fd = -1
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _remove_stale(self.path)
        except OSError as exc:
            raise write_fault(exc, self.path) from None
        self.how = _unnamed_files(self.path.parent)
        if self.how is not None:
            try:
                self.fd = os.open(self.path.parent, os.O_RDWR | os.O_TMPFILE, 0o666 & ~_umask())
            except OSError:
                self.fd = -1
        try:
            if self.fd < 0:
                self.named = temporary_beside(self.path)
                self.fd = os.open(self.named, os.O_RDWR)
            os.posix_fallocate(self.fd, 0, size)
        except OSError as exc:
            self.discard()
            raise write_fault(exc, self.path) from None

    def commit(self) -> None:
        """Make the finished file appear at ``path`` (atomically, replacing any file there)."""
        try:
            os.fsync(self.fd)
            if self.named is None:  # give the unnamed file a temporary name, then rename it into place
                staged = temporary_beside(self.path)
                os.unlink(staged)  # link() needs a free name; mkstemp reserved one
                _link(self.fd, staged, self.how or "proc")
                self.named = staged
            os.chmod(self.named, 0o666 & ~_umask())
            os.replace(self.named, self.path)
            self.named = None
        except OSError as exc:
            raise write_fault(exc, self.path) from None
        finally:
            self.discard()

    def discard(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.named is not None:
            self.named.unlink(missing_ok=True)
            self.named = None

    def __enter__(self) -> PendingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()


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
    check_folder(folder, what)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ResourceError(
            f"the {what} {folder} is not writable (it {describe_os_error(exc, path=False)}); choose another "
            "folder"
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


def atomic_write_all(files: dict[Path, bytes]) -> None:
    """Write several files so that they land together or not at all: every one is written to a temporary
    beside its target first (where a full disk fails), and only when all are complete are they renamed
    into place, in the order given (a rename needs no space). A result and the figures it names are
    written this way: a full disk never leaves a figure without its result, or a result without its
    figures. A failure removes every temporary and raises :func:`write_fault`'s error."""
    done: list[tuple[str, Path]] = []
    try:
        for path, data in files.items():
            path = Path(path)
            if path.is_dir():
                raise ResourceError(f"{path} is a folder; give a file name")
            tmp = str(temporary_beside(path))
            done.append((tmp, path))
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.chmod(tmp, 0o666 & ~_umask())
            except OSError as exc:
                raise write_fault(exc, path) from None
        for tmp, path in done:
            try:
                os.replace(tmp, path)
            except OSError as exc:
                raise write_fault(exc, path) from None
    finally:
        for tmp, _ in done:
            if os.path.exists(tmp):
                os.unlink(tmp)


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


def load_plain(path: Path, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain values only, so a crafted file cannot run
    code. Raises ValueError with one line saying why the file was refused — never torch's own text, which
    spans lines and advises loading the file again with ``weights_only=False``, the very thing a file that
    asks to run code must not get."""
    import pickle
    import re
    import warnings

    import torch

    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of files it then refuses
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        holds = f"it refers to {found.group(1)}" if found else "it holds objects other than tensors"
        raise ValueError(
            f"is not a plain checkpoint ({holds}, which a file of tensors and plain values never does) "
            "and will not be loaded"
        ) from None
    except Exception as exc:  # truncated, not a torch file, …: torch raises RuntimeError, KeyError, EOFError
        first = str(exc).strip().splitlines()[0].split(". ")[0] if str(exc).strip() else ""
        detail = f": {first}" if first and len(first) < 200 else ""
        raise ValueError(
            f"cannot be read as a checkpoint ({type(exc).__name__}{detail}); it is damaged or not one"
        ) from None


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
