"""Stored benchmark results: ``<results>/<name>.json``, a benchmark's figures together with
when and where they were measured, and running a benchmark to store a fresh one.

A benchmark runs in its own process, exactly as a user would run it
(``remask bench <name> --json``), so the report never shares a process, threads or imports
with what it measures.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]  # where git is asked for the commit

# (benchmark name, extra arguments) -> the argv of the process that prints its JSON
Launcher = Callable[[str, Sequence[str]], list[str]]


@dataclass(frozen=True)
class Machine:
    """What the figures depend on: the CPU, its cores, memory and any GPU."""

    cpu: str
    cores: int
    ram_gb: float | None  # None where the OS does not say
    gpu: str | None  # None: no GPU

    def describe(self) -> str:
        ram = f"{self.ram_gb:g} GB RAM" if self.ram_gb is not None else "RAM unknown"
        return f"{self.cpu}, {self.cores} cores, {ram}, GPU: {self.gpu or 'none'}"


@dataclass(frozen=True)
class Measured:
    """When, where and how a result was measured."""

    date: str  # UTC, ISO 8601 to the second
    commit: str  # git commit of the code that ran ("unknown" outside a checkout)
    machine: Machine
    torch: str  # torch version ("not installed" if absent)
    python: str
    command: str  # the command a user types to repeat it
    seconds: float  # wall time of the whole run
    # 1-minute load averages at the start and the end: on a shared CPU, why timings moved
    load: tuple[float, float] | None = None
    dirty: bool | None = None  # tracked files differed from the commit (None: not known)


@dataclass(frozen=True)
class StoredResult:
    """One benchmark's figures (its JSON, unchanged) and how they were measured."""

    name: str
    figures: dict[str, Any]
    measured: Measured

    def to_json(self) -> dict[str, Any]:
        return {"benchmark": self.name, "measured": asdict(self.measured), "figures": self.figures}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StoredResult:
        m = dict(data["measured"])
        m["machine"] = Machine(**m["machine"])
        if m.get("load") is not None:
            m["load"] = tuple(m["load"])
        return cls(name=data["benchmark"], figures=data["figures"], measured=Measured(**m))


class BenchmarkFailed(RuntimeError):
    """A benchmark process exited non-zero or printed no JSON object."""


def result_path(results: Path, name: str) -> Path:
    return results / f"{name}.json"


def save_result(results: Path, result: StoredResult) -> Path:
    results.mkdir(parents=True, exist_ok=True)
    path = result_path(results, result.name)
    path.write_text(json.dumps(result.to_json(), indent=1) + "\n")
    return path


def load_result(results: Path, name: str) -> StoredResult | None:
    """The stored result of ``name``; None when it was never measured."""
    path = result_path(results, name)
    if not path.is_file():
        return None
    try:
        return StoredResult.from_json(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a stored benchmark result: {exc}") from exc


def stored_names(results: Path) -> list[str]:
    """Names of every stored result, sorted."""
    return sorted(p.stem for p in results.glob("*.json")) if results.is_dir() else []


def cli_argv(name: str, extra: Sequence[str]) -> list[str]:
    """``remask bench <name> --json ...`` run with this interpreter."""
    return [sys.executable, "-m", "services.cli", "bench", name, "--json", *extra]


def user_command(name: str, extra: Sequence[str]) -> str:
    return shlex.join(["remask", "bench", name, "--json", *extra])


def run_benchmark(name: str, extra: Sequence[str] = (), launcher: Launcher = cli_argv,
                  cwd: Path | None = None) -> StoredResult:
    """Run one benchmark in a subprocess and return its figures with their provenance.

    The benchmark's stderr (progress, warnings) goes straight to ours; its stdout must end
    with one JSON object.
    """
    argv = launcher(name, extra)
    load_before = _load_average()
    t0 = time.monotonic()
    proc = subprocess.run(argv, check=False, cwd=cwd, stdout=subprocess.PIPE, text=True)
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        raise BenchmarkFailed(f"benchmark {name!r} exited with status {proc.returncode}")
    figures = _last_json_object(proc.stdout)
    if figures is None:
        raise BenchmarkFailed(f"benchmark {name!r} printed no JSON object")
    measured = Measured(
        date=datetime.now(UTC).replace(microsecond=0).isoformat(),
        commit=git_commit(),
        dirty=git_dirty(),
        machine=this_machine(),
        torch=_version("torch"),
        python=platform.python_version(),
        command=user_command(name, extra),
        seconds=round(seconds, 1),
        load=None if load_before is None else (load_before, _load_average() or load_before),
    )
    return StoredResult(name=name, figures=figures, measured=measured)


def _last_json_object(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        return value if isinstance(value, dict) else None
    return None


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def git_commit(repo: Path = REPO) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], check=False, cwd=repo, capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def git_dirty(repo: Path = REPO) -> bool | None:
    """Whether tracked files differ from the commit: then the commit alone does not say what ran."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], check=False, cwd=repo,
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return bool(out.stdout.strip()) if out.returncode == 0 else None


def this_machine() -> Machine:
    return Machine(cpu=_cpu_model(), cores=os.cpu_count() or 1, ram_gb=_ram_gb(), gpu=_gpu())


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _ram_gb() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _gpu() -> str | None:
    """NVIDIA GPU names from nvidia-smi (no torch import in the report's process)."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             check=False, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    names = [n.strip() for n in out.stdout.splitlines() if n.strip()]
    return ", ".join(names) if out.returncode == 0 and names else None


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"
