"""Pulumi's Python language host, built from a source copy, for `pulumi up` in a project folder.

``pulumi up`` run in a folder holding a ``Pulumi.yaml`` (the way users run programs) starts the
language host named by its ``runtime``; for Python that is ``pulumi-language-python``. Its Go module
(``github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3``) is refused by the Go module
proxy, so its source is kept in the peers folder (``shared/peers/pulumi-language-hosts/python``
beside the checkout, see its README), pinned to the test CLI's ``pkg/v3``/``sdk/v3``; its
dependencies do come from the proxy. The binary is cached as its own component, keyed by the
source's hash, and copied into the engine's bin folder next to ``pulumi``.

    cd tests && python -m support.pulumi_python_host    # builds (once) and prints the binary
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from support.cache import build_lock, component_dir, go_env, is_complete, mark_complete

HOST_NAME = "pulumi-language-python"
# The version its go.mod pins pkg/v3 and sdk/v3 to, the test CLI's; stamped like the CLI's.
HOST_VERSION = "3.274.1"
SDK_MODULE = "github.com/pulumi/pulumi/sdk/v3"

#: Points at a folder holding pulumi-language-hosts/ (default: the first ``shared/peers`` found
#: above the checkout, which is where both the main checkout and its worktrees find it).
PEERS_VAR = "CLIENTREG_PEERS_DIR"
SOURCE_FILES = ("go.mod", "go.sum", "main.go")

_REPO = Path(__file__).resolve().parents[2]


class PythonHostUnavailable(RuntimeError):
    """No source copy or no Go toolchain: the folder-run tests skip on it outside CI."""


def peers_dir() -> Path:
    override = os.environ.get(PEERS_VAR)
    if override:
        return Path(override)
    for parent in _REPO.parents:
        candidate = parent / "shared" / "peers"
        if candidate.is_dir():
            return candidate
    raise PythonHostUnavailable(f"no shared/peers folder above {_REPO}; set {PEERS_VAR}")


def host_source() -> Path:
    source = peers_dir() / "pulumi-language-hosts" / "python"
    missing = [name for name in SOURCE_FILES if not (source / name).is_file()]
    if missing:
        raise PythonHostUnavailable(f"{source} lacks {', '.join(missing)}")
    return source


def host_dir() -> Path:
    # Keyed by the source's content: an updated copy in the peers folder is rebuilt, not reused.
    digest = hashlib.sha256()
    for name in SOURCE_FILES:
        digest.update((host_source() / name).read_bytes())
    return component_dir(HOST_NAME, f"{HOST_VERSION}-{digest.hexdigest()[:12]}")


def _build(folder: Path) -> None:
    if shutil.which("go") is None:
        raise PythonHostUnavailable(f"building {HOST_NAME} needs the Go toolchain (go not on PATH)")
    if folder.exists():
        shutil.rmtree(folder)  # a half-built folder from an interrupted run is never trusted
    src = folder / "src"
    src.mkdir(parents=True)
    # The peers folder is read-only (and copytree would carry its read-only modes along): copy the
    # bytes only, so `go build` may update go.sum and a later rmtree can delete the copy.
    for name in SOURCE_FILES:
        shutil.copyfile(host_source() / name, src / name)
    started = time.monotonic()
    with open(folder / "build.log", "a") as log:
        subprocess.run(
            [
                "go",
                "build",
                "-o",
                str(folder / HOST_NAME),
                # The same tags as the CLI: cgo is off, and no x/net/trace debug pages.
                "-tags",
                "osusergo,grpcnotrace",
                "-ldflags",
                f"-s -w -X {SDK_MODULE}/go/common/version.Version=v{HOST_VERSION}",
                ".",
            ],
            cwd=src,
            env=go_env(),
            check=True,
            stdout=log,
            stderr=log,
        )
    (folder / "build-seconds.txt").write_text(f"{time.monotonic() - started:.0f}\n")
    mark_complete(folder)


def ensure_python_host() -> Path:
    """Build (once, cached) and return the ``pulumi-language-python`` binary."""
    folder = host_dir()
    if not is_complete(folder):
        with build_lock(folder):
            if not is_complete(folder):
                _build(folder)
    return folder / HOST_NAME


def install_python_host(bin_dir: Path) -> Path:
    """Put the (cached) host into ``bin_dir`` unless the same build is already there."""
    built = ensure_python_host()
    target = bin_dir / HOST_NAME
    stamp = bin_dir / f".{HOST_NAME}.source"
    key = built.parent.name
    if os.access(target, os.X_OK) and stamp.is_file() and stamp.read_text().strip() == key:
        return target
    # Copy then rename: a CLI starting from this folder meanwhile sees the old binary or the new one.
    partial = bin_dir / f".{HOST_NAME}.partial"
    shutil.copyfile(built, partial)
    partial.chmod(0o755)
    os.replace(partial, target)
    stamp.write_text(f"{key}\n")
    return target


def main() -> int:
    started = time.monotonic()
    try:
        binary = ensure_python_host()
    except (PythonHostUnavailable, subprocess.CalledProcessError) as exc:
        print(f"{HOST_NAME} unavailable: {exc}", file=sys.stderr)
        return 1
    print(f"{HOST_NAME} ready in {time.monotonic() - started:.0f}s", file=sys.stderr)
    print(binary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
