"""The documentation site builds under ``mkdocs build --strict`` (as CI builds it), so a broken link or
anchor, a page left out of the nav, a missing included file or a docstring mkdocstrings cannot read fails
the tests too; the built pages ask for nothing outside the site (it reads offline); and in a real headless
Chromium every page of the nav loads without a console error or a failed request. The README's own links
(it is read on GitHub, not in the site) point at files and headings that exist."""

from __future__ import annotations

import functools
import http.server
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from browser import Browser, find_chromium
from helpers import ROOT

pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
pytest.importorskip("material", reason="mkdocs-material is not installed: pip install -e '.[docs]'")
pytest.importorskip("mkdocstrings_handlers.python", reason="mkdocstrings[python] is not installed")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out_dir = tmp_path_factory.mktemp("site")
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out_dir)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out_dir


def nav_pages() -> list[str]:
    """The Markdown files the nav of mkdocs.yml lists, in order."""
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = text[text.index("\nnav:") :]
    return re.findall(r":\s+(\S+\.md)\s*$", nav, flags=re.M)


def url_of(page: str) -> str:
    stem = page.removesuffix(".md")
    if stem == "index":
        return ""
    return stem.removesuffix("/index") + "/" if stem.endswith("/index") else stem + "/"


def test_the_site_builds_strict_with_every_page(site):
    pages = nav_pages()
    assert len(pages) >= 20 and "architecture.md" in pages and "api/method.md" in pages
    for page in pages:
        assert (site / url_of(page) / "index.html").is_file(), page
    # The included repository files are on their pages, and the API reference was generated.
    assert "Executors: local vs Ray" in (site / "performance" / "index.html").read_text(encoding="utf-8")
    assert "[0.2.0]" in (site / "changelog" / "index.html").read_text(encoding="utf-8")
    method = (site / "api" / "method" / "index.html").read_text(encoding="utf-8")
    assert 'id="vicinal.training.method.Method.training_step"' in method and "register_method" in method
    # Sphinx roles in the docstrings (:class:`X`) are shown as code, not as literal markup.
    for page in (site / "api").rglob("*.html"):
        assert not re.search(r":(class|func|meth|mod|attr):`", page.read_text(encoding="utf-8")), page


def test_every_public_name_is_in_the_api_reference(site):
    import vicinal

    html = "\n".join(p.read_text(encoding="utf-8") for p in (site / "api").rglob("*.html"))
    documented = set(re.findall(r'id="vicinal\.[\w.]*?\.(\w+)"', html))
    missing = sorted(set(vicinal.__all__) - {"__version__"} - documented)
    assert not missing, f"add to a page under docs/api/: {missing}"


def test_the_site_asks_for_nothing_outside_itself(site):
    for page in site.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        external = re.findall(r'<(?:script|link|img)\b[^>]*\b(?:src|href)="(https?:)?//[^"]*"', html)
        assert not external, f"{page.relative_to(site)} loads {external}"
        assert "fonts.googleapis" not in html and "fonts.gstatic" not in html


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.skipif(find_chromium() is None, reason="no Chromium (set VICINAL_CHROMIUM)")
def test_every_nav_page_renders_in_a_browser(site):
    """Served over HTTP as a reader would (the search index is fetched by script); each page has its
    title, the nav links to every other page, and nothing fails to load."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(site))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        with Browser(find_chromium(), width=1280, height=900) as browser:
            for page in nav_pages():
                browser.open(base + url_of(page))
                assert browser.errors == [], f"{page}: {browser.errors}"
                title = browser.evaluate("document.querySelector('article h1')?.textContent ?? ''")
                assert title.strip(), page
                links = browser.evaluate(
                    "[...document.querySelectorAll('nav.md-nav--primary a.md-nav__link[href]')]"
                    ".map(a => a.href)"
                )
                reached = {link.split("#")[0] for link in links}
                assert {base + url_of(p) for p in nav_pages()} <= reached, page
            browser.screenshot(ROOT / "tests" / "artifacts" / "site.png")
    finally:
        server.shutdown()
        server.server_close()


def github_anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation other than - and _ dropped, spaces to -."""
    text = re.sub(r"[`*]", "", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def test_the_readmes_links_resolve():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert len(local) >= 15
    for link in local:
        path, _, anchor = link.partition("#")
        target = ROOT / path if path else ROOT / "README.md"
        assert target.exists(), link
        if anchor:
            headings = re.findall(r"^#+ (.+)$", target.read_text(encoding="utf-8"), flags=re.M)
            assert anchor in {github_anchor(h) for h in headings}, link
