"""Checks of the book: its table of contents, its notebooks, its pages.

The notebook and table-of-contents checks read the sources only. The page
checks read the built book in ``_build/html`` (``make book``), and the
browser check also needs Debian's ``chromium``; each is skipped, with the
reason, when what it needs is missing.
"""

import functools
import http.server
import re
import shutil
import subprocess
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
CHAPTERS = ROOT / "chapters"
NOTEBOOKS = sorted(
    path
    for path in CHAPTERS.rglob("*.ipynb")
    if ".ipynb_checkpoints" not in path.parts
)

MAX_LINE = 79
MACHINE_PATH = re.compile(
    r"(?<![\w.])(?:/work/|/root/|/home/|/tmp/|/Users/|[A-Z]:\\Users\\)"
)
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}

# Pages that must show several formulas; the browser check opens every
# page of the table of contents, and these must have math to check.
MATH_PAGES = {"intro.html", "chapters/question.html"}
MIN_MATH = 2


# ---------------------------------------------------------------------
# Table of contents
# ---------------------------------------------------------------------


def _toc_files(node):
    """Yield every `file:` entry (and the root) of a _toc.yml tree."""
    if isinstance(node, dict):
        for key in ("root", "file"):
            if key in node:
                yield node[key]
        for value in node.values():
            yield from _toc_files(value)
    elif isinstance(node, list):
        for item in node:
            yield from _toc_files(item)


def _toc_entries():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return list(_toc_files(toc))


def _source_of(entry):
    """The source file of a toc entry, which names it without suffix."""
    for suffix in ("", ".md", ".ipynb"):
        path = ROOT / (entry + suffix)
        if path.is_file():
            return path
    return None


def test_toc_files_exist():
    missing = [entry for entry in _toc_entries() if _source_of(entry) is None]
    assert not missing, f"_toc.yml lists files that do not exist: {missing}"


def test_every_notebook_is_in_toc():
    listed = {_source_of(entry) for entry in _toc_entries()}
    unlisted = [
        str(path.relative_to(ROOT)) for path in NOTEBOOKS
        if path not in listed
    ]
    assert not unlisted, f"notebooks missing from _toc.yml: {unlisted}"


# ---------------------------------------------------------------------
# Notebook hygiene
# ---------------------------------------------------------------------


def _output_texts(output):
    """The text of an output that a reader sees (images excluded)."""
    if output.output_type == "stream":
        yield output.text
    elif output.output_type in ("execute_result", "display_data"):
        for mime, data in output.get("data", {}).items():
            if mime.startswith("text/") or mime.endswith("json"):
                yield data if isinstance(data, str) else str(data)
    elif output.output_type == "error":
        yield "\n".join(output.get("traceback", []))


@pytest.fixture(
    params=NOTEBOOKS, ids=[str(p.relative_to(ROOT)) for p in NOTEBOOKS]
)
def notebook(request):
    return request.param, nbformat.read(request.param, as_version=4)


def test_notebook_kernel(notebook):
    _, nb = notebook
    kernelspec = nb.metadata.get("kernelspec", {})
    assert kernelspec.get("name") == "python3", kernelspec


def test_notebook_ran_in_order_without_errors(notebook):
    _, nb = notebook
    cells = [
        cell for cell in nb.cells
        if cell.cell_type == "code" and cell.source.strip()
    ]
    counts = [cell.execution_count for cell in cells]
    assert counts == list(range(1, len(cells) + 1)), (
        "run the notebook top to bottom in a fresh kernel before "
        f"committing it; execution counts are {counts}"
    )
    errors = [
        i for i, cell in enumerate(cells)
        if any(out.output_type == "error" for out in cell.outputs)
    ]
    assert not errors, f"code cells {errors} stored an error"


def test_notebook_code_lines_fit(notebook):
    _, nb = notebook
    long_lines = [
        (i, line)
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for line in cell.source.splitlines()
        if len(line) > MAX_LINE
    ]
    assert not long_lines, f"code lines over {MAX_LINE} characters: " + str(
        long_lines
    )


def test_notebook_has_no_machine_paths(notebook):
    _, nb = notebook
    found = []
    for i, cell in enumerate(nb.cells):
        texts = [cell.source]
        for output in cell.get("outputs", []):
            texts.extend(_output_texts(output))
        for text in texts:
            for match in MACHINE_PATH.finditer(text):
                line = text[: match.end() + 40].splitlines()[-1]
                found.append((i, line))
    assert not found, f"cells name paths of one machine: {found}"


# ---------------------------------------------------------------------
# Built pages: no external resources
# ---------------------------------------------------------------------


