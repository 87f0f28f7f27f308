"""The Ray Serve application: ``build_app(AppArgs) -> Application``.

Graph::

    HTTP -> Ingress (FastAPI: services.api.build_app over a ServeEngine; runs completion searches)
              |-> Drafter   batched FIM drafts (@serve.batch), scores, AR streams
              |-> Refiner   batched hybrid refinement (@serve.batch), fills, alternatives and scores
                            for searches, diffusion, revise, repair, rules
            JobWorker       works off the Redis job queue (as `remask worker` does)

The deployments are thin: each holds a Ray-free replica object from
:mod:`services.serve.replicas`. Replica counts, CPU shares, ``max_ongoing_requests`` and
``max_queued_requests`` come from the Serve config (``deploy/serve.yaml``); batch limits
are the ``user_config`` of Drafter and Refiner (``max_batch_size``,
``batch_wait_timeout_s``), changeable on a running app. A deployment past its
``max_queued_requests`` makes the ingress answer 503 with Retry-After; the engines inside
the replicas bound their own queues as well (``max_pending``): overload never hangs.

The same builder serves ``remask serve`` (a local Ray instance) and ``serve deploy
deploy/serve.yaml`` on a cluster (``import_path: services.serve.app:build_app``).
"""

# no `from __future__ import annotations`: Serve reads build_app's annotation as a class
import logging
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle

from backends import Backend
from services.api.settings import Limits, Settings
from services.serve.replicas import (
    DrafterReplica,
    DraftItem,
    HoleItem,
    JobWorkerReplica,
    RefinerReplica,
)

log = logging.getLogger("remask.serve")

DEFAULT_BATCH: dict[str, Any] = {"max_batch_size": 8, "batch_wait_timeout_s": 0.02}
# On a stop, each replica first waits SHUTDOWN_WAIT_S for the proxy to stop sending it new
# requests, then finishes the ones it holds; past its timeout Serve kills it. The ingress's
# requests are the longest (they wait on the models); the models' end with the ingress's,
# which Serve stops first; the job worker's thread stops at its next checkpoint.
SHUTDOWN_WAIT_S = 0.5
LogLevel = Literal["debug", "info", "warning", "error"]


def set_log_level(level: str) -> None:
    """remask's loggers in this process at ``level`` (a replica's process; Serve's own
    logger follows the ``logging_config`` of the deployment)."""
    logging.getLogger("remask").setLevel(level.upper())


class AppArgs(BaseModel):
    """The application's arguments (the ``args`` of an application in the Serve config)."""

    model_config = ConfigDict(extra="forbid")
    refiner: str | None = Field(None, description="refiner model directory (default: models/refiner or "
                                "$REMASK_REFINER)")
    drafter: str | None = Field(None, description="drafter model directory (default: models/drafter or "
                                "$REMASK_DRAFTER)")
    no_drafter: bool = Field(False, description="serve without a drafter (diffusion mode only)")
    device: str = Field("cpu", description="torch device of the model replicas")
    torch_threads: int = Field(1, ge=1, description="torch threads per model replica (match its num_cpus)")
    drafter_backend: Literal["torch", "onnx"] = Field("torch", description="onnx: the drafter runs in ONNX Runtime "
                                                      "(exported next to its weights on first use; needs the onnx "
                                                      "extra)")
    refiner_backend: Literal["torch", "onnx"] = Field("torch", description="onnx: the refiner runs in ONNX Runtime")
    jobs: bool = Field(True, description="serve /v1/jobs and run the JobWorker deployment")
    redis_url: str | None = Field(None, description="queue server (default: $REDIS_URL, else an embedded Valkey "
                                  "in data_dir)")
    data_dir: str = Field("data/valkey", description="embedded Valkey's data directory")
    prefix: str = Field("remask", description="key prefix of the job queue")
    host: str = Field("127.0.0.1", description="address the HTTP proxy binds; anything but loopback needs API keys")
    limits: Limits = Field(default_factory=Limits, description="request limits")
    max_pending: int = Field(64, ge=1, description="requests a model replica admits at once (429 over it)")
    queue_timeout_s: float = Field(30.0, gt=0, description="longest wait for a model inside a replica (503 over it)")
    retry_after_s: int = Field(1, ge=1, description="Retry-After seconds of 429 and 503 answers")
    log_level: LogLevel = Field("info", description="level of Serve's replica logs (one line per request at info) "
                                "and of remask's loggers in every replica")


def http_settings(args: AppArgs) -> Settings:
    return Settings(host=args.host, limits=args.limits, max_pending=args.max_pending,
                    queue_timeout_s=args.queue_timeout_s, retry_after_s=args.retry_after_s)


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def apply_batch_config(method: Any, config: dict[str, Any]) -> None:
    """Set the batch limits of a ``@serve.batch`` method from a deployment's ``user_config``."""
    unknown = set(config) - set(DEFAULT_BATCH)
    if unknown:
        raise ValueError(f"user_config: unknown keys {sorted(unknown)} (known: {sorted(DEFAULT_BATCH)})")
    cfg = {**DEFAULT_BATCH, **config}
    method.set_max_batch_size(int(cfg["max_batch_size"]))
    method.set_batch_wait_timeout_s(float(cfg["batch_wait_timeout_s"]))


