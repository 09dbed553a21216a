"""The wheel ships the built-in methods and suites inside `vicinal` and no generic top-level packages."""

import subprocess
import sys
import zipfile

import pytest
from helpers import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    return next(out.glob("vicinal-*.whl"))


def test_wheel_layout(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"vicinal"}
    for expected in (
        "vicinal/methods/mixup.py",
        "vicinal/methods/varmixup.py",
        "vicinal/methods/cutmix.py",
        "vicinal/suites/digits.toml",
        "vicinal/suites/cifar10.toml",
        "vicinal/evaluators/clean.py",
        "vicinal/board/templates/report.html.j2",
        "vicinal/board/templates/_board.html.j2",
    ):
        assert expected in names


def test_installed_wheel_works_from_any_directory(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    code = (
        "import vicinal, vicinal.training.method as m, vicinal.execution.suite as s; "
        "print(vicinal.__file__); print(','.join(m.list_methods())); "
        "print(','.join(sorted(s.builtin_suites()))); "
        "import vicinal.board.html as h; print(len(h.render_template('leaderboard.html.j2', boards=[])))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    where, methods, suites, html_size = out.stdout.split()
    assert int(html_size) > 500  # the report's templates ship in the wheel
    assert where.startswith(str(target))
    assert {"erm", "mixup", "manifold-mixup", "varmixup", "varmixup-beta", "cutmix"} <= set(
        methods.split(",")
    )
    assert {"digits", "cifar10", "cifar100", "tinyimagenet"} <= set(suites.split(","))