def _built_pages():
    if not (HTML / "index.html").is_file():
        pytest.skip("the book is not built; run `make book`")
    return sorted(HTML.rglob("*.html"))


class _ResourceLinks(HTMLParser):
    """Collect what a page loads: script src, link href, and the like."""

    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "img", "iframe", "source", "audio", "video"):
            url = attrs.get("src")
        elif tag == "link":
            url = attrs.get("href")
        else:
            url = None
        if url:
            self.urls.append((tag, url))


def _is_external(url):
    parts = urlsplit(url)
    if not parts.netloc:
        return False
    return parts.hostname not in LOCAL_HOSTS


def test_pages_load_nothing_from_other_hosts():
    external = []
    for page in _built_pages():
        parser = _ResourceLinks()
        parser.feed(page.read_text(encoding="utf-8"))
        external += [
            (str(page.relative_to(HTML)), tag, url)
            for tag, url in parser.urls
            if _is_external(url)
        ]
    assert not external, f"pages load external resources: {external[:10]}"


def test_stylesheets_load_nothing_from_other_hosts():
    _built_pages()
    pattern = re.compile(
        r"""(?:url\(|@import)\s*['"]?((?:https?:)?//[^'")\s]+)"""
    )
    external = []
    for sheet in HTML.rglob("*.css"):
        for url in pattern.findall(sheet.read_text(encoding="utf-8")):
            if _is_external(url):
                external.append((str(sheet.relative_to(HTML)), url))
    assert not external, f"stylesheets load external resources: {external}"


def test_mathjax_is_served_by_the_book():
    pages = _built_pages()
    scripts = set()
    for page in pages:
        parser = _ResourceLinks()
        parser.feed(page.read_text(encoding="utf-8"))
        scripts |= {
            (page.parent / urlsplit(url).path).resolve()
            for tag, url in parser.urls
            if tag == "script" and "mathjax" in url.lower()
        }
    assert scripts, "no page loads MathJax"
    for script in scripts:
        assert script.is_file(), f"MathJax script missing: {script}"
        assert script.is_relative_to(HTML.resolve())


# ---------------------------------------------------------------------
# Built pages: math renders in a browser
# ---------------------------------------------------------------------


class _Dom(HTMLParser):
    """Count MathJax output and keep the text a reader would see."""

    HIDDEN = {
        "script", "style", "pre", "code", "textarea", "mjx-assistive-mml"
    }

    def __init__(self):
        super().__init__()
        self.containers = 0
        self.errors = 0
        self.math_elements = 0
        self._open = []
        self.text = []

    def handle_starttag(self, tag, attrs):
        classes = (dict(attrs).get("class") or "").split()
        if tag == "mjx-container":
            self.containers += 1
        elif tag == "mjx-merror":
            self.errors += 1
        if tag in ("span", "div") and "math" in classes:
            self.math_elements += 1
        self._open.append(tag)

    def handle_endtag(self, tag):
        if tag in self._open:
            while self._open.pop() != tag:
                pass

    def handle_data(self, data):
        if not self.HIDDEN.intersection(self._open):
            self.text.append(data)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_request(self, code="-", size="-"):
        self.server.requests.append((self.path, int(code)))

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def book_server():
    """Serve _build/html on a free port of 127.0.0.1."""
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _dump_dom(url, profile):
    command = [
        shutil.which("chromium"),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=15000",
        "--dump-dom",
        url,
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.parametrize("page", [e + ".html" for e in _toc_entries()])
def test_math_renders_in_browser(page, book_server, tmp_path):
    if shutil.which("chromium") is None:
        pytest.skip("chromium is not installed")
    if not (HTML / page).is_file():
        pytest.skip(f"{page} is not built; run `make book`")

    static = _Dom()
    static.feed((HTML / page).read_text(encoding="utf-8"))
    if page in MATH_PAGES:
        assert static.math_elements >= MIN_MATH, "too little math to check"

    host, port = book_server.server_address[:2]
    book_server.requests.clear()
    dom = _Dom()
    dom.feed(_dump_dom(f"http://{host}:{port}/{page}", tmp_path / "profile"))

    assert dom.containers >= static.math_elements, (
        f"MathJax rendered {dom.containers} formulas of "
        f"{static.math_elements}"
    )
    assert dom.errors == 0, "MathJax reported TeX errors"
    text = "".join(dom.text)
    for delimiter in ("\\(", "\\[", "$$"):
        assert delimiter not in text, f"raw {delimiter} left in {page}"

    failed = [
        (path, code) for path, code in book_server.requests
        if code >= 400 and not path.endswith("favicon.ico")
    ]
    assert not failed, f"requests that failed: {failed}"