# what both model deployments run with (the Serve config may override any of it)
MODEL_DEPLOYMENT: dict[str, Any] = {
    "ray_actor_options": {"num_cpus": 0.5}, "max_ongoing_requests": 32, "max_queued_requests": 64,
    "health_check_period_s": 10, "user_config": DEFAULT_BATCH, "graceful_shutdown_wait_loop_s": SHUTDOWN_WAIT_S,
    "graceful_shutdown_timeout_s": 5,
}


class _ModelDeployment:
    """What both model deployments share around their replica object: its model's name and
    health, and whole infill streams in the mode that model serves alone."""

    replica: DrafterReplica | RefinerReplica

    async def stream_infill(self, prefix: str, suffix: str, params: Any) -> Any:
        async for ev in self.replica.stream_infill(prefix, suffix, params):
            yield ev

    def info(self) -> Any:
        return self.replica.info()

    async def check(self) -> None:
        await self.replica.check()

    async def check_health(self) -> None:  # Serve calls it every health_check_period_s; /ready calls check
        await self.replica.check()


@serve.deployment(name="Drafter", **MODEL_DEPLOYMENT)
class Drafter(_ModelDeployment):
    replica: DrafterReplica

    def __init__(self, path: str | None, backend: Backend, device: str, threads: int, max_pending: int,
                 queue_timeout_s: float, log_level: str = "info") -> None:
        from workflows.engines import load_drafter

        set_log_level(log_level)
        _threads(threads)
        self.replica = DrafterReplica(load_drafter(path, device, backend, threads), max_pending, queue_timeout_s)

    def reconfigure(self, config: dict[str, Any]) -> None:
        apply_batch_config(self.draft, config)
        apply_batch_config(self.score, config)

    @serve.batch(**DEFAULT_BATCH)
    async def draft(self, items: list[HoleItem]) -> list[Any]:
        return await self.replica.draft(items)

    @serve.batch(**DEFAULT_BATCH)
    async def score(self, texts: list[str]) -> list[Any]:
        return await self.replica.score(texts)

    async def middle_scores(self, prefix: str, suffix: str, params: Any, texts: list[str]) -> list[float]:
        return await self.replica.middle_scores(prefix, suffix, params, texts)


@serve.deployment(name="Refiner", **MODEL_DEPLOYMENT)
class Refiner(_ModelDeployment):
    replica: RefinerReplica

    def __init__(self, path: str | None, backend: Backend, device: str, threads: int, max_pending: int,
                 queue_timeout_s: float, log_level: str = "info") -> None:
        from workflows.engines import load_refiner

        set_log_level(log_level)
        _threads(threads)
        self.replica = RefinerReplica(load_refiner(path, device, backend=backend), max_pending, queue_timeout_s)

    def reconfigure(self, config: dict[str, Any]) -> None:
        apply_batch_config(self.refine, config)

    @serve.batch(**DEFAULT_BATCH)
    async def refine(self, items: list[DraftItem]) -> list[Any]:
        return await self.replica.refine(items)

    async def stream_refine(self, prefix: str, suffix: str, draft: Any, params: Any) -> Any:
        async for ev in self.replica.stream_refine(prefix, suffix, draft, params):
            yield ev

    async def infill(self, prefix: str, suffix: str, params: Any) -> Any:
        return await self.replica.infill(prefix, suffix, params)

    async def fills(self, prefix: str, suffix: str, params: Any) -> Any:
        return await self.replica.fills(prefix, suffix, params)

    async def alternatives(self, prefix: str, suffix: str, draft: Any, params: Any) -> Any:
        return await self.replica.alternatives(prefix, suffix, draft, params)

    async def scores(self, prefix: str, suffix: str, texts: list[str]) -> Any:
        return await self.replica.scores(prefix, suffix, texts)

    async def revise(self, text: str, params: Any, scorer: Any = None) -> Any:
        return await self.replica.revise(text, params, scorer)

    async def stream_revise(self, text: str, params: Any, scorer: Any = None) -> Any:
        async for ev in self.replica.stream_revise(text, params, scorer):
            yield ev

    async def repair(self, code: str, params: Any) -> Any:
        return await self.replica.repair(code, params)

    async def compliance(self, text: str, rules: Any, params: Any) -> Any:
        return await self.replica.compliance(text, rules, params)


@serve.deployment(name="JobWorker", ray_actor_options={"num_cpus": 0.25}, health_check_period_s=10,
                  graceful_shutdown_wait_loop_s=SHUTDOWN_WAIT_S, graceful_shutdown_timeout_s=12)
