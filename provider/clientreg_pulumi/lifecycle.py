"""create, update and delete: one run of the core's loop (:func:`clientreg.engine.reconcile`) each, plus the
Kubernetes Secret of ``kubernetes_secret`` (after the AS, in the same step; a Secret name taken by someone
else fails them before the AS is asked anything; see :mod:`clientreg_pulumi.kube_secret`).

The engine persists through a ``save`` callback after every AS answer; here that callback keeps the newest
record in memory and the outputs returned at the end are what Pulumi writes. A dynamic provider cannot hand
back partial state with an error, so when the AS changed credentials and a later step failed, the new state
is returned anyway (status ``Failed``, retried by the next ``up``) instead of losing a registration access
token the AS will not give again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import pulumi
from pydantic import SecretStr, ValidationError

from clientreg import report, rfc7592
from clientreg.engine import Desired, next_wakeup, reconcile
from clientreg.errors import ClientregError, ConfigurationError
from clientreg.record import RegistrationRecord
from clientreg.server import ServerConnection
from clientreg.ssrf import USER_CONFIGURED

from . import args
from .outputs import STATUS_FAILED, credentials_of, outputs, record_of

if TYPE_CHECKING:
    from types import ModuleType

#: The program's author named the AS: loopback and private servers are theirs to use, but no URL (nor a lying
#: discovery document) makes the provider connect to link-local addresses such as 169.254.169.254.
ADDRESS_POLICY = USER_CONFIGURED


class OAuthClientError(Exception):
    """An operation failed for a reason the message alone explains."""


def create(props: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    want = desired(props)
    place = secret_place(props)
    owners = secret_owners(props) if place is not None else ()
    named = f" {props['client_name']!r}" if props.get("client_name") else ""
    if place is not None:
        with kube_step(f"could not register the client{named}") as kube:
            kube.check_free(place, owners)
    with connection(props) as server:
        record = None
        if props.get("adopt_client_id"):
            with explained("could not adopt client " + str(props["adopt_client_id"])):
                record = adopt(props, server)
        operation = f"adopt client {record.client_id}" if record else f"register the client{named}"
        outs = _reconcile(want, record, props, server, operation=operation)
    if place is not None:
        outs = _publish_secret(outs, place, owners, before=None)
    return (outs["client_id"] if record is None else record.client_id), outs


def update(olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
    record = record_of(olds)
    if record is None:
        raise OAuthClientError("the state of this client holds no registration record: remove it with "
                               "`pulumi state delete <urn>`, then take the client over with the adopt_* "
                               "arguments (or let `pulumi up` register a new one)")
    want = desired(news)
    operation = f"update client {record.client_id}"
    place, old_place = secret_place(news), secret_place(olds, quiet=True)
    owners = secret_owners(news, olds) if place is not None else secret_owners(olds)
    if place is not None:
        with kube_step(f"could not {operation}") as kube:
            kube.check_free(place, owners, record)
    before = credentials_of(record)
    with connection(news) as server:
        outs = _reconcile(want, record, news, server, operation=operation)
    if old_place is not None and (place is None or not place.same_place(old_place)):
        # Moved or dropped: the old Secret goes first (a new kubeconfig may reach the same cluster).
        _withdraw_secret(old_place, owners, fail=False)
    if place is not None:
        outs = _publish_secret(outs, place, owners, before=before)
    return outs


def delete(props: dict[str, Any]) -> None:
    record = record_of(props)
    place = secret_place(props, quiet=True)
    if place is not None:
        # First: failing here leaves everything as it was, and the next destroy tries again.
        _withdraw_secret(place, secret_owners(props), fail=True)
    if record is None:
        return
    policy: Literal["Delete", "Orphan"] = "Orphan" if props.get("deletion_policy") == "Orphan" else "Delete"
    want = Desired(key="pulumi", metadata={}, spec_hash=record.spec_hash, deleting=True, deletion_policy=policy)
    with connection(props, for_registration=False) as server, \
            explained(f"could not delete client {record.client_id} (deletion_policy='Orphan' leaves it "
                      "at the AS)"):
        # Nothing to persist: on success Pulumi drops the resource, on failure it keeps the old state.
        reconcile(want, record, server, lambda _: None)
    if policy == "Orphan":
        pulumi.log.info(orphaned_message(record))


def orphaned_message(record: RegistrationRecord) -> str:
    """What destroy of a ``deletion_policy="Orphan"`` client says: the engine itself reports "deleted"."""
    retiring = f" (and its old clients {', '.join(r.client_id for r in record.retiring)})" if record.retiring else ""
    return (f"client {record.client_id}{retiring} is kept at the AS (deletion_policy='Orphan'): it was removed "
            "from the stack only and still works; delete it at the AS when it is no longer needed")


# --- the pieces --------------------------------------------------------------------------------------

@contextlib.contextmanager
def explained(what: str) -> Iterator[None]:
    """Turn the core's one-line errors into provider errors (the engine shows the message to the user)."""
    try:
        yield
    except ClientregError as exc:
        raise OAuthClientError(f"{what}: {args.in_pulumi_words(str(exc))}") from None


