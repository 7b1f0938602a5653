"""The documents users write: ``AuthorizationServer``, ``ClusterAuthorizationServer``, ``OAuthClient``.

The same models back the CLI's YAML, the CRDs (their OpenAPI schema is generated from here) and,
in snake_case, the Pulumi resource arguments. Registration metadata are flat camelCase fields with
a 1:1 mapping to RFC 7591 / OpenID Connect Registration wire names (:data:`WIRE_NAMES`).
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import SplitResult, urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from .durations import parse_duration
from .errors import ConfigurationError, redact
from .http import is_loopback_host
from .jwks import PublicJwks
from .names import (
    SUBDOMAIN,
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
from .redirects import check_redirect_uri, check_scheme_name, check_uri_text, host_pattern
from .redirects import quoted as _quoted
from .tenancy import AllowedNamespaces

API_VERSION = "clientreg.dev/v1alpha1"
GROUP = "clientreg.dev"
VERSION = "v1alpha1"

_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5B\x5D-\x7E]+$")  # RFC 6749 §3.3 scope-token


class _Model(BaseModel):
    # camelCase on the wire of the YAML/CRD, snake_case in Python (and in Pulumi): both accepted.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


# --- small validators ----------------------------------------------------------------------------

def _check_url_text(value: str) -> SplitResult:
    check_uri_text(value)  # whitespace, control, bidi and invisible characters, backslashes
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - a malformed port raises only when read
    except ValueError:
        raise ValueError(f"{_quoted(value)} is not a valid URL") from None
    if parts.username or parts.password:
        # RFC 9110 §4.2.4: no userinfo in http(s) URIs; it would also put a password in logs and at the AS.
        raise ValueError(f"{_quoted(value)} must not carry user:password@ (RFC 9110 §4.2.4)")
    return parts


def _check_web_url(value: str, *, allow_loopback_http: bool = True) -> str:
    parts = _check_url_text(value)
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"{_quoted(value)} must be an absolute URL (scheme and host)")
    if parts.scheme == "http" and allow_loopback_http and is_loopback_host(parts.hostname):
        return value
    if parts.scheme != "https":
        raise ValueError(f"{_quoted(value)} must use https (plain http is allowed only for loopback hosts)")
    return value


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


WebUrl = Annotated[str, AfterValidator(_check_web_url)]
RedirectUri = Annotated[str, AfterValidator(check_redirect_uri)]  # RFC 6749 §3.1.2, RFC 8252 §7
HostPattern = Annotated[str, AfterValidator(host_pattern)]
SchemeName = Annotated[str, AfterValidator(check_scheme_name)]  # RFC 8252 §7.1
Duration = Annotated[str, AfterValidator(_check_duration)]

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

    def grace(self) -> timedelta:
        return parse_duration(self.grace_period)


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
        if v is None:
            return v
        words = v.split(" ")
        bad = [w for w in words if not _SCOPE_TOKEN.match(w)]
        if bad:
            raise ValueError(f"scope is space-separated scope tokens (RFC 6749 §3.3); bad: {bad!r}")
        return v

    @field_validator("additional_metadata")
    @classmethod
    def _additional(cls, v: dict[str, Any]) -> dict[str, Any]:
        managed = {"client_id", "client_secret", "registration_access_token", "registration_client_uri",
                   "client_id_issued_at", "client_secret_expires_at"}
        clash = sorted(set(v) & (set(WIRE_NAMES.values()) | managed))
        if clash:
            raise ValueError(f"{clash} must not be set here: use the typed fields "
                             f"({', '.join(_camel_for(w) for w in clash)}) or leave server-issued values alone")
        return v

    @model_validator(mode="after")
    def _consistency(self) -> OAuthClientSpec:
        grants = set(self.grant_types or ["authorization_code"])
        responses = set(self.response_types or (["code"] if "authorization_code" in grants else []))
        # OpenID Connect Registration §2: response types and grant types must agree.
        if any("code" in r.split() for r in responses) and "authorization_code" not in grants:
            raise ValueError("responseTypes includes 'code', so grantTypes must include authorization_code "
                             "(OpenID Connect Registration §2)")
        if any({"token", "id_token"} & set(r.split()) for r in responses) and "implicit" not in grants:
            raise ValueError("responseTypes includes 'token' or 'id_token', so grantTypes must include implicit")
        if "authorization_code" in grants and self.response_types is not None and \
                not any("code" in r.split() for r in responses):
            raise ValueError("grantTypes includes authorization_code, so responseTypes must include 'code'")
        if grants & {"authorization_code", "implicit"} and not self.redirect_uris \
                and self.registration == "dcr":
            raise ValueError("redirectUris is required for the authorization_code and implicit grants "
                             "(RFC 7591 §2); for machine-to-machine clients set grantTypes: [client_credentials]")
        if self.jwks is not None and self.jwks_uri is not None:
            raise ValueError("jwks and jwksUri must not both be set (RFC 7591 §2)")
        if self.key_pair is not None:
            _check_key_pair(self)
        if self.registration == "cimd":
            if not self.client_id_url:
                raise ValueError("registration: cimd needs clientIdUrl")
            _check_cimd_url(self.client_id_url)
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


def _camel_for(wire: str) -> str:
    return next((c for c, w in WIRE_NAMES.items() if w == wire), wire)


def _check_key_pair(spec: OAuthClientSpec) -> None:
    assert spec.key_pair is not None
    if spec.token_endpoint_auth_method != "private_key_jwt":
        raise ValueError("keyPair is only for tokenEndpointAuthMethod: private_key_jwt (RFC 7523 §2.2); "
                         f"tokenEndpointAuthMethod is {spec.token_endpoint_auth_method!r}")
    if spec.jwks is not None:
        raise ValueError("jwks must not be set with keyPair: clientreg derives the client's jwks from the key "
                         "pair it holds (set jwksUri instead to publish the key set yourself)")
    alg = spec.token_endpoint_auth_signing_alg
    if alg is not None and alg != spec.key_pair.algorithm:
        raise ValueError(f"tokenEndpointAuthSigningAlg {alg!r} differs from keyPair.algorithm "
                         f"{spec.key_pair.algorithm!r}: the AS would refuse every assertion (RFC 7591 §2)")


def _check_cimd_url(url: str) -> None:
    """draft-ietf-oauth-client-id-metadata-document §3: https, a path, no fragment, no dot segments."""
    parts = urlsplit(url)
    if parts.scheme != "https" and not is_loopback_host(parts.hostname):
        raise ValueError(f"clientIdUrl {url!r} must use https (CIMD §3)")
    if parts.path in ("", "/"):
        raise ValueError(f"clientIdUrl {url!r} must contain a path component (CIMD §3)")
    if parts.fragment or "#" in url:
        raise ValueError(f"clientIdUrl {url!r} must not contain a fragment (CIMD §3)")
    if any(seg in (".", "..") for seg in parts.path.split("/")):
        raise ValueError(f"clientIdUrl {url!r} must not contain dot segments (CIMD §3)")
    if parts.username or parts.password:
        raise ValueError(f"clientIdUrl {url!r} must not contain a username or password (CIMD §3)")


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


def validation_message(exc: ValidationError) -> tuple[str, str]:
    """(field path, rule) of the first error, with camelCase field names as the user wrote them."""
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown field (check the spelling; registration metadata without a typed field goes in " \
              "spec.additionalMetadata by wire name)"
    elif first["type"] == "missing":
        msg = "required field is missing"
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if msg.startswith((".", "[")) and ": " in msg:  # a validator naming a member below the field (jwks.py)
        loc, msg = loc + msg.split(": ", 1)[0], msg.split(": ", 1)[1]
    more = len(exc.errors()) - 1
    if more:
        msg += f" (and {more} more problem{'s' if more > 1 else ''})"
    return loc or "(document)", msg


def _shown(value: Any) -> str:
    """A value the user wrote where a string belongs, fit for a message (a container only by its type)."""
    if isinstance(value, str | float | bool) or value is None or (isinstance(value, int) and value.bit_length() < 64):
        return redact(repr(value), 80)
    return f"a {type(value).__name__}"


def parse_document(data: Any, *, source: str | None = None) -> Document:
    """Validate one decoded document, raising ConfigurationError that names the field and the rule."""
    if not isinstance(data, dict):
        raise ConfigurationError("a document must be a mapping with apiVersion, kind, metadata and spec", source=source)
    kind = data.get("kind")
    name = (data.get("metadata") or {}).get("name") if isinstance(data.get("metadata"), dict) else None
    # Only a known kind and a valid name make a label: anything else could hold anything (a YAML alias bomb,
    # control characters for the terminal); the error about it escapes it.
    label_kind = kind if isinstance(kind, str) and kind in KINDS else None
    label = f"{label_kind}/{name}" if label_kind and SUBDOMAIN.problem(name) is None else label_kind
    if not isinstance(kind, str) or kind not in KINDS:
        raise ConfigurationError(f"unknown kind {_shown(kind)}; expected one of {', '.join(KINDS)} (or v1 Secret)",
                                 source=source, document=label, field="kind")
    if data.get("apiVersion") != API_VERSION:
        raise ConfigurationError(f"apiVersion must be {API_VERSION}, got {_shown(data.get('apiVersion'))}",
                                 source=source, document=label, field="apiVersion")
    try:
        return KINDS[kind].model_validate(data)
    except ValidationError as exc:
        field, rule = validation_message(exc)
        raise ConfigurationError(rule, source=source, document=label, field=field, rule=rule) from None
