"""Prometheus metrics with vLLM-like names under a ``remask:`` prefix.

Each app has its own registry, so several apps in one process (tests, a Ray replica that is
rebuilt) never collide on the global one. Route labels are route templates
(``/v1/completions``), never raw paths, so an unknown path cannot grow the label set.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# the names, in one place; tests and dashboards refer to these
E2E_LATENCY = "remask:e2e_request_latency_seconds"
TTFT = "remask:time_to_first_token_seconds"
RUNNING = "remask:num_requests_running"
WAITING = "remask:num_requests_waiting"
REQUESTS = "remask:http_requests"  # exposed as remask:http_requests_total
PROMPT_TOKENS = "remask:prompt_tokens"
GENERATION_TOKENS = "remask:generation_tokens"
NFE = "remask:refiner_forward_passes"
JOBS = "remask:jobs"
JOBS_WAITING = "remask:jobs_waiting"
JOBS_IN_FLIGHT = "remask:jobs_in_flight"
JOBS_DEAD = "remask:jobs_dead_lettered"


class Metrics:
    """The service's metrics; ``queue_depth`` is read at scrape time."""

    def __init__(self, queue_depth: Callable[[], int]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.latency = Histogram(E2E_LATENCY, "Time from request received to last byte sent, per route.",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram(TTFT, "Time from request received to the first token, snapshot or result, per route.",
                              ["route"], buckets=TTFT_BUCKETS, registry=r)
        self.running = Gauge(RUNNING, "HTTP requests in flight, per route.", ["route"], registry=r)
        self.waiting = Gauge(WAITING, "Requests admitted to the engine and waiting for a model.", registry=r)
        self.waiting.set_function(lambda: float(queue_depth()))
        self.requests = Counter(REQUESTS, "HTTP requests answered, per route and status code.",
                                ["route", "status"], registry=r)
        self.prompt_tokens = Counter(PROMPT_TOKENS, "Prompt (input) tokens processed, per route.", ["route"],
                                     registry=r)
        self.generation_tokens = Counter(GENERATION_TOKENS, "Tokens produced, per route.", ["route"], registry=r)
        self.nfe = Counter(NFE, "Refiner forward passes, per route.", ["route"], registry=r)
        self.jobs = Gauge(JOBS, "Batch jobs by state (live states: now; final states: since the start).",
                          ["state"], registry=r)
        self.jobs_waiting = Gauge(JOBS_WAITING, "Batch jobs waiting for a worker.", registry=r)
        self.jobs_in_flight = Gauge(JOBS_IN_FLIGHT, "Batch job deliveries held by workers.", registry=r)
        self.jobs_dead = Gauge(JOBS_DEAD, "Batch jobs in the dead-letter stream.", registry=r)

    def set_jobs(self, stats: Any) -> None:
        """Copy the job queue's figures (:class:`workflows.queue.QueueStats`) into the gauges."""
        for state, n in stats.jobs_by_state.items():
            self.jobs.labels(state).set(n)
        self.jobs_waiting.set(stats.depth)
        self.jobs_in_flight.set(stats.in_flight)
        self.jobs_dead.set(stats.dead_lettered)

    def count_work(self, route: str, prompt_tokens: int, generation_tokens: int, nfe: int) -> None:
        self.prompt_tokens.labels(route).inc(prompt_tokens)
        self.generation_tokens.labels(route).inc(generation_tokens)
        self.nfe.labels(route).inc(nfe)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
