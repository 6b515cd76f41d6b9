"""The book as a reader gets it: every chapter executed under the smoke profile by the book
runner, the HTML built with warnings as errors, scanned for silent failures, and opened in a
real headless browser (Debian's chromium through its chromedriver).

The browser part runs when chromium and chromedriver are installed (``.ci/run`` installs them);
with ``HANDSSCA_REQUIRE_BROWSER=1`` (set by ``.ci/run``) their absence is a failure.

The browser window is :data:`WINDOW`, 1320 x 900 CSS pixels: a laptop screen on which the theme
shows both sidebars, and the narrowest at which a code box of the article column (about 700
pixels of the theme's 14-pixel monospace) holds 80 characters: a line of at most 79 characters
fits, one of 81 does not (at 1280 pixels only 76 fit). On every page of the table of contents
the layout rules of the book hold, each failure message listing every page and element that
breaks it:

(a) no code block (``pre``) and no table is wider than its box or the article column: code and
    printed output lines are at most 79 characters;
(b) every image of the article is in a numbered figure with a caption, and has alt text;
(c) every display equation has a number (a label);
(d) one search box;
(e) no absolute path of the machine that built the book (``/tmp/``, ``/home/``, ...).

How a chapter meets (b) and (c) (checked with this Jupyter Book 1.0.4 / myst-nb 1.4 set-up,
``numfig`` on by default: the figure reads "Fig. N", its ``img`` carries the alt text):

- a figure drawn by a code cell: the cell's metadata
  ``{"mystnb": {"figure": {"caption": "...", "name": "fig-..."},
  "image": {"alt": "..."}}}``; refer to it with ``{numref}`fig-...```;
- an equation: ``$$ ... $$ (eq-label)`` (dollarmath) or a ``{math}`` block with
  ``:label: eq-label``; refer to it with ``{eq}`eq-label```. An unlabelled ``$$ ... $$`` has
  no number and fails (c).
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
#: the browser window (CSS pixels): both sidebars shown, 80 characters of code fit a code box
WINDOW = (1320, 900)
#: absolute paths of a build machine that must not reach a page (rule (e))
BUILD_PATHS = re.compile(r"(?<![\w.:/])/(?:tmp|home|root|work|Users)/[^\s\"'<>)]*")


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
    html, prov = smoke_book
    assert scan_html(html) == []
    status = (html / "book" / "status.html").read_text()
    assert "smoke" in status and "01_ssm_discretisation" in status
    # the data column names each chapter's data, never a bare "-"
    assert all(c.get("data") for c in prov["chapters"]), prov["chapters"]


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
    opts.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
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


#: what the browser measures on each page, for the layout rules (a)-(e)
MEASURE = r"""
const article = document.querySelector('article.bd-article') || document.body;
const column = article.clientWidth;
const where = e => {
  const sec = e.closest('section[id], div.cell, figure[id]');
  const id = sec ? (sec.id || sec.className.split(' ')[0]) : '';
  return `${e.tagName.toLowerCase()} in #${id}: ${JSON.stringify(
      (e.innerText || e.alt || e.src || '').trim().slice(0, 50))}`;
};
const shown = e => e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden';
const wide = Array.from(article.querySelectorAll('pre, table')).filter(shown).map(e => {
  const w = e.getBoundingClientRect().width;
  return (e.scrollWidth > e.clientWidth + 1 || w > column + 1)
    ? `${where(e)} (scrollWidth ${e.scrollWidth}, clientWidth ${e.clientWidth}, `
      + `width ${Math.round(w)}, column ${column})` : null;
}).filter(x => x);
const figures = Array.from(article.querySelectorAll('img'))
  .filter(i => !i.closest('.handssca-downloads')).map(i => {
    const fig = i.closest('figure');
    const bad = [];
    if (!fig) bad.push('not in a figure');
    else if (!fig.querySelector('figcaption .caption-number')) bad.push('no numbered caption');
    if (!(i.getAttribute('alt') || '').trim()) bad.push('no alt text');
    return bad.length ? `${where(i)}: ${bad.join(', ')}` : null;
  }).filter(x => x);
const equations = Array.from(article.querySelectorAll('div.math'))
  .filter(m => !m.querySelector('.eqno'))
  .map(m => `unnumbered equation ${JSON.stringify(
      (m.getAttribute('data-tex') || m.textContent).trim().slice(0, 60))}`);
const search = Array.from(document.querySelectorAll(
    '.search-button-field, .search-button, form.bd-search, input[type=search]'))
  .filter(shown).map(e => e.className);
// the article's prose: without code, signatures and typeset math (raw TeX is looked for here)
const prose = article.cloneNode(true);
prose.querySelectorAll('pre, code, dt, .highlight, mjx-container, script, style')
  .forEach(e => e.remove());
return {wide: wide, figures: figures, equations: equations, search: search,
        text: document.body.innerText + ' ' + article.textContent, prose: prose.textContent};
