"""The batch job queue on Redis (or Valkey): submit JSONL jobs, run them in workers.

- :mod:`keys`: every key name; :mod:`jobs`: states, the job view, items, output lines;
- :mod:`validation` and :mod:`bodies`: a submission checked line by line and field by field;
- :mod:`client`: :class:`JobQueue` (submit, get, list, cancel, results, figures);
- :mod:`worker`: :class:`Worker` (leases, reclaim, retries, dead letters, cancellation);
- :mod:`handlers`: what runs one item (the pipelines, or a stub); :mod:`webhook`;
- :mod:`scripts`: the atomic steps; :mod:`embedded`: a Valkey server when no URL is given.

Importing this package does not import the models' libraries; the pipelines load when an
item is validated or run.
"""

from workflows.queue.client import JobNotFound, JobQueue, QueueStats
from workflows.queue.embedded import EmbeddedValkey, connect
from workflows.queue.handlers import EchoHandler, ItemError, ItemHandler, ModelHandler
from workflows.queue.jobs import BatchItem, Job, JobStatus, RequestCounts
from workflows.queue.keys import Keys
from workflows.queue.validation import LineError, SubmissionError, parse_submission
from workflows.queue.worker import Worker, WorkerConfig, run_worker

__all__ = [
    "BatchItem", "EchoHandler", "EmbeddedValkey", "ItemError", "ItemHandler", "Job", "JobNotFound",
    "JobQueue", "JobStatus", "Keys", "LineError", "ModelHandler", "QueueStats", "RequestCounts",
    "SubmissionError", "Worker", "WorkerConfig", "connect", "parse_submission", "run_worker",
]
