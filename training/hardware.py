"""The training device, and a description of the hardware for ``training.json``."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import torch


def pick_device(name: str = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else the CPU; otherwise the named device.

    Asking for CUDA on a machine without it is a ``ValueError``, not a silent CPU run.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available here")
    return device


def cpu_name() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``), else what ``platform`` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def describe_hardware(device: torch.device, threads: int | None = None) -> dict[str, Any]:
    """Device kind, CPU and GPU names, core and thread counts, torch version."""
    info: dict[str, Any] = {
        "device": device.type,
        "cpu": cpu_name(),
        "cpu_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "torch_threads": threads or torch.get_num_threads(),
        "torch": torch.__version__,
        "gpu": None,
        "precision": "bfloat16 autocast" if device.type == "cuda" else "float32",
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
