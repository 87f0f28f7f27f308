"""``remask jobs submit | status | cancel | results | list``: batch jobs on a remask server.

A client of the HTTP API (through the SDK, :mod:`client`): nothing here loads a model or
touches Redis. The server is ``--url`` (default ``$REMASK_URL``, else
``http://127.0.0.1:8000``) and the key ``--api-key`` (default ``$REMASK_API_KEY``).

``submit FILE.jsonl --wait`` shows a progress bar driven by the job's request counts, then
writes the results to ``--out`` (default ``FILE.results.jsonl``) and the failed items to
``--errors`` (default ``FILE.errors.jsonl``, written when some failed); each file is
written to a temporary name beside it and renamed, so a reader never sees half a file.
Exit status: 0 when the job completed, 1 on a server or connection error (the server's
message is printed), 3 when the job ended failed, cancelled or expired, 130 on Ctrl-C
(the job goes on).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

EXIT_ERROR = 1
EXIT_JOB_NOT_COMPLETED = 3
EXIT_INTERRUPTED = 130


def write_atomic(path: Path, lines: Iterable[str]) -> int:
    """Write ``lines`` (one JSON document each) to ``path`` via a temporary file and a rename.

    Returns the number of lines. On any failure the temporary file is removed and ``path``
    is left as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    n = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            for line in lines:
                f.write(line.rstrip("\n") + "\n")
                n += 1
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n


def _server_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=None, help="server URL (default: $REMASK_URL, else http://127.0.0.1:8000)")
    p.add_argument("--api-key", default=None, help="API key (default: $REMASK_API_KEY)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per HTTP request (default: %(default)s)")


def register(sub: Any) -> None:
    jobs = sub.add_parser("jobs", help="batch jobs on a remask server: submit, status, cancel, results, list")
    jsub = jobs.add_subparsers(dest="jobs_command", metavar="ACTION")
    jsub.required = True

    p = jsub.add_parser("submit", help="submit a JSONL file of {custom_id, method, url, body} lines")
    p.add_argument("file", type=Path, help="the JSONL file")
    p.add_argument("--wait", action="store_true", help="wait with a progress bar, then write results and errors")
    p.add_argument("--out", type=Path, default=None, help="results file with --wait (default: FILE.results.jsonl)")
    p.add_argument("--errors", type=Path, default=None,
                   help="failed items with --wait (default: FILE.errors.jsonl, written when some failed)")
    p.add_argument("--idempotency-key", default=None, help="a resubmission with the same key returns the first job")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between progress polls (default: %(default)s)")
    p.add_argument("--wait-timeout", type=float, default=None, help="give up waiting after this many seconds")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _server_args(p)
    p.set_defaults(func=_submit)

    p = jsub.add_parser("status", help="a job's state and request counts (JSON)")
    p.add_argument("job_id")
    _server_args(p)
    p.set_defaults(func=_status)

    p = jsub.add_parser("cancel", help="cancel a job; finished items keep their results")
    p.add_argument("job_id")
    _server_args(p)
    p.set_defaults(func=_cancel)

    p = jsub.add_parser("results", help="a job's results as JSONL (stdout, or --out)")
    p.add_argument("job_id")
    p.add_argument("--out", type=Path, default=None, help="write the results here instead of stdout")
    p.add_argument("--errors", type=Path, default=None, help="write the failed items here too")
    _server_args(p)
    p.set_defaults(func=_results)

    p = jsub.add_parser("list", help="your jobs, newest first (JSON lines)")
    p.add_argument("--limit", type=int, default=20)
    _server_args(p)
    p.set_defaults(func=_list)


def _client(args: argparse.Namespace) -> Any:
    from client import Remask

    return Remask(args.url, args.api_key, timeout=args.timeout)


