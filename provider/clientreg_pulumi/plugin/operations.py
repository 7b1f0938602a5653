"""OAuthClient's lifecycle for the plugin: the dynamic provider's steps, with camelCase names and secrets.

The logic is the dynamic provider's, step for step (:mod:`clientreg_pulumi.lifecycle` for create, update and
delete, :mod:`clientreg_pulumi.refresh` for read, :class:`clientreg_pulumi.provider.OAuthClientProvider` for
diff), and through them the core's one reconcile loop. What this module adds is what a real provider owes
the engine and a dynamic one cannot give: schema names, field-level check failures, a detailed diff naming
drifted properties, ``deleteBeforeReplace``, and ``pulumi import`` by client ID.
All functions take and return snake_case property maps; :mod:`.server` renames them at the wire.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from clientreg import report

from .. import args, lifecycle, refresh
from ..argnames import camel, snake_to_camel_words
from ..args import UNKNOWN
from ..lifecycle import OAuthClientError
from ..outputs import CLIENT_OUTPUTS, outputs, record_of
from ..provider import OAuthClientProvider, pending_work
from ..resource import COMPUTED_OUTPUTS, SECRET_OUTPUTS
from .config import ProviderConfig

#: What `pulumi import` reads the client's RFC 7592 credentials from (config: clientreg:import*).
IMPORT_TOKEN_VAR = "CLIENTREG_IMPORT_REGISTRATION_ACCESS_TOKEN"
IMPORT_URI_VAR = "CLIENTREG_IMPORT_REGISTRATION_CLIENT_URI"
#: Outputs (snake_case) always sent as secrets, whatever the inputs were.
SECRET_NAMES = frozenset({*SECRET_OUTPUTS, *args.SECRET_ARGS})


@dataclass
class Diff:
    changes: bool
    replaces: list[str] = field(default_factory=list)
    stables: list[str] = field(default_factory=list)
    delete_before_replace: bool = False
    #: Property → replaced?: every input that differs, and the reason for work no input shows.
    detailed: dict[str, bool] = field(default_factory=dict)


def owner_of(urn: str) -> str:
    """The stable name the Secret's owner annotation carries, as the dynamic provider's ``owner_name``:
    ``pulumi:<project>/<stack>/<resource name>``, from ``urn:pulumi:<stack>::<project>::<type>::<name>``."""
    parts = urn.split("::")
    if len(parts) < 4:
        return f"pulumi:{urn}"
    stack = parts[0].rsplit(":", 1)[-1]
    return f"pulumi:{parts[1]}/{stack}/{parts[-1]}"


def check(urn: str, news: Mapping[str, Any], config: ProviderConfig) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The inputs to use (provider defaults filled in) and the field errors, each naming the camelCase
    argument, from the same models the CLI validates a clientreg.yaml with."""
    props = {**config.server_defaults(news), **news}
    if props.get(args.KUBERNETES_SECRET):
        props[args.KUBERNETES_SECRET_OWNER] = owner_of(urn)
    found = [(camel(name), pulumi_words(rule)) for name, rule in args.problems(props)
             if name != args.KUBERNETES_SECRET_OWNER]
    if not any(props.get(name) for name in ("issuer", "registration_endpoint", "client_id_url")):
        # One failure that also names the provider's configuration, instead of the core's "set issuer or
        # registrationEndpoint" alone.
        found = [(p, r) for p, r in found if p not in ("issuer", "registrationEndpoint")]
        found.append(("issuer", "no authorization server: set issuer (or registrationEndpoint) on the resource, "
                      "or `pulumi config set clientreg:issuer <url>` for every client of the stack"))
    return props, found


def pulumi_words(message: str) -> str:
    """A message of the core or of the dynamic provider, naming the plugin's camelCase arguments."""
    return snake_to_camel_words(args.in_pulumi_words(message))


def diff(olds: Mapping[str, Any], news: Mapping[str, Any], now: Any) -> Diff:
    """The dynamic provider's decision (replace vs update, by the core's rules), with the detail the engine
    shows in `preview --diff`: after a refresh the drifted properties hold their live values in ``olds``."""
    decided = OAuthClientProvider().diff("", dict(olds), dict(news))
    names = (*args.ECHOED_ARGS, *args.INTERNAL_ARGS)
    changed = args.changed_args(olds, news, tuple(names))
    detailed = {camel(name): name in (decided.replaces or []) for name in changed
                if name != args.KUBERNETES_SECRET_OWNER}
    pending = pending_work(olds, news, now)
    if pending and not detailed:
        # Work no argument shows (a rotation falls due, a failed step, a deleted Secret): the engine still
        # lists a property, the status that asks for it.
        detailed["status"] = False
    replaces = [camel(name) for name in decided.replaces or []]
    # A replacement publishing its Secret where the old client's is would be deleted with the old client,
    # which Pulumi deletes after creating the new one: delete first when both use the same Secret.
    same_secret = bool(replaces) and _same_secret(olds, news)
    return Diff(changes=bool(decided.changes), replaces=replaces,
                stables=[camel(name) for name in decided.stables or []],
                delete_before_replace=same_secret, detailed=detailed)


