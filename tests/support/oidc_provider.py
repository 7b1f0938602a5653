"""node ``oidc-provider`` (panva) as a real RFC 7591/7592 peer for interop tests.

The npm packages are pinned by ``tests/support/oidc-provider/package.json`` and its lock and
installed once with ``npm ci`` into the cache; ``server.mjs`` from the repository is copied next
to the installed ``node_modules`` on every start, so edits to it take effect without a reinstall.

Discovery: oidc-provider answers both ``/.well-known/openid-configuration`` and
``/.well-known/oauth-authorization-server`` APPENDED to the issuer (relative to its mount path).
With the default empty ``issuer_path`` appended and RFC 8414 "inserted" URLs are the same; with
an ``issuer_path`` only the appended ones answer (see server.mjs).
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import httpx

from support.cache import build_lock, component_dir, free_port, is_complete, mark_complete, stop_process, unavailable
from support.peers import PeerServer

PACKAGE_DIR = Path(__file__).parent / "oidc-provider"
START_TIMEOUT = 30.0
# server.mjs exits with this code when the installed oidc-provider lacks the CIMD feature.
_EXIT_CIMD_UNSUPPORTED = 3


class _Default(enum.Enum):
    RANDOM = enum.auto()


RANDOM_IAT = _Default.RANDOM


class _PortTaken(RuntimeError):
    """Another process bound the port between free_port() and node's listen()."""


class CimdUnsupported(RuntimeError):
    """The installed oidc-provider has no Client ID Metadata Document feature."""


def _unavailable(reason: str) -> None:
    unavailable("node oidc-provider", reason)


def oidc_provider_version() -> str:
    """The exact oidc-provider version pinned by the repository's package.json."""
    deps = json.loads((PACKAGE_DIR / "package.json").read_text())["dependencies"]
    return str(deps["oidc-provider"])


def _install_key() -> str:
    # Keyed by the lock as well: bumping a transitive dependency must not reuse an old install.
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((PACKAGE_DIR / name).read_bytes())
    return f"{oidc_provider_version()}-{digest.hexdigest()[:12]}"




def ensure_oidc_provider() -> Path:
    """Install the pinned oidc-provider into the cache once; return the folder holding node_modules."""
    folder = component_dir("oidc-provider", _install_key())
    if is_complete(folder):
        return folder
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise RuntimeError("node and npm are required for the oidc-provider peer (not on PATH)")
    with build_lock(folder):
        if is_complete(folder):
            return folder
        shutil.rmtree(folder / "node_modules", ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(PACKAGE_DIR / name, folder / name)
        with open(folder / "install.log", "wb") as log:
            # --ignore-scripts: nothing in the tree needs install scripts, and none should run.
            subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                cwd=folder,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=600,
            )
        mark_complete(folder)
    return folder


def _install_or_skip() -> Path:
    try:
        return ensure_oidc_provider()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        log = component_dir("oidc-provider", _install_key()) / "install.log"
        _unavailable(f"{exc} (see {log})" if isinstance(exc, subprocess.SubprocessError) else str(exc))
        raise  # unreachable: skip/fail raise


def _place_server_script(folder: Path) -> Path:
    # ESM resolves 'oidc-provider' relative to the script, so the script must sit beside
    # node_modules. Written atomically: a parallel start may be reading the current copy.
    target = folder / "server.mjs"
    source = (PACKAGE_DIR / "server.mjs").read_bytes()
    if not target.exists() or target.read_bytes() != source:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".server-", suffix=".mjs")
        with os.fdopen(fd, "wb") as fh:
            fh.write(source)
        os.replace(tmp, target)
    return target


