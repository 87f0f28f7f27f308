"""The Serve graph's logic without Ray: the ingress's engine over stand-in handles that call
the real replica objects (tiny models), batching as ``@serve.batch`` would."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from typing import Any

import pytest

from services.api.engine import LocalEngine
from services.serve.engine import ServeEngine, unwrap
from services.serve.replicas import DrafterReplica, Prescored, RefinerReplica
from workflows.engine import EngineUnavailable, Finished, Snapshot, TokenDelta
from workflows.infill import InfillParams
from workflows.revise import ReviseParams

BATCHED = {"draft", "score", "refine"}
PREFIX, SUFFIX = "def add(a, b):\n    return ", "\n\nprint(add(1, 2))\n"


class Method:
    """``handle.method``: ``.remote(...)`` returns an awaitable or an async iterator."""

    def __init__(self, fn: Any, batched: bool, calls: list[tuple[str, int]], name: str) -> None:
        self.fn, self.batched, self.calls, self.name = fn, batched, calls, name

    def remote(self, *args: Any) -> Any:
        if self.batched:
            async def one() -> Any:
                self.calls.append((self.name, 1))
                return (await self.fn([args[0]]))[0]
            return one()
        out = self.fn(*args)
        if inspect.isawaitable(out) or hasattr(out, "__aiter__"):
            return out

        async def value() -> Any:
            return out
        return value()


class Handle:
    def __init__(self, replica: Any) -> None:
        self.replica = replica
        self.calls: list[tuple[str, int]] = []

    def options(self, stream: bool = False) -> Handle:
        return self

    def __getattr__(self, name: str) -> Method:
        return Method(getattr(self.replica, name), name in BATCHED, self.calls, name)


@pytest.fixture(scope="module")
def replicas(api_models: Any) -> Any:
    refiner, drafter = api_models
    d, r = DrafterReplica(drafter), RefinerReplica(refiner)
    yield d, r
    d.close()
    r.close()


@pytest.fixture(scope="module", autouse=True)
def loop() -> Any:
    """One event loop for the module, as a replica runs on one: the replicas' engines are shared
    by the tests, and their locks bind to the loop that first waits on them."""
    global LOOP
    LOOP = asyncio.new_event_loop()
    yield LOOP
    LOOP.close()


LOOP: asyncio.AbstractEventLoop


def run(coro: Any) -> Any:
    return LOOP.run_until_complete(coro)


async def collect(stream: Any) -> list[Any]:
    return [ev async for ev in stream]


def local_infill(api_models: Any, params: InfillParams) -> Any:
    """The same request on the in-process engine (what ``remask serve-local`` runs)."""
    async def local() -> Any:
        engine = LocalEngine(*api_models)
        try:
            return await engine.infill(PREFIX, SUFFIX, params)
        finally:
            engine.close()

    return run(local())


@pytest.mark.parametrize("candidates", [True, False])
@pytest.mark.parametrize("mode", ["ar", "hybrid", "diffusion"])
def test_infill_through_handles_equals_the_local_engine(replicas: Any, api_models: Any, mode: str,
                                                        candidates: bool) -> None:
    """Every mode, with the candidate search and without: the ingress's answer over the two
    deployments is the in-process engine's, to the token."""
    d, r = replicas
    params = InfillParams(mode=mode, max_tokens=8, steps=4, remask_below=0.9, seed=3, candidates=candidates)
    served = run(ServeEngine(Handle(r), Handle(d)).infill(PREFIX, SUFFIX, params))
    alone = local_infill(api_models, params)
    assert served.result.text == alone.result.text
    assert served.result.mode == mode
    assert [t.changed for t in served.result.tokens] == [t.changed for t in alone.result.tokens]
    assert served.prompt_tokens == alone.prompt_tokens and served.completion_tokens == alone.completion_tokens
    assert served.result.audit is not None and served.result.audit.models
    assert served.result.audit.parameters["candidates"] is candidates
    assert served.result.syntax_check == alone.result.syntax_check == ("checked" if candidates else None)
    assert served.result.confidence == alone.result.confidence
    assert served.result.candidates == alone.result.candidates


