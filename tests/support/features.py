"""What each real server can do, declared for the conformance suite (cert-manager style)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Features:
    """What a server can do, declared per server the way cert-manager's conformance suite does."""

    initial_access_token: bool
    secret_expiry: bool          # can be made to issue expiring secrets
    rewrites_scope: bool         # drops disallowed scopes rather than refusing the registration
    unknown_metadata: str        # kept | dropped | rejected
    client_credentials: bool = True
    advertises_registration_endpoint: bool = True  # Hydra serves /oauth2/register unadvertised


FEATURES = {
    "dev": Features(initial_access_token=True, secret_expiry=True, rewrites_scope=True, unknown_metadata="kept"),
    "oidc-provider": Features(initial_access_token=True, secret_expiry=True, rewrites_scope=True,
                              unknown_metadata="dropped"),
    "hydra": Features(initial_access_token=False, secret_expiry=False, rewrites_scope=False,
                      unknown_metadata="dropped", advertises_registration_endpoint=False),
    "keycloak": Features(initial_access_token=True, secret_expiry=False, rewrites_scope=False,
                         unknown_metadata="rejected"),
}
