"""The one mapping between spec fields and RFC 7591 / OpenID Connect Registration wire names.

The spec models (:mod:`clientreg.spec`) declare metadata as flat camelCase fields; what is sent, read
back and compared for drift is keyed by wire name. Both directions go through :data:`WIRE_NAMES`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["REDIRECT_GRANTS", "SET_VALUED", "WIRE_NAMES", "camel_for", "request_metadata"]

#: camelCase spec field → RFC 7591 / OIDC Registration wire name. The only place that mapping lives.
WIRE_NAMES: dict[str, str] = {
    "clientName": "client_name",
    "redirectUris": "redirect_uris",
    "grantTypes": "grant_types",
    "responseTypes": "response_types",
    "scope": "scope",
    "tokenEndpointAuthMethod": "token_endpoint_auth_method",
    "contacts": "contacts",
    "clientUri": "client_uri",
    "logoUri": "logo_uri",
    "tosUri": "tos_uri",
    "policyUri": "policy_uri",
    "jwksUri": "jwks_uri",
    "jwks": "jwks",
    "softwareId": "software_id",
    "softwareVersion": "software_version",
    "postLogoutRedirectUris": "post_logout_redirect_uris",
    "applicationType": "application_type",
    "subjectType": "subject_type",
    "idTokenSignedResponseAlg": "id_token_signed_response_alg",
    "tokenEndpointAuthSigningAlg": "token_endpoint_auth_signing_alg",
    "defaultMaxAge": "default_max_age",
    "requireAuthTime": "require_auth_time",
    "initiateLoginUri": "initiate_login_uri",
    "sectorIdentifierUri": "sector_identifier_uri",
}

#: Wire fields whose value is a set on the wire (order carries no meaning).
SET_VALUED = frozenset({"grant_types", "response_types", "redirect_uris", "contacts", "post_logout_redirect_uris"})

REDIRECT_GRANTS = frozenset({"authorization_code", "implicit"})


def request_metadata(declared: dict[str, Any]) -> dict[str, Any]:
    """What is sent: the declared metadata plus what it implies on the wire.

    RFC 7591 §2 defaults response_types to ["code"], so a client declaring only non-redirect grants
    (client_credentials, …) must say ``response_types: []`` explicitly or servers such as oidc-provider
    demand redirect_uris. Implied values are sent but never compared for drift: only what the user
    declared is.
    """
    out = dict(declared)
    grants = declared.get("grant_types")
    if grants is not None and not REDIRECT_GRANTS & set(grants):
        out.setdefault("response_types", [])
    return out


def camel_for(wire: str) -> str:
    return next((c for c, w in WIRE_NAMES.items() if w == wire), wire)
