"""``remask lsp`` as a subprocess over stdio, driven by pygls' client, against the real app.

The app (tiny random models, API keys required) is wrapped in :class:`Tap`, which records
every request it gets and can hold requests back for a while: that is how the tests see
exactly what the language server sent, and make an answer arrive after the document moved
on or after the request was cancelled. The language server process starts once per module
(most of its start-up is importing the CLI), on an event loop in a thread of its own.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import torch
from lsprotocol import types as lsp
from pygls.lsp.client import LanguageClient
from pygls.protocol import LanguageServerProtocol

from services.api import LocalEngine, Settings, build_app
from services.api.settings import parse_api_keys
from tests.services.conftest import TEST_LIMITS, LiveServer, api_models  # noqa: F401 - api_models is a fixture

torch.set_num_threads(1)

T = TypeVar("T")
API_KEY = "lsp-key"
REPO = Path(__file__).resolve().parents[2]
# what the tests' language server is configured with (initializationOptions)
# the tiny random models' completions never parse, so the candidate search would answer nothing
LSP_OPTIONS = {"mode": "hybrid", "maxTokens": 8, "steps": 4, "timeout": 20, "maxRetries": 0, "candidates": False}


@dataclass
class Seen:
    path: str
    body: Any
    authorization: str


class Tap:
    """ASGI wrapper: records each request (path, JSON body, Authorization) and holds it ``delay`` seconds."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.delay = 0.0
        self.seen: list[Seen] = []
        self.hung_up = 0  # requests whose caller disconnected while they were held back

    async def _hang_up_first(self, receive: Any) -> bool:
        """Wait ``delay``; True if the client disconnected before that."""
        sleeper, watcher = asyncio.ensure_future(asyncio.sleep(self.delay)), asyncio.ensure_future(receive())
        done, _ = await asyncio.wait({sleeper, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if watcher in done and watcher.result()["type"] == "http.disconnect":
            sleeper.cancel()
            return True
        watcher.cancel()
        return False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        raw = b"".join(chunks)
        headers = dict(scope["headers"])
        self.seen.append(Seen(scope["path"], json.loads(raw) if raw else None,
                              headers.get(b"authorization", b"").decode()))
        if self.delay and await self._hang_up_first(receive):
            self.hung_up += 1  # the caller stopped waiting: nothing to answer
            return
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


@dataclass
class Remote:
    url: str
    tap: Tap


@pytest.fixture(scope="module")
def remote(api_models: tuple[Any, Any]) -> Iterator[Remote]:  # noqa: F811
    settings = Settings(api_keys=parse_api_keys(f"{API_KEY}:editor"), limits=TEST_LIMITS)
    engine = LocalEngine(*api_models)
    tap = Tap(build_app(engine, settings))
    with LiveServer(tap) as server:  # type: ignore[arg-type]
        yield Remote(server.url, tap)
    engine.close()


class RecordingProtocol(LanguageServerProtocol):
    """The client's protocol, keeping error answers to ids it never sent (or null)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.stray_errors: list[tuple[Any, lsp.ResponseError]] = []

    def _handle_response(self, msg_id: Any, result: Any = None, error: Any = None) -> None:
        if msg_id not in self._request_futures and error is not None:
            self.stray_errors.append((msg_id, error))
            return
        super()._handle_response(msg_id, result, error)


class Editor:
    """A pygls client running ``python -m services.cli lsp`` on a loop in its own thread."""

    def __init__(self, log_file: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client = LanguageClient("remask-tests", "1", protocol_cls=RecordingProtocol)
        self.logs: list[lsp.LogMessageParams] = []
        self.shown: list[lsp.ShowMessageParams] = []

        @self.client.feature(lsp.WINDOW_LOG_MESSAGE)
        def _log(params: lsp.LogMessageParams) -> None:
            self.logs.append(params)

        @self.client.feature(lsp.WINDOW_SHOW_MESSAGE)
        def _show(params: lsp.ShowMessageParams) -> None:
            self.shown.append(params)

        self.log_file = log_file

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Any, *args: Any, timeout: float = 60) -> Any:
        """Run a plain function (a notification, a raw write) on the client's loop."""
        async def go() -> Any:
            return fn(*args)
        return self.run(go(), timeout)

    @property
    def protocol(self) -> RecordingProtocol:
        return self.client.protocol  # type: ignore[return-value]

    def start(self, options: dict[str, Any]) -> lsp.InitializeResult:
        async def go() -> lsp.InitializeResult:
            await self.client.start_io(sys.executable, "-m", "services.cli", "lsp", "--log-level", "info",
                                       "--log-file", str(self.log_file), cwd=str(REPO))
            caps = lsp.ClientCapabilities(
                text_document=lsp.TextDocumentClientCapabilities(
                    inline_completion=lsp.InlineCompletionClientCapabilities(),
                    code_action=lsp.CodeActionClientCapabilities(data_support=False)),  # edits come at once
                workspace=lsp.WorkspaceClientCapabilities(
                    workspace_edit=lsp.WorkspaceEditClientCapabilities(document_changes=True)))
            result = await self.client.initialize_async(lsp.InitializeParams(
                capabilities=caps, process_id=None, root_uri=REPO.as_uri(), initialization_options=options))
            self.client.initialized(lsp.InitializedParams())
            return result

        return self.run(go(), timeout=120)

    def write_raw(self, body: bytes) -> None:
        """Bytes framed as one message, whatever they are: the server must cope."""
        stdin = self.client._server.stdin  # type: ignore[union-attr]
        self.call(stdin.write, b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def stop(self) -> None:
        async def go() -> None:
            await asyncio.wait_for(self.client.shutdown_async(None), 10)
            self.client.exit(None)
            await asyncio.wait_for(self.client.stop(), 10)

        try:
            self.run(go(), timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


@dataclass
class Session:
    editor: Editor
    remote: Remote
    init: lsp.InitializeResult
    versions: dict[str, int] = field(default_factory=dict)

    def open(self, name: str, text: str) -> str:
        uri = f"file:///tmp/remask-lsp-tests/{name}"
        self.versions[uri] = 1
        self.editor.call(self.editor.client.text_document_did_open, lsp.DidOpenTextDocumentParams(
            lsp.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)))
        return uri

    def change(self, uri: str, text: str) -> None:
        """Replace the whole text (a full-content change), bumping the version; on the client's loop only."""
        self.versions[uri] += 1
        self.editor.client.text_document_did_change(lsp.DidChangeTextDocumentParams(
            lsp.VersionedTextDocumentIdentifier(uri=uri, version=self.versions[uri]),
            [lsp.TextDocumentContentChangeWholeDocument(text=text)]))


@pytest.fixture(scope="module")
def session(remote: Remote, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    editor = Editor(tmp_path_factory.mktemp("lsp") / "server.log")
    init = editor.start({"remask": {"url": remote.url, "apiKey": API_KEY, **LSP_OPTIONS}})
    yield Session(editor, remote, init)
    editor.stop()