def desired(props: Mapping[str, Any]) -> Desired:
    try:
        return args.desired(props)
    except ValidationError as exc:  # check() reports these first; this guards a skipped check
        found = args.problems(props) or [("", str(exc))]
        raise OAuthClientError("; ".join(f"{prop}: {rule}" if prop else rule for prop, rule in found)) from None


@contextlib.contextmanager
def connection(props: Mapping[str, Any], *, for_registration: bool = True) -> Iterator[ServerConnection]:
    try:
        spec = args.server_spec(props)
    except ValidationError as exc:
        found = args.problems(props)
        raise OAuthClientError("; ".join(f"{p}: {r}" for p, r in found) or str(exc)) from None
    # The IAT and software statement only serve registration; read and delete never see them.
    server = ServerConnection.for_spec(
        spec, name="pulumi", address_policy=ADDRESS_POLICY,
        initial_access_token=args.secret(props, "initial_access_token") if for_registration else None,
        software_statement=str(props["software_statement"]) if for_registration and props.get(
            "software_statement") else None)
    try:
        yield server
    finally:
        server.close()


def secret_place(props: Mapping[str, Any], *, quiet: bool = False) -> args.SecretPlace | None:
    """The declared Secret; ``quiet`` for old outputs, where a value that no longer parses means none."""
    try:
        place = args.secret_place(props)
        if place is not None and not props.get(args.KUBERNETES_SECRET_OWNER):
            raise ValueError("the owner of the Secret is unknown: declare the client with "
                             "clientreg_pulumi.OAuthClient, which sets kubernetes_secret_owner")
        return place
    except ValueError as exc:
        if quiet:
            return None
        raise OAuthClientError(f"kubernetes_secret: {exc}") from None


def secret_owners(*props: Mapping[str, Any]) -> tuple[str, ...]:
    """The names this resource claims its Secret under: the current one first, then a former one. Only
    asked for when :func:`secret_place` found a Secret in the first ``props``, so that one always has a name."""
    return tuple(dict.fromkeys(str(p[args.KUBERNETES_SECRET_OWNER]) for p in props
                               if p.get(args.KUBERNETES_SECRET_OWNER)))


@contextlib.contextmanager
def kube_step(what: str) -> Iterator[ModuleType]:
    """The Kubernetes half of the provider, imported on first use; its failures as provider errors."""
    try:
        from . import kube_secret
    except ImportError as exc:
        raise OAuthClientError(f"{what}: kubernetes_secret needs the kubernetes extra ({exc}): install "
                               "clientreg with '[pulumi,kubernetes]' (docs/pulumi.md, Install)") from None
    try:
        yield kube_secret
    except kube_secret.KubeSecretError as exc:
        raise OAuthClientError(f"{what}: {exc}") from None


