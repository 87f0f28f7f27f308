"""The browser playground at ``/``: its assets over HTTP, and the page driven in a headless chromium.

The browser tests run Debian's chromium (found on PATH; Playwright never downloads one)
against the real app with the tiny models, and compare what the page shows with what the
API answers for the same request. The sample text puts emoji before every span, so an
offset that mixes up UTF-16 units and code points shows at once.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch

from services.api import Settings
from services.api.playground import STATIC_DIR
from services.api.settings import parse_api_keys
from tests.services.conftest import TEST_LIMITS, serve
from tests.services.test_api_edit import apply_edits
from workflows.syntax import LANGUAGES

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TEXT = "Zürich 😀 café 🎉: the licensee shall not disclose confidential information to third parties.\n"
KEY = "sk-playground-1"
MASK_GLYPH = "\u2591"
EDITS_JS = """() => [...document.querySelectorAll('#edits tbody tr.edit')].map(tr => ({
    start: Number(tr.dataset.start), end: Number(tr.dataset.end),
    before: tr.querySelector('.before').textContent, after: tr.querySelector('.after').textContent,
    reason: tr.querySelector('.reason').textContent}))"""


def utf16(text: str, cp: int) -> int:
    """The JS string index of code-point offset ``cp``."""
    return len(text[:cp].encode("utf-16-le")) // 2


def span_of(word: str) -> tuple[int, int]:
    start = TEXT.index(word)
    return start, start + len(word)


def server_edits(out: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: e[k] for k in ("start", "end", "before", "after", "reason")} for e in out["edits"]]


# --- without a browser ------------------------------------------------------------------------


def test_root_serves_the_page_and_its_assets_with_their_types(api_url: str, http: httpx.Client) -> None:
    page = http.get(f"{api_url}/")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert "<textarea" in page.text and "script-src 'self'" in page.headers["content-security-policy"]
    types = {"static/playground.js": {"text/javascript", "application/javascript"},
             "static/playground.css": {"text/css"}}
    for asset, allowed in types.items():
        assert f'"{asset}"' in page.text  # linked relative, so the page works under a path prefix
        r = http.get(f"{api_url}/{asset}")
        assert r.status_code == 200 and r.headers["content-type"].split(";")[0] in allowed
        assert r.text == (STATIC_DIR / Path(asset).name).read_text(encoding="utf-8")
    missing = http.get(f"{api_url}/static/nope.js")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
    assert "/" not in http.get(f"{api_url}/openapi.json").json()["paths"]
    assert 'route="/static/{name}"' in http.get(f"{api_url}/metrics").text  # not "unmatched"


def test_static_files_fetch_nothing_from_elsewhere_and_list_every_language() -> None:
    for path in STATIC_DIR.iterdir():
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", path.read_text(encoding="utf-8")), path.name
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    select = re.search(r'<select id="language">(.*?)</select>', html, re.DOTALL)
    assert select is not None and tuple(re.findall(r'value="([^"]+)"', select.group(1))) == LANGUAGES


# --- in the browser ---------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH: install Debian's (apt-get install chromium; scripts/bootstrap.sh does it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def keyed_url(api_models: Any) -> Iterator[str]:
    server, engine = serve(api_models, Settings(api_keys=parse_api_keys(f"{KEY}:play"), limits=TEST_LIMITS))
    with server:
        yield server.url
    engine.close()


class Playground:
    """The page, with the few moves a user makes."""

    def __init__(self, page: Any, url: str) -> None:
        self.page, self.url = page, url
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        page.on("console", self._console)
        page.set_default_timeout(10_000)
        self.open()

    def _console(self, message: Any) -> None:
        # the browser logs every answer that is not 2xx; the page's own errors are what count
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(message.text)

    def open(self) -> None:
        self.page.goto(f"{self.url}/")
        self.page.wait_for_selector("body[data-ready=true]", state="attached")

    def paste(self, text: str) -> None:
        self.page.fill("#text", text)

    def select(self, text: str, start: int, end: int) -> None:
        """Select code points [start, end) of the editor's text, as a mouse would (UTF-16 indices)."""
        self.page.eval_on_selector("#text", "(ta, [s, e]) => { ta.focus(); ta.setSelectionRange(s, e); "
                                   "ta.dispatchEvent(new Event('select')); }", [utf16(text, start), utf16(text, end)])

    def run(self, **options: Any) -> None:
        for name, value in options.items():
            if isinstance(value, bool):
                self.page.set_checked(f"#{name}", value)
            elif name in ("mode", "language", "detect"):
                self.page.select_option(f"#{name}", str(value))
            else:
                self.page.fill(f"#{name}", str(value))
        self.page.click("#run")
        self.page.wait_for_selector("body:not(.busy)", state="attached")

    def edits(self) -> list[dict[str, Any]]:
        self.page.wait_for_selector("#results:not([hidden])")
        return list(self.page.evaluate(EDITS_JS))

    def result(self) -> str:
        return str(self.page.text_content("#result"))

    def error(self) -> str:
        self.page.wait_for_selector("#error:not([hidden])")
        return str(self.page.text_content("#error"))


