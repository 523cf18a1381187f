"""The built book in a real browser: headless Chromium, with the network blocked.

Every page of ``_build/html`` (chapters, intro, appendices) is served from 127.0.0.1 and opened in
Debian's Chromium, driven by Playwright; any request to another host is aborted and fails the test.
For each page it asserts that MathJax typeset every equation (one ``mjx-container`` per ``.math``
element, no raw ``$$``, ``\\begin``, ``\\(`` or ``\\[`` left in the text outside code), that every
``<img>`` loaded (``naturalWidth > 0``), that nothing logged a console error or failed to load, and that
the page's ``<title>`` carries its heading; a chapter must have at least one equation and one figure. One
full-page screenshot per page goes to ``_build/screenshots/``.

It needs a built book, so the plain ``pytest`` run (before the build) skips it, saying so. Run it with::

    jupyter-book build .
    KEXUE_BOOK_HTML=_build/html pytest tests/test_browser.py -rs

Chromium: ``apt-get install chromium`` (Debian); any other binary via ``KEXUE_CHROMIUM=/path``. Without
one the test is skipped with that message, or fails where ``KEXUE_BROWSER_REQUIRED=1`` (``.ci/run``).
"""
from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from pathlib import Path

import pytest

from conftest import ROOT, toc_files

HTML_ENV = "KEXUE_BOOK_HTML"
REQUIRED_ENV = "KEXUE_BROWSER_REQUIRED"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--disable-features=Translate,MediaRouter",
]
INSTALL_HINT = (
    "Chromium not found: install it with `apt-get install chromium` (Debian/Ubuntu; the Playwright "
    "package is in requirements.txt), or point KEXUE_CHROMIUM at a Chromium/Chrome binary"
)


def _html_dir() -> Path | None:
    value = os.environ.get(HTML_ENV)
    if not value:
        return None
    p = Path(value)
    return p if p.is_absolute() else (ROOT / p)


def _chromium() -> str | None:
    for cand in (os.environ.get("KEXUE_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if cand and (shutil.which(cand) or Path(cand).is_file()):
            return shutil.which(cand) or cand
    return None


def _pages(html: Path) -> list[str]:
    """Every page of the book, as paths relative to the html folder: the toc's files and the
    generated API pages (everything under book/)."""
    pages = [f"{f}.html" for f in toc_files()]
    pages += sorted(
        str(p.relative_to(html)) for p in (html / "book").rglob("*.html") if str(p.relative_to(html)) not in pages
    )
    return pages


def _chapters() -> set[str]:
    from conftest import is_notebook_chapter

    return {  # notebooks of the parts (not of the appendices)
        f"{f}.html" for f in toc_files()
        if not f.startswith("book/appendices/") and (ROOT / f"{f}.md").is_file() and is_notebook_chapter(ROOT / f"{f}.md")
    }


_HTML = _html_dir()
PAGES = _pages(_HTML) if _HTML is not None and (_HTML / "index.html").is_file() else ["(no built book)"]


def _skip_or_fail(msg: str):
    if os.environ.get(REQUIRED_ENV) == "1":
        pytest.fail(msg + f" ({REQUIRED_ENV}=1: the browser test is required here)")
    pytest.skip(msg)


@pytest.fixture(scope="module")
def site():
    """(base URL, html folder) of the built book served on 127.0.0.1."""
    if _HTML is None:
        _skip_or_fail(
            f"browser test of the built book: build it first (`jupyter-book build .`), then run "
            f"`{HTML_ENV}=_build/html pytest tests/test_browser.py` (.ci/run does this after the build)"
        )
    if not (_HTML / "index.html").is_file():
        pytest.fail(f"{HTML_ENV}={_HTML} but there is no built book there (no index.html): build it first")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(_HTML)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", _HTML
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser(site):
    exe = _chromium()
    if exe is None:
        _skip_or_fail(INSTALL_HINT)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _skip_or_fail("the Python package playwright is missing: `pip install -r requirements.txt`")
    import tempfile

    with tempfile.TemporaryDirectory(prefix="kexue-chromium-") as profile, sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            profile, executable_path=exe, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900}, service_workers="block",
        )
        yield ctx
        ctx.close()


_TEXT_OUTSIDE_CODE = """() => {
  const root = (document.querySelector('main') || document.body).cloneNode(true);
  root.querySelectorAll('pre, code, script, style, textarea, mjx-container, .highlight, .cell_input')
      .forEach(e => e.remove());
  return root.textContent;
}"""

_WAIT_IMAGES = """async () => {
  const imgs = Array.from(document.images);
  imgs.forEach(i => { i.loading = 'eager'; });
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; })));
  return imgs.map(i => ({src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0}));
}"""

_HEADING = """() => {
  const h = document.querySelector('main h1') || document.querySelector('h1');
  if (!h) return '';
  const c = h.cloneNode(true);
  c.querySelectorAll('.headerlink, .section-number').forEach(e => e.remove());
  return c.textContent.replace(/\\s+/g, ' ').trim();
}"""


def _guarded_page(browser, base: str):
    """A new page whose requests to anything but ``base`` are aborted and recorded (``blocked``),
    with console errors (``errors``) and failed local loads (``failed``) recorded too."""
    blocked, errors, failed = [], [], []

    def route(r):
        url = r.request.url
        if url.startswith(base) or url.startswith("data:") or url.startswith("blob:"):
            r.continue_()
        else:
            blocked.append(url)
            r.abort()

    page = browser.new_page()
    page.route("**/*", route)
    page.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: failed.append(f"{r.url}: {r.failure}") if r.url.startswith(base) else None)
    page.on(
        "response",
        lambda r: failed.append(f"{r.url}: HTTP {r.status}")
        if r.status >= 400 and not r.url.endswith("/favicon.ico") else None,
    )
    return page, blocked, errors, failed


