"""Code fingerprints (vicinal.core.fingerprints): what changes them and what does not.

A result is reused only with the code that made it, so a fingerprint must change with every edit that can
change a number (the component's module, any module of the user's own code it imports, the version of a
third-party package it imports) and with none that cannot (comments, formatting, docstrings)."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest

from vicinal.core import fingerprints
from vicinal.core.fingerprints import code_hash, fingerprint

METHOD = '''
"""A method module of the user's."""
import numpy as np
from userhelpers.scale import FACTOR
import tools


def step(x):
    """Scale the input."""
    # the factor comes from a helper module
    return x * FACTOR + tools.OFFSET + np.float64(0)
'''


@pytest.fixture
def user_code(tmp_path, monkeypatch):
    """A user's folder on sys.path: a module that imports a helper package and a plain helper module."""
    (tmp_path / "userhelpers").mkdir()
    (tmp_path / "userhelpers" / "__init__.py").write_text("")
    (tmp_path / "userhelpers" / "scale.py").write_text("FACTOR = 1\n")
    (tmp_path / "tools.py").write_text("OFFSET = 0\n")
    (tmp_path / "user_method.py").write_text(METHOD)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("user_method", "userhelpers", "userhelpers.scale", "tools"):
        sys.modules.pop(name, None)


def _fresh(module: str = "user_method") -> dict:
    """The fingerprint as a new process would compute it (file lookups are cached per process)."""
    fingerprints._module_file.cache_clear()
    fingerprints._provider.cache_clear()
    importlib.invalidate_caches()
    return fingerprint(module)


def test_a_helper_module_of_the_users_own_code_is_covered(user_code):
    """Issue 22: a --plugin method imports `from mylib import FACTOR`; editing mylib must retrain."""
    first = _fresh()
    assert {"user_method", "userhelpers.scale", "tools"} <= set(first["files"])
    (user_code / "userhelpers" / "scale.py").write_text("FACTOR = 50\n")
    second = _fresh()
    assert second["fingerprint"] != first["fingerprint"]
    (user_code / "tools.py").write_text("OFFSET = 3\n")
    assert _fresh()["fingerprint"] != second["fingerprint"]


def test_third_party_packages_count_by_distribution_version(user_code, monkeypatch):
    first = _fresh()
    import numpy

    assert first["packages"]["numpy"] == numpy.__version__
    assert not any(m.startswith("numpy") for m in first["files"])  # not hashed file by file
    # Another numpy version is another fingerprint.
    installed = dict(fingerprints._installed())
    installed["numpy"] = [fingerprints._Installed("numpy", "0.0.1", editable=False)]
    monkeypatch.setattr(fingerprints, "_installed", lambda: installed)
    assert _fresh()["fingerprint"] != first["fingerprint"]


def test_an_editable_install_is_followed_by_source(user_code, monkeypatch):
    """`pip install -e` of the user's own package: its version does not pin its code, so it is hashed."""
    installed = dict(fingerprints._installed())
    installed["tools"] = [fingerprints._Installed("tools", "1.0", editable=True)]
    monkeypatch.setattr(fingerprints, "_installed", lambda: installed)
    assert "tools" in _fresh()["files"]
    installed["tools"] = [fingerprints._Installed("tools", "1.0", editable=False)]
    found = _fresh()
    assert "tools" not in found["files"] and found["packages"]["tools"] == "1.0"


def test_comments_formatting_and_docstrings_do_not_change_it(user_code):
    """Issue 21: a comment-only or formatting-only edit keeps every result reusable."""
    first = _fresh()
    reformatted = textwrap.dedent(
        """
        # a new header comment
        import numpy as np
        from userhelpers.scale import (
            FACTOR,
        )
        import tools

        def step(x):
            '''Scale the input: a reworded docstring.'''
            return (x * FACTOR
                    + tools.OFFSET + np.float64(0))   # trailing comment
        """
    )
    (user_code / "user_method.py").write_text(reformatted)
    assert _fresh()["fingerprint"] == first["fingerprint"]
    (user_code / "user_method.py").write_text(reformatted.replace("x * FACTOR", "x * FACTOR * 2"))
    assert _fresh()["fingerprint"] != first["fingerprint"]


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("x = 1\n", "x  =  1  # one\n", True),
        ("x = 'a'\n", 'x = "a"\n', True),
        ("x = u'a'\n", "x = 'a'\n", True),
        ("f(a, b)\n", "f(\n    a,\n    b,\n)\n", True),
        ("def f():\n    '''doc'''\n    return 1\n", "def f():\n    return 1\n", True),
        ("class C:\n    '''doc'''\n", "class C:\n    '''other'''\n", True),
        ("x = 1\n", "x = 1.0\n", False),
        ("x = 1\n", "x = '1'\n", False),
        ("x = a + b * c\n", "x = (a + b) * c\n", False),
        ("def f():\n    return 1\n", "def f():\n    return 2\n", False),
        ("y = 'text'\n", "y = 'other text'\n", False),  # a string that is not a docstring is code
    ],
)
def test_code_hash_is_the_code_not_the_text(a, b, same):
    assert (code_hash(a) == code_hash(b)) is same


def test_the_standard_library_is_not_hashed_and_vicinal_is():
    from vicinal.training.loop import train

    found = fingerprint(train)
    assert "vicinal.training.loop" in found["files"]
    assert not any(m.split(".")[0] in sys.stdlib_module_names for m in found["files"])
    assert "torch" in found["packages"]


def test_a_file_that_does_not_parse_is_hashed_as_bytes(tmp_path):
    assert code_hash(b"def (:\n") != code_hash(b"def ( :\n")


def test_fingerprints_are_stable_within_a_process():
    from vicinal.evaluators.clean import CleanEvaluator

    assert fingerprint(CleanEvaluator) == fingerprint(CleanEvaluator)


def test_installed_distributions_agree_with_the_standard_library():
    """The hand-written scan of distributions finds what importlib.metadata finds for the packages
    vicinal imports (name, version)."""
    from importlib.metadata import distribution, packages_distributions

    found = packages_distributions()
    for top in ("torch", "numpy", "sklearn", "PIL", "cv2"):
        mine = fingerprints._installed()[top][0]
        theirs = distribution(found[top][0])
        assert mine.version == theirs.version
        assert mine.name == theirs.metadata["Name"].lower().replace("_", "-")


def test_a_module_path_outside_sys_path_is_not_followed(tmp_path):
    assert Path(tmp_path).exists()
    assert fingerprints._provider("no_such_module_anywhere_xyz") == ("none", ())
