"""Go programs built from a source folder into the cache: found, copied out, keyed by digest, built once.

Some components' Go modules are refused by the module proxy (hydra-maester, Pulumi's Node.js and Python
language hosts), so their source is kept in the read-only peers folder (``shared/peers`` above the
checkout, see the README there); others are small programs kept beside these helpers (kstatus). Each is
copied into its cache folder (``go build`` may write go.sum, and the source must stay untouched), built
there with its dependencies from the proxy, and marked complete, under the folder's lock.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

from support.cache import build_lock, go_env, is_complete, mark_complete

#: Points at a folder holding the peers' sources (default: the first ``shared/peers`` found above the
#: checkout, which is where both the main checkout and its worktrees find it).
PEERS_VAR = "CLIENTREG_PEERS_DIR"

_REPO = Path(__file__).resolve().parents[2]


def peers_dir() -> Path | None:
    """The peers folder, or None when there is none above the checkout and PEERS_VAR is unset."""
    override = os.environ.get(PEERS_VAR)
    if override:
        return Path(override)
    for parent in _REPO.parents:
        candidate = parent / "shared" / "peers"
        if candidate.is_dir():
            return candidate
    return None


def digest(source: Path, names: Iterable[str] | None = None) -> str:
    """12 hex digits of the named files (default: every file below ``source`` but .git), names and bytes."""
    files = ([source / n for n in names] if names is not None
             else sorted(p for p in source.rglob("*") if p.is_file() and ".git" not in p.parts))
    sha = hashlib.sha256()
    for path in files:
        sha.update(str(path.relative_to(source)).encode() + b"\0" + path.read_bytes() + b"\0")
    return sha.hexdigest()[:12]


def copy_source(source: Path, dest: Path, names: Iterable[str] | None = None) -> None:
    """A private copy of ``source`` at ``dest`` (replaced): the named files' bytes only, or the whole tree."""
    shutil.rmtree(dest, ignore_errors=True)
    if names is None:
        shutil.copytree(source, dest)
        return
    dest.mkdir(parents=True)
    # Bytes only: the peers folder's read-only modes must not come along.
    for name in names:
        shutil.copyfile(source / name, dest / name)


def build_once(folder: Path, product: Path, build: Callable[[], None], *, what: str,
               unavailable: Callable[[str], Exception]) -> Path:
    """``product`` (inside ``folder``) once ``build()`` has made it with go; ``folder`` is emptied first, so
    an interrupted build is redone, never half-used. No Go toolchain raises ``unavailable``."""
    if is_complete(folder) and product.exists():
        return product
    if shutil.which("go") is None:
        raise unavailable(f"building {what} needs the Go toolchain (no `go` on PATH)")
    with build_lock(folder):
        if not (is_complete(folder) and product.exists()):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True, exist_ok=True)
            build()
            mark_complete(folder)
    return product


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def run_go(cmd: list[str], *, cwd: Path, log: Path, timeout: float | None, what: str,
           unavailable: Callable[[str], Exception], hint: str = "", env: dict[str, str] | None = None) -> None:
    """One go command, output appended to ``log``, in its own process group killed whole at ``timeout``
    (go forks compilers). A failure or a timeout raises ``unavailable`` with the end of the log."""
    with open(log, "a") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env or go_env(), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise unavailable(f"building {what} took over {timeout:.0f}s ({hint}); "
                              f"end of {log}:\n{tail(log)}") from None
    if code != 0:
        raise unavailable(f"`{' '.join(cmd)}` failed (exit {code}); end of {log}:\n{tail(log)}")
