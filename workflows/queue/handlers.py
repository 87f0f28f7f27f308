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
from collections.abc import Callable
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
    """Runs items through the pipelines with the models of an ``Engines``-like object, and answers
    exactly what the item's endpoint answers when called directly (the response builders of
    :mod:`workflows.engine.responses`): a batch line's result is the direct response.

    ``engines`` needs ``refiner`` (a :class:`refiner.text.TextRefiner`) and ``drafter``
    (a :class:`drafter.Drafter`, or None: then items that need one fail with an item error).
    An answer whose request names no model names the HTTP app's default
    (:data:`~workflows.engine.responses.SERVED_MODEL_NAME`).
    """

    def __init__(self, engines: Any) -> None:
        from workflows.engine import Pipelines

        self.pipelines = Pipelines(engines.refiner, engines.drafter)
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

    def _model_name(self, body: Any) -> str:
        from workflows.engine.responses import SERVED_MODEL_NAME

        return str(getattr(body, "model", None) or SERVED_MODEL_NAME)

    def _edit_answer(self, body: Any, out: Any) -> dict[str, Any]:
        from workflows.engine.responses import edit_response

        return edit_response(out, self._model_name(body)).model_dump(mode="json")

    def _revise(self, body: Any, checkpoint: Checkpoint) -> dict[str, Any]:
        if body.rules is not None:
            return self._edit_answer(body, self.pipelines.compliance(body.text, *body.compliance()))
        return self._edit_answer(body, self.pipelines.revise(body.text, body.params(), lambda _text: checkpoint()))

    def _repair(self, body: Any, checkpoint: Checkpoint) -> dict[str, Any]:
        return self._edit_answer(body, self.pipelines.repair(body.code, body.params()))

    def _compliance(self, body: Any, checkpoint: Checkpoint) -> dict[str, Any]:
        return self._edit_answer(body, self.pipelines.compliance(body.text, body.rule_set(), body.params()))

    def _completion(self, body: Any, checkpoint: Checkpoint) -> dict[str, Any]:
        """OpenAI legacy completion object."""
        from workflows.engine.responses import completion_response

        params = body.params()
        out = self.pipelines.infill(body.prompt, body.suffix, params, lambda _text: checkpoint())
        return completion_response(out, self._model_name(body), params.max_tokens).model_dump(mode="json")

    def _fim(self, body: Any, checkpoint: Checkpoint) -> dict[str, Any]:
        """Mistral-style FIM answer (a chat-completion-shaped object)."""
        from workflows.engine.responses import fim_response

        params = body.params()
        out = self.pipelines.infill(body.prompt, body.suffix, params, lambda _text: checkpoint())
        return fim_response(out, self._model_name(body), params.max_tokens).model_dump(mode="json")
