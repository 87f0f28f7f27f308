"""The service under editor load: FIM latency and throughput over HTTP (loopback only).

``remask bench serve --json`` starts the Ray Serve application (``remask serve`` on a free
loopback port, the default models, no job queue) unless ``--url`` names a running service,
then sends 16-token infills cut from held-out Python files to ``/v1/completions``: first one
at a time, then ``--concurrency`` at a time. Each phase is bounded by ``--requests`` and
``--max-seconds``; a few warm-up requests go first and are not counted. Figures:

- ``fim_p50_ms``, ``fim_p95_ms``: latency at concurrency 1 (client-side, whole response)
- ``rps_c1``, ``rps_c8``: completed requests per second at concurrency 1 and 8
- ``p50_ms_c8``: latency at concurrency 8; ``errors``: non-200 answers and failed requests
- ``scaling``: rps_c8 / rps_c1 (target >= 2.5); targets: p50 < 250 ms, zero errors
- with ``--compare-raw``: ``raw_vs_candidates``, each request sent twice in turn (the models'
  single raw answer, then the completion with candidates: scoped, checked, ranked), so load
  drift slows both alike: p50 of each and their ratio (target <= 1.3)
- ``cpu``: cores and the load average when the run ended (figures taken on a busy machine
  are not comparable with a quiet one's)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=None, help="a running service (default: start `remask serve` on loopback)")
    p.add_argument("--corpus", type=Path, default=Path("data/corpus"))
    p.add_argument("--mode", default="hybrid", choices=["ar", "diffusion", "hybrid"])
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument("--steps", type=int, default=None, help="refiner step budget per request (default: the API's)")
    p.add_argument("--requests", type=int, default=64, help="most requests per phase")
    p.add_argument("--max-seconds", type=float, default=60.0, help="longest phase")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--warmup", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--startup-timeout", type=float, default=240.0)
    p.add_argument("--compare-raw", action="store_true",
                   help="also time each request with and without the candidate search, in turn (one run)")
    p.add_argument("--server", default="serve", choices=["serve", "serve-local"],
                   help="what to start when no --url is given (default: the Ray Serve app)")


def free_port() -> int:
    """A free loopback port (the service binds it a moment later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """Return once ``url``/ready answers 200; RuntimeError if ``proc`` exits first or time runs out."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the service exited with code {proc.returncode} before it was ready")
        try:
            if httpx.get(f"{url}/ready", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    raise RuntimeError(f"the service at {url} was not ready within {timeout:g}s")


async def _phase(url: str, cases: list[dict[str, Any]], concurrency: int, n: int, max_s: float) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    errors = 0
    sent = 0
    t0 = time.perf_counter()

    async def one(client: httpx.AsyncClient) -> None:
        nonlocal errors, sent
        while sent < n and time.perf_counter() - t0 < max_s:
            body = cases[sent % len(cases)]
            sent += 1
            s = time.perf_counter()
            try:
                r = await client.post(f"{url}/v1/completions", json=body)
                ok = r.status_code == 200 and "choices" in r.json()
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append(1000 * (time.perf_counter() - s))
            else:
                errors += 1

    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:
        await asyncio.gather(*(one(client) for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    lat = sorted(latencies)
    return {
        "requests": len(lat), "errors": errors, "seconds": round(wall, 2),
        "rps": round(len(lat) / wall, 2) if wall else 0.0,
        "p50_ms": round(statistics.median(lat), 1) if lat else None,
        "p95_ms": round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 1) if lat else None,
    }


async def _paired(url: str, cases: list[dict[str, Any]], n: int, max_s: float) -> dict[str, Any]:
    """Each request without the candidate search, then with it, one at a time: p50 of each."""
    import httpx

    lat: dict[bool, list[float]] = {False: [], True: []}
    errors = 0
    t0 = time.perf_counter()
    async with httpx.AsyncClient(timeout=60) as client:
        for i in range(n):
            if time.perf_counter() - t0 >= max_s:
                break
            for search in (False, True):
                s = time.perf_counter()
                r = await client.post(f"{url}/v1/completions", json={**cases[i % len(cases)], "candidates": search})
                if r.status_code == 200:
                    lat[search].append(1000 * (time.perf_counter() - s))
                else:
                    errors += 1
    raw = statistics.median(lat[False]) if lat[False] else None
    found = statistics.median(lat[True]) if lat[True] else None
    return {"pairs": min(len(lat[False]), len(lat[True])), "errors": errors,
            "raw_p50_ms": round(raw, 1) if raw else None, "candidates_p50_ms": round(found, 1) if found else None,
            "ratio": round(found / raw, 2) if raw and found else None}


def _cases(args: argparse.Namespace) -> list[dict[str, Any]]:
    from bench.quality import held_out, infill_cases

    rng = random.Random(args.seed)
    files = held_out(args.corpus, "code")
    holes = infill_cases(files, 32, (1, 1), rng)
    extra = {"steps": args.steps} if args.steps is not None else {}
    return [{"prompt": p, "suffix": s, "max_tokens": args.max_tokens, "mode": args.mode, "temperature": 0, **extra}
            for p, _, s in holes]


@contextlib.contextmanager
def _service(args: argparse.Namespace) -> Iterator[tuple[str, float | None]]:
    """(url, startup seconds): ``--url`` as given, else a service started on loopback and
    stopped (SIGINT, then SIGKILL) on exit; a failed start raises with the end of its log."""
    if args.url is not None:
        wait_ready(args.url, None, args.startup_timeout)
        yield args.url, None
        return
    url = f"http://127.0.0.1:{free_port()}"
    cmd = [sys.executable, "-m", "services.cli", args.server, "--host", "127.0.0.1", "--port", url.rsplit(":", 1)[1]]
    cmd += ["--no-jobs"] if args.server == "serve" else []
    env = {**os.environ, "REMASK_API_KEYS": ""}  # loopback: no keys needed
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            t0 = time.perf_counter()
            try:
                wait_ready(url, proc, args.startup_timeout)
            except RuntimeError as exc:
                log.seek(0)
                raise RuntimeError(f"{exc}\n{log.read().decode(errors='replace')[-3000:]}") from None
            yield url, time.perf_counter() - t0
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def run(args: argparse.Namespace) -> dict[str, Any]:
    cases = _cases(args)
    with _service(args) as (url, startup_s):
        asyncio.run(_phase(url, cases, 1, args.warmup, args.max_seconds))  # warm-up, not counted
        c1 = asyncio.run(_phase(url, cases, 1, args.requests, args.max_seconds))
        cn = asyncio.run(_phase(url, cases, args.concurrency, args.requests, args.max_seconds))
        paired = asyncio.run(_paired(url, cases, args.requests, args.max_seconds)) if args.compare_raw else None
    return {
        "server": args.server if args.url is None else args.url, "mode": args.mode, "max_tokens": args.max_tokens,
        "steps": args.steps,
        "fim_p50_ms": c1["p50_ms"], "fim_p95_ms": c1["p95_ms"],
        "rps_c1": c1["rps"], f"rps_c{args.concurrency}": cn["rps"], f"p50_ms_c{args.concurrency}": cn["p50_ms"],
        "scaling": round(cn["rps"] / c1["rps"], 2) if c1["rps"] else None,
        "errors": c1["errors"] + cn["errors"],
        "requests": {"c1": c1["requests"], f"c{args.concurrency}": cn["requests"]},
        "startup_s": round(startup_s, 1) if startup_s is not None else None,
        "cpu": {"cores": os.cpu_count(), "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()]},
        **({"raw_vs_candidates": paired} if paired is not None else {}),
    }
