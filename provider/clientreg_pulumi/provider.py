"""The Pulumi dynamic provider: Pulumi's resource lifecycle mapped onto the core engine.

=========  =====================================================================================
check      the core models validate the arguments; failures name the argument and the rule
diff       pure: arguments compared as the AS compares them; a new AS is a replacement; rotation
           due, a retired client past its grace period, or drift seen by refresh mean an update
create     :func:`clientreg.engine.reconcile` with no record (or an adopted one)
read       one RFC 7592 GET: drift shows on refresh; a client gone at the AS leaves the state
update     :func:`clientreg.engine.reconcile` with the record kept in the outputs
delete     :func:`clientreg.engine.reconcile` with ``deleting=True`` (honours deletion_policy)
=========  =====================================================================================

With ``kubernetes_secret``, create and update also write the credentials Secret (after the AS, in the
same step; a Secret name taken by someone else fails them before the AS is asked anything), read
checks it is still there and unchanged, and delete removes it (see :mod:`clientreg_pulumi.kube_secret`).

The registration record lives in the resource's outputs (``record``, a Pulumi secret). The engine
persists through a ``save`` callback after every AS answer; here that callback keeps the newest
record in memory and the outputs returned at the end are what Pulumi writes. A dynamic provider
cannot hand back partial state with an error, so when the AS changed credentials and a later step
failed, the new state is returned anyway (status ``Failed``, retried by the next ``up``) instead
of losing a registration access token the AS will not give again.

Pickled with dill into every resource's state: this object carries no attributes at all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)
from pydantic import SecretStr, ValidationError

from clientreg import publish, rfc7592
from clientreg.drift import differences
from clientreg.engine import (
    Desired,
    Observed,
    Outcome,
    Reason,
    next_wakeup,
    observe,
    reconcile,
    rotation_due,
)
from clientreg.errors import ClientregError, ConfigurationError
from clientreg.record import RegistrationRecord
from clientreg.server import ServerConnection
from clientreg.ssrf import USER_CONFIGURED

from . import args

if TYPE_CHECKING:
    from types import ModuleType

#: The program's author named the AS: loopback and private servers are theirs to use, but no URL (nor a lying
#: discovery document) makes the provider connect to link-local addresses such as 169.254.169.254.
ADDRESS_POLICY = USER_CONFIGURED

#: `status` output values besides the engine's reasons.
STATUS_IN_SYNC = str(Reason.IN_SYNC)
STATUS_FAILED = "Failed"
#: Left by refresh: the Secret of ``kubernetes_secret`` was deleted or changed in the cluster.
STATUS_SECRET_DRIFT = "KubernetesSecretDrift"
#: Statuses left by refresh or a failed step that the next `up` must act on.
_NEEDS_UPDATE = frozenset({str(Reason.DRIFT), str(Reason.CREDENTIALS_REJECTED), str(Reason.CLIENT_GONE),
                           STATUS_FAILED, STATUS_SECRET_DRIFT})

#: Outputs that never change without a new client: reported as stables when no rotation is due.
_CLIENT_OUTPUTS = ("client_id", "client_secret", "client_secret_expires_at", "client_id_issued_at",
                   "registration_client_uri", "issuer", "token_endpoint")


class OAuthClientError(Exception):
    """An operation failed for a reason the message alone explains."""


class OAuthClientProvider(ResourceProvider):
    """Registers, updates, rotates and deletes one OAuth client per resource through the clientreg core."""

    # The pickle holds a reference to this class and nothing else (see __getstate__), so keeping it
    # readable in the state costs nothing and lets `pulumi stack export` show there is nothing inside.
    serialize_as_secret_always = False

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        pass

    # --- check / diff: pure ----------------------------------------------------------------------

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return CheckResult(news, [CheckFailure(prop, reason) for prop, reason in args.problems(news)])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = args.changed_args(olds, news, args.REPLACE_ARGS)
        updates = args.changed_args(olds, news, tuple(a for a in (*args.ECHOED_ARGS, *args.INTERNAL_ARGS)
                                                      if a not in args.REPLACE_ARGS))
        pending = _pending_work(olds, news, datetime.now(UTC))
        rotating = ("rotation" in pending) or args.ROTATION_TRIGGER in updates
        return DiffResult(changes=bool(replaces or updates or pending), replaces=replaces,
                          stables=[] if (replaces or rotating) else list(_CLIENT_OUTPUTS),
                          delete_before_replace=False)

    # --- create / read / update / delete: one reconcile each -----------------------------------

    def create(self, props: dict[str, Any]) -> CreateResult:
        want = _desired(props)
        place = _place(props)
        owners = _owners(props) if place is not None else ()
        if place is not None:
            named = f" {props['client_name']!r}" if props.get("client_name") else ""
            with _kube_step(f"could not register the client{named}") as kube:
                kube.check_free(place, owners)
        with _connection(props) as server:
            record = None
            if props.get("adopt_client_id"):
                with _explained("could not adopt client " + str(props["adopt_client_id"])):
                    record = _adopt(props, server)
            named = f" {props['client_name']!r}" if props.get("client_name") else ""
            operation = f"adopt client {record.client_id}" if record else f"register the client{named}"
            outs = _reconcile(want, record, props, server, operation=operation)
        if place is not None:
            outs = _publish_secret(outs, place, owners, before=None)
        return CreateResult(outs["client_id"] if record is None else record.client_id, outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        record = _record(props)
        if record is None:
            raise OAuthClientError(
                f"client {id_}: `pulumi import` and the import_ option cannot work for a dynamic provider (the "
                "engine reads it without its arguments). Adopt the client instead: set adopt_client_id, "
                "adopt_registration_client_uri and adopt_registration_access_token and run `pulumi up`")
        saved: list[RegistrationRecord | None] = []
        with _connection(props, for_registration=False) as server, \
                _explained(f"could not read client {record.client_id} at the AS"):
            observation = observe(record, server, saved.append)
        record = _latest(record, saved)
        outs = dict(props)
        if observation.state in (Observed.GONE, Observed.UNAUTHORIZED):
            if not record.retiring:
                # Gone (or no longer ours: with the RAT refused nothing can be done with it): the next
                # `up` registers a new client, like any resource deleted out of band.
                return ReadResult(None, {})
            outs.update(status=str(Reason.CLIENT_GONE if observation.state is Observed.GONE
                                   else Reason.CREDENTIALS_REJECTED), status_message=observation.detail)
        elif observation.state is Observed.PRESENT and observation.info is not None:
            live = observation.info.metadata
            drift = _changed_since_apply(record, live)
            for wire, value in drift.items():
                _show_live_value(outs, wire, value)
            outs["registered_metadata"] = live
            if drift:
                outs.update(status=str(Reason.DRIFT),
                            status_message=f"changed at the AS: {', '.join(sorted(drift))}; `pulumi up` "
                            "restores the declared values")
            elif outs.get("status") in _NEEDS_UPDATE - {STATUS_FAILED}:
                outs.update(status=STATUS_IN_SYNC, status_message="client matches its spec")
        place = _place(props, quiet=True)
        if place is not None:
            with _kube_step(f"could not read the Secret of client {record.client_id}") as kube:
                problem = kube.out_of_date(record, place, _owners(props)[0])
            if problem is not None:
                restores = f"{problem}; `pulumi up` restores it"
                if outs.get("status") in _NEEDS_UPDATE:  # the next up acts anyway: say both
                    outs["status_message"] = f"{outs.get('status_message') or ''}; {restores}".lstrip("; ")
                else:  # InSync, or a reported refusal that alone would not make `up` act
                    outs.update(status=STATUS_SECRET_DRIFT, status_message=restores)
        outs.update(_credential_outputs(record))
        outs.pop("__provider", None)
        return ReadResult(id_, outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        record = _record(olds)
        if record is None:
            raise OAuthClientError("the state of this client holds no registration record: remove it with "
                                   "`pulumi state delete <urn>`, then take the client over with the adopt_* "
                                   "arguments (or let `pulumi up` register a new one)")
        want = _desired(news)
        operation = f"update client {record.client_id}"
        place, old_place = _place(news), _place(olds, quiet=True)
        owners = _owners(news, olds) if place is not None else _owners(olds)
        if place is not None:
            with _kube_step(f"could not {operation}") as kube:
                kube.check_free(place, owners, record)
        before = _credentials_of(record)  # the engine changes the record in place
        with _connection(news) as server:
            outs = _reconcile(want, record, news, server, operation=operation)
        if old_place is not None and (place is None or not place.same_place(old_place)):
            # Moved or dropped: the old Secret goes first (a new kubeconfig may reach the same cluster).
            _withdraw_secret(old_place, owners, fail=False)
        if place is not None:
            outs = _publish_secret(outs, place, owners, before=before)
        return UpdateResult(outs)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        record = _record(props)
        place = _place(props, quiet=True)
        if place is not None:
            # First: failing here leaves everything as it was, and the next destroy tries again.
            _withdraw_secret(place, _owners(props), fail=True)
        if record is None:
            return
        want = Desired(key="pulumi", metadata={}, spec_hash=record.spec_hash, deleting=True,
                       deletion_policy=props.get("deletion_policy") or "Delete")
        with _connection(props, for_registration=False) as server, \
                _explained(f"could not delete client {record.client_id} (deletion_policy='Orphan' leaves it "
                           "at the AS)"):
            # Nothing to persist: on success Pulumi drops the resource, on failure it keeps the old state.
            reconcile(want, record, server, lambda _: None)


# --- the pieces --------------------------------------------------------------------------------------

@contextlib.contextmanager
def _explained(what: str) -> Iterator[None]:
    """Turn the core's one-line errors into provider errors (the engine shows the message to the user)."""
    try:
        yield
    except ClientregError as exc:
        raise OAuthClientError(f"{what}: {args.in_pulumi_words(str(exc))}") from None


