"""The documents users write: ``AuthorizationServer``, ``ClusterAuthorizationServer``, ``OAuthClient``.

The same models back the CLI's YAML, the CRDs (their OpenAPI schema is generated from here) and,
in snake_case, the Pulumi resource arguments. Registration metadata are flat camelCase fields with
a 1:1 mapping to RFC 7591 / OpenID Connect Registration wire names (:data:`WIRE_NAMES`).

The models live here; their validators are in :mod:`clientreg._spec_checks`, the wire-name mapping in
:mod:`clientreg._wire` and document parsing in :mod:`clientreg._validation`. This module re-exports
what front ends import from it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any, Literal, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from ._spec_checks import (
    Duration,
    HostPattern,
    RedirectUri,
    SchemeName,
    WebUrl,
    check_cimd_url,
    check_grants,
    check_key_pair,
    check_scope,
)
from ._validation import parse_kind
from ._validation import validation_message as validation_message
from ._wire import REDIRECT_GRANTS as REDIRECT_GRANTS
from ._wire import SET_VALUED as SET_VALUED
from ._wire import WIRE_NAMES as WIRE_NAMES
from ._wire import camel_for
from ._wire import request_metadata as request_metadata
from .durations import parse_duration
from .jwks import PublicJwks
from .names import (
    Annotations,
    DisplayName,
    DisplayValues,
    KubeLabel,
    KubeName,
    Labels,
    SecretData,
    SecretKey,
    ShortText,
    Text,
)
from .openapi import openapi_schema as openapi_schema
from .tenancy import AllowedNamespaces

API_VERSION = "clientreg.dev/v1alpha1"
GROUP = "clientreg.dev"
VERSION = "v1alpha1"


class _Model(BaseModel):
    # camelCase on the wire of the YAML/CRD, snake_case in Python (and in Pulumi): both accepted.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


GrantType = Literal["authorization_code", "implicit", "password", "client_credentials", "refresh_token",
                    "urn:ietf:params:oauth:grant-type:jwt-bearer",
                    "urn:ietf:params:oauth:grant-type:saml2-bearer",
                    "urn:ietf:params:oauth:grant-type:device_code",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                    "urn:openid:params:grant-type:ciba"]
TokenEndpointAuthMethod = Literal["none", "client_secret_basic", "client_secret_post", "client_secret_jwt",
                                  "private_key_jwt", "tls_client_auth", "self_signed_tls_client_auth"]
SHARED_SECRET_METHODS = frozenset({"client_secret_basic", "client_secret_post", "client_secret_jwt"})


# --- shared pieces ---------------------------------------------------------------------------------

class SecretKeySelector(_Model):
    """A key of a Secret in the same namespace as the referring resource (ClusterAuthorizationServer: the
    cluster resource namespace)."""

    name: KubeName = Field(description="Name of the Secret.")
    key: SecretKey = Field(description="Key within the Secret's data.")


class SecretRef(_Model):
    secret_key_ref: SecretKeySelector


class ObjectMeta(BaseModel):
    """The part of Kubernetes metadata clientreg reads. Other fields (uid, resourceVersion…) are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    name: KubeName
    namespace: KubeLabel | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


# --- AuthorizationServer -----------------------------------------------------------------------------

