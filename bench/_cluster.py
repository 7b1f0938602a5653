"""What the operator benches share about a controller on a control plane: Helm, CPU time, readiness.

bench/converge.py and bench/side_by_side.py import this beside them (bench/ is on their path).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any


def helm(binary: Path, env: dict[str, str]) -> Callable[..., None]:
    """A ``helm`` runner for :func:`support.operator_process.install_chart`."""

    def run(*args: str) -> None:
        subprocess.run([str(binary), *args], env=env, check=True, capture_output=True, timeout=300)
    return run


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ready(item: dict[str, Any]) -> bool:
    """Ready=True for the resource's current generation (both controllers compared write that status)."""
    status = item.get("status") or {}
    if status.get("observedGeneration") != item["metadata"].get("generation"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
