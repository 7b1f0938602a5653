"""The operator image, built by ``scripts/build-image`` once per set of inputs and kept in the cache.

    cd tests && python -m support.build_all operator-image

The archive lands in ``~/.cache/clientreg/operator-image-<hash>/``, where ``<hash>`` covers everything
that goes into the image: the build script, pyproject.toml and the first-party packages. A commit that
changes none of them reuses the archive; the Debian packages and the wheels of dependencies come from
their registries at build time (pip resolves the same ranges pyproject.toml declares), so two builds
from the same inputs on different days may differ in dependency patch releases, not in what the
project ships.

The Debian tools the build and tests/e2e/test_image.py need (mmdebstrap, umoci, podman, runc) are installed
with apt-get when missing and when running as root (CI and this project's machines); elsewhere the
tests that need them skip, or fail in CI.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

from support.cache import build_lock, component_dir, is_complete, mark_complete

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scripts" / "build-image"
#: What the image is made of: the build script, the packaging metadata and every first-party package.
INPUT_FILES = ("scripts/build-image", "pyproject.toml", "README.md")
INPUT_TREES = ("clientreg", "clientreg_kube", "operator/clientreg_operator", "provider/clientreg_pulumi")
ARCHIVE_NAME = "clientreg-operator.oci.tar"

#: Debian package → a command it provides (how "is it installed" is checked).
BUILD_PACKAGES = {"mmdebstrap": "mmdebstrap", "umoci": "umoci"}
#: runc, not crun: crun refuses this machine's hybrid cgroup v1 layout; podman is told --runtime runc.
#: podman runs the image alone (--help, its user); Pods run on the node of support/node.py.
RUN_PACKAGES = {"podman": "podman", "runc": "runc", "iproute2": "ip"}


class ImageUnavailable(RuntimeError):
    """The image cannot be built or run here (no root for apt-get, a Debian tool missing)."""


def ensure_debian_packages(packages: dict[str, str]) -> None:
    """apt-get install the packages whose command is missing (one `apt-get update` first)."""
    missing = sorted(pkg for pkg, command in packages.items() if shutil.which(command) is None)
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ImageUnavailable(f"missing Debian packages {', '.join(missing)} (apt-get install them as root)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-q"], env=env, check=True, capture_output=True)
    result = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
                            env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise ImageUnavailable(f"apt-get install {' '.join(missing)} failed:\n{result.stdout[-2000:]}{result.stderr}")


def input_hash() -> str:
    """sha256 over the paths and contents of every input file (sorted): the cache key of the image."""
    files = [REPO / f for f in INPUT_FILES if (REPO / f).is_file()]
    for tree in INPUT_TREES:
        files += [p for p in (REPO / tree).rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix not in {".pyc", ".pyo"}]
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(str(path.relative_to(REPO)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def ensure_operator_image() -> Path:
    """The OCI archive of the operator image for the current sources, built once into the cache."""
    folder = component_dir("operator-image", input_hash())
    archive = folder / ARCHIVE_NAME
    if is_complete(folder) and archive.is_file():
        (folder / ".complete").touch()  # last used: what _prune goes by
        return archive
    # One apt-get run for the build's and the test runner's tools (podman, runc, ip).
    ensure_debian_packages({**BUILD_PACKAGES, **RUN_PACKAGES})
    with build_lock(folder):
        if is_complete(folder) and archive.is_file():
            return archive
        folder.mkdir(parents=True, exist_ok=True)
        log = folder / "build.log"
        started = time.monotonic()
        with open(log, "w") as out:
            result = subprocess.run([str(BUILD_SCRIPT), str(archive)], cwd=REPO, stdout=out,
                                    stderr=subprocess.STDOUT)
        if result.returncode != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
            raise ImageUnavailable(f"scripts/build-image failed ({result.returncode}); end of {log}:\n{tail}")
        (folder / "build-seconds").write_text(f"{time.monotonic() - started:.0f}\n")
        mark_complete(folder)
    _prune(folder)
    return archive


def _prune(keep: Path, older_than: float = 24 * 3600) -> None:
    """Every source change makes a new 60 MiB archive: drop other builds not used for a day (a day, not
    at once: worktrees sharing this cache may be testing other sources right now)."""
    for other in keep.parent.glob("operator-image-*"):
        marker = other / ".complete"
        if other != keep and marker.exists() and time.time() - marker.stat().st_mtime > older_than:
            shutil.rmtree(other, ignore_errors=True)


def archive_image(archive: Path) -> tuple[str, str]:
    """(name, image ID) recorded in the archive: the name containerd and podman give it on import, and
    the digest of its config, which is the image ID podman and containerd report."""
    with tarfile.open(archive) as tar:
        def blob(digest: str) -> dict[str, object]:
            member = tar.extractfile(f"./blobs/sha256/{digest.split(':', 1)[1]}")
            assert member is not None
            loaded: dict[str, object] = json.load(member)
            return loaded

        index_file = tar.extractfile("./index.json")
        assert index_file is not None
        entry = json.load(index_file)["manifests"][0]
        manifest = blob(entry["digest"])
        config = manifest["config"]
        assert isinstance(config, dict)
        return str(entry["annotations"]["io.containerd.image.name"]), str(config["digest"])


def main() -> None:
    archive = ensure_operator_image()
    name, image_id = archive_image(archive)
    print(f"{name} {image_id} {archive} ({archive.stat().st_size / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
