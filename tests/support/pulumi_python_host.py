"""Pulumi's Python language host, built from a source copy, for `pulumi up` in a project folder.

``pulumi up`` run in a folder holding a ``Pulumi.yaml`` (the way users run programs) starts the
language host named by its ``runtime``; for Python that is ``pulumi-language-python``. Its Go module
(``github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3``) is refused by the Go module
proxy, so its source is kept in the peers folder (``shared/peers/pulumi-language-hosts/python``
beside the checkout, see its README), pinned to the test CLI's ``pkg/v3``/``sdk/v3``; its
dependencies do come from the proxy. The binary is cached as its own component, keyed by the
source's hash, and copied into the engine's bin folder next to ``pulumi`` by
``support.pulumi_engine.ensure_pulumi`` (``cd tests && python -m support.pulumi_engine build`` builds both).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

from support.cache import component_dir
from support.go_source import PEERS_VAR, build_once, copy_source, peers_dir, run_go

HOST_NAME = "pulumi-language-python"
# The version its go.mod pins pkg/v3 and sdk/v3 to, the test CLI's; stamped like the CLI's.
HOST_VERSION = "3.274.1"
SDK_MODULE = "github.com/pulumi/pulumi/sdk/v3"

SOURCE_FILES = ("go.mod", "go.sum", "main.go")


class PythonHostUnavailable(RuntimeError):
    """No source copy or no Go toolchain: the folder-run tests skip on it outside CI."""


def host_source() -> Path:
    peers = peers_dir()
    if peers is None:
        raise PythonHostUnavailable(f"no shared/peers folder above the checkout; set {PEERS_VAR}")
    source = peers / "pulumi-language-hosts" / "python"
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


def ensure_python_host() -> Path:
    """Build (once, cached) and return the ``pulumi-language-python`` binary."""
    folder = host_dir()
    binary = folder / HOST_NAME
    def build() -> None:
        src = folder / "src"
        copy_source(host_source(), src, SOURCE_FILES)
        started = time.monotonic()
        # The same tags as the CLI: cgo is off, and no x/net/trace debug pages.
        run_go(["go", "build", "-o", str(binary), "-tags", "osusergo,grpcnotrace",
                "-ldflags", f"-s -w -X {SDK_MODULE}/go/common/version.Version=v{HOST_VERSION}", "."],
               cwd=src, log=folder / "build.log", timeout=None, what=HOST_NAME, unavailable=PythonHostUnavailable)
        (folder / "build-seconds.txt").write_text(f"{time.monotonic() - started:.0f}\n")

    return build_once(folder, binary, build, what=HOST_NAME, unavailable=PythonHostUnavailable)


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