def _desired(props: Mapping[str, Any]) -> Desired:
    try:
        return args.desired(props)
    except ValidationError as exc:  # check() reports these first; this guards a skipped check
        found = args.problems(props) or [("", str(exc))]
        raise OAuthClientError("; ".join(f"{prop}: {rule}" if prop else rule for prop, rule in found)) from None


@contextlib.contextmanager
def _connection(props: Mapping[str, Any], *, for_registration: bool = True) -> Iterator[ServerConnection]:
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


def _place(props: Mapping[str, Any], *, quiet: bool = False) -> args.SecretPlace | None:
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


def _owners(*props: Mapping[str, Any]) -> tuple[str, ...]:
    """The names this resource claims its Secret under: the current one first, then a former one. Only
    asked for when :func:`_place` found a Secret in the first ``props``, so that one always has a name."""
    return tuple(dict.fromkeys(str(p[args.KUBERNETES_SECRET_OWNER]) for p in props
                               if p.get(args.KUBERNETES_SECRET_OWNER)))


@contextlib.contextmanager
def _kube_step(what: str) -> Iterator[ModuleType]:
    """The Kubernetes half of the provider, imported on first use; its failures as provider errors."""
    try:
        from . import kube_secret
    except ImportError as exc:
        raise OAuthClientError(f"{what}: kubernetes_secret needs the kubernetes package ({exc}); "
                               "pip install 'clientreg[pulumi]'") from None
    try:
        yield kube_secret
    except kube_secret.KubeSecretError as exc:
        raise OAuthClientError(f"{what}: {exc}") from None


