"""``vicinal report``: one self-contained HTML file, checked as text and in a real headless Chromium."""

from __future__ import annotations

import re
import shutil

import pytest
from browser import Browser, find_chromium
from helpers import ROOT, run_cli
from synthetic import EVIL, write_reported, write_suite

from vicinal.board.report import build_report
from vicinal.store.results import load_store

CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium found (apt-get install chromium, or set VICINAL_CHROMIUM to a Chromium binary)",
)
#: Screenshots kept for people to look at (git-ignored).
ARTIFACTS = ROOT / "tests" / "artifacts"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """Two suites (one with corruption metrics), a reported row and a method called <script>…."""
    root = tmp_path_factory.mktemp("report")
    results = root / "results"
    docs = write_suite(results, "toy-c")
    docs += write_suite(results, "plain", {"erm": (0.7, 2), "cutmix": (0.72, 2)}, corruption=False)
    write_reported(results, "toy-c", "mixup", {"acc": 0.97, "c_acc": 0.8}, n=3, note="their PreActResNet-18")
    out = run_cli("report", "--results", str(results), "--out", str(root / "report.html"), cwd=root)
    assert out.returncode == 0, out.stderr
    return root / "report.html", docs, out


def test_report_is_one_self_contained_file(report):
    path, _, out = report
    html = path.read_text()
    assert "wrote" in out.stdout and str(path) in out.stdout
    sources = re.findall(r'\ssrc="([^"]*)"', html)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"<(link|script)[^>]+(href|src)=\"(?!data:)", html)  # no stylesheet or script
    assert "<script" not in html  # the page needs none, and a method's name must not bring one
    assert "&lt;script&gt;document.title=" in html
    for title in (
        "Accuracy per corruption",
        "Accuracy versus severity",
        "Robust accuracy versus ε",
        "Local linearity",
        "Reliability diagrams",
        "Training samples",
        "Protocol",
        "Runs",
    ):
        assert f"<h3>{title}</h3>" in html, title
    # The protocol of every evaluator is listed, and the run metadata names every result file.
    for evaluator in ("adversarial", "calibration", "clean", "linearity", "corruption"):
        assert f"evaluator <b>{evaluator}</b>" in html
    assert html.count("seed0.json</code>") == 4 + 2  # four toy-c configurations, two plain ones


def test_report_draws_only_what_exists(tmp_path):
    write_suite(tmp_path, "plain", {"erm": (0.7, 1)}, corruption=False, artifacts=False)
    calls = []
    html = build_report(load_store(tmp_path), progress=lambda *a: calls.append(a))
    assert "Accuracy per corruption" not in html and "Accuracy versus severity" not in html
    assert "Robust accuracy versus ε" in html and "Reliability diagrams" not in html
    assert calls[-1] == ("done", calls[-1][2], calls[-1][2]) and len(calls) > 3


@needs_chromium
def test_report_renders_in_a_real_browser(report, tmp_path):
    path, _, _ = report
    with Browser(CHROMIUM, width=1400, height=1000) as browser:
        browser.open(path.as_uri())
        # The <script> in a method's name stayed text: the title is the report's and it shows as a row.
        assert browser.evaluate("document.title") == "vicinal report"
        rows = browser.evaluate(
            "[...document.querySelectorAll('table.board')].filter(t => t.closest('details') === null)"
            ".map(t => [t.dataset.suite, [...t.tBodies[0].rows].map(r => r.cells[0].textContent.trim())])"
        )
        boards = {suite: labels for suite, labels in rows}
        assert set(boards) == {"toy-c", "plain"}
        assert set(boards["toy-c"]) == {"erm", "mixup", "varmixup", EVIL, "mixup (reported)"}
        assert boards["toy-c"][-1] == "mixup (reported)"
        assert set(boards["plain"]) == {"erm", "cutmix"}
        images = browser.evaluate(
            "[...document.images].map(i => ({alt: i.alt, ok: i.complete && i.naturalWidth > 0}))"
        )
        assert len(images) >= 12 and all(i["ok"] for i in images), [i for i in images if not i["ok"]]
        # Best values are bold; the protocol of a column is in its hover text.
        assert browser.evaluate("getComputedStyle(document.querySelector('td.best')).fontWeight") == "700"
        hover = browser.evaluate("document.querySelector('th[data-metric=\"acc\"]').title")
        assert "top-1 accuracy" in hover and "evaluator clean" in hover
        # Each board's legend is read with its table and wraps at the page's width, however wide the table
        # (which scrolls on its own).
        legends = browser.evaluate(
            "[...document.querySelectorAll('table.board')].map(t => {"
            " const l = document.getElementById(t.getAttribute('aria-describedby'));"
            " return l && [l.textContent.includes('mean ± sample std'),"
            " l.scrollWidth <= window.innerWidth, !l.textContent.includes('`'),"
            " !t.checkVisibility()"  # in a closed <details>: nothing drawn to overlap
            " || l.getBoundingClientRect().top >= t.parentElement.getBoundingClientRect().bottom]; })"
        )
        # (the last: drawn below the table's scroll box and its scroll bar, not over them)
        assert legends and all(legend == [True, True, True, True] for legend in legends), legends
        assert browser.errors == []
        assert all(u.startswith(("data:", "file:")) for u in browser.requests), browser.requests
        shot = tmp_path / "report.png"
        browser.screenshot(shot)
    assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 50_000
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "report.png")


@needs_chromium
def test_leaderboard_html_renders_in_a_real_browser(report, tmp_path):
    path, _, _ = report
    out = tmp_path / "board.html"
    result = run_cli(
        "leaderboard", "--results", str(path.parent / "results"), "--format", "html", "--out", str(out),
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    with Browser(CHROMIUM) as browser:
        browser.open(out.as_uri())
        assert browser.evaluate("document.title") == "vicinal leaderboard"
        assert browser.evaluate("document.querySelectorAll('table.board tbody tr').length") == 5 + 2
        assert browser.errors == []


@needs_chromium
def test_the_browser_check_sees_errors(tmp_path):
    """The checker itself: a broken image and a console error must be caught, or the tests above prove
    nothing."""
    page = tmp_path / "bad.html"
    page.write_text(
        "<!DOCTYPE html><title>t</title><img src='missing.png'><script>console.error('boom')</script>"
    )
    with Browser(CHROMIUM) as browser:
        browser.open(page.as_uri())
        assert browser.evaluate("document.images[0].naturalWidth") == 0
        errors = browser.errors
    assert any("boom" in e for e in errors) and any(
        "missing.png" in e or "FILE_NOT_FOUND" in e for e in errors
    )


def test_legends_quote_commands_as_code_and_escape_the_rest():
    from vicinal.board.html import inline_code

    got = str(inline_code("as `vicinal compare` shows; <script>x</script> & `a<b>`"))
    assert got == (
        "as <code>vicinal compare</code> shows; &lt;script&gt;x&lt;/script&gt; &amp; <code>a&lt;b&gt;</code>"
    )
