"""kstatus, the status library behind Flux's health checks, as a command the tests can ask.

``tests/support/kstatus/`` is a tiny Go program around ``status.Compute`` from sigs.k8s.io/cli-utils,
pinned by its go.mod and go.sum and built once from the Go module proxy into the cache (folder keyed by
a digest of its sources, so an edit rebuilds it). The tests feed it the status blocks the operator
writes: what they check is kstatus's own reading of our conditions, not ours.

Cold: a few MB of modules and about half a minute of compiling on a 2-core machine. A proxy that is
slow or away ends the build after ``CLIENTREG_KSTATUS_BUILD_TIMEOUT`` seconds (default 900) with
:class:`ComponentUnavailable`, never a hang.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from support.cache import component_dir
from support.go_source import build_once, copy_source, digest, run_go
from support.kube import ComponentUnavailable

SOURCE = Path(__file__).parent / "kstatus"
SOURCE_FILES = ("go.mod", "go.sum", "main.go")
#: The cli-utils release the go.mod requires (kept in step with it; the cache folder names it).
CLI_UTILS_VERSION = "v0.37.2"
DEFAULT_BUILD_TIMEOUT = 900.0


def build_timeout() -> float:
    return float(os.environ.get("CLIENTREG_KSTATUS_BUILD_TIMEOUT", DEFAULT_BUILD_TIMEOUT))


def ensure_kstatus() -> Path:
    """The path of the cached kstatus binary, built once. Raises ComponentUnavailable."""
    folder = component_dir("kstatus", f"{CLI_UTILS_VERSION}-{digest(SOURCE, SOURCE_FILES)}")
    binary = folder / "kstatus"
    def build() -> None:
        src = folder / "src"
        copy_source(SOURCE, src, SOURCE_FILES)
        log = folder / "build.log"
        log.write_text("")
        # -mod=readonly: exactly the versions go.sum pins; a download is the only network use.
        run_go(["go", "build", "-mod=readonly", "-trimpath", "-o", str(binary), "."], cwd=src, log=log,
               timeout=build_timeout(), what="kstatus", unavailable=ComponentUnavailable,
               hint=f"Go module proxy slow or unreachable? GOPROXY={os.environ.get('GOPROXY', 'default')}; "
                    "raise CLIENTREG_KSTATUS_BUILD_TIMEOUT")

    return build_once(folder, binary, build, what="the kstatus checker", unavailable=ComponentUnavailable)


def compute(binary: Path, *objects: dict[str, Any]) -> list[dict[str, str]]:
    """kstatus's verdict on each object: ``{"status": "Current"|"InProgress"|"Failed"|…, "message": …}``."""
    stdin = "".join(json.dumps(o) + "\n" for o in objects)
    out = subprocess.run([str(binary)], input=stdin, capture_output=True, text=True, check=True, timeout=60)
    answers = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    if len(answers) != len(objects):
        raise AssertionError(f"kstatus answered {len(answers)} times for {len(objects)} objects: {out.stderr}")
    return answers
