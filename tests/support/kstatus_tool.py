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

import hashlib
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

from support.cache import build_lock, component_dir, go_env, is_complete, mark_complete
from support.kube import ComponentUnavailable

SOURCE = Path(__file__).parent / "kstatus"
SOURCE_FILES = ("go.mod", "go.sum", "main.go")
#: The cli-utils release the go.mod requires (kept in step with it; the cache folder names it).
CLI_UTILS_VERSION = "v0.37.2"
DEFAULT_BUILD_TIMEOUT = 900.0


def build_timeout() -> float:
    return float(os.environ.get("CLIENTREG_KSTATUS_BUILD_TIMEOUT", DEFAULT_BUILD_TIMEOUT))


def _digest() -> str:
    sha = hashlib.sha256()
    for name in SOURCE_FILES:
        sha.update(name.encode() + b"\0" + (SOURCE / name).read_bytes() + b"\0")
    return sha.hexdigest()[:12]


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _run(cmd: list[str], *, cwd: Path, log: Path, timeout: float) -> None:
    """Run one go command, killing its whole process group at ``deadline`` (go forks compilers)."""
    with open(log, "a") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=go_env(), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise ComponentUnavailable(
                f"building kstatus took over {timeout:.0f}s (Go module proxy slow or unreachable? "
                f"GOPROXY={os.environ.get('GOPROXY', 'default')}; raise CLIENTREG_KSTATUS_BUILD_TIMEOUT); "
                f"end of {log}:\n{_tail(log)}") from None
    if code != 0:
        raise ComponentUnavailable(f"`{' '.join(cmd)}` failed (exit {code}); end of {log}:\n{_tail(log)}")


def ensure_kstatus() -> Path:
    """The path of the cached kstatus binary, built once. Raises ComponentUnavailable."""
    folder = component_dir("kstatus", f"{CLI_UTILS_VERSION}-{_digest()}")
    binary = folder / "kstatus"
    if is_complete(folder) and binary.exists():
        return binary
    if shutil.which("go") is None:
        raise ComponentUnavailable("the Go toolchain is needed to build the kstatus checker (no `go` on PATH)")
    with build_lock(folder):
        if is_complete(folder) and binary.exists():
            return binary
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ".complete").unlink(missing_ok=True)
        src = folder / "src"
        shutil.rmtree(src, ignore_errors=True)
        src.mkdir()
        for name in SOURCE_FILES:
            shutil.copyfile(SOURCE / name, src / name)
        log = folder / "build.log"
        log.write_text("")
        # -mod=readonly: exactly the versions go.sum pins; a download is the only network use.
        _run(["go", "build", "-mod=readonly", "-trimpath", "-o", str(binary), "."], cwd=src, log=log,
             timeout=build_timeout())
        mark_complete(folder)
    return binary


def compute(binary: Path, *objects: dict[str, Any]) -> list[dict[str, str]]:
    """kstatus's verdict on each object: ``{"status": "Current"|"InProgress"|"Failed"|…, "message": …}``."""
    stdin = "".join(json.dumps(o) + "\n" for o in objects)
    out = subprocess.run([str(binary)], input=stdin, capture_output=True, text=True, check=True, timeout=60)
    answers = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    if len(answers) != len(objects):
        raise AssertionError(f"kstatus answered {len(answers)} times for {len(objects)} objects: {out.stderr}")
    return answers