def _same_secret(olds: Mapping[str, Any], news: Mapping[str, Any]) -> bool:
    try:
        old, new = args.secret_place(olds), args.secret_place(news)
    except ValueError:
        return False
    return old is not None and new is not None and old.same_place(new)


def create(props: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return lifecycle.create(props)


def update(olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
    return lifecycle.update(olds, news)


def delete(props: dict[str, Any]) -> None:
    lifecycle.delete(props)


def read(id_: str, props: dict[str, Any], config: ProviderConfig) -> dict[str, Any] | None:
    """A refresh (the state's outputs in ``props``), or ``pulumi import`` (nothing but the ID)."""
    if record_of(props) is None:
        return import_client(id_, config)
    return refresh.read(id_, props)


def import_client(client_id: str, config: ProviderConfig) -> dict[str, Any]:
    """The outputs of a client registered elsewhere, found by its ID: one RFC 7592 read with the registration
    access token given as the secret ``clientreg:importRegistrationAccessToken``."""
    # The environment first: `pulumi import` runs with the provider configuration of the last `up`, and a
    # variable of the one command is stored nowhere.
    token = os.environ.get(IMPORT_TOKEN_VAR) or config.get("import_registration_access_token")
    if not token:
        raise OAuthClientError(
            f"cannot import client {client_id}: Dynamic Client Registration (RFC 7592) reads, updates and deletes "
            "a client only with the registration access token the AS returned when it was registered, and no AS "
            "hands it out again; a client ID alone opens nothing. Give it to this import: "
            f"`{IMPORT_TOKEN_VAR}=<token> pulumi import ...` (and {IMPORT_URI_VAR} when the AS's "
            "registration_client_uri is not <registrationEndpoint>/<client ID>), or the secret config "
            "clientreg:importRegistrationAccessToken, which takes effect after the next `pulumi up`")
    props = {**config.server_defaults({}), "adopt_client_id": client_id,
             "adopt_registration_access_token": token}
    uri = (os.environ.get(IMPORT_URI_VAR) or config.get("import_registration_client_uri")
           or _default_client_uri(client_id, config))
    props["adopt_registration_client_uri"] = uri
    with lifecycle.connection(props, for_registration=False) as server, \
            lifecycle.explained(f"could not import client {client_id}"):
        record = lifecycle.adopt(props, server)
    declared = {name: record.server_metadata[wire] for wire in record.server_metadata
                if (name := args.arg_name(wire)) is not None}
    status = report.Status(True, False, "Imported", "imported: the next `pulumi up` lays the declared "
                           "arguments over what the AS holds")
    server_args = {k: v for k, v in props.items() if k in args.SERVER_ARGS}
    return outputs({**server_args, **declared}, record, status)


def import_inputs(outs: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs `pulumi import` records (and writes into the generated program): the declared metadata as
    the AS holds it, and the server."""
    names = {*args.METADATA_ARGS, *args.SERVER_ARGS}
    return {k: v for k, v in outs.items() if k in names and v is not None}


def _default_client_uri(client_id: str, config: ProviderConfig) -> str:
    endpoint = config.get("registration_endpoint")
    if not endpoint:
        raise OAuthClientError(f"cannot import client {client_id}: set {IMPORT_URI_VAR} (the client's RFC 7592 "
                               "registration_client_uri), or clientreg:registrationEndpoint")
    # Percent-quoted whole: no "/", "?" or "#" of an ID can move the request elsewhere at the AS.
    return str(endpoint).rstrip("/") + "/" + quote(client_id, safe="")


def preview_create(props: Mapping[str, Any]) -> dict[str, Any]:
    """What `preview` shows for a new client: the inputs, every computed output not known yet."""
    return {**{name: UNKNOWN for name in COMPUTED_OUTPUTS}, **props}


def preview_update(olds: Mapping[str, Any], news: Mapping[str, Any]) -> dict[str, Any]:
    """What `preview` shows for an update: the old outputs under the new inputs; the credentials not known
    yet when the update registers a new client (a rotation), the status never known before the AS answers."""
    outs = {**olds, **news, "status": UNKNOWN, "status_message": UNKNOWN}
    decided = OAuthClientProvider().diff("", dict(olds), dict(news))
    if not decided.stables:  # the client outputs may change: a rotation is due or asked for
        outs.update({name: UNKNOWN for name in (*CLIENT_OUTPUTS, "registration_access_token", "record",
                                                "retiring_client_ids")})
    return outs