"""


@pytest.fixture(scope="session")
def rendered(browser):
    """Every page of the table of contents opened once in the browser: its console errors,
    broken images, math typeset and the layout measurements of :data:`MEASURE`."""
    driver, base = browser
    pages = {}
    for page in _pages():
        driver.get_log("browser")  # drop what earlier pages left
        _open(driver, base + page)
        info = driver.execute_script(MEASURE)
        info["errors"] = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        info["broken"] = driver.execute_script(
            "return Array.from(document.images)"
            ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src);")
        info["n_math"] = driver.execute_script(
            "return document.querySelectorAll('.math').length;")
        info["n_typeset"] = driver.execute_script(
            "return document.querySelectorAll('mjx-container').length;")
        pages[page] = info
    return pages


def _offenders(rendered, key):
    """``page: element`` lines of every page whose measurement ``key`` lists something."""
    return "\n".join(f"{page}: {item}" for page, info in rendered.items() for item in info[key])


@pytest.mark.browser
@pytest.mark.parametrize("page", _pages())
def test_page_in_a_real_browser(rendered, page):
    info = rendered[page]
    assert info["errors"] == [], f"{page}: console errors {info['errors']}"
    assert info["broken"] == [], f"{page}: images that did not load: {info['broken']}"
    assert info["n_typeset"] >= info["n_math"], (
        f"{page}: {info['n_math']} math elements, {info['n_typeset']} typeset")
    text = info["prose"]  # code may show a backslash-parenthesis (a regular expression)
    assert "\\(" not in text and "\\[" not in text, f"{page}: raw TeX left on the page"


@pytest.mark.browser
def test_no_code_block_or_table_is_wider_than_the_column(rendered):
    # rule (a): at WINDOW's width a code block or table that scrolls sideways, or sticks out
    # of the article column, hides part of its content (and is cut in the PDF)
    assert _offenders(rendered, "wide") == "", (
        "code blocks / tables wider than their column (lines of at most 79 characters fit):\n"
        + _offenders(rendered, "wide"))


@pytest.mark.browser
def test_every_figure_is_numbered_with_a_caption_and_alt_text(rendered):
    # rule (b); the recipe is in this module's docstring
    assert _offenders(rendered, "figures") == "", (
        "images without a numbered caption or alt text:\n" + _offenders(rendered, "figures"))


@pytest.mark.browser
def test_every_display_equation_is_numbered(rendered):
    # rule (c); the recipe is in this module's docstring
    assert _offenders(rendered, "equations") == "", (
        "display equations without a label:\n" + _offenders(rendered, "equations"))


@pytest.mark.browser
def test_one_search_box_per_page(rendered):
    # rule (d): the theme's top bar and its sidebar each had one (see _config.yml)
    counts = {page: info["search"] for page, info in rendered.items() if len(info["search"]) != 1}
    assert counts == {}, f"pages without exactly one visible search box: {counts}"


@pytest.mark.browser
def test_no_build_machine_path_on_any_page(rendered):
    # rule (e): a path of the machine that built the book tells a reader nothing and leaks
    found = {page: sorted(set(BUILD_PATHS.findall(info["text"])))
             for page, info in rendered.items()}
    found = {page: paths for page, paths in found.items() if paths}
    assert found == {}, "absolute build paths on pages:\n" + "\n".join(
        f"{page}: {paths}" for page, paths in found.items())


def test_built_book_ships_its_source_and_no_repository_button(smoke_book):
    # the source archive and the executed chapters lie in the HTML folder, and every page's
    # box links to them; the committed configuration names no repository: no button
    html, prov = smoke_book
    shipped = prov["shipped"]
    assert (html / shipped["file"]).is_file() and (html / shipped["notebooks"]).is_file()
    for page in _pages():
        text = (html / page).read_text()
        depth = "../" * page.count("/")
        assert f'href="{depth}{shipped["file"]}"' in text, f"{page}: no link to the source"
        assert "btn-source-repository-button" not in text, f"{page}: a repository button"
        assert "dropdown-launch-buttons" not in text, f"{page}: launch buttons"
    status = (html / "book" / "status.html").read_text()
    assert "synthetic (generated)" in status


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
    # rendered tables of chapter 09 whose caption names that table (a table as the paper
    # prints it, and its paper-vs-ours comparison in long format)
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
            by_table[int(m.group(1))] = by_table.get(int(m.group(1)), "") + "\n" + text
    assert sorted(by_table) == [1, 2, 3, 4, 5, 6], f"tables found: {sorted(by_table)}"
    missing = [(n.table, n.row, n.column, format_value(n.value, n.unit))
               for n in paper_numbers()
               if n.value is not None and format_value(n.value, n.unit) not in by_table[n.table]]
    assert missing == [], f"paper numbers not on the page: {missing}"
