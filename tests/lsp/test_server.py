"""``python -m services.cli lsp`` over stdio, driven by pygls' client, against the real app."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcMethodNotFound, JsonRpcRequestCancelled

from client import Remask
from tests.lsp.conftest import API_KEY, LSP_OPTIONS, Session

PY = "# café ☕ naïve\nname = '😀é' + \nprint(name)\n"
PROSE = "The licensee shall not disclose it.\nZürich 😀 café: naïve contract terms apply here.\n"


def utf16(s: str) -> int:
    return len(s.encode("utf-16-le")) // 2


def pos(text: str, offset: int) -> lsp.Position:
    """The UTF-16 position of a code-point offset, from the encoder (independent of lsp.positions)."""
    before = text[:offset]
    line = before.count("\n")
    return lsp.Position(line, utf16(before[before.rfind("\n") + 1:]))


def inline(session: Session, uri: str, position: lsp.Position) -> lsp.InlineCompletionList:
    params = lsp.InlineCompletionParams(
        text_document=lsp.TextDocumentIdentifier(uri), position=position,
        context=lsp.InlineCompletionContext(trigger_kind=lsp.InlineCompletionTriggerKind.Invoked))
    return session.editor.run(session.editor.client.text_document_inline_completion_async(params))


def sdk(session: Session) -> Remask:
    return Remask(session.remote.url, API_KEY, max_retries=0)


def test_initialize_announces_the_features(session: Session) -> None:
    caps = session.init.capabilities
    assert session.init.server_info is not None and session.init.server_info.name == "remask"
    assert caps.inline_completion_provider is not None and caps.position_encoding == lsp.PositionEncodingKind.Utf16
    action = caps.code_action_provider
    assert isinstance(action, lsp.CodeActionOptions) and action.resolve_provider
    assert list(action.code_action_kinds or []) == [lsp.CodeActionKind.RefactorRewrite]


def test_inline_completion_on_a_line_with_non_ascii_text(session: Session) -> None:
    uri = session.open("infill.py", PY)
    cursor = PY.index("+ ") + 2  # after "name = '😀é' + "
    at = pos(PY, cursor)
    assert at == lsp.Position(1, cursor - PY.index("name") + 1)  # the emoji counts 2 in UTF-16, 1 in Python
    n = len(session.remote.tap.seen)
    got = inline(session, uri, at)
    sent = session.remote.tap.seen[n:]
    assert [s.path for s in sent] == ["/v1/completions"] and sent[0].authorization == f"Bearer {API_KEY}"
    assert sent[0].body["prompt"] == PY[:cursor] and sent[0].body["suffix"] == PY[cursor:]  # split at the cursor
    assert sent[0].body["mode"] == LSP_OPTIONS["mode"] and sent[0].body["max_tokens"] == LSP_OPTIONS["maxTokens"]
    assert sent[0].body["candidates"] is False and "min_confidence" not in sent[0].body  # the server's floor
    with sdk(session) as rm:
        expected = rm.infill(PY[:cursor], PY[cursor:], mode="hybrid", max_tokens=8, steps=4, candidates=False).text
    assert expected and len(got.items) == 1
    assert got.items[0].insert_text == expected
    assert got.items[0].range == lsp.Range(at, at)  # an insertion at the cursor, in UTF-16 units


def test_refine_selection_returns_the_revision_as_a_workspace_edit(session: Session) -> None:
    uri = session.open("prose.txt", PROSE)
    start, end = PROSE.index("café"), PROSE.index(" contract")
    sel = lsp.Range(pos(PROSE, start), pos(PROSE, end))
    assert sel.start.character == start - PROSE.index("Zürich") + 1  # after the emoji: one more unit
    n = len(session.remote.tap.seen)
    actions = session.editor.run(session.editor.client.text_document_code_action_async(lsp.CodeActionParams(
        text_document=lsp.TextDocumentIdentifier(uri), range=sel, context=lsp.CodeActionContext(diagnostics=[]))))
    sent = session.remote.tap.seen[n:]
    assert [s.path for s in sent] == ["/v1/revise"] and sent[0].body["spans"] == [[start, end]]
    with sdk(session) as rm:
        rev = rm.revise(PROSE, spans=[(start, end)], steps=4)
    assert rev.edits and actions is not None and len(actions) == 1
    action = actions[0]
    assert action.title == "Refine selection" and action.kind == lsp.CodeActionKind.RefactorRewrite
    assert action.edit is not None and action.edit.document_changes is not None
    doc_edit = action.edit.document_changes[0]
    assert isinstance(doc_edit, lsp.TextDocumentEdit)
    assert doc_edit.text_document.uri == uri and doc_edit.text_document.version == 1
    assert [(e.range, e.new_text) for e in doc_edit.edits] == [
        (lsp.Range(pos(PROSE, e.start), pos(PROSE, e.end)), e.after) for e in rev.edits]

    # a client that resolves code actions asks for the edit later, with the action's data
    resolved = session.editor.run(session.editor.client.code_action_resolve_async(
        lsp.CodeAction(title=action.title, kind=action.kind, data=action.data)))
    assert resolved.edit == action.edit


def test_no_action_for_an_empty_selection_or_another_kind(session: Session) -> None:
    uri = session.open("empty.txt", PROSE)

    def ask(rng: lsp.Range, only: list[str] | None = None) -> object:
        return session.editor.run(session.editor.client.text_document_code_action_async(lsp.CodeActionParams(
            text_document=lsp.TextDocumentIdentifier(uri), range=rng,
            context=lsp.CodeActionContext(diagnostics=[], only=only))))

    n = len(session.remote.tap.seen)
    assert ask(lsp.Range(lsp.Position(0, 4), lsp.Position(0, 4))) is None
    assert ask(lsp.Range(lsp.Position(0, 0), lsp.Position(0, 8)), only=[lsp.CodeActionKind.QuickFix]) is None
    assert len(session.remote.tap.seen) == n  # nothing was sent to the remask server


def test_an_answer_for_a_version_that_moved_on_is_dropped(session: Session) -> None:
    uri = session.open("moving.py", PY)
    at = pos(PY, PY.index("+ ") + 2)
    editor, tap = session.editor, session.remote.tap
    params = lsp.InlineCompletionParams(text_document=lsp.TextDocumentIdentifier(uri), position=at,
                                        context=lsp.InlineCompletionContext(lsp.InlineCompletionTriggerKind.Automatic))
    n = len(tap.seen)
    tap.delay = 0.5
    try:
        async def go() -> lsp.InlineCompletionList:
            pending = asyncio.ensure_future(editor.client.text_document_inline_completion_async(params))
            while len(tap.seen) == n:  # the request reached the remask server ...
                await asyncio.sleep(0.01)
            session.change(uri, PY.replace("name", "title"))  # ... and the user typed on
            return await pending

        got = editor.run(go())
    finally:
        tap.delay = 0.0
    assert len(got.items) == 0
    assert inline(session, uri, at).items  # the same request on the current version answers


def test_a_cancelled_request_stops_waiting(session: Session) -> None:
    uri = session.open("cancel.py", PY)
    at = pos(PY, PY.index("+ ") + 2)
    editor, tap = session.editor, session.remote.tap
    params = lsp.InlineCompletionParams(text_document=lsp.TextDocumentIdentifier(uri), position=at,
                                        context=lsp.InlineCompletionContext(lsp.InlineCompletionTriggerKind.Automatic))
    n, hung_up = len(tap.seen), tap.hung_up
    tap.delay = 5.0
    try:
        async def go() -> float:
            pending = editor.protocol.send_request_async(lsp.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id="c-1")
            while len(tap.seen) == n:
                await asyncio.sleep(0.01)
            t0 = time.monotonic()
            editor.protocol.notify(lsp.CANCEL_REQUEST, lsp.CancelParams(id="c-1"))
            with pytest.raises(JsonRpcRequestCancelled):
                await pending
            return time.monotonic() - t0

        waited = editor.run(go())
    finally:
        tap.delay = 0.0
    assert waited < 2.0  # answered long before the remask server would have
    deadline = time.monotonic() + 5
    while tap.hung_up == hung_up and time.monotonic() < deadline:
        time.sleep(0.01)
    assert tap.hung_up == hung_up + 1  # and it closed its HTTP request: nothing is left waiting
    assert inline(session, uri, at).items  # and the server goes on


def test_remask_server_errors_become_an_empty_answer_and_a_log_line(session: Session) -> None:
    long = "x = 1\n" * 400  # 2400 characters: over the test server's 1500
    uri = session.open("long.py", long)
    logs_before = len(session.editor.logs)
    got = inline(session, uri, pos(long, 1200))
    assert len(got.items) == 0
    lines = [m.message for m in session.editor.logs[logs_before:]]
    assert any("inline completion failed" in m and "over the limit of 1500" in m for m in lines), lines
    assert any("over the limit" in m.message for m in session.editor.shown)


def test_unknown_methods_and_malformed_messages_get_json_rpc_errors(session: Session) -> None:
    editor = session.editor
    async def unknown() -> object:
        return await editor.protocol.send_request_async("remask/noSuchMethod", {"x": 1})

    with pytest.raises(JsonRpcMethodNotFound):
        editor.run(unknown())
    strays = editor.protocol.stray_errors
    before = len(strays)
    editor.write_raw(b'{"jsonrpc": "2.0", "id": 7, "method": ')  # not JSON
    editor.write_raw(b'[1, 2, 3]')  # JSON, but no message
    editor.write_raw(json.dumps({"jsonrpc": "2.0", "id": "bad-params", "method": "textDocument/inlineCompletion",
                                 "params": {"textDocument": {}}}).encode())
    deadline = time.monotonic() + 10
    while len(strays) < before + 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    got = [(msg_id, err.code) for msg_id, err in strays[before:]]
    assert got == [(None, -32700), (None, -32600), ("bad-params", -32602)]
    assert "position" in strays[-1][1].message  # names the missing field
    uri = session.open("alive.py", PY)  # and the server still works
    assert inline(session, uri, pos(PY, PY.index("+ ") + 2)).items