def test_the_guard_blocks_and_reports_the_network(site, browser):
    """The guard itself: a page that asks for an image and a script from another host is caught."""
    base, html = site
    probe = html / "_kexue_guard_probe.html"
    probe.write_text(
        '<!doctype html><title>probe</title><img src="https://example.org/x.png">'
        '<script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"></script>',
        encoding="utf-8",
    )
    page, blocked, _, _ = _guarded_page(browser, base)
    try:
        page.goto(base + probe.name, wait_until="load", timeout=30_000)
    finally:
        page.close()
        probe.unlink()
    assert sorted(blocked) == ["https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js", "https://example.org/x.png"]


@pytest.mark.parametrize("page_path", PAGES)
def test_page_renders_offline(site, browser, page_path):
    base, html = site
    shots = html.parent / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    page, blocked, errors, failed = _guarded_page(browser, base)
    try:
        page.goto(base + page_path, wait_until="load", timeout=60_000)
        n_math = page.locator("main .math").count()
        if n_math:
            page.wait_for_function(
                "() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=30_000
            )
            page.evaluate("() => MathJax.startup.promise.then(() => true)")
        images = page.evaluate(_WAIT_IMAGES)
        page.evaluate("() => document.fonts.ready.then(() => true)")
        n_typeset = page.locator("main mjx-container").count()
        text = page.evaluate(_TEXT_OUTSIDE_CODE)
        heading = page.evaluate(_HEADING)
        title = page.title()
        # the whole page, but at most its first 12,000 px (the claims ledger is far longer, and a full
        # screenshot of it took over 30 s on a loaded 2-core machine); generous timeout for the same reason
        width, height = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
        page.screenshot(path=str(shots / (page_path.removesuffix(".html").replace("/", "__") + ".png")),
                        full_page=True, clip={"x": 0, "y": 0, "width": width, "height": min(height, 12_000)},
                        timeout=120_000)
    finally:
        page.close()

    assert not blocked, f"requests to the network (blocked): {blocked}"
    assert not failed, f"resources that failed to load: {failed}"
    assert not errors, f"console errors: {errors}"
    assert heading, "the page has no <h1> heading"
    assert title.strip() and heading in title, f"<title> {title!r} does not carry the heading {heading!r}"
    assert n_typeset >= n_math, f"MathJax typeset {n_typeset} of {n_math} equations"
    raw = [m for m in ("$$", "\\begin", "\\(", "\\[") if m in text]
    assert not raw, f"raw TeX left in the text outside code: {raw}: " + ", ".join(
        repr(text[max(0, i - 60): i + 60]) for i in (text.find(m) for m in raw)
    )
    dollar = re.search(r"\$[^$\n]*\\[A-Za-z]+[^$\n]*\$", text)
    assert not dollar, f"untypeset $...$ math left in the text: {dollar.group(0)!r}"
    bad_images = [i["src"] for i in images if not i["ok"]]
    assert not bad_images, f"images that did not load: {bad_images}"
    if page_path in _chapters():
        assert n_math > 0, "a chapter page with no equation"
        assert images, "a chapter page with no figure"


SEARCH_QUERY = "Performer"


def _chapters_titled(word: str) -> list[str]:
    """The chapter pages whose title (first ``# `` heading of the source) contains ``word``."""
    out = []
    for page in sorted(_chapters()):
        text = (ROOT / page.replace(".html", ".md")).read_text(encoding="utf-8")
        title = next((line for line in text.splitlines() if line.startswith("# ")), "")
        if word.casefold() in title.casefold():
            out.append(page)
    return out


def test_search_works_offline(site, browser):
    """Type a query into the book's search box (Ctrl+K opens it) with the network blocked: the
    search page runs on the site's own index and lists every chapter whose title has the word."""
    base, html = site
    expected = _chapters_titled(SEARCH_QUERY)
    assert expected, f"no chapter titled with {SEARCH_QUERY!r}: choose another query"
    page, blocked, errors, failed = _guarded_page(browser, base)
    try:
        page.goto(base + "book/intro.html", wait_until="load", timeout=60_000)
        page.keyboard.press("Control+k")  # the theme's search dialog
        box = page.locator("form.bd-search input[name='q']:visible").first
        box.wait_for(state="visible", timeout=10_000)
        box.fill(SEARCH_QUERY)
        box.press("Enter")
        page.wait_for_url("**/search.html?q=*", timeout=30_000)
        page.wait_for_function(
            "() => { const s = document.querySelector('#search-results .search-summary');"
            " return s && /finished|did not match/i.test(s.textContent); }",
            timeout=60_000,
        )
        summary = page.locator("#search-results .search-summary").inner_text()
        hrefs = page.eval_on_selector_all("#search-results ul.search li a", "els => els.map(a => a.href)")
    finally:
        page.close()
    assert not blocked, f"requests to the network (blocked): {blocked}"
    assert not failed, f"resources that failed to load: {failed}"
    assert not errors, f"console errors: {errors}"
    found = {h.removeprefix(base).split("?")[0].split("#")[0] for h in hrefs}
    missing = [p for p in expected if p not in found]
    assert not missing, f"search for {SEARCH_QUERY!r} ({summary!r}) did not list {missing}; it listed {sorted(found)}"
