"""``remask lsp``: a language server over stdio that asks a remask server for edits.

* ``textDocument/inlineCompletion`` (LSP 3.18): the text before and after the cursor goes to
  the SDK's :meth:`client.AsyncRemask.infill`; the answer is one item with ``insertText`` and
  the ``range`` it replaces (an empty range at the cursor: an insertion).
* ``textDocument/codeAction`` "Refine selection" (``refactor.rewrite``): the selection goes to
  ``/v1/revise`` as a span; the answer's edits come back as a ``WorkspaceEdit``. A client that
  can resolve code actions gets the action at once and the edit on ``codeAction/resolve``
  (no revision runs for a lightbulb that is never clicked); others get the edit directly.

Positions are converted with :mod:`lsp.positions` in the negotiated encoding (UTF-16 by
default). A request cancelled with ``$/cancelRequest`` stops waiting for the remask server
and is answered with RequestCancelled (pygls cancels the handler's task). An answer computed
for a document version that has since moved on is dropped: inline completion answers an
empty list, a code action nothing. Malformed messages get JSON-RPC errors (parse error,
invalid request, invalid params) and the server reads on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import unquote

import cattrs
from lsprotocol import types as lsp
from pygls.exceptions import (
    FeatureRequestError,
    JsonRpcException,
    JsonRpcInvalidParams,
    JsonRpcInvalidRequest,
    JsonRpcParseError,
)
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.workspace import TextDocument

from client import AsyncRemask, RemaskError
from client.types import Mode
from lsp.positions import UTF16, line_starts, offset_to_position, position_to_offset
from lsp.settings import LspSettings

log = logging.getLogger("remask.lsp")

VERSION = "0.1.0"
REFINE_TITLE = "Refine selection"
REFINE_KIND = lsp.CodeActionKind.RefactorRewrite
REQUEST_FAILED = -32803  # LSP: a well-formed request the server could not carry out


class BadMessage(Exception):
    """A message that is not a valid request; answered with ``code`` to ``msg_id`` (None: unknown)."""

    def __init__(self, code: int, message: str, msg_id: Any = None, answer: bool = True) -> None:
        super().__init__(message)
        self.code, self.message, self.msg_id, self.answer = code, message, msg_id, answer


class RemaskProtocol(LanguageServerProtocol):
    """pygls' protocol, turning malformed messages into :class:`BadMessage` (pygls only logs them)."""

    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            cause = exc.__cause__
            detail = "; ".join(cattrs.transform_error(cause)) if isinstance(cause, cattrs.BaseValidationError) \
                else exc.message
            method = data.get("method", "")
            # a request is answered with its own id; a bad notification is only logged
            raise BadMessage(exc.code, f"{exc.message} for {method!r}: {detail}", data.get("id"),
                             answer="id" in data) from exc

    def handle_message(self, message: Any) -> None:
        if not hasattr(message, "jsonrpc"):  # valid JSON, but no JSON-RPC 2.0 message
            msg_id = message.get("id") if isinstance(message, dict) else None
            raise BadMessage(JsonRpcInvalidRequest.CODE, "Invalid Request: not a JSON-RPC 2.0 message", msg_id)
        super().handle_message(message)