class AuthorizationServerSpec(_Model):
    """How to reach one authorization server and with which credentials to register there."""

    issuer: WebUrl | None = Field(None, description="Issuer identifier; metadata is discovered from it "
                                  "(RFC 8414, OpenID Connect Discovery, or RFC 9728 for an MCP resource URL).")
    registration_endpoint: WebUrl | None = Field(
        None, description="RFC 7591 registration endpoint, when the AS publishes no metadata or to override it.")
    token_endpoint: WebUrl | None = Field(
        None, description="Token endpoint, when it cannot be discovered (published to workloads).")
    initial_access_token: SecretRef | None = Field(
        None, description="RFC 7591 §3 initial access token, sent as a Bearer token on registration.")
    software_statement: SecretRef | None = Field(
        None, description="RFC 7591 §2.3 software statement (a signed JWT) sent with every registration.")
    ca_bundle: str | None = Field(None, description="PEM bundle to trust for this server instead of the "
                                  "system store.")
    allowed_redirect_hosts: list[HostPattern] = Field(
        default_factory=list, description="When set, the host of every redirect, post-logout redirect and "
        "initiate-login URI must match one: a host name, '*.example.com' (one or more labels before "
        "example.com), or an IP address; internationalized names as A-labels (xn--...). Private-use schemes "
        "are then refused unless listed in allowedRedirectSchemes. Enforced in plan and apply, for DCR and "
        "CIMD clients, before any request.")
    allowed_redirect_schemes: list[SchemeName] = Field(
        default_factory=list, description="Private-use URI schemes of native apps (RFC 8252 §7.1, reverse "
        "domain names such as com.example.app) that redirect URIs may use. When set, or when "
        "allowedRedirectHosts is set, no other private-use scheme is allowed.")
    requests_per_second: float | None = Field(None, gt=0, description="Client-side rate limit towards this AS.")
    max_concurrency: int | None = Field(None, ge=1, description="Most requests in flight towards this AS.")
    timeout_seconds: float = Field(10.0, gt=0, le=300, description="Per-request timeout.")

    @model_validator(mode="after")
    def _issuer_or_endpoint(self) -> AuthorizationServerSpec:
        if not self.issuer and not self.registration_endpoint:
            raise ValueError("set issuer (discovered) or registrationEndpoint (given directly)")
        return self


class AuthorizationServer(_Model):
    api_version: Literal["clientreg.dev/v1alpha1"] = "clientreg.dev/v1alpha1"
    kind: Literal["AuthorizationServer"] = "AuthorizationServer"
    metadata: ObjectMeta
    spec: AuthorizationServerSpec


class ClusterAuthorizationServerSpec(AuthorizationServerSpec):
    """An AuthorizationServerSpec that OAuthClients of several namespaces may share."""

    allowed_namespaces: AllowedNamespaces | None = Field(
        None, description="Namespaces whose OAuthClients may register here: listed by name or matched by "
        "labels. Unset: every namespace.")


class ClusterAuthorizationServer(_Model):
    api_version: Literal["clientreg.dev/v1alpha1"] = "clientreg.dev/v1alpha1"
    kind: Literal["ClusterAuthorizationServer"] = "ClusterAuthorizationServer"
    metadata: ObjectMeta
    spec: ClusterAuthorizationServerSpec


# --- OAuthClient ---------------------------------------------------------------------------------------

class ServerRef(_Model):
    kind: Literal["AuthorizationServer", "ClusterAuthorizationServer"] = "AuthorizationServer"
    name: KubeName


class Rotation(_Model):
    """When to replace the client's credentials. Rotation registers a new client, publishes it, and
    deletes the old one after ``gracePeriod`` (no server rotates secrets through RFC 7592)."""

    rotate_before: Duration | None = Field(
        None, description="Rotate this long before client_secret_expires_at. Default: when two thirds of the "
        "secret's lifetime have passed.")
    period: Duration | None = Field(None, description="Rotate this long after the last registration, "
                                    "whether or not the secret expires.")
    grace_period: Duration = Field("10m", description="How long the old client keeps working after rotation.")

    # Parsed once, when the document is validated: plan() and the front ends work with timedeltas and never
    # parse a string the user wrote (a malformed one fails here, naming the field).
    _rotate_before: timedelta | None = PrivateAttr(None)
    _period: timedelta | None = PrivateAttr(None)
    _grace: timedelta = PrivateAttr(timedelta(minutes=10))

    @model_validator(mode="after")
    def _parse_durations(self) -> Rotation:
        self._rotate_before = parse_duration(self.rotate_before) if self.rotate_before is not None else None
        self._period = parse_duration(self.period) if self.period is not None else None
        self._grace = parse_duration(self.grace_period)
        return self

    @property
    def rotate_before_delta(self) -> timedelta | None:
        """``rotateBefore`` as a timedelta; None when unset (rotate once two thirds of the lifetime passed)."""
        return self._rotate_before

    @property
    def period_delta(self) -> timedelta | None:
        """``period`` as a timedelta; None when unset (no time-based rotation)."""
        return self._period

    @property
    def grace_delta(self) -> timedelta:
        """``gracePeriod`` as a timedelta."""
        return self._grace

    def grace(self) -> timedelta:
        return self._grace