def _wait_for_discovery(proc: subprocess.Popen[bytes], url: str, log_path: Path) -> dict[str, Any]:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        code = proc.poll()
        if code == _EXIT_CIMD_UNSUPPORTED:
            raise CimdUnsupported(f"oidc-provider {oidc_provider_version()} has no clientIdMetadataDocument")
        if code is not None:
            if "EADDRINUSE" in log_path.read_text(errors="replace"):
                raise _PortTaken(str(log_path))
            raise RuntimeError(f"oidc-provider exited with {code}; see {log_path}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"oidc-provider not serving {url} after {START_TIMEOUT:.0f}s; see {log_path}")
        try:
            resp = httpx.get(url, timeout=2.0)
            if resp.status_code == 200:
                return dict(resp.json())
        except httpx.TransportError:
            pass
        time.sleep(0.1)


@contextlib.contextmanager
def running_oidc_provider(
    *,
    initial_access_token: str | Literal[_Default.RANDOM] | None = RANDOM_IAT,
    rotate_registration_access_token: bool = True,
    secret_expires_in: int | None = None,
    allowed_scopes: list[str] | None = None,
    cimd: bool = False,
    cimd_fetch_allow_loopback: bool = False,
    issuer_path: str = "",
    clock_tolerance: int | None = None,
) -> Iterator[PeerServer]:
    """Run oidc-provider on a free loopback port for the duration of the block.

    - ``initial_access_token``: the Bearer value registration requires (a random one by default);
      ``None`` opens registration to anyone.
    - ``allowed_scopes`` / ``secret_expires_in``: a registration policy that silently drops other
      requested scopes (on POST and PUT) and sets ``client_secret_expires_at = now + N`` (POST
      only). oidc-provider applies policies only to IAT-authorised registrations, so these need
      an initial access token.
    - ``cimd``: enable the experimental Client ID Metadata Document feature;
      ``cimd_fetch_allow_loopback`` lets it fetch documents from 127.0.0.1/localhost, with TLS
      verification off for those hosts only (a self-signed test server is enough).
    - ``issuer_path``: mount below a path (e.g. ``/op``) to exercise path-issuer discovery.
    - ``clock_tolerance``: seconds oidc-provider forgives on expiries (its default is 15).
    """
    iat = secrets.token_urlsafe(24) if initial_access_token is RANDOM_IAT else initial_access_token
    if iat is None and (allowed_scopes is not None or secret_expires_in is not None):
        raise ValueError("allowed_scopes and secret_expires_in are registration policies: they need an IAT")
    if issuer_path and not issuer_path.startswith("/"):
        raise ValueError("issuer_path must start with '/'")
    folder = _install_or_skip()
    node = shutil.which("node")
    if node is None:
        _unavailable("node is not on PATH")
        raise AssertionError("unreachable")
    script = _place_server_script(folder)
    mount = issuer_path.rstrip("/")
    settings = {
        "mountPath": mount,
        "initialAccessToken": iat,
        "rotateRegistrationAccessToken": rotate_registration_access_token,
        "secretExpiresIn": secret_expires_in,
        "allowedScopes": allowed_scopes,
        "clockTolerance": clock_tolerance,
        "cimd": cimd,
        "cimdFetchAllowLoopback": cimd_fetch_allow_loopback,
    }
    # Other servers start concurrently; a port grabbed in between is retried with a new one.
    for attempt in range(3):
        port = free_port()
        env = dict(os.environ)
        env["CLIENTREG_OP_CONFIG"] = json.dumps({**settings, "port": port})
        # Kept after the block (not in a temp folder that vanishes) so a failing test can point at it.
        fd, log_name = tempfile.mkstemp(prefix=f"clientreg-oidc-provider-{port}-", suffix=".log")
        log_path = Path(log_name)
        with os.fdopen(fd, "wb") as log:
            proc = subprocess.Popen([node, str(script)], cwd=folder, env=env, stdout=log, stderr=log)
        discovery = f"http://127.0.0.1:{port}{mount}/.well-known/openid-configuration"
        try:
            metadata = _wait_for_discovery(proc, discovery, log_path)
        except CimdUnsupported as exc:
            _unavailable(str(exc))
            raise
        except _PortTaken:
            if attempt < 2:
                continue
            raise
        except BaseException:
            stop_process(proc)
            raise
        break
    if metadata.get("issuer") != f"http://127.0.0.1:{port}{mount}":
        # Node lost the port to another local server that happens to serve discovery.
        stop_process(proc)
        raise RuntimeError(f"port {port} answers for issuer {metadata.get('issuer')!r}, not oidc-provider")
    try:
        yield PeerServer(
            name="oidc-provider",
            issuer=str(metadata["issuer"]),
            registration_endpoint=str(metadata["registration_endpoint"]),
            token_endpoint=str(metadata["token_endpoint"]),
            initial_access_token=iat,
            log_path=log_path,
            extra={
                "version": oidc_provider_version(),
                "cimd": bool(metadata.get("client_id_metadata_document_supported", False)),
                "rotate_registration_access_token": rotate_registration_access_token,
                "metadata": metadata,
            },
        )
    finally:
        stop_process(proc)