def _publish_secret(outs: dict[str, Any], place: args.SecretPlace, owners: tuple[str, ...], *,
                    before: tuple[Any, ...] | None) -> dict[str, Any]:
    """Write the Secret for the record in ``outs``. When that fails after the AS handed out credentials the
    state must keep, the step succeeds with status Failed (the next `up` writes the Secret); otherwise it fails."""
    record = _record(outs)
    assert record is not None
    try:
        with _kube_step(f"could not write the Secret of client {record.client_id}") as kube:
            kube.publish(record, place, owners)
    except OAuthClientError as exc:
        if before is not None and _credentials_of(record) == before:
            raise
        pulumi.log.warn(f"{exc}; the new credentials are kept, the next `pulumi up` retries")
        return {**outs, "status": STATUS_FAILED, "status_message": str(exc)}
    return outs


def _withdraw_secret(place: args.SecretPlace, owners: tuple[str, ...], *, fail: bool) -> None:
    try:
        with _kube_step(f"could not delete Secret {place.namespace}/{place.name}") as kube:
            note = kube.withdraw(place, owners)
    except OAuthClientError as exc:
        if fail:
            raise
        pulumi.log.warn(str(exc))
        return
    if note:
        pulumi.log.warn(note)


def _record(props: Mapping[str, Any]) -> RegistrationRecord | None:
    stored = props.get("record")
    return RegistrationRecord.from_storage(dict(stored)) if isinstance(stored, Mapping) and stored else None


def _latest(record: RegistrationRecord, saved: list[RegistrationRecord | None]) -> RegistrationRecord:
    return next((r for r in reversed(saved) if r is not None), record)


def _adopt(props: Mapping[str, Any], server: ServerConnection) -> RegistrationRecord:
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
    before = _credentials_of(record)
    try:
        _, outcome = reconcile(want, record, server, saved.append, datetime.now(UTC))
    except ClientregError as exc:
        current = next((r for r in reversed(saved) if r is not None), None)
        if current is None or _credentials_of(current) == before:
            raise OAuthClientError(f"could not {operation}: {args.in_pulumi_words(str(exc))}") from None
        pulumi.log.warn(f"client {current.client_id}: {exc}; the new credentials are kept, the next "
                        "`pulumi up` retries")
        return _outputs(props, want, current, STATUS_FAILED, f"could not {operation}: {exc}")
    record = outcome.record
    assert record is not None  # only deletion ends without a record
    for event in outcome.events:
        if event.warning:
            pulumi.log.warn(f"client {record.client_id}: {event.message}")
    # Out of sync, the message says why (what to fix); in sync, it says what this run did.
    notes = "; ".join(e.message for e in outcome.events)
    message = outcome.message if not outcome.synced else notes or outcome.message
    return _outputs(props, want, record, _status(outcome), message)