class KeyPair(_Model):
    """A key pair clientreg generates and holds for ``private_key_jwt`` (RFC 7523 §2.2).

    The public key is registered as the client's ``jwks`` (or, with ``jwksUri``, published there); the
    private key is handed to workloads instead of a client secret. ``rotation.period`` and rotation
    requests replace the key; the old one stays in the JWKS until ``rotation.gracePeriod`` is over.
    """

    algorithm: Literal["ES256", "RS256"] = Field(
        "ES256", description="JWS algorithm of the key (RFC 7518 §3.1). ES256 is small and supported by every "
        "server clientreg is tested with.")
    rsa_key_size: Literal[2048, 3072, 4096] = Field(2048, description="Modulus size for RS256 keys.")


class SecretTemplate(_Model):
    """Shape of the Secret workloads read (operator, and the Pulumi provider's Kubernetes option)."""

    labels: Labels = Field(default_factory=dict)
    annotations: Annotations = Field(default_factory=dict)
    client_id_key: SecretKey = "client_id"
    client_secret_key: SecretKey = "client_secret"
    issuer_key: SecretKey | None = "issuer"
    token_endpoint_key: SecretKey | None = "token_endpoint"
    extra_data: SecretData = Field(
        default_factory=dict, description="More keys; values may use {clientId}, {clientSecret}, {issuer}, "
        "{tokenEndpoint}.")
    # A list, not null keys: client-side `kubectl apply` (and Argo CD) drops nulls, the Secret got the key.
    omit_keys: list[Literal["issuer", "tokenEndpoint"]] = Field(
        default_factory=list, description="Optional values to leave out of the Secret: issuer, tokenEndpoint. "
        "Works with every apply mode (a null issuerKey survives server-side apply only).")

    def optional_key(self, value: Literal["issuer", "tokenEndpoint"]) -> str | None:
        """The Secret key for an optional value, or None when the template leaves it out."""
        key = self.issuer_key if value == "issuer" else self.token_endpoint_key
        return None if value in self.omit_keys else key


