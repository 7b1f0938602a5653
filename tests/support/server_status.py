"""A Cluster for :func:`clientreg_operator.servers.check_server` alone: no Secrets, status patches recorded."""

from __future__ import annotations

from typing import Any


class ServerStatusCluster:
    def __init__(self) -> None:
        self.patches: list[dict[str, Any]] = []

    def get_secret(self, namespace: str, name: str) -> None:
        return None

    def patch_server_status(self, kind: str, namespace: str | None, name: str, patch: dict[str, Any]) -> None:
        self.patches.append(patch)