@pytest.fixture
def playground(browser: Any, api_url: str) -> Iterator[Playground]:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    ui = Playground(context.new_page(), api_url)
    yield ui
    context.close()
    assert ui.errors == []  # no uncaught exception, no refused script or style (CSP)


@pytest.mark.browser
def test_revise_selected_spans_then_accept_and_reject_edits(playground: Playground, api_url: str,
                                                            http: httpx.Client) -> None:
    ui, page = playground, playground.page
    ui.paste(TEXT)
    spans = [span_of("licensee"), span_of("confidential")]
    for start, end in spans:
        ui.select(TEXT, start, end)
        page.click("#add-span")
    chips = page.locator("#spans li")
    assert [(int(c.get_attribute("data-start")), int(c.get_attribute("data-end"))) for c in chips.all()] == spans
    assert chips.nth(0).locator("q").text_content() == "licensee"
    ui.run(steps=4)

    expected = http.post(f"{api_url}/v1/revise", json={"text": TEXT, "spans": spans, "steps": 4, "seed": 0}).json()
    edits = ui.edits()
    assert edits and edits == server_edits(expected)
    assert all(TEXT[e["start"]:e["end"]] == e["before"] for e in edits)  # code-point offsets
    assert ui.result() == expected["text"] and page.text_content("#diff") == expected["diff"]

    page.locator("#edits tbody tr.edit").nth(0).locator("input.accept").uncheck()
    assert "rejected" in str(page.locator("#edits tbody tr.edit").nth(0).get_attribute("class"))
    assert ui.result() == apply_edits(TEXT, expected["edits"][1:])
    page.click("#reject-all")
    assert ui.result() == TEXT
    page.click("#accept-all")
    assert ui.result() == expected["text"]

    # an edit's offsets select the same characters in the editor (UTF-16 there)
    page.locator("#edits tbody tr.edit button.locate").nth(0).click()
    selected = page.eval_on_selector("#text", "ta => ta.value.slice(ta.selectionStart, ta.selectionEnd)")
    assert selected == edits[0]["before"]
    page.click("#use-result")
    assert page.input_value("#text") == expected["text"]


@pytest.mark.browser
def test_revise_stream_shows_the_masked_positions_filling_in(playground: Playground, api_url: str,
                                                             http: httpx.Client, tmp_path: Path) -> None:
    ui, page = playground, playground.page
    ui.paste(TEXT)
    span = span_of("shall not disclose")
    ui.select(TEXT, *span)
    page.click("#add-span")
    ui.run(steps=4, stream=True)

    expected = http.post(f"{api_url}/v1/revise", json={"text": TEXT, "spans": [span], "steps": 4, "seed": 0}).json()
    assert ui.edits() == server_edits(expected) and ui.result() == expected["text"]
    steps = int(page.get_attribute("#steps-panel", "data-count") or 0)
    assert steps >= 2
    # the last step is the answer, nothing masked; the first still has masked positions
    assert page.text_content("#snapshot") == expected["text"] and page.locator("#snapshot .masked").count() == 0
    page.focus("#step-slider")
    page.keyboard.press("Home")
    assert page.get_attribute("#snapshot", "data-step") == "1"
    first = str(page.text_content("#snapshot"))
    assert MASK_GLYPH in first and page.locator("#snapshot .masked").count() >= 1
    [(a, b)] = expected["spans"]  # the span widened to token edges
    assert first.startswith(TEXT[:a]) and first.endswith(TEXT[b:])  # only the span was re-masked
    assert f"of {steps}" in str(page.text_content("#step-label"))
    page.locator("#edits tbody tr.edit input.accept").nth(0).uncheck()
    page.screenshot(path=str(tmp_path / "playground.png"), full_page=True)
    assert (tmp_path / "playground.png").stat().st_size > 10_000


