"""Real authorization servers for the interop suite, one per server per session (Keycloak is slow)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.features import FEATURES, Features
from support.peers import PeerServer

from clientreg.devserver import DevServer, DevServerSettings

#: Scopes every suite server lets a client keep; anything else may be dropped (metadata rewriting).
ALLOWED_SCOPES = ["openid", "profile", "email", "api:read"]
SECRET_LIFETIME = 3600


@pytest.fixture(scope="session")
def dev_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PeerServer]:
    iat = secrets.token_urlsafe(16)
    folder = tmp_path_factory.mktemp("dev-as")
    settings = DevServerSettings(initial_access_token=iat, secret_lifetime=SECRET_LIFETIME,
                                 allowed_scopes=ALLOWED_SCOPES, db_path=folder / "dev.sqlite")
    with DevServer(settings) as server:
        yield PeerServer(name="dev", issuer=server.issuer, registration_endpoint=f"{server.issuer}/register",
                         token_endpoint=f"{server.issuer}/token", initial_access_token=iat,
                         log_path=Path(folder / "none.log"))


@pytest.fixture(scope="session")
def oidc_provider_peer() -> Iterator[PeerServer]:
    from support.oidc_provider import running_oidc_provider

    with running_oidc_provider(secret_expires_in=SECRET_LIFETIME, allowed_scopes=ALLOWED_SCOPES, cimd=True) as peer:
        yield peer


@pytest.fixture(scope="session")
def hydra_peer() -> Iterator[PeerServer]:
    from support.hydra import running_hydra

    with running_hydra() as peer:
        yield peer


@pytest.fixture(scope="session")
def keycloak_peer() -> Iterator[PeerServer]:
    from support.keycloak import running_keycloak

    with running_keycloak() as keycloak:
        yield keycloak.create_realm("conformance")


@pytest.fixture(params=list(FEATURES))
def peer(request: pytest.FixtureRequest) -> tuple[PeerServer, Features]:
    name: str = request.param
    fixture = {"dev": "dev_peer", "oidc-provider": "oidc_provider_peer", "hydra": "hydra_peer",
               "keycloak": "keycloak_peer"}[name]
    return request.getfixturevalue(fixture), FEATURES[name]
