"""Settings of ``remask lsp``: where the remask server is and how to ask it.

Read, in this order of precedence, from the client's ``initializationOptions`` (or a later
``workspace/didChangeConfiguration``), then the command line, then the environment
(``REMASK_URL``, ``REMASK_API_KEY``), then the defaults. Options may sit at the top level or
under a ``"remask"`` key, in camelCase as editors write them::

    {"url": "http://127.0.0.1:8000", "apiKey": "...", "mode": "hybrid", "maxTokens": 32,
     "steps": 4, "timeout": 10, "contextChars": 4000, "candidates": true, "minConfidence": 0.0}

``candidates`` (default on) asks the server for a completion cut to the cursor's scope, checked
by the parser and ranked; ``minConfidence`` is the floor below which it answers nothing (left
out: the server's default).

``steps`` left out (or null) lets the server choose: its completion default is tuned for
latency, and a refine gets the revise endpoint's default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

MODES = ("ar", "diffusion", "hybrid")

# option name in initializationOptions -> dataclass field
_KEYS = {"url": "url", "serverUrl": "url", "apiKey": "api_key", "mode": "mode", "maxTokens": "max_tokens",
         "steps": "steps", "timeout": "timeout", "contextChars": "context_chars", "maxRetries": "max_retries",
         "candidates": "candidates", "minConfidence": "min_confidence",
         "acceptConfidence": "accept_confidence"}


@dataclass(frozen=True)
class LspSettings:
    url: str | None = None  # None: $REMASK_URL, else http://127.0.0.1:8000 (the SDK decides)
    api_key: str | None = None  # None: $REMASK_API_KEY
    mode: str = "hybrid"  # infill mode: ar (fastest), diffusion, hybrid
    max_tokens: int = 32  # most tokens one inline completion inserts
    steps: int | None = None  # the refiner's denoising steps; None: the server's defaults
    timeout: float = 10.0  # seconds per HTTP request; an editor waits for nothing longer
    context_chars: int = 4000  # characters sent on each side of the cursor or selection
    max_retries: int = 1  # an editor asks again anyway; one retry covers a busy moment
    candidates: bool = True  # scoped, parser-checked, ranked completions (False: the models' raw answer)
    min_confidence: float | None = None  # below it no suggestion; None: the server's default
    accept_confidence: float | None = None  # the search's first stage answers at this; None: the server's default

    def with_options(self, options: Any) -> tuple[LspSettings, list[str]]:
        """These settings overridden by ``options``; also the problems found (bad values are skipped)."""
        if not isinstance(options, Mapping):
            return self, [] if options is None else [f"settings must be an object, not {type(options).__name__}"]
        if isinstance(options.get("remask"), Mapping):
            options = options["remask"]
        changes: dict[str, Any] = {}
        problems: list[str] = []
        for key, value in options.items():
            name = _KEYS.get(key)
            if name is None:
                continue
            try:
                changes[name] = _check(name, value)
            except (TypeError, ValueError) as exc:
                problems.append(f"{key}: {exc}")
        return replace(self, **changes), problems

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LspSettings:
        env = os.environ if env is None else env
        return cls(url=env.get("REMASK_URL") or None, api_key=env.get("REMASK_API_KEY") or None)


def _check(name: str, value: Any) -> Any:
    """``value`` for the field ``name``, or TypeError/ValueError saying what is wrong with it."""
    if name == "mode":
        if value not in MODES:
            raise ValueError(f"must be one of {', '.join(MODES)}")
        return value
    if name in ("steps", "min_confidence", "accept_confidence") and value is None:
        return None
    if name == "candidates":
        if not isinstance(value, bool):
            raise TypeError("must be true or false")
        return value
    if name in ("min_confidence", "accept_confidence"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ValueError("must be a number from 0 to 1")
        return float(value)
    if name in ("url", "api_key"):
        if value is not None and not isinstance(value, str):
            raise TypeError("must be a string")
        return value or None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("must be a number")
    if value < 0 or (value == 0 and name != "max_retries"):
        raise ValueError("must be positive")
    return float(value) if name == "timeout" else int(value)
