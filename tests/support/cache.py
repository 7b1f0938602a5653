"""Where real components are built and kept, and how Go tools modules are built.

Everything lands under ``$CLIENTREG_CACHE`` (default ``~/.cache/clientreg``), one folder per
``<name>-<version>``, so CI and later runs reuse it. A folder is only trusted once its
``.complete`` marker exists: an interrupted build is redone, never half-used.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import NoReturn


def cache_root() -> Path:
    root = Path(os.environ.get("CLIENTREG_CACHE", Path.home() / ".cache" / "clientreg"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def component_dir(name: str, version: str) -> Path:
    return cache_root() / f"{name}-{version}"


def is_complete(folder: Path) -> bool:
    return (folder / ".complete").exists()


def mark_complete(folder: Path) -> None:
    (folder / ".complete").write_text("ok\n")


@contextlib.contextmanager
def build_lock(folder: Path) -> Iterator[None]:
    """Serialise builds of one component: two pytest processes building the same output at once
    (npm ci, go build, unzip) would corrupt each other's files."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def unavailable(component: str, reason: str) -> NoReturn:
    """A component that cannot be had: a skip locally, a failure in CI (a missing install step)."""
    import pytest

    if in_ci():
        pytest.fail(f"{component} is required in CI: {reason}")
    pytest.skip(f"{component} unavailable: {reason}")


def stop_process(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds: a test server must never outlive its test."""
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def go_env(cgo: bool = False) -> dict[str, str]:
    env = dict(os.environ)
    env["CGO_ENABLED"] = "1" if cgo else "0"
    # Module and build caches live beside the components so CI's warm cache covers them.
    env.setdefault("GOMODCACHE", str(cache_root() / "go" / "mod"))
    env.setdefault("GOCACHE", str(cache_root() / "go" / "build"))
    env.setdefault("GOFLAGS", "-mod=mod")
    return env


def go_build_tools_module(
    *,
    workdir: Path,
    module_name: str,
    requires: Mapping[str, str],
    replaces: Mapping[str, str] | None = None,
    excludes: Iterable[str] = (),
    packages: Mapping[str, Path],
    tags: str = "",
    ldflags: str = "",
    cgo: bool = False,
    go_directive: str | None = None,
    log: Path | None = None,
) -> None:
    """Build main packages from a throwaway tools module pinned to exact versions.

    ``packages`` maps an import path to the output binary path.
    """
    if shutil.which("go") is None:
        raise RuntimeError("the Go toolchain is required to build test components (go not on PATH)")
    workdir.mkdir(parents=True, exist_ok=True)
    lines = [f"module {module_name}", ""]
    if go_directive:
        lines += [f"go {go_directive}", ""]
    lines += ["require ("] + [f"\t{m} {v}" for m, v in requires.items()] + [")", ""]
    if replaces:
        lines += ["replace ("] + [f"\t{old} => {new}" for old, new in replaces.items()] + [")", ""]
    for ex in excludes:
        lines.append(f"exclude {ex}")
    (workdir / "go.mod").write_text("\n".join(lines) + "\n")
    imports = "\n".join(f'\t_ "{p}"' for p in packages)
    (workdir / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n")
    env = go_env(cgo)
    out = open(log, "a") if log else None  # noqa: SIM115 - closed below
    try:
        subprocess.run(["go", "mod", "tidy"], cwd=workdir, env=env, check=True, stdout=out, stderr=out)
        for pkg, binary in packages.items():
            cmd = ["go", "build", "-o", str(binary)]
            if tags:
                cmd += ["-tags", tags]
            if ldflags:
                cmd += ["-ldflags", ldflags]
            cmd.append(pkg)
            subprocess.run(cmd, cwd=workdir, env=env, check=True, stdout=out, stderr=out)
    finally:
        if out:
            out.close()