@pytest.mark.browser
def test_infill_at_the_cursor_after_emoji(playground: Playground, api_url: str, http: httpx.Client) -> None:
    ui, page = playground, playground.page
    ui.paste(TEXT)
    cursor = TEXT.index(":") + 1  # after two emoji: code point 16 is UTF-16 index 18
    ui.select(TEXT, cursor, cursor)
    assert page.get_attribute("#cursor-info", "data-start") == str(cursor)
    page.check("input[name=task][value=infill]")
    body = {"prompt": TEXT[:cursor], "suffix": TEXT[cursor:], "mode": "diffusion", "max_tokens": 6, "steps": 4,
            "seed": 0, "candidates": False}  # the models' raw answer: the tiny model's scoped one is empty
    expected = http.post(f"{api_url}/v1/completions", json=body).json()["choices"][0]["text"]
    assert expected  # the tiny model writes something for this seed
    for stream in (False, True):
        ui.run(mode="diffusion", **{"max-tokens": 6}, steps=4, stream=stream, candidates=False)
        [edit] = ui.edits()
        assert edit == {"start": cursor, "end": cursor, "before": "", "after": expected, "reason": "infill (diffusion)"}
        assert ui.result() == TEXT[:cursor] + expected + TEXT[cursor:]
        assert "+" in str(page.text_content("#diff"))
    assert int(page.get_attribute("#steps-panel", "data-count") or 0) >= 1


@pytest.mark.browser
def test_repair_code(playground: Playground, api_url: str, http: httpx.Client) -> None:
    code = "def f(x):\n    return (x + 1\n"
    playground.paste(code)
    playground.page.check("input[name=task][value=repair]")
    expected = http.post(f"{api_url}/v1/repair", json={"code": code, "steps": 4, "seed": 0}).json()
    for stream in (False, True):  # a streamed repair is one event: no step view
        playground.run(steps=4, stream=stream)
        assert playground.edits() == server_edits(expected) and playground.result() == expected["text"]
        assert ("the code parses" in str(playground.page.text_content("#status"))) == expected["parses"]
        assert playground.page.is_hidden("#steps-panel")


@pytest.mark.browser
def test_errors_show_on_the_page(playground: Playground) -> None:
    ui, page = playground, playground.page
    page.click("#run")
    assert "paste some text" in ui.error()

    ui.paste("a" * (TEST_LIMITS.max_text_chars + 100))
    page.press("#text", "Control+Enter")
    message = ui.error()
    assert f"over the limit of {TEST_LIMITS.max_text_chars}" in message
    assert "HTTP 422" in message and "field text" in message

    page.click("#error-close")
    ui.paste(TEXT)
    page.route("**/v1/revise", lambda route: route.abort())
    ui.run()
    assert "Could not reach the server" in ui.error()

    page.unroute("**/v1/revise")
    stream_error = 'data: {"error": {"message": "the refiner fell over", "type": "server_error", ' \
                   '"param": null, "code": "internal_error"}}\n\ndata: [DONE]\n\n'
    page.route("**/v1/revise", lambda route: route.fulfill(status=200, content_type="text/event-stream",
                                                            body=stream_error))
    ui.run(stream=True)
    assert "the refiner fell over" in ui.error()
    assert page.is_hidden("#results") and page.is_hidden("#steps-panel")


@pytest.mark.browser
def test_api_key_is_sent_and_kept_for_the_tab_only(browser: Any, keyed_url: str) -> None:
    context = browser.new_context()
    ui = Playground(context.new_page(), keyed_url)
    page = ui.page
    ui.paste(TEXT)
    ui.run(steps=2)
    assert "missing API key" in ui.error() and "HTTP 401" in ui.error()

    page.fill("#api-key", KEY)
    ui.run(steps=2)
    ui.edits()  # waits for the results: the key was accepted
    assert page.is_hidden("#error")
    assert page.evaluate("[sessionStorage.getItem('remask.apiKey'), localStorage.length]") == [KEY, 0]
    ui.open()  # a reload keeps the key for this tab
    assert page.input_value("#api-key") == KEY
    context.close()
    assert ui.errors == []
