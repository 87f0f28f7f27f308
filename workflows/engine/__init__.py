"""The engine seam: one way in to the models for the HTTP API, the Serve deployments and the batch worker.

- :mod:`~workflows.engine.protocol`: :class:`EngineClient` (what a caller may ask), its
  events (:class:`TokenDelta`, :class:`Snapshot`, :class:`Finished` of an :class:`Outcome`)
  and the unavailability errors;
- :mod:`~workflows.engine.pipelines`: the pipelines over one refiner and drafter, each answer
  an :class:`Outcome` with token counts, and which models a request needs;
- :mod:`~workflows.engine.responses`: the response objects built from an outcome.

It sits in ``workflows/`` because the batch worker (``workflows.queue``) must build the same
answers as the HTTP routes, and ``workflows/`` may not import the HTTP layer or Ray; the HTTP
app and the Serve deployments import it from above. The engines themselves stay with their
hosts: the in-process engine (thread pool, locks, admission) with the HTTP package, the
client over deployment handles with the deployments. Loading the models from directories is
:mod:`workflows.engines`.
"""

from workflows.engine.pipelines import DRAFTER, REFINER, Pipelines, infill_needs, revise_needs
from workflows.engine.protocol import (
    EngineClient,
    EngineEvent,
    EngineUnavailable,
    Finished,
    Outcome,
    QueueFull,
    QueueTimeout,
    Snapshot,
    StreamCancelled,
    TokenDelta,
)

__all__ = ["DRAFTER", "REFINER", "EngineClient", "EngineEvent", "EngineUnavailable", "Finished", "Outcome",
           "Pipelines", "QueueFull", "QueueTimeout", "Snapshot", "StreamCancelled", "TokenDelta", "infill_needs",
           "revise_needs"]
