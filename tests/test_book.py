"""The book as a reader gets it: every chapter executed under the smoke profile by the book
runner, the HTML built with warnings as errors, scanned for silent failures, and opened in a
real headless browser (Debian's chromium through its chromedriver).

The browser part runs when chromium and chromedriver are installed (``.ci/run`` installs them);
with ``HANDSSCA_REQUIRE_BROWSER=1`` (set by ``.ci/run``) their absence is a failure.
"""
import functools
import http.server
import json
import os
import re
import shutil
import threading
import time
from pathlib import Path

import pytest
import yaml

from handssca.book import build, scan_html, toc_files
from handssca.utils import repo_root

ROOT = repo_root()
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory):
    """Build the whole book with the smoke profile into a temporary folder, once."""
    out = tmp_path_factory.mktemp("book")
    html = build(profile="smoke", out=out, log=lambda *a: None)
    prov = json.loads((out / "provenance.json").read_text())
    return html, prov


def _pages():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [f + ".html" for f in toc_files(toc)]


def test_every_chapter_executes_under_the_smoke_profile(smoke_book):
    html, prov = smoke_book
    notebooks = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    executed = sorted(Path(c["notebook"]).name for c in prov["chapters"])
    assert executed == notebooks
    assert all(c["status"] == "ok" for c in prov["chapters"]), prov["chapters"]
    for page in _pages():
        assert (html / page).exists(), f"{page} was not built"


def test_built_book_has_no_silent_failures(smoke_book):
    html, _ = smoke_book
    assert scan_html(html) == []
    status = (html / "book" / "status.html").read_text()
    assert "smoke" in status and "01_ssm_discretisation" in status


@pytest.fixture(scope="session")
def browser(smoke_book):
    if not (CHROMIUM and CHROMEDRIVER):
        if os.environ.get("HANDSSCA_REQUIRE_BROWSER") == "1":
            pytest.fail("HANDSSCA_REQUIRE_BROWSER=1 but chromium/chromedriver are not installed")
        pytest.skip("chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    html, _ = smoke_book
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(html))
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new --no-sandbox --disable-gpu --disable-quic --no-first-run "
              "--disable-background-networking --disable-component-update --disable-sync "
              "--disable-dev-shm-usage").split():
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    yield driver, base
    driver.quit()
    server.shutdown()


def _open(driver, url):
    driver.get(url)
    # wait for MathJax (when the page has math) to finish typesetting
    deadline = time.time() + 20
    while time.time() < deadline:
        done = driver.execute_script(
            "if (document.readyState !== 'complete') return false;"
            "if (!document.querySelector('.math')) return true;"
            "return !!(window.MathJax && MathJax.startup && MathJax.startup.document"
            " && document.querySelectorAll('mjx-container').length > 0);")
        if done:
            return
        time.sleep(0.2)
    raise AssertionError(f"{url}: did not finish loading/typesetting within 20 s")


@pytest.mark.browser
@pytest.mark.parametrize("page", _pages())
def test_page_in_a_real_browser(browser, page):
    driver, base = browser
    driver.get_log("browser")  # drop what earlier pages left
    _open(driver, base + page)
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], f"{page}: console errors {errors}"
    broken = driver.execute_script(
        "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
        ".map(i => i.src);")
    assert broken == [], f"{page}: images that did not load: {broken}"
    n_math = driver.execute_script("return document.querySelectorAll('.math').length;")
    n_typeset = driver.execute_script("return document.querySelectorAll('mjx-container').length;")
    assert n_typeset >= n_math, f"{page}: {n_math} math elements, {n_typeset} typeset"
    text = driver.execute_script("return document.body.innerText;")
    assert "\\(" not in text and "\\[" not in text, f"{page}: raw TeX left on the page"


@pytest.mark.browser
def test_navigation_reaches_every_chapter(browser):
    driver, base = browser
    _open(driver, base + "index.html")
    hrefs = driver.execute_script(
        "return Array.from(document.querySelectorAll('nav a.reference.internal'))"
        ".map(a => a.href);")
    for page in _pages()[1:]:
        assert any(h.split("#")[0].endswith(page) for h in hrefs), f"no navigation link to {page}"


@pytest.mark.browser
def test_tables_chapter_shows_every_paper_number(browser):
    # every number of the paper's Tables 1-6, formatted as the tables format it, inside the
    # rendered table of chapter 09 whose caption names that table
    from handssca.report import format_value, paper_numbers

    driver, base = browser
    _open(driver, base + "notebooks/09_tables.html")
    texts = driver.execute_script(
        "return Array.from(document.querySelectorAll('table'))"
        ".filter(t => t.caption).map(t => [t.caption.innerText, t.innerText]);")
    by_table = {}
    for caption, text in texts:
        m = re.match(r"Table (\d) \(", caption.strip())
        if m:
            by_table[int(m.group(1))] = text
    assert sorted(by_table) == [1, 2, 3, 4, 5, 6], f"tables found: {sorted(by_table)}"
    missing = [(n.table, n.row, n.column, format_value(n.value, n.unit))
               for n in paper_numbers()
               if n.value is not None and format_value(n.value, n.unit) not in by_table[n.table]]
    assert missing == [], f"paper numbers not on the page: {missing}"