@pytest.mark.parametrize("mode", ["ar", "hybrid"])
def test_a_widened_search_on_serve_equals_the_local_one(replicas: Any, api_models: Any, mode: str) -> None:
    """Below the acceptance bar the search widens: sampled drafts go through the drafter's
    batch, alternatives and scores to the refiner replica; the answer is still the local one."""
    d, r = replicas
    params = InfillParams(mode=mode, max_tokens=8, steps=4, seed=3, accept_confidence=1.0)
    dh = Handle(d)
    served = run(ServeEngine(Handle(r), dh).infill(PREFIX, SUFFIX, params))
    alone = local_infill(api_models, params)
    assert dh.calls.count(("draft", 1)) == 1 + params.samples  # the greedy row, then one per sample
    assert (served.result.text, served.result.confidence) == (alone.result.text, alone.result.confidence)
    assert served.result.syntax_check == "checked"


def test_hybrid_goes_through_both_batched_stages(replicas: Any) -> None:
    d, r = replicas
    dh, rh = Handle(d), Handle(r)
    params = InfillParams(mode="hybrid", max_tokens=6, remask_below=1.0, candidates=False)
    run(ServeEngine(rh, dh).infill(PREFIX, SUFFIX, params))
    assert ("draft", 1) in dh.calls and ("refine", 1) in rh.calls


def test_replica_batches_many_requests_in_one_call(replicas: Any, api_models: Any) -> None:
    """What @serve.batch hands a replica: several holes at once, each answered as if alone."""
    d, r = replicas
    holes = [(PREFIX, SUFFIX, InfillParams(mode="hybrid", max_tokens=n, remask_below=1.0, candidates=False))
             for n in (3, 5, 7)]
    drafts = run(d.draft(holes))
    refined = run(r.refine([(p, s, o.result, pr) for (p, s, pr), o in zip(holes, drafts)]))
    singles = [run(ServeEngine(Handle(r), Handle(d)).infill(p, s, pr)) for p, s, pr in holes]
    assert [o.result.text for o in refined] == [o.result.text for o in singles]
    assert [o.completion_tokens for o in drafts] == [len(o.result.token_ids) for o in drafts]


@pytest.mark.parametrize("mode", ["ar", "hybrid", "diffusion"])
def test_streams_end_with_the_answer(replicas: Any, mode: str) -> None:
    d, r = replicas
    params = InfillParams(mode=mode, max_tokens=8, steps=4, remask_below=1.0, candidates=False)
    events = run(collect(ServeEngine(Handle(r), Handle(d)).stream_infill(PREFIX, SUFFIX, params)))
    assert isinstance(events[-1], Finished)
    final = events[-1].outcome.result.text
    if mode == "ar":
        assert "".join(e.text for e in events if isinstance(e, TokenDelta)) == final
    else:
        snaps = [e.text for e in events if isinstance(e, Snapshot)]
        assert snaps and snaps[-1] == final


@pytest.mark.parametrize("mode", ["ar", "hybrid", "diffusion"])
def test_a_streamed_search_ends_with_the_ranked_answer(replicas: Any, api_models: Any, mode: str) -> None:
    """A streamed completion with candidates on Serve: the ingress runs the search over both
    deployments (the drafter replica is never asked for a search it cannot run) and streams
    the ranked answer, as the local engine does."""
    d, r = replicas
    params = InfillParams(mode=mode, max_tokens=8, steps=4, seed=3)
    events = run(collect(ServeEngine(Handle(r), Handle(d)).stream_infill(PREFIX, SUFFIX, params)))
    assert isinstance(events[-1], Finished)
    final = events[-1].outcome.result
    if mode == "ar":  # the HTTP stream carries an ar completion's text in its deltas
        assert "".join(e.text for e in events if isinstance(e, TokenDelta)) == final.text
    else:
        assert [e.text for e in events if isinstance(e, Snapshot)][-1] == final.text
    assert final.syntax_check == "checked" and final.text == local_infill(api_models, params).result.text


def test_revise_scored_by_the_drafter_deployment(replicas: Any, api_models: Any) -> None:
    """detect=both: the drafter replica scores, the refiner replica revises with those scores."""
    d, r = replicas
    text = "The licensee shall pay the fee within thirty days of the invoice."
    params = ReviseParams(detect="both", remask_below=0.9)
    dh = Handle(d)
    served = run(ServeEngine(Handle(r), dh).revise(text, params))
    assert ("score", 1) in dh.calls

    async def local() -> Any:
        engine = LocalEngine(*api_models)
        try:
            return await engine.revise(text, params)
        finally:
            engine.close()

    assert served.result.text == run(local()).result.text


