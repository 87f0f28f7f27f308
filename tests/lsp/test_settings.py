"""Settings of the language server: initializationOptions over command-line defaults over the environment."""

from __future__ import annotations

from lsp.settings import LspSettings


def test_environment_gives_url_and_key() -> None:
    s = LspSettings.from_env({"REMASK_URL": "http://h:1", "REMASK_API_KEY": "k"})
    assert (s.url, s.api_key, s.mode) == ("http://h:1", "k", "hybrid")
    assert LspSettings.from_env({}).url is None  # the SDK then falls back to its default


def test_initialization_options_override_and_bad_values_are_reported() -> None:
    base = LspSettings(url="http://env:1", api_key="env-key")
    s, problems = base.with_options({"remask": {"url": "http://opt:2", "apiKey": "opt-key", "mode": "ar",
                                                "maxTokens": 12, "timeout": 2.5, "unknownOption": 1}})
    assert (s.url, s.api_key, s.mode, s.max_tokens, s.timeout) == ("http://opt:2", "opt-key", "ar", 12, 2.5)
    assert problems == []
    s, problems = base.with_options({"mode": "fast", "maxTokens": -3, "steps": "8", "contextChars": 100})
    assert (s.mode, s.max_tokens, s.steps, s.context_chars) == ("hybrid", 32, None, 100)  # bad ones skipped
    assert len(problems) == 3 and problems[0].startswith("mode: must be one of ar, diffusion, hybrid")
    assert base.with_options({"steps": 6})[0].steps == 6
    assert base.with_options({"steps": 6})[0].with_options({"steps": None})[0].steps is None
    assert base.with_options(None) == (base, [])
    assert base.with_options([1])[1] == ["settings must be an object, not list"]


def test_the_candidate_search_and_its_floor_are_settings() -> None:
    base = LspSettings()
    assert (base.candidates, base.min_confidence) == (True, None)  # the server's defaults
    s, problems = base.with_options({"candidates": False, "minConfidence": 0.25})
    assert (s.candidates, s.min_confidence, problems) == (False, 0.25, [])
    s, problems = base.with_options({"candidates": "no", "minConfidence": 1.5})
    assert (s.candidates, s.min_confidence) == (True, None)
    assert problems == ["candidates: must be true or false", "minConfidence: must be a number from 0 to 1"]
    s, problems = base.with_options({"acceptConfidence": 0.4})
    assert (s.accept_confidence, problems) == (0.4, [])
    s, problems = base.with_options({"acceptConfidence": -1})
    assert (s.accept_confidence, problems) == (None, ["acceptConfidence: must be a number from 0 to 1"])
