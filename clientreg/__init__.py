"""clientreg: declarative OAuth clients through Dynamic Client Registration.

The names below are the public API, the same for the CLI, the Kubernetes operator, the Pulumi
provider and anyone scripting clientreg (``import clientreg``). They are re-exported from the modules
that define them; importing from those modules keeps working, but only the names here are promised.

- Documents: the models users write (:class:`OAuthClient`, :class:`AuthorizationServer`,
  :class:`ClusterAuthorizationServer` and their specs) and :func:`parse_document`.
- Errors: one hierarchy rooted in :class:`ClientregError`; every error renders to one actionable line.
- Talking to servers: :class:`HttpClient` and :class:`HttpSettings` (TLS, retries, rate limits, bounded
  bodies), :class:`AddressPolicy` (which addresses may be connected to), :class:`ServerConnection` (one
  authorization server, discovered lazily), discovery (:func:`discover`, RFC 8414, RFC 9728).
- The loop: :class:`Desired` → :func:`observe` → :func:`plan` → :func:`apply`, or :func:`reconcile`
  for all of it; :func:`next_wakeup` says when time-driven work is due. State: :class:`LocalStore`
  (the CLI's folder) holding one :class:`RegistrationRecord` per client.

Modules whose names start with an underscore (``clientreg._addresses``, ``clientreg._bodies``,
``clientreg._http_settings``, ``clientreg._ratelimit``, ``clientreg._render``, ``clientreg._responses``,
``clientreg._spec_checks``, ``clientreg._transport``, ``clientreg._urls``, ``clientreg._validation``,
``clientreg._wire``) are internal: they may change or disappear in any release. So is
``clientreg.devserver`` (the development authorization server used by tests and demos). Front ends and
tests import from this package or from the public modules, never a ``_private`` name.
"""

from __future__ import annotations

from .discovery import Discovery, discover
from .durations import format_duration, parse_duration
from .engine import Desired, Outcome, Plan, apply, next_wakeup, observe, plan, reconcile
from .errors import (
    ClientGone,
    ClientregError,
    ConfigurationError,
    CredentialsRejected,
    DependencyNotReady,
    DiscoveryError,
    NamespaceNotAllowed,
    NotPermitted,
    OperationUnsupported,
    PolicyViolation,
    ProtocolError,
    RateLimited,
    RegisteredAtAnotherServer,
    RegistrationError,
    StateError,
    TransportError,
)
from .http import HttpClient, HttpSettings
from .record import RegistrationRecord
from .rfc8414 import AuthorizationServerMetadata, fetch_server_metadata
from .rfc9728 import ProtectedResourceMetadata, fetch_resource_metadata
from .server import ServerConnection
from .spec import (
    API_VERSION,
    AuthorizationServer,
    AuthorizationServerSpec,
    ClusterAuthorizationServer,
    ClusterAuthorizationServerSpec,
    Document,
    KeyPair,
    OAuthClient,
    OAuthClientSpec,
    ObjectMeta,
    Rotation,
    SecretKeySelector,
    SecretRef,
    SecretTemplate,
    ServerRef,
    parse_document,
)
from .ssrf import STRICT, USER_CONFIGURED, AddressPolicy
from .store import LocalStore

__version__ = "0.1.0"

__all__ = [
    "API_VERSION",
    "STRICT",
    "USER_CONFIGURED",
    "AddressPolicy",
    "AuthorizationServer",
    "AuthorizationServerMetadata",
    "AuthorizationServerSpec",
    "ClientGone",
    "ClientregError",
    "ClusterAuthorizationServer",
    "ClusterAuthorizationServerSpec",
    "ConfigurationError",
    "CredentialsRejected",
    "DependencyNotReady",
    "Desired",
    "Discovery",
    "DiscoveryError",
    "Document",
    "HttpClient",
    "HttpSettings",
    "KeyPair",
    "LocalStore",
    "NamespaceNotAllowed",
    "NotPermitted",
    "OAuthClient",
    "OAuthClientSpec",
    "ObjectMeta",
    "OperationUnsupported",
    "Outcome",
    "Plan",
    "PolicyViolation",
    "ProtectedResourceMetadata",
    "ProtocolError",
    "RateLimited",
    "RegisteredAtAnotherServer",
    "RegistrationError",
    "RegistrationRecord",
    "Rotation",
    "SecretKeySelector",
    "SecretRef",
    "SecretTemplate",
    "ServerConnection",
    "ServerRef",
    "StateError",
    "TransportError",
    "__version__",
    "apply",
    "discover",
    "fetch_resource_metadata",
    "fetch_server_metadata",
    "format_duration",
    "next_wakeup",
    "observe",
    "parse_document",
    "parse_duration",
    "plan",
    "reconcile",
]