class OAuthClientSpec(_Model):
    server_ref: ServerRef = Field(description="The AuthorizationServer (same namespace) or "
                                  "ClusterAuthorizationServer to register at.")
    registration: Literal["dcr", "cimd"] = Field(
        "dcr", description="dcr: RFC 7591 registration. cimd: a Client ID Metadata Document published at "
        "clientIdUrl.")
    client_id_url: WebUrl | None = Field(None, description="CIMD only: the https URL that is the client_id.")

    client_name: DisplayName | None = None
    redirect_uris: list[RedirectUri] | None = None
    grant_types: list[GrantType] | None = None
    response_types: list[ShortText] | None = None
    scope: Text | None = None
    token_endpoint_auth_method: TokenEndpointAuthMethod | None = None
    contacts: list[ShortText] | None = None
    client_uri: WebUrl | None = None
    logo_uri: WebUrl | None = None
    tos_uri: WebUrl | None = None
    policy_uri: WebUrl | None = None
    jwks_uri: WebUrl | None = None
    jwks: PublicJwks | None = None
    software_id: ShortText | None = None
    software_version: ShortText | None = None
    post_logout_redirect_uris: list[RedirectUri] | None = None
    application_type: Literal["web", "native"] | None = None
    subject_type: Literal["public", "pairwise"] | None = None
    id_token_signed_response_alg: ShortText | None = None
    token_endpoint_auth_signing_alg: ShortText | None = None
    default_max_age: int | None = Field(None, ge=0)
    require_auth_time: bool | None = None
    initiate_login_uri: WebUrl | None = None
    sector_identifier_uri: WebUrl | None = None
    additional_metadata: DisplayValues = Field(
        default_factory=dict, description="More registration metadata, by wire name (client_name#ja, …).")

    key_pair: KeyPair | None = Field(
        None, description="private_key_jwt only: clientreg generates the client's key pair, registers its "
        "public key (jwks, or the JWKS published at jwksUri) and rotates it with an overlap.")

    secret_name: KubeName | None = Field(None, description="Secret receiving the credentials. Default: "
                                    "<name>-oauth.")
    secret_template: SecretTemplate | None = None
    rotation: Rotation | None = None
    deletion_policy: Literal["Delete", "Orphan"] = Field(
        "Delete", description="Delete: the client is deleted at the AS with the resource. Orphan: it is kept.")

    @field_validator("scope")
    @classmethod
    def _scope(cls, v: str | None) -> str | None:
        return check_scope(v)

    @field_validator("additional_metadata")
    @classmethod
    def _additional(cls, v: dict[str, Any]) -> dict[str, Any]:
        managed = {"client_id", "client_secret", "registration_access_token", "registration_client_uri",
                   "client_id_issued_at", "client_secret_expires_at"}
        clash = sorted(set(v) & (set(WIRE_NAMES.values()) | managed))
        if clash:
            raise ValueError(f"{clash} must not be set here: use the typed fields "
                             f"({', '.join(camel_for(w) for w in clash)}) or leave server-issued values alone")
        return v

    @model_validator(mode="after")
    def _consistency(self) -> OAuthClientSpec:
        check_grants(self)
        if self.jwks is not None and self.jwks_uri is not None:
            raise ValueError("jwks and jwksUri must not both be set (RFC 7591 §2)")
        if self.key_pair is not None:
            check_key_pair(self)
        if self.registration == "cimd":
            if not self.client_id_url:
                raise ValueError("registration: cimd needs clientIdUrl")
            check_cimd_url(self.client_id_url)
            if self.token_endpoint_auth_method in SHARED_SECRET_METHODS:
                raise ValueError("a Client ID Metadata Document client cannot use a shared secret: use "
                                 "tokenEndpointAuthMethod none or private_key_jwt")
        elif self.client_id_url:
            raise ValueError("clientIdUrl is only for registration: cimd")
        return self

    def wire_metadata(self) -> dict[str, Any]:
        """The RFC 7591 metadata this spec declares: only fields the user set, by wire name."""
        out: dict[str, Any] = {}
        dumped = self.model_dump(by_alias=True, exclude_none=True)
        for camel, wire in WIRE_NAMES.items():
            if camel in dumped:
                out[wire] = dumped[camel]
        out.update(self.additional_metadata)
        return out

    def spec_hash(self) -> str:
        """Identifies what was last applied: the declared metadata and the registration kind."""
        shape: dict[str, Any] = {"m": self.wire_metadata(), "r": self.registration, "u": self.client_id_url}
        if self.key_pair is not None:
            # Only when set, so that the hashes of clients without keys (and their records) do not move.
            shape["k"] = self.key_pair.model_dump(mode="json")
        canonical = json.dumps(shape, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class OAuthClient(_Model):
    api_version: Literal["clientreg.dev/v1alpha1"] = "clientreg.dev/v1alpha1"
    kind: Literal["OAuthClient"] = "OAuthClient"
    metadata: ObjectMeta
    spec: OAuthClientSpec

    @property
    def secret_name(self) -> str:
        return self.spec.secret_name or f"{self.metadata.name}-oauth"


Document = AuthorizationServer | ClusterAuthorizationServer | OAuthClient
KINDS: dict[str, type[AuthorizationServer] | type[ClusterAuthorizationServer] | type[OAuthClient]] = {
    "AuthorizationServer": AuthorizationServer,
    "ClusterAuthorizationServer": ClusterAuthorizationServer,
    "OAuthClient": OAuthClient,
}


def parse_document(data: Any, *, source: str | None = None) -> Document:
    """Validate one decoded document, raising ConfigurationError that names the field and the rule."""
    return cast(Document, parse_kind(data, KINDS, api_version=API_VERSION, source=source))