def _guarded(fn: Any) -> Any:
    """Run a command; a server or connection error prints the server's message and exits 1."""

    def run(args: argparse.Namespace) -> int:
        from client import APIConnectionError, RemaskError

        try:
            return int(fn(args))
        except APIConnectionError as exc:
            print(f"remask: error: {exc.message} ({args.url or 'the default server URL'})", file=sys.stderr)
        except RemaskError as exc:
            field = f" (field: {exc.param})" if exc.param else ""
            print(f"remask: error: {exc.message}{field}", file=sys.stderr)
        return EXIT_ERROR

    return run


def _print_job(job: Any) -> None:
    print(json.dumps(job.raw, ensure_ascii=False))


def _lines(outputs: Iterable[Any]) -> Iterable[str]:
    return (json.dumps(o.raw, ensure_ascii=False) for o in outputs)


@_guarded
def _submit(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise FileNotFoundError(f"input file {str(args.file)!r} does not exist")
    with _client(args) as rm:
        job = rm.submit_job(args.file, idempotency_key=args.idempotency_key)
        if not args.wait:
            _print_job(job)
            return 0
        print(f"remask: job {job.id} queued ({job.request_counts.total} items)", file=sys.stderr)
        try:
            job = _wait(rm, job, args)
        except KeyboardInterrupt:
            print(f"\nremask: stopped waiting; the job goes on: remask jobs status {job.id}", file=sys.stderr)
            return EXIT_INTERRUPTED
        out = args.out or args.file.with_name(args.file.name + ".results.jsonl")
        n_ok = write_atomic(out, _lines(rm.job_results(job.id)))
        errors = rm.job_errors(job.id)
        where = f"results in {out}"
        if errors or args.errors is not None:
            err_path = args.errors or args.file.with_name(args.file.name + ".errors.jsonl")
            write_atomic(err_path, _lines(errors))
            where += f", errors in {err_path}"
        review = job.review_counts
        held = f", {review.findings} finding(s) in {review.items} item(s) need review" if review.findings else ""
        print(f"remask: job {job.id} {job.status}: {n_ok} succeeded, {len(errors)} failed{held}; {where}",
              file=sys.stderr)
        return 0 if job.status == "completed" else EXIT_JOB_NOT_COMPLETED


def _wait(rm: Any, job: Any, args: argparse.Namespace) -> Any:
    from tqdm import tqdm

    with tqdm(total=job.request_counts.total, unit="item", desc=job.id, file=sys.stderr, disable=args.no_progress,
              mininterval=0, dynamic_ncols=True) as bar:

        def show(j: Any) -> None:
            bar.total = j.request_counts.total
            bar.update(j.request_counts.done - bar.n)
            bar.set_postfix(status=j.status, failed=j.request_counts.failed, review=j.review_counts.findings,
                            refresh=False)
            bar.refresh()

        return rm.wait_job(job.id, poll_interval=args.poll, timeout=args.wait_timeout, on_progress=show)


@_guarded
def _status(args: argparse.Namespace) -> int:
    with _client(args) as rm:
        _print_job(rm.get_job(args.job_id))
    return 0


@_guarded
def _cancel(args: argparse.Namespace) -> int:
    with _client(args) as rm:
        _print_job(rm.cancel_job(args.job_id))
    return 0


@_guarded
def _results(args: argparse.Namespace) -> int:
    with _client(args) as rm:
        results = rm.job_results(args.job_id)
        if args.out is None:
            for line in _lines(results):
                print(line)
        else:
            print(f"remask: {write_atomic(args.out, _lines(results))} results in {args.out}", file=sys.stderr)
        if args.errors is not None:
            n = write_atomic(args.errors, _lines(rm.job_errors(args.job_id)))
            print(f"remask: {n} failed items in {args.errors}", file=sys.stderr)
    return 0


@_guarded
def _list(args: argparse.Namespace) -> int:
    with _client(args) as rm:
        for job in rm.list_jobs(limit=args.limit).data:
            _print_job(job)
    return 0
