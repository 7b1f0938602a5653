"""The operator's CustomResourceDefinitions: the shared generator (:mod:`clientreg_kube.crds`) with the
status this operator writes (:mod:`.status`)."""

from __future__ import annotations

from typing import Any

from clientreg_kube import crds as _generator

from .status import AuthorizationServerStatus, OAuthClientStatus, openapi_status_schema


def _statuses() -> dict[str, dict[str, Any]]:
    return {"client_status": openapi_status_schema(OAuthClientStatus),
            "server_status": openapi_status_schema(AuthorizationServerStatus)}


def crds() -> list[dict[str, Any]]:
    """The three CRDs, as dicts ready for the API server."""
    return _generator.crds(**_statuses())


def files() -> dict[str, str]:
    """File name → YAML text, one CRD per file (Helm installs everything under crds/)."""
    return _generator.files(**_statuses())
