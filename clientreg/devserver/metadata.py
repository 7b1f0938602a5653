"""Client metadata validation: Authlib's RFC 7591 claims, widened to common OIDC fields and unknown ones.

Real servers differ on unknown metadata (Keycloak rejects, oidc-provider drops); the dev server keeps
it as given, which is the simplest behaviour to test a client against.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from authlib.common.urls import is_valid_url
from authlib.oauth2.rfc6749 import list_to_scope, scope_to_list
from authlib.oauth2.rfc7591 import InvalidClientMetadataError, InvalidRedirectURIError
from authlib.oauth2.rfc7591.claims import ClientMetadataClaims
from joserfc.errors import InvalidClaimError, JoseError

# Issued or managed by the server (RFC 7591 §3.2.1, RFC 7592 §3): never stored as client metadata.
SERVER_MANAGED_FIELDS = frozenset({
    "client_id", "client_secret", "client_id_issued_at", "client_secret_expires_at",
    "registration_access_token", "registration_client_uri", "software_statement",
})

_OIDC_REGISTRATION_FIELDS = [
    "application_type", "post_logout_redirect_uris", "sector_identifier_uri", "subject_type",
    "id_token_signed_response_alg", "id_token_encrypted_response_alg", "id_token_encrypted_response_enc",
    "userinfo_signed_response_alg", "userinfo_encrypted_response_alg", "userinfo_encrypted_response_enc",
    "request_object_signing_alg", "request_object_encryption_alg", "request_object_encryption_enc",
    "token_endpoint_auth_signing_alg", "default_max_age", "require_auth_time", "default_acr_values",
    "initiate_login_uri", "request_uris", "frontchannel_logout_uri", "frontchannel_logout_session_required",
    "backchannel_logout_uri", "backchannel_logout_session_required",
]
_STRING_FIELDS = frozenset({
    "client_name", "scope", "token_endpoint_auth_method", "software_id", "software_version",
    "application_type", "subject_type", "token_endpoint_auth_signing_alg",
})
_URI_FIELDS = frozenset({
    "client_uri", "logo_uri", "tos_uri", "policy_uri", "jwks_uri", "sector_identifier_uri",
    "initiate_login_uri", "frontchannel_logout_uri", "backchannel_logout_uri",
})
_STRING_LIST_FIELDS = frozenset({
    "grant_types", "response_types", "contacts", "post_logout_redirect_uris", "request_uris",
    "default_acr_values",
})
# Schemes that would turn a redirect into script execution in a browser.
_FORBIDDEN_REDIRECT_SCHEMES = frozenset({"javascript", "data", "vbscript"})


def _is_string_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _redirect_uri_problem(uri: str) -> str | None:
    """RFC 6749 §3.1.2 and RFC 8252 §7: absolute, no fragment; private-use schemes allowed for native apps."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "is not a URI"
    if not parts.scheme:
        return "is not absolute"
    if parts.fragment or uri.endswith("#"):
        return "has a fragment"
    if parts.scheme.lower() in _FORBIDDEN_REDIRECT_SCHEMES:
        return "uses a forbidden scheme"
    if parts.scheme.lower() in ("http", "https") and not parts.hostname:
        return "has no host"
    if "@" in parts.netloc:
        return "has userinfo"
    return None


class ClientMetadata(ClientMetadataClaims):  # type: ignore[misc]
    """Authlib's RFC 7591 metadata claims, plus OIDC fields, keeping unknown fields as given."""

    REGISTERED_CLAIMS = ClientMetadataClaims.REGISTERED_CLAIMS + _OIDC_REGISTRATION_FIELDS

    def validate(self, now: int | None = None, leeway: int = 0) -> None:
        # Shapes first: Authlib's validators iterate lists and parse strings without checking types.
        self._validate_shapes()
        super().validate(now, leeway)
        for uri in self.get("post_logout_redirect_uris") or []:
            if _redirect_uri_problem(uri):
                raise InvalidClaimError("post_logout_redirect_uris")

    def _validate_shapes(self) -> None:
        for key, value in self.items():
            base = key.partition("#")[0]  # RFC 7591 §2.2 language tags: "client_name#ja-Jpan-JP"
            if base in _STRING_LIST_FIELDS and not _is_string_list(value):
                raise InvalidClaimError(key)
            if base in _STRING_FIELDS | _URI_FIELDS and not isinstance(value, str):
                raise InvalidClaimError(key)
            # Authlib checks the untagged URI fields only.
            if base in _URI_FIELDS and key != base and not is_valid_url(value, fragments_allowed=False):
                raise InvalidClaimError(key)

    def validate_redirect_uris(self) -> None:
        # RFC 7591 §3.2.2 has its own error code for these, which Authlib folds into invalid_client_metadata.
        uris = self.get("redirect_uris")
        if uris is None:
            return
        if not _is_string_list(uris):
            raise InvalidRedirectURIError("redirect_uris must be an array of strings")
        for uri in uris:
            problem = _redirect_uri_problem(uri)
            if problem:
                raise InvalidRedirectURIError(f"A redirect URI {problem}.")

    def validate_jwks(self) -> None:
        super().validate_jwks()
        # Authlib refuses private asymmetric keys; a symmetric "k" is a secret just the same.
        keys = self["jwks"].get("keys") if isinstance(self.get("jwks"), dict) else None
        if isinstance(keys, list) and any(isinstance(key, dict) and "k" in key for key in keys):
            raise InvalidClaimError("jwks")

    def get_registered_claims(self) -> dict[str, Any]:
        return {key: value for key, value in self.items() if key not in SERVER_MANAGED_FIELDS}


def validate_client_metadata(data: Mapping[str, Any], *, auth_methods: Sequence[str],
                             allowed_scopes: Sequence[str] | None) -> dict[str, Any]:
    """The metadata to store for a registration or an RFC 7592 update, as the server rewrites it.

    Only the auth method is checked against what the server supports: grant and response types are
    recorded for flows run elsewhere, and scopes outside ``allowed_scopes`` are dropped, not refused.
    """
    options = ClientMetadata.get_claims_options({"token_endpoint_auth_methods_supported": list(auth_methods)})
    claims = ClientMetadata(dict(data), {}, options, {})
    try:
        claims.validate()
    except JoseError as error:
        raise InvalidClientMetadataError(error.description) from error
    metadata = claims.get_registered_claims()
    if allowed_scopes is not None and "scope" in metadata:
        kept = [word for word in scope_to_list(metadata["scope"]) if word in allowed_scopes]
        if kept:
            metadata["scope"] = list_to_scope(kept)
        else:
            del metadata["scope"]
    return metadata
