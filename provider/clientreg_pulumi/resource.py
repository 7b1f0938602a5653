"""``OAuthClient``: one OAuth client registered through RFC 7591 and kept in shape through RFC 7592."""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields
from typing import Any

import pulumi
from pulumi.dynamic import Resource

from . import args
from .provider import OAuthClientProvider

#: Outputs holding credentials: encrypted in the state whatever the inputs were.
#: ``record`` holds every secret above plus the private keys of ``key_pair``.
SECRET_OUTPUTS = ["client_secret", "registration_access_token", "private_key", "record"]

#: Outputs computed by the provider (declared so that they become attributes of the resource).
COMPUTED_OUTPUTS = ("client_id", "client_secret", "client_secret_expires_at", "client_id_issued_at",
                    "registration_client_uri", "registration_access_token", "registered_metadata",
                    "retiring_client_ids", "last_rotation", "next_action_at", "status", "status_message",
                    "private_key", "key_id", "key_algorithm", "published_documents", "record")

Str = pulumi.Input[str] | None
StrList = pulumi.Input[list[pulumi.Input[str]]] | None
StrMap = pulumi.Input[dict[str, pulumi.Input[str]]] | None


@dataclass
class KubernetesSecretArgs:
    """A Kubernetes Secret holding the client's credentials, shaped as the operator's ``secretTemplate``.

    Created with the client, rewritten in the same step as every update and rotation, deleted on
    destroy. ``kubeconfig`` (a path) and ``context`` choose the cluster; without them the usual
    ``KUBECONFIG`` / ``~/.kube/config`` (or the in-cluster ServiceAccount) is used. The keys default to
    ``client_id``, ``client_secret``, ``issuer`` and ``token_endpoint``; set ``issuer_key`` or
    ``token_endpoint_key`` to ``""`` (or list ``issuer`` / ``tokenEndpoint`` in ``omit_keys``) to leave
    that key out. ``extra_data`` values may use
    ``{clientId}``, ``{clientSecret}``, ``{issuer}`` and ``{tokenEndpoint}``.
    """

    name: pulumi.Input[str]
    namespace: Str = "default"
    kubeconfig: Str = None
    context: Str = None
    client_id_key: Str = None
    client_secret_key: Str = None
    issuer_key: Str = None
    token_endpoint_key: Str = None
    labels: StrMap = None
    annotations: StrMap = None
    extra_data: StrMap = None
    omit_keys: StrList = None

    def to_input(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass
class KeyPairArgs:
    """A key pair clientreg generates and holds for ``private_key_jwt`` (RFC 7523 §2.2).

    Needs ``token_endpoint_auth_method="private_key_jwt"``. Its public key is registered as the
    client's ``jwks`` (or, with ``jwks_uri``, goes into ``published_documents`` for you to host); the
    private key is the ``private_key`` output (secret). Rotation replaces the key, not the client.
    """

    algorithm: Str = "ES256"
    """``ES256`` or ``RS256``."""
    rsa_key_size: pulumi.Input[int] | None = None
    """2048 (the default), 3072 or 4096; RS256 only."""

    def to_input(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


class OAuthClient(Resource, module="clientreg", name="OAuthClient"):
    """An OAuth client registered at an authorization server by Dynamic Client Registration.

    ``pulumi up`` registers it (RFC 7591), updates it in place (RFC 7592 PUT), rotates its
    credentials by registering a successor and deleting the old client after ``grace_period``;
    ``pulumi refresh`` shows changes made at the AS; ``pulumi destroy`` deletes it (RFC 7592).
    Changing ``issuer`` or ``registration_endpoint`` registers a new client and deletes the old one.

    The server: ``issuer`` (metadata discovered, RFC 8414 / OpenID Connect Discovery) or
    ``registration_endpoint``, plus an optional ``initial_access_token`` (stored as a secret),
    ``ca_bundle`` (PEM), ``token_endpoint``, ``timeout_seconds``, ``allowed_redirect_hosts`` and
    ``allowed_redirect_schemes`` (the server's redirect policy, checked at preview and before any request).

    The client: the RFC 7591 / OpenID Connect registration metadata in snake_case
    (``client_name``, ``redirect_uris``, ``grant_types``, …); anything without a typed argument
    goes in ``additional_metadata`` by wire name. ``deletion_policy="Orphan"`` leaves the client at
    the AS on destroy.

    Rotation: a new value of ``rotation_trigger`` (any value) rotates on the next ``up``; the first
    ``up`` inside ``rotate_before`` ahead of ``client_secret_expires_at`` rotates (default: once two
    thirds of the secret's lifetime passed); ``rotation_period`` rotates on a schedule. The old client
    keeps working for ``grace_period`` (default 10m) and is deleted by the first ``up`` after it.

    Adoption: a client registered elsewhere is taken over on create from ``adopt_client_id``,
    ``adopt_registration_client_uri`` and ``adopt_registration_access_token``.

    private_key_jwt: ``key_pair=KeyPairArgs(algorithm="ES256")`` with
    ``token_endpoint_auth_method="private_key_jwt"`` generates a key pair; ``private_key`` (secret),
    ``key_id`` and ``key_algorithm`` are what workloads sign their client assertions with.

    Client ID Metadata Documents: ``registration="cimd"`` with ``client_id_url`` registers nothing;
    ``published_documents`` (``{url: JSON text}``, also the JWKS of a ``key_pair`` with ``jwks_uri``)
    is what to serve at those URLs.

    Kubernetes: ``kubernetes_secret=KubernetesSecretArgs(name=..., namespace=...)`` publishes the
    credentials in a Secret shaped like the operator's (same keys and template), kept current by
    every ``up``; ``pulumi refresh`` notices it deleted or edited and the next ``up`` restores it.
    """

    client_id: pulumi.Output[str]
    client_secret: pulumi.Output[str | None]
    client_secret_expires_at: pulumi.Output[int]
    """Seconds since the epoch when the secret stops working; 0 when it never expires."""
    client_id_issued_at: pulumi.Output[int | None]
    registration_client_uri: pulumi.Output[str | None]
    registration_access_token: pulumi.Output[str | None]
    issuer: pulumi.Output[str | None]
    token_endpoint: pulumi.Output[str | None]
    registered_metadata: pulumi.Output[dict[str, Any]]
    """The client metadata as the AS holds it (wire names): the AS may have changed or added values."""
    retiring_client_ids: pulumi.Output[list[str]]
    """Old clients of a rotation, deleted by the first ``up`` after their grace period."""
    last_rotation: pulumi.Output[str | None]
    next_action_at: pulumi.Output[str | None]
    """When the next time-driven action (rotation, deletion of an old client) falls due: the first
    ``pulumi up`` after it carries it out."""
    status: pulumi.Output[str]
    """``InSync``, or the engine's reason (``DriftAtServer`` after a refresh, ``ServerRefusedValue``, …)."""
    status_message: pulumi.Output[str]
    private_key: pulumi.Output[str | None]
    """``key_pair`` only: the current private key, PKCS#8 PEM (secret)."""
    key_id: pulumi.Output[str | None]
    """``key_pair`` only: the ``kid`` of ``private_key``, for the assertion's JWS header."""
    key_algorithm: pulumi.Output[str | None]
    published_documents: pulumi.Output[dict[str, str]]
    """URL → JSON text to serve there: the Client ID Metadata Document of a ``registration="cimd"``
    client, the JWK Set of a ``key_pair`` at ``jwks_uri``. Public keys only."""
    record: pulumi.Output[dict[str, Any]]
    """The registration record the provider keeps between runs (secret: it holds every credential and
    private key)."""

    def __init__(
        self,
        resource_name: str,
        *,
        # --- the authorization server
        issuer: Str = None,
        registration_endpoint: Str = None,
        initial_access_token: Str = None,
        software_statement: Str = None,
        token_endpoint: Str = None,
        ca_bundle: Str = None,
        timeout_seconds: pulumi.Input[float] | None = None,
        allowed_redirect_hosts: StrList = None,
        allowed_redirect_schemes: StrList = None,
        # --- registration metadata (RFC 7591 §2, OpenID Connect Registration §2)
        client_name: Str = None,
        redirect_uris: StrList = None,
        grant_types: StrList = None,
        response_types: StrList = None,
        scope: Str = None,
        token_endpoint_auth_method: Str = None,
        contacts: StrList = None,
        client_uri: Str = None,
        logo_uri: Str = None,
        tos_uri: Str = None,
        policy_uri: Str = None,
        jwks_uri: Str = None,
        jwks: pulumi.Input[dict[str, Any]] | None = None,
        software_id: Str = None,
        software_version: Str = None,
        post_logout_redirect_uris: StrList = None,
        application_type: Str = None,
        subject_type: Str = None,
        id_token_signed_response_alg: Str = None,
        token_endpoint_auth_signing_alg: Str = None,
        default_max_age: pulumi.Input[int] | None = None,
        require_auth_time: pulumi.Input[bool] | None = None,
        initiate_login_uri: Str = None,
        sector_identifier_uri: Str = None,
        additional_metadata: pulumi.Input[dict[str, Any]] | None = None,
        registration: Str = None,
        client_id_url: Str = None,
        key_pair: KeyPairArgs | pulumi.Input[dict[str, Any]] | None = None,
        # --- lifecycle
        rotation_trigger: pulumi.Input[Any] | None = None,
        rotate_before: Str = None,
        rotation_period: Str = None,
        grace_period: Str = None,
        deletion_policy: Str = None,
        # --- adoption of a client registered elsewhere
        adopt_client_id: Str = None,
        adopt_registration_client_uri: Str = None,
        adopt_registration_access_token: Str = None,
        # --- a Kubernetes Secret with the credentials
        kubernetes_secret: KubernetesSecretArgs | pulumi.Input[dict[str, Any]] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        if opts is not None and opts.import_:
            opts, adopt_client_id = import_as_adoption(resource_name, opts, adopt_client_id,
                                                       adopt_registration_client_uri, adopt_registration_access_token)
        given = {name: value for name, value in locals().items()
                 if name not in ("self", "resource_name", "opts", "__class__") and value is not None}
        if isinstance(key_pair, KeyPairArgs):
            given["key_pair"] = key_pair.to_input()
        if isinstance(kubernetes_secret, KubernetesSecretArgs):
            given[args.KUBERNETES_SECRET] = kubernetes_secret.to_input()
        if kubernetes_secret is not None:
            # Written into the Secret's clientreg.dev/owner annotation: the Secret is this resource's only.
            given[args.KUBERNETES_SECRET_OWNER] = owner_name(resource_name)
        props: dict[str, Any] = dict.fromkeys(COMPUTED_OUTPUTS)
        for name, value in given.items():
            # Credentials given as plain strings would otherwise sit in the state's inputs unencrypted.
            props[name] = pulumi.Output.secret(value) if name in args.SECRET_ARGS else value
        props.setdefault("issuer", None)
        props.setdefault("token_endpoint", None)
        options = pulumi.ResourceOptions(additional_secret_outputs=SECRET_OUTPUTS)
        super().__init__(OAuthClientProvider(), resource_name, props, pulumi.ResourceOptions.merge(options, opts))


def import_as_adoption(resource_name: str, opts: pulumi.ResourceOptions, adopt_client_id: Str,
                       registration_client_uri: Str, registration_access_token: Str,
                       ) -> tuple[pulumi.ResourceOptions, Str]:
    """The ``import_`` option, carried out as an adoption of the client with that ID.

    The engine's own import cannot reach a dynamic provider: it reads the resource with no inputs, so Pulumi's
    dynamic-provider host cannot even load the provider (``KeyError: '__provider'``). DCR cannot read a client
    by its ID alone either: RFC 7592 needs its registration client URI and registration access token. So the
    option becomes the ``adopt_*`` arguments, and the engine never sees an import.
    """
    client_id = opts.import_
    if isinstance(adopt_client_id, str) and adopt_client_id != client_id:
        raise pulumi.RunError(f"OAuthClient {resource_name!r}: import_={client_id!r} and adopt_client_id="
                              f"{adopt_client_id!r} name different clients: give one of them")
    if registration_client_uri is None or registration_access_token is None:
        raise pulumi.RunError(
            f"OAuthClient {resource_name!r}: importing client {client_id} needs its RFC 7592 credentials, which "
            "Dynamic Client Registration cannot look up by client ID: set adopt_registration_client_uri and "
            "adopt_registration_access_token (a secret, e.g. pulumi.Config().require_secret(...)); the client is "
            "then read with them and adopted, nothing new is registered")
    unimported = copy.copy(opts)
    unimported.import_ = None
    return unimported, client_id


def owner_name(resource_name: str) -> str:
    """A stable name of one OAuthClient resource: ``pulumi:<project>/<stack>/<resource name>``."""
    return f"pulumi:{pulumi.get_project()}/{pulumi.get_stack()}/{resource_name}"