class JobWorker:
    """A queue worker with its own models: batch jobs never compete with the editors' requests
    inside the Drafter and Refiner replicas (scale it with ``num_replicas``)."""

    def __init__(self, args: AppArgs) -> None:
        from workflows.engines import load_engines
        from workflows.queue import Keys, ModelHandler, WorkerConfig, connect

        set_log_level(args.log_level)
        _threads(args.torch_threads)
        engines = load_engines(args.refiner, args.drafter, need_drafter=not args.no_drafter, device=args.device)
        r, self.server = connect(args.redis_url, args.data_dir)
        self.replica = JobWorkerReplica(r, ModelHandler(engines), WorkerConfig(), Keys(args.prefix))

    def check_health(self) -> None:
        self.replica.check()

    def __del__(self) -> None:
        self.replica.close()
        if self.server is not None:
            self.server.stop()


@serve.deployment(name="Ingress", ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=64,
                  max_queued_requests=128, graceful_shutdown_wait_loop_s=SHUTDOWN_WAIT_S,
                  graceful_shutdown_timeout_s=10)
@serve.ingress()
class Ingress:
    """The HTTP API (:func:`services.api.build_app`) over the model deployments' handles."""

    def __init__(self, refiner: DeploymentHandle, drafter: DeploymentHandle | None, args: AppArgs,
                 worker: DeploymentHandle | None = None) -> None:
        set_log_level(args.log_level)
        self.refiner, self.drafter, self.args = refiner, drafter, args
        self.worker = worker  # not called: held so the worker deploys and scales with the app
        self.server: Any = None  # an embedded Valkey this replica started, if any

    def __serve_build_asgi_app__(self) -> Any:
        from services.api import build_app as build_http_app
        from services.serve.engine import ServeEngine

        jobs = None
        if self.args.jobs:
            from workflows.queue import JobQueue, Keys, connect

            r, self.server = connect(self.args.redis_url, self.args.data_dir)
            jobs = JobQueue(r, Keys(self.args.prefix))
        engine = ServeEngine(self.refiner, self.drafter, retry_after_s=self.args.retry_after_s)
        return build_http_app(engine, http_settings(self.args), jobs)

    def __del__(self) -> None:  # Serve calls it when it stops the replica
        if self.server is not None:
            self.server.stop()


def _resolved(args: AppArgs) -> AppArgs:
    """Paths made absolute where the builder runs, so every replica finds the same files."""
    from workflows.engines import DEFAULT_DRAFTER, DEFAULT_REFINER

    def absolute(p: str | None, default: Path) -> str:
        return str(Path(p or default).expanduser().resolve())

    return args.model_copy(update={
        "refiner": absolute(args.refiner, DEFAULT_REFINER),
        "drafter": None if args.no_drafter else absolute(args.drafter, DEFAULT_DRAFTER),
        "data_dir": absolute(args.data_dir, Path("data/valkey")),
        "redis_url": args.redis_url or os.environ.get("REDIS_URL") or None,
    })


def build_app(args: AppArgs) -> Application:
    """The remask application (the Serve config's ``import_path``; Serve validates ``args``)."""
    return compose(args)


def compose(args: AppArgs, overrides: dict[str, dict[str, Any]] | None = None) -> Application:
    """The application with deployment options by deployment name (what ``deployments:`` of a
    Serve config holds; ``remask serve`` reads them from the YAML)."""
    args = _resolved(args)
    http_settings(args)  # refuse a bad configuration (e.g. no API keys off loopback) before anything starts
    for path in (args.refiner, args.drafter):
        if path is not None and not (Path(path) / "config.json").is_file():
            raise FileNotFoundError(f"no model at {path} (config.json missing); train one with `remask train` "
                                    "or point the app at a checkpoint directory")
    known = {"Drafter", "Refiner", "JobWorker", "Ingress"}
    overrides = overrides or {}
    if set(overrides) - known:
        raise ValueError(f"deployments: unknown names {sorted(set(overrides) - known)} (known: {sorted(known)})")

    def opts(d: Any) -> Any:
        # Serve's request log follows log_level unless the config gives a deployment its own
        options = {"logging_config": {"log_level": args.log_level.upper()}, **overrides.get(d.name, {})}
        return d.options(**options)

    model_args = (args.device, args.torch_threads, args.max_pending, args.queue_timeout_s, args.log_level)
    refiner = opts(Refiner).bind(args.refiner, args.refiner_backend, *model_args)
    drafter = None if args.no_drafter else opts(Drafter).bind(args.drafter, args.drafter_backend, *model_args)
    # the worker is bound into the ingress's arguments so that Serve deploys it with the app
    worker = opts(JobWorker).bind(args) if args.jobs else None
    return opts(Ingress).bind(refiner, drafter, args, worker)