def test_prescored_refuses_another_text() -> None:
    p = Prescored("d", None, "abc", scores=object())
    assert p.score("abc") is p.scores
    with pytest.raises(ValueError, match="another text"):
        p.score("abd")


def test_errors_keep_their_meaning(replicas: Any) -> None:
    d, r = replicas
    with pytest.raises(ValueError, match="both empty"):
        run(ServeEngine(Handle(r), Handle(d)).infill("", "", InfillParams()))
    with pytest.raises(ValueError, match="needs a drafter"):
        run(ServeEngine(Handle(r), None).infill(PREFIX, SUFFIX, InfillParams(mode="ar")))


def test_back_pressure_becomes_retry_later() -> None:
    from ray.exceptions import RayTaskError
    from ray.serve.exceptions import BackPressureError

    out = unwrap(BackPressureError(num_queued_requests=9, max_queued_requests=8), 3)
    assert isinstance(out, EngineUnavailable) and out.retry_after == 3
    wrapped = RayTaskError("refine", "traceback", ValueError("bad span"))
    assert isinstance(unwrap(wrapped, 1), ValueError) and str(unwrap(wrapped, 1)) == "bad span"
    other = RuntimeError("boom")
    assert unwrap(other, 1) is other


def test_health_checks_every_model(replicas: Any) -> None:
    d, r = replicas
    dh, rh = Handle(d), Handle(r)
    run(ServeEngine(rh, dh).check_health())


# --- the application's configuration ---------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_serve_config_builds_the_app() -> None:
    from services.commands.serve import app_parts, load_config
    from services.serve.app import compose

    cfg = load_config(ROOT / "deploy" / "serve.yaml")
    args, overrides = app_parts(cfg, {"host": "127.0.0.1"})
    assert set(overrides) == {"Ingress", "Drafter", "Refiner", "JobWorker"}
    cpus = sum(o["ray_actor_options"]["num_cpus"] * o.get("num_replicas", 1) for o in overrides.values())
    assert cpus <= 2, "the defaults must schedule on a 2-core machine"
    app = compose(args.model_copy(update={"refiner": str(ROOT / "models/refiner"),
                                          "drafter": str(ROOT / "models/drafter")}), overrides)
    assert app is not None


def test_bad_configuration_is_refused_before_anything_starts(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from services.commands.serve import app_parts, load_config
    from services.serve.app import AppArgs, compose

    with pytest.raises(ValidationError, match="refinr"):
        app_parts({"applications": [{"args": {"refinr": "x"}}]}, {})
    with pytest.raises(ValueError, match="unknown names"):
        compose(AppArgs(refiner=str(ROOT / "models/refiner"), drafter=str(ROOT / "models/drafter")),
                {"Refinr": {"num_replicas": 2}})
    with pytest.raises(FileNotFoundError, match="config.json"):
        compose(AppArgs(refiner=str(tmp_path)))
    with pytest.raises(ValueError, match="API keys"):
        compose(AppArgs(host="0.0.0.0", refiner=str(ROOT / "models/refiner")))
    (tmp_path / "two.yaml").write_text("applications: [{name: a}, {name: b}]\n")
    with pytest.raises(ValueError, match="exactly one application"):
        load_config(tmp_path / "two.yaml")


def test_batch_limits_come_from_user_config() -> None:
    from services.serve.app import apply_batch_config

    seen: dict[str, float] = {}

    class Batched:
        def set_max_batch_size(self, n: int) -> None:
            seen["size"] = n

        def set_batch_wait_timeout_s(self, s: float) -> None:
            seen["wait"] = s

    apply_batch_config(Batched(), {"max_batch_size": 4})
    assert seen == {"size": 4, "wait": 0.02}
    with pytest.raises(ValueError, match="unknown keys"):
        apply_batch_config(Batched(), {"max_batch": 4})


def test_the_rayservice_manifest_carries_a_valid_serve_config() -> None:
    import yaml

    from services.commands.serve import app_parts

    manifest = yaml.safe_load((ROOT / "deploy" / "rayservice.yaml").read_text())
    assert manifest["kind"] == "RayService"
    serve_cfg = yaml.safe_load(manifest["spec"]["serveConfigV2"])
    args, overrides = app_parts(serve_cfg, {})
    assert serve_cfg["applications"][0]["import_path"] == "services.serve.app:build_app"
    assert set(overrides) == {"Ingress", "Drafter", "Refiner", "JobWorker"} and args.jobs