class RemaskLanguageServer(LanguageServer):
    """The language server; :attr:`remask` is the SDK client, built at ``initialize``."""

    def __init__(self, defaults: LspSettings) -> None:
        super().__init__("remask", VERSION, protocol_cls=RemaskProtocol,
                         text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental)
        self.defaults = defaults
        self.settings = defaults
        self.remask: AsyncRemask | None = None
        self._shown: set[str] = set()

    def configure(self, options: Any) -> None:
        """Apply ``initializationOptions`` or changed configuration over the defaults."""
        self.settings, problems = self.defaults.with_options(options)
        for p in problems:
            self.tell(f"remask: ignoring setting {p}", lsp.MessageType.Warning)
        s = self.settings
        self.remask = AsyncRemask(s.url, s.api_key, timeout=s.timeout, max_retries=s.max_retries)

    @property
    def client(self) -> AsyncRemask:
        if self.remask is None:
            self.configure(None)
        assert self.remask is not None
        return self.remask

    @property
    def encoding(self) -> str:
        enc = self.workspace.position_encoding
        return str(getattr(enc, "value", enc) or UTF16)

    def tell(self, message: str, kind: lsp.MessageType = lsp.MessageType.Info) -> None:
        """A line in the client's log for the server."""
        log.log(logging.WARNING if kind <= lsp.MessageType.Warning else logging.INFO, "%s", message)
        self.window_log_message(lsp.LogMessageParams(type=kind, message=message))

    def failed(self, what: str, exc: RemaskError) -> None:
        """Log a failed call; show the first failure of each kind to the user too."""
        message = f"remask: {what} failed: {exc}"
        self.tell(message, lsp.MessageType.Warning)
        kind = f"{type(exc).__name__}:{exc.code}"
        if kind not in self._shown:
            self._shown.add(kind)
            self.window_show_message(lsp.ShowMessageParams(type=lsp.MessageType.Warning, message=message))

    def report_server_error(self, error: Exception, source: Any) -> None:
        """Answer what could not be read as a request with a JSON-RPC error; the server reads on."""
        if isinstance(error, (json.JSONDecodeError, UnicodeDecodeError)):
            self._answer_error(None, JsonRpcParseError.CODE, f"Parse error: {error}")
        elif isinstance(error, BadMessage):
            if error.answer:
                self._answer_error(error.msg_id, error.code, error.message)
            else:
                log.warning("dropped a notification: %s", error.message)
        elif source is not FeatureRequestError:  # request errors were already answered
            log.error("error in the server: %s", error, exc_info=error)

    def _answer_error(self, msg_id: Any, code: int, message: str) -> None:
        log.warning("answering error %d to %r: %s", code, msg_id, message)
        # a dict, not lsprotocol's ResponseErrorMessage: its converter drops a null id, which
        # JSON-RPC requires when the id could not be read
        self.protocol._send_data({"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}})


def _document(ls: RemaskLanguageServer, uri: str) -> TextDocument | None:
    """An open document (one the client synchronises), else None: never read from disk."""
    if unquote(uri) not in ls.workspace.text_documents:
        return None
    return ls.workspace.get_text_document(uri)


def _version_moved(ls: RemaskLanguageServer, uri: str, version: int | None) -> bool:
    doc = _document(ls, uri)
    return doc is None or doc.version != version


def _range(text: str, start: int, end: int, encoding: str, starts: list[int] | None = None) -> lsp.Range:
    starts = line_starts(text) if starts is None else starts
    (l0, c0), (l1, c1) = (offset_to_position(text, o, encoding, starts) for o in (start, end))
    return lsp.Range(lsp.Position(l0, c0), lsp.Position(l1, c1))


async def inline_completion(ls: RemaskLanguageServer, params: lsp.InlineCompletionParams
                            ) -> lsp.InlineCompletionList:
    empty = lsp.InlineCompletionList(items=[])
    uri = params.text_document.uri
    doc = _document(ls, uri)
    if doc is None:
        return empty
    text, version, enc = doc.source, doc.version, ls.encoding
    starts = line_starts(text)
    cursor = position_to_offset(text, params.position.line, params.position.character, enc, starts)
    n = ls.settings.context_chars
    lo, hi = max(0, cursor - n), min(len(text), cursor + n)
    prefix, suffix = text[lo:cursor], text[cursor:hi]
    if not (prefix + suffix).strip():
        return empty
    s = ls.settings
    try:
        res = await ls.client.infill(prefix, suffix, max_tokens=s.max_tokens, mode=cast(Mode, s.mode),
                                     steps=s.steps, candidates=s.candidates, min_confidence=s.min_confidence,
                                     accept_confidence=s.accept_confidence)
    except RemaskError as exc:
        ls.failed("inline completion", exc)
        return empty
    if _version_moved(ls, uri, version) or not res.text:
        return empty  # typed on meanwhile: the answer is for text that is gone
    start = lo + (res.start if res.start is not None else len(prefix))
    end = lo + (res.end if res.end is not None else len(prefix))
    rng = _range(text, start, end, enc, starts)
    if rng.start.line != rng.end.line:  # an item's range must stay on one line
        rng = _range(text, cursor, cursor, enc, starts)
    return lsp.InlineCompletionList(items=[lsp.InlineCompletionItem(insert_text=res.text, range=rng)])


def _wants_refine(only: Sequence[str] | None) -> bool:
    """Whether the client's ``only`` filter admits refactor.rewrite (kinds are hierarchical)."""
    if not only:
        return True
    return any(REFINE_KIND == k or REFINE_KIND.startswith(f"{k}.") for k in only)


def _can_resolve_edit(ls: RemaskLanguageServer) -> bool:
    caps = ls.client_capabilities.text_document
    ca = caps.code_action if caps is not None else None
    rs = ca.resolve_support if ca is not None else None
    return bool(ca and ca.data_support and rs and "edit" in rs.properties)


async def code_action(ls: RemaskLanguageServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction] | None:
    doc = _document(ls, params.text_document.uri)
    if doc is None or not _wants_refine(params.context.only):
        return None
    text, enc = doc.source, ls.encoding
    starts = line_starts(text)
    r = params.range
    start = position_to_offset(text, r.start.line, r.start.character, enc, starts)
    end = position_to_offset(text, r.end.line, r.end.character, enc, starts)
    if end <= start or not text[start:end].strip():
        return None
    action = lsp.CodeAction(title=REFINE_TITLE, kind=REFINE_KIND,
                            data={"uri": doc.uri, "version": doc.version, "start": start, "end": end})
    if _can_resolve_edit(ls):
        return [action]
    try:
        done = await _refine(ls, action)
    except RemaskError as exc:
        ls.failed("refine", exc)
        return None
    return [done] if done.edit is not None else None


async def resolve_code_action(ls: RemaskLanguageServer, action: lsp.CodeAction) -> lsp.CodeAction:
    if action.edit is not None or not isinstance(action.data, dict):
        return action
    try:
        done = await _refine(ls, action)
    except RemaskError as exc:
        ls.failed("refine", exc)
        raise JsonRpcException(f"remask: {exc}", code=REQUEST_FAILED) from None
    if done.edit is None:
        raise JsonRpcException("remask: the document changed while refining; try again", code=REQUEST_FAILED)
    return done


async def _refine(ls: RemaskLanguageServer, action: lsp.CodeAction) -> lsp.CodeAction:
    """The action with the edit of revising its span; no edit if the document moved on."""
    data = action.data
    if not isinstance(data, dict) or not {"uri", "start", "end"} <= set(data):
        raise JsonRpcInvalidParams("code action data must hold uri, version, start, end")
    uri, version, start, end = data["uri"], data.get("version"), int(data["start"]), int(data["end"])
    doc = _document(ls, uri)
    if doc is None or doc.version != version:
        return action
    text, enc, s = doc.source, ls.encoding, ls.settings
    lo, hi = max(0, start - s.context_chars), min(len(text), end + s.context_chars)
    rev = await ls.client.revise(text[lo:hi], spans=[(start - lo, end - lo)], steps=s.steps)
    if _version_moved(ls, uri, version):
        return action
    starts = line_starts(text)
    edits = [lsp.TextEdit(range=_range(text, lo + e.start, lo + e.end, enc, starts), new_text=e.after)
             for e in rev.edits]
    ws = ls.client_capabilities.workspace
    versioned = bool(ws and ws.workspace_edit and ws.workspace_edit.document_changes)
    if versioned:  # the client refuses the edit if the document changed after all
        edit = lsp.WorkspaceEdit(document_changes=[lsp.TextDocumentEdit(
            text_document=lsp.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version), edits=edits)])
    else:
        edit = lsp.WorkspaceEdit(changes={uri: edits})
    return lsp.CodeAction(title=action.title, kind=action.kind, data=action.data, edit=edit)


def build_server(defaults: LspSettings | None = None) -> RemaskLanguageServer:
    """The language server with its features registered; ``defaults`` below initializationOptions."""
    server = RemaskLanguageServer(defaults or LspSettings.from_env())

    @server.feature(lsp.INITIALIZE)
    def _initialize(ls: RemaskLanguageServer, params: lsp.InitializeParams) -> None:
        ls.configure(params.initialization_options)

    @server.feature(lsp.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def _configuration(ls: RemaskLanguageServer, params: lsp.DidChangeConfigurationParams) -> None:
        if params.settings:
            ls.configure(params.settings)

    @server.feature(lsp.SHUTDOWN)
    async def _shutdown(ls: RemaskLanguageServer, *_: Any) -> None:
        if ls.remask is not None:
            await ls.remask.close()

    server.feature(lsp.TEXT_DOCUMENT_INLINE_COMPLETION, lsp.InlineCompletionOptions())(inline_completion)
    server.feature(lsp.TEXT_DOCUMENT_CODE_ACTION, lsp.CodeActionOptions(
        code_action_kinds=[REFINE_KIND], resolve_provider=True))(code_action)
    server.feature(lsp.CODE_ACTION_RESOLVE)(resolve_code_action)
    return server


def serve_stdio(defaults: LspSettings | None = None) -> None:
    """Run the server on stdin/stdout until the client exits it."""
    build_server(defaults).start_io()