def _publish_secret(outs: dict[str, Any], place: args.SecretPlace, owners: tuple[str, ...], *,
                    before: tuple[Any, ...] | None) -> dict[str, Any]:
    """Write the Secret for the record in ``outs``. When that fails after the AS handed out credentials the
    state must keep, the step succeeds with status Failed (the next `up` writes the Secret); otherwise it fails."""
    record = record_of(outs)
    assert record is not None
    try:
        with kube_step(f"could not write the Secret of client {record.client_id}") as kube:
            kube.publish(record, place, owners)
    except OAuthClientError as exc:
        if before is not None and credentials_of(record) == before:
            raise
        pulumi.log.warn(f"{exc}; the new credentials are kept, the next `pulumi up` retries")
        return {**outs, "status": STATUS_FAILED, "status_message": str(exc)}
    return outs


def _withdraw_secret(place: args.SecretPlace, owners: tuple[str, ...], *, fail: bool) -> None:
    try:
        with kube_step(f"could not delete Secret {place.namespace}/{place.name}") as kube:
            note = kube.withdraw(place, owners)
    except OAuthClientError as exc:
        if fail:
            raise
        pulumi.log.warn(str(exc))
        return
    if note:
        pulumi.log.warn(note)


def adopt(props: Mapping[str, Any], server: ServerConnection) -> RegistrationRecord:
    """A record for a client registered elsewhere, from one RFC 7592 read with its own credentials.

    Its spec hash is left empty so that the reconcile that follows lays the declared metadata over it.
    """
    client_id = str(props["adopt_client_id"])
    uri = str(props["adopt_registration_client_uri"])
    rat = SecretStr(str(props["adopt_registration_access_token"]))
    info = rfc7592.read(server.http, uri, rat)
    if info.client_id != client_id:
        raise ConfigurationError(f"adopt_registration_client_uri {uri} belongs to client {info.client_id}, "
                                 f"not to adopt_client_id {client_id}")
    record = RegistrationRecord(
        client_id=info.client_id, client_secret=info.client_secret,
        client_secret_expires_at=info.client_secret_expires_at, client_id_issued_at=info.client_id_issued_at,
        registration_client_uri=info.registration_client_uri or uri,
        registration_access_token=info.registration_access_token or rat, spec_hash="",
        server_metadata=info.metadata, declared_fields=[])
    with contextlib.suppress(ClientregError):  # endpoints are published for convenience only
        record.issuer, record.token_endpoint = server.issuer, server.token_endpoint
    return record


def _reconcile(want: Desired, record: RegistrationRecord | None, props: Mapping[str, Any],
               server: ServerConnection, *, operation: str) -> dict[str, Any]:
    """The core's loop (observe → plan → apply → cleanup, to a fixed point). The deletion of retired clients
    in it is best effort (a failure is a Warning and a retry): it never costs the new credentials this same
    run obtained, which exist only in memory until the outputs are returned."""
    saved: list[RegistrationRecord | None] = []
    before = credentials_of(record)
    try:
        _, outcome = reconcile(want, record, server, saved.append, datetime.now(UTC))
    except ClientregError as exc:
        current = next((r for r in reversed(saved) if r is not None), None)
        if current is None or credentials_of(current) == before:
            raise OAuthClientError(f"could not {operation}: {args.in_pulumi_words(str(exc))}") from None
        said = args.in_pulumi_words(str(exc))
        pulumi.log.warn(f"client {current.client_id}: {said}; the new credentials are kept, the next "
                        "`pulumi up` retries")
        failed = report.Status(True, False, STATUS_FAILED, f"could not {operation}: {said}",
                               next_wakeup(want, current))
        return outputs(props, current, failed)
    assert outcome.record is not None  # only deletion ends without a record
    # What this run did goes to the log; the status says the state it left (clientreg.report).
    client_id = outcome.record.client_id
    for event in outcome.events:
        # Named once: "registering a new client: client X" needs no "client X: " in front.
        line = event.message if client_id in event.message else f"client {client_id}: {event.message}"
        (pulumi.log.warn if event.warning else pulumi.log.info)(line)
    return outputs(props, outcome.record, report.of_outcome(outcome))
