"""Ory Hydra v2, built from the Go module proxy and started in memory as an interop peer.

Hydra is the peer that deviates most from RFC 7592 (no initial access tokens, no
``registration_client_uri`` in GET/PUT answers, a new registration access token on every PUT),
which is exactly why clientreg tests against it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from support.cache import (
    build_lock,
    component_dir,
    free_port,
    go_build_tools_module,
    is_complete,
    mark_complete,
    stop_process,
    unavailable,
)
from support.peers import PeerServer

HYDRA_MODULE = "github.com/ory/hydra/v2"
# The only version the Go module proxy lists for the /v2 module path (checked with go list -m
# -versions); later Hydra releases are not published under it.
HYDRA_VERSION = "v2.3.0"
# Copied from Hydra v2.3.0's own go.mod: replace directives only apply in the main module, and
# Hydra is built and tested only against Ory's fork of pop.
# Its other replace (hydra-client-go/v2 => ./internal/httpclient) points into a folder that the
# module zip does not contain; the published hydra-client-go/v2 v2.2.1 that go.mod requires is
# used instead and compiles (only the CLI commands and jwk helpers import it).
HYDRA_REPLACES = {
    "github.com/gobuffalo/pop/v6": "github.com/ory/pop/v6 v6.2.1-0.20241121111754-e5dfc0f3344b",
}
# The tags Hydra's own Makefile builds and tests with; sqlite (cgo) is the driver behind
# DSN=memory.
HYDRA_TAGS = "sqlite,sqlite_omit_load_extension"
START_TIMEOUT = 90.0


def _unavailable(reason: str) -> None:
    unavailable("Ory Hydra", reason)




def ensure_hydra() -> Path:
    """Return the path of a cached ``hydra`` binary, building it once.

    Cold: about 6 CPU-minutes of compiling (sqlite's C code included) plus module downloads;
    measured 17 min wall on a 2-core machine shared with other builds. Warm: a file check.
    """
    folder = component_dir("hydra", HYDRA_VERSION)
    binary = folder / "hydra"
    if is_complete(folder) and binary.exists():
        return binary
    with build_lock(folder):
        if is_complete(folder) and binary.exists():
            return binary
        if not folder.exists():
            folder.mkdir(parents=True)
        (folder / ".complete").unlink(missing_ok=True)
        ldflags = f"-X {HYDRA_MODULE}/driver/config.Version={HYDRA_VERSION}"
        go_build_tools_module(
            workdir=folder / "tools",
            module_name="tools/hydra",
            requires={HYDRA_MODULE: HYDRA_VERSION},
            replaces=HYDRA_REPLACES,
            packages={HYDRA_MODULE: binary},
            tags=HYDRA_TAGS,
            ldflags=ldflags,
            cgo=True,
            log=folder / "build.log",
        )
        mark_complete(folder)
    return binary


def hydra_binary_or_skip() -> Path:
    """The binary for tests: skip (or fail in CI) with the reason when it cannot be built."""
    try:
        return ensure_hydra()
    except (RuntimeError, subprocess.CalledProcessError, OSError) as exc:
        log = component_dir("hydra", HYDRA_VERSION) / "build.log"
        _unavailable(f"{exc} (see {log})" if isinstance(exc, subprocess.CalledProcessError) else str(exc))
        raise  # unreachable: skip/fail raise


class _PortTaken(RuntimeError):
    """Another process bound the port between free_port() and Hydra's listen()."""


def _wait_ready(proc: subprocess.Popen[bytes], public_url: str, admin_url: str, log_path: Path) -> dict[str, Any]:
    """Wait for the admin health check and the discovery document; return the latter.

    The discovery issuer must be ours: should Hydra have lost its port to another local server,
    that server must not be mistaken for Hydra.
    """
    deadline = time.monotonic() + START_TIMEOUT
    admin_ready = False
    while True:
        if proc.poll() is not None:
            if "address already in use" in log_path.read_text(errors="replace"):
                raise _PortTaken(str(log_path))
            raise RuntimeError(f"hydra exited with {proc.returncode}; see {log_path}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"hydra not ready after {START_TIMEOUT:.0f}s; see {log_path}")
        try:
            if not admin_ready:
                admin_ready = httpx.get(f"{admin_url}/health/ready", timeout=2.0).status_code == 200
            if admin_ready:
                # The first discovery request makes Hydra generate its id-token signing key (RSA,
                # >10 s on a loaded 2-core machine); a client timeout cancels that generation and
                # the next request starts over, so this one may take all the time that is left.
                remaining = max(2.0, deadline - time.monotonic())
                resp = httpx.get(f"{public_url}/.well-known/openid-configuration", timeout=remaining)
                if resp.status_code == 200:
                    metadata = dict(resp.json())
                    if metadata.get("issuer") != public_url:
                        raise RuntimeError(f"{public_url} is not our Hydra: {resp.text[:200]}")
                    return metadata
        except (httpx.TransportError, ValueError):
            pass
        time.sleep(0.2)



def _config(public_port: int, admin_port: int, default_scope: list[str]) -> dict[str, Any]:
    public_url = f"http://127.0.0.1:{public_port}"
    return {
        "dsn": "memory",
        "log": {"level": "info", "leak_sensitive_values": True},
        "serve": {
            "public": {"host": "127.0.0.1", "port": public_port},
            "admin": {"host": "127.0.0.1", "port": admin_port},
        },
        # Hydra echoes urls.self.issuer verbatim as the discovery issuer (a trailing slash
        # included, checked); without one it equals the issuer derived from the public URL.
        # No login/consent URLs: only client_credentials is exercised and --dev does not need them.
        "urls": {"self": {"issuer": public_url, "public": public_url}},
        "secrets": {"system": [secrets.token_hex(24)]},
        "strategies": {"access_token": "opaque"},
        # No anonymous usage reports to ory.sh from test runs (they would only time out here).
        "sqa": {"opt_out": True},
        "oidc": {"dynamic_client_registration": {"enabled": True, "default_scope": default_scope}},
    }


@contextlib.contextmanager
def running_hydra(*, default_scope: list[str] | None = None) -> Iterator[PeerServer]:
    """Start ``hydra serve all --dev`` in memory with dynamic client registration enabled.

    Hydra has no initial access tokens: registration on the public port is open to anyone.
    ``default_scope`` is what a client gets when it registers (or PUTs) without ``scope``;
    by default every scope the tests use, so client_credentials works for such clients too.
    """
    binary = hydra_binary_or_skip()
    if default_scope is None:
        default_scope = ["openid", "offline", "offline_access", "api:read", "api:write"]
    env = dict(os.environ)
    env["DSN"] = "memory"
    with tempfile.TemporaryDirectory(prefix="clientreg-hydra-") as tmp:
        # Other servers start concurrently; a port grabbed in between is retried with new ones.
        for attempt in range(3):
            public_port, admin_port = free_port(), free_port()
            while admin_port == public_port:
                admin_port = free_port()
            config_path = Path(tmp) / "hydra.yaml"
            config_path.write_text(yaml.safe_dump(_config(public_port, admin_port, default_scope)))
            # Kept after the block (unlike the temp folder) so a failing test can point at it.
            fd, log_name = tempfile.mkstemp(prefix=f"clientreg-hydra-{public_port}-", suffix=".log")
            log_path = Path(log_name)
            with os.fdopen(fd, "wb") as log:
                proc = subprocess.Popen(
                    [str(binary), "serve", "all", "--dev", "--config", str(config_path)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=tmp,
                )
            public_url = f"http://127.0.0.1:{public_port}"
            admin_url = f"http://127.0.0.1:{admin_port}"
            try:
                metadata = _wait_ready(proc, public_url, admin_url, log_path)
                break
            except _PortTaken:
                stop_process(proc)
                if attempt == 2:
                    raise
            except BaseException:
                stop_process(proc)
                raise
        try:
            yield PeerServer(
                name="hydra",
                issuer=str(metadata["issuer"]),
                # Not advertised: Hydra's discovery has no registration_endpoint even with
                # dynamic client registration enabled.
                registration_endpoint=f"{public_url}/oauth2/register",
                token_endpoint=str(metadata["token_endpoint"]),
                initial_access_token=None,
                log_path=log_path,
                extra={
                    "admin_url": admin_url,
                    "version": HYDRA_VERSION,
                    "default_scope": default_scope,
                    "metadata": metadata,
                },
            )
        finally:
            stop_process(proc)


def admin_client_ids(admin_url: str) -> list[str]:
    """Every client ID Hydra holds, through its admin API (all pages; Hydra v2 paginates with Link headers).

    A list, not a set: a duplicate would be a Hydra bug worth seeing, not something to hide.
    """
    ids: list[str] = []
    seen: set[str] = set()
    url: str | None = f"{admin_url}/admin/clients?page_size=500"
    with httpx.Client(timeout=60) as http:
        while url and url not in seen:
            seen.add(url)
            resp = http.get(url)
            resp.raise_for_status()
            page = resp.json()
            ids += [str(c["client_id"]) for c in page]
            following = resp.links.get("next", {}).get("url")
            url = str(httpx.URL(admin_url).join(following)) if following and page else None
    return ids