def _status(outcome: Outcome) -> str:
    return STATUS_IN_SYNC if outcome.synced else str(outcome.reason)


def _credentials_of(record: RegistrationRecord | None) -> tuple[Any, ...] | None:
    """What must never be lost once the AS handed it out: the clients and their tokens."""
    if record is None:
        return None
    # Key ids too: a key pair generated in a run that fails later exists nowhere else (its public half
    # may already be registered), so a new kid alone makes the run keep its record.
    return (record.client_id, _plain(record.registration_access_token), _plain(record.client_secret),
            tuple((old.client_id, _plain(old.registration_access_token)) for old in record.retiring),
            tuple(key.kid for key in record.keys))


def _plain(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _credential_outputs(record: RegistrationRecord) -> dict[str, Any]:
    key = record.current_key()
    return {
        "client_id": record.client_id,
        "client_secret": _plain(record.client_secret),
        "client_secret_expires_at": record.client_secret_expires_at or 0,
        "client_id_issued_at": record.client_id_issued_at,
        "registration_client_uri": record.registration_client_uri,
        "registration_access_token": _plain(record.registration_access_token),
        "retiring_client_ids": [old.client_id for old in record.retiring],
        "last_rotation": record.last_rotation.isoformat() if record.last_rotation else None,
        # private_key_jwt: the current key (a secret output, like client_secret) and its JWS header values.
        "private_key": _plain(key.private_key) if key is not None else None,
        "key_id": key.kid if key is not None else None,
        "key_algorithm": key.algorithm if key is not None else None,
        "published_documents": published_documents(record),
        "record": record.to_storage(),
    }


def published_documents(record: RegistrationRecord) -> dict[str, str]:
    """URL → the JSON text to serve there (CIMD, JWKS at jwks_uri), as ``clientreg apply --publish-dir``
    writes it. Public by definition: only public keys reach these documents."""
    return {url: publish.render(doc).decode("utf-8") for url, doc in publish.documents(record).items()}


def _outputs(props: Mapping[str, Any], want: Desired, record: RegistrationRecord, status: str,
             message: str) -> dict[str, Any]:
    outs: dict[str, Any] = {name: props[name] for name in (*args.ECHOED_ARGS, *args.INTERNAL_ARGS)
                            if props.get(name) is not None}
    outs.update(_credential_outputs(record))
    wakeup = next_wakeup(want, record)
    outs.update(
        issuer=props.get("issuer") or record.issuer,
        token_endpoint=props.get("token_endpoint") or record.token_endpoint,
        registered_metadata=record.server_metadata,
        next_action_at=wakeup.isoformat() if wakeup else None,
        status=status,
        status_message=message,
    )
    return outs


def _pending_work(olds: Mapping[str, Any], news: Mapping[str, Any], now: datetime) -> list[str]:
    """Reasons for an update that no argument shows: time-driven rotation, grace periods, refresh's findings."""
    pending = []
    if olds.get("status") in _NEEDS_UPDATE:
        pending.append(str(olds["status"]))
    record = _record(olds)
    if record is None or args.has_unknowns(news):
        return pending
    try:
        want = args.desired(news)
    except ValidationError:
        return pending
    if rotation_due(want, record, now) is not None:
        pending.append("rotation")
    if any(now >= old.delete_after for old in record.retiring):
        pending.append("retired-client")
    return pending


def _changed_since_apply(record: RegistrationRecord, live: Mapping[str, Any]) -> dict[str, Any]:
    """Declared fields whose value at the AS is no longer what the AS kept at the last apply.

    Compared with what the AS answered then (not with the declaration), so values the AS refused at
    registration do not count as drift on every refresh.
    """
    applied = {f: record.server_metadata[f] for f in record.declared_fields if f in record.server_metadata}
    found = differences(applied, live)
    return {wire: live.get(wire) for wire in found}


def _show_live_value(outs: dict[str, Any], wire: str, value: Any) -> None:
    """Put a drifted value where the argument echo lives, so preview shows `live => declared`."""
    name = args.arg_name(wire)
    if name is not None:
        outs[name] = value
    elif isinstance(outs.get("additional_metadata"), Mapping) and wire in outs["additional_metadata"]:
        outs["additional_metadata"] = {**outs["additional_metadata"], wire: value}
