"""A client registered at an AS behind clientreg's back: what adoption and ``pulumi import`` take over."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from clientreg import rfc7591
from clientreg.http import HttpClient


@dataclass(frozen=True)
class Elsewhere:
    """The registration's answer, its RFC 7592 credentials known to be there (taking over needs both)."""

    client_id: str
    client_secret: SecretStr | None
    registration_client_uri: str
    registration_access_token: SecretStr


def register_elsewhere(registration_endpoint: str, initial_access_token: str, metadata: Mapping[str, Any]) -> Elsewhere:
    """RFC 7591 registration of ``metadata``, as another tool (or a person with curl) would have done it."""
    http = HttpClient()
    try:
        info = rfc7591.register(http, registration_endpoint, metadata,
                                initial_access_token=SecretStr(initial_access_token))
    finally:
        http.close()
    assert info.registration_access_token is not None and info.registration_client_uri, "no RFC 7592 credentials"
    return Elsewhere(info.client_id, info.client_secret, info.registration_client_uri, info.registration_access_token)
