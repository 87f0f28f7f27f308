"""Item handlers: what a worker does with one item, and the exceptions that steer it.

A handler is any callable ``handler(item, checkpoint) -> response body``. It must call
``checkpoint()`` now and then (the model handler calls it at every denoising step through
the pipelines' ``on_snapshot`` callback); ``checkpoint`` raises a :class:`JobInterrupted`
when the job was cancelled, its lease was lost, it expired, or the worker is stopping.

How the worker treats what a handler raises:

- :class:`ItemError` or ``ValueError`` (bad input: retrying cannot help): the item is
  recorded in the job's errors and the job goes on with the next item;
- :class:`JobInterrupted`: the job stops where it is (finished items are kept);
- a Redis connection error or a reply of an unavailable server (:func:`~workflows.queue.
  worker.server_unavailable`): nobody's fault; the worker waits for the server and goes on;
- anything else (a crash, out of memory, a socket of its own): the item is charged a failed
  run and the job is retried with backoff; after ``max_attempts`` failed runs (a worker
  that died running the item counts too) the item goes to the errors file and the
  dead-letter stream, and the job goes on with the next item.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, Protocol

from workflows.queue.jobs import BatchItem

Checkpoint = Callable[[], None]


class ItemHandler(Protocol):
    """Runs one item; returns the JSON-able response body of its endpoint."""

    def __call__(self, item: BatchItem, checkpoint: Checkpoint) -> dict[str, Any]: ...


class ItemError(Exception):
    """The item cannot succeed as sent; recorded in the errors file, never retried."""

    def __init__(self, message: str, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.code = code


class JobInterrupted(Exception):
    """Stop running the job now (raised by ``checkpoint``); not a failure of the item."""


class JobCancelled(JobInterrupted):
    """The job's owner cancelled it."""


class JobExpired(JobInterrupted):
    """The job's completion window ended."""


class LeaseLost(JobInterrupted):
    """Another worker reclaimed the job (this worker stalled past its lease)."""


class WorkerStopping(JobInterrupted):
    """The worker was asked to stop; the job goes back to the queue at once."""


class EchoHandler:
    """Answers ``{"echo": body}`` after ``delay_s``, calling ``checkpoint`` ``steps`` times.

    No models: for smoke tests of a deployment's queue wiring, and for benchmarks of the
    queue itself (``remask worker --handler echo``).
    """

    def __init__(self, delay_s: float = 0.0, steps: int = 1) -> None:
        self.delay_s = delay_s
        self.steps = max(1, steps)

    def __call__(self, item: BatchItem, checkpoint: Checkpoint) -> dict[str, Any]:
        for _ in range(self.steps):
            checkpoint()
            if self.delay_s:
                time.sleep(self.delay_s / self.steps)
        checkpoint()
        return {"echo": item.body}


class ModelHandler:
    """Runs items through the pipelines with the models of an ``Engines``-like object.

    ``engines`` needs ``refiner`` (a :class:`refiner.text.TextRefiner`) and ``drafter``
    (a :class:`drafter.Drafter`, or None: then items that need one fail with an item error).
    """

    def __init__(self, engines: Any) -> None:
        self.engines = engines
        self.routes: dict[str, Callable[[Any, Checkpoint], dict[str, Any]]] = {
            "/v1/revise": self._revise,
            "/v1/repair": self._repair,
            "/v1/compliance": self._compliance,
            "/v1/completions": self._completion,
            "/v1/fim/completions": self._fim,
        }

    def __call__(self, item: BatchItem, checkpoint: Checkpoint) -> dict[str, Any]:
        from pydantic import ValidationError

        from workflows.queue.bodies import BODY_MODELS

        if item.url not in self.routes:
            raise ItemError(f"unknown url {item.url!r}")
        try:
            body = BODY_MODELS[item.url].model_validate(item.body)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ItemError(f"body.{'.'.join(str(x) for x in err['loc'])}: {err['msg']}") from None
        checkpoint()
        return self.routes[item.url](body, checkpoint)

    def _revise(self, body: Any, checkpoint: Checkpoint) -> dict[str, Any]:
        if body.rules is not None:
            from workflows.compliance import apply_rules

            rules, params = body.compliance()
            return asdict(apply_rules(body.text, rules, self.engines.refiner, params))
        from workflows.revise import revise

        res = revise(body.text, body.params(), self.engines.refiner, self._drafter_for(body),
                     on_snapshot=lambda _text: checkpoint())
        return asdict(res)

    def _drafter_for(self, body: Any) -> Any:
        # the drafter only matters when it scores the text (no spans, detect=drafter/both)
        return self.engines.drafter if body.spans is None and body.detect != "refiner" else None

    def _repair(self, body: Any, checkpoint: Checkpoint) -> dict[str, Any]:
        from workflows.repair import repair

        return asdict(repair(body.code, body.params(), self.engines.refiner))

    def _compliance(self, body: Any, checkpoint: Checkpoint) -> dict[str, Any]:
        from workflows.compliance import apply_rules

        return asdict(apply_rules(body.text, body.rule_set(), self.engines.refiner, body.params()))

    def _infill(self, body: Any, checkpoint: Checkpoint) -> Any:
        from workflows.infill import infill

        params = body.params()
        drafter = self.engines.drafter if params.mode != "diffusion" else None
        return infill(body.prompt, body.suffix, params, self.engines.refiner, drafter,
                      on_snapshot=lambda _text: checkpoint())

    def _model_name(self, body: Any) -> str:
        return str(body.model or getattr(self.engines.refiner, "name", "remask"))

    def _completion(self, body: Any, checkpoint: Checkpoint) -> dict[str, Any]:
        """OpenAI legacy completion object; the whole infill result rides in ``remask``."""
        res = self._infill(body, checkpoint)
        finish = "length" if len(res.tokens) >= body.max_tokens else "stop"
        return {
            "id": f"cmpl-{uuid.uuid4().hex[:24]}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": self._model_name(body),
            "choices": [{"text": res.text, "index": 0, "logprobs": None, "finish_reason": finish}],
            "remask": asdict(res),
        }

    def _fim(self, body: Any, checkpoint: Checkpoint) -> dict[str, Any]:
        """Mistral-style FIM answer (a chat-completion-shaped object)."""
        res = self._infill(body, checkpoint)
        finish = "length" if len(res.tokens) >= body.max_tokens else "stop"
        return {
            "id": f"fim-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self._model_name(body),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": res.text},
                         "finish_reason": finish}],
            "remask": asdict(res),
        }
