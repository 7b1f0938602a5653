"""One folder of documents, an AuthorizationServer and one OAuthClient ``team/worker``, for CLI tests against
the in-process dev AS (tests/unit/test_cli_semantics.py, tests/interop/test_liveness_devserver.py)."""

from __future__ import annotations

from pathlib import Path

import httpx

from clientreg.devserver import DevServer


def documents(folder: Path, issuer: str, *, policy: str = "Delete", extra: str = "", grace: str = "1h") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "all.yaml").write_text(f"""
apiVersion: clientreg.dev/v1alpha1
kind: AuthorizationServer
metadata: {{name: dev, namespace: team}}
spec: {{issuer: '{issuer}'}}
---
apiVersion: clientreg.dev/v1alpha1
kind: OAuthClient
metadata: {{name: worker, namespace: team}}
spec:
  serverRef: {{name: dev}}
  grantTypes: [client_credentials]
  deletionPolicy: {policy}
  rotation: {{gracePeriod: {grace}}}
{extra}""")
    return folder


def at_server(server: DevServer) -> list[str]:
    """The client IDs the dev AS holds (its /_dev/ helper), sorted."""
    ids = httpx.get(f"{server.dev_url}/clients", timeout=10).json()
    assert isinstance(ids, list)
    return sorted(ids)
