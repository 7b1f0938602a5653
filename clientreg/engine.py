"""The reconcile engine: a pure :func:`plan` and an :func:`apply` that carries it out.

Every front end runs the same loop: :func:`observe` (one RFC 7592 read), :func:`plan`, :func:`apply`.
``apply`` persists after EVERY answer from the AS, through the ``save`` callback, before it sends the
next request: a new registration access token or secret is never held only in memory.

The one window DCR cannot close: the AS has answered a registration but the answer is not yet
persisted (there is no list endpoint to find the client again). It is one ``save`` long; the client
ID is logged (never the secret) when that save fails so an operator can clean up.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from . import rfc7591, rfc7592
from .drift import describe_refusals, differences, drifted
from .durations import parse_duration
from .errors import (
    ClientGone,
    ClientregError,
    ConfigurationError,
    CredentialsRejected,
    NotPermitted,
    OperationUnsupported,
    StateError,
)
from .record import RegistrationRecord, RetiringClient
from .rfc7591 import ClientInformation
from .server import ServerConnection
from .spec import OAuthClient, Rotation, request_metadata

log = logging.getLogger("clientreg.engine")


class Reason(enum.StrEnum):
    NOT_REGISTERED = "NotRegistered"
    CLIENT_GONE = "ClientGoneAtServer"
    CREDENTIALS_REJECTED = "CredentialsRejected"
    SPEC_CHANGED = "SpecChanged"
    DRIFT = "DriftAtServer"
    REFUSED = "ServerRefusedValue"
    NEARING_EXPIRY = "SecretNearingExpiry"
    PERIOD_ELAPSED = "RotationPeriodElapsed"
    ROTATION_REQUESTED = "RotationRequested"
    GRACE_OVER = "GracePeriodOver"
    DELETED = "Deleted"
    ORPHANED = "Orphaned"
    IN_SYNC = "InSync"


class ActionKind(enum.StrEnum):
    REGISTER = "register"
    UPDATE = "update"
    ROTATE = "rotate"
    DELETE_RETIRING = "delete-retiring"
    DELETE = "delete"
    FORGET = "forget"
    REPORT = "report"


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    reason: Reason
    message: str
    #: DELETE_RETIRING: the retiring client's ID. UPDATE: the fields that differ.
    target: str | None = None
    fields: tuple[str, ...] = ()

    @property
    def writes(self) -> bool:
        return self.kind not in (ActionKind.REPORT, ActionKind.FORGET)


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]

    @property
    def reason(self) -> Reason:
        return self.actions[0].reason if self.actions else Reason.IN_SYNC

    @property
    def message(self) -> str:
        return self.actions[0].message if self.actions else "client matches its spec"

    @property
    def writes(self) -> bool:
        return any(a.writes for a in self.actions)


# --- inputs ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Desired:
    """What one OAuthClient asks for, front-end independent."""

    key: str
    metadata: dict[str, Any]
    spec_hash: str
    registration: Literal["dcr", "cimd"] = "dcr"
    client_id_url: str | None = None
    rotation: Rotation | None = None
    deletion_policy: Literal["Delete", "Orphan"] = "Delete"
    deleting: bool = False
    rotation_request: str | None = None

    @classmethod
    def from_client(cls, client: OAuthClient, *, deleting: bool = False,
                    rotation_request: str | None = None) -> Desired:
        spec = client.spec
        return cls(key=f"{client.metadata.namespace or 'default'}/{client.metadata.name}",
                   metadata=spec.wire_metadata(), spec_hash=spec.spec_hash(), registration=spec.registration,
                   client_id_url=spec.client_id_url, rotation=spec.rotation,
                   deletion_policy=spec.deletion_policy, deleting=deleting, rotation_request=rotation_request)

    def grace(self) -> timedelta:
        return self.rotation.grace() if self.rotation else timedelta(minutes=10)


class Observed(enum.StrEnum):
    PRESENT = "present"
    GONE = "gone"
    UNAUTHORIZED = "unauthorized"
    UNSUPPORTED = "unsupported"
    NOT_READ = "not-read"


@dataclass(frozen=True)
class Observation:
    state: Observed
    info: ClientInformation | None = None
    detail: str = ""

    @classmethod
    def not_read(cls) -> Observation:
        return cls(Observed.NOT_READ)


# --- plan -----------------------------------------------------------------------------------------------

def rotation_due(desired: Desired, record: RegistrationRecord, now: datetime) -> Action | None:
    """Why the current credentials must be replaced now, if they must."""
    if desired.rotation_request and desired.rotation_request != record.rotation_request:
        return Action(ActionKind.ROTATE, Reason.ROTATION_REQUESTED,
                      f"rotation requested ({desired.rotation_request})")
    expires = record.expires_at()
    if expires is not None and record.client_secret is not None:
        threshold = expiry_threshold(desired.rotation, record, expires)
        if now >= threshold:
            return Action(ActionKind.ROTATE, Reason.NEARING_EXPIRY,
                          f"client secret expires at {expires.isoformat()}; rotating ahead of it")
    if desired.rotation and desired.rotation.period:
        since = record.last_rotation or record.registered_at
        if now >= since + parse_duration(desired.rotation.period):
            return Action(ActionKind.ROTATE, Reason.PERIOD_ELAPSED,
                          f"rotation period {desired.rotation.period} elapsed since {since.isoformat()}")
    return None


def expiry_threshold(rotation: Rotation | None, record: RegistrationRecord, expires: datetime) -> datetime:
    if rotation and rotation.rotate_before:
        return expires - parse_duration(rotation.rotate_before)
    if record.client_id_issued_at:
        issued = datetime.fromtimestamp(record.client_id_issued_at, UTC)
        if issued < expires:
            # cert-manager's default: renew when two thirds of the lifetime are used.
            return issued + (expires - issued) * 2 / 3
    return expires - timedelta(hours=1)


def next_rotation(desired: Desired, record: RegistrationRecord | None) -> datetime | None:
    """When the current credentials are due for rotation (expiry ahead, or the rotation period)."""
    if record is None:
        return None
    times = []
    expires = record.expires_at()
    if expires is not None and record.client_secret is not None:
        times.append(expiry_threshold(desired.rotation, record, expires))
    if desired.rotation and desired.rotation.period:
        times.append((record.last_rotation or record.registered_at) + parse_duration(desired.rotation.period))
    return min(times) if times else None


def next_wakeup(desired: Desired, record: RegistrationRecord | None) -> datetime | None:
    """When the next time-driven action falls due (rotation, end of a grace period)."""
    if record is None:
        return None
    times = [r.delete_after for r in record.retiring]
    rotation = next_rotation(desired, record)
    if rotation is not None:
        times.append(rotation)
    return min(times) if times else None


def plan(desired: Desired, record: RegistrationRecord | None, observed: Observation, now: datetime) -> Plan:
    """Decide what to do. Pure: no I/O, no clock of its own."""
    actions: list[Action] = []
    if desired.deleting:
        if record is None:
            return Plan(())
        if desired.deletion_policy == "Orphan":
            return Plan((Action(ActionKind.FORGET, Reason.ORPHANED,
                                f"deletionPolicy Orphan: client {record.client_id} is kept at the AS"),))
        return Plan((Action(ActionKind.DELETE, Reason.DELETED,
                            f"deleting client {record.client_id} at the AS"),))

    if record is None:
        actions.append(Action(ActionKind.REGISTER, Reason.NOT_REGISTERED, "registering a new client"))
    elif desired.registration == "cimd":
        if record.spec_hash != desired.spec_hash or record.client_id != desired.client_id_url:
            actions.append(Action(ActionKind.REGISTER, Reason.SPEC_CHANGED,
                                  "client metadata document changed; publishing it anew"))
    elif observed.state is Observed.GONE:
        actions.append(Action(ActionKind.REGISTER, Reason.CLIENT_GONE,
                              f"client {record.client_id} no longer exists at the AS; registering anew"))
    elif observed.state is Observed.UNAUTHORIZED:
        actions.append(Action(ActionKind.REGISTER, Reason.CREDENTIALS_REJECTED,
                              f"the AS rejects the registration access token of {record.client_id}; "
                              "registering anew"))
    else:
        rotate = rotation_due(desired, record, now)
        if rotate:
            actions.append(rotate)
        elif record.spec_hash != desired.spec_hash:
            if observed.state is Observed.UNSUPPORTED or record.registration_client_uri is None:
                actions.append(Action(ActionKind.ROTATE, Reason.SPEC_CHANGED,
                                      "spec changed and the AS offers no RFC 7592 update: registering a "
                                      "replacement client"))
            else:
                changed = tuple(sorted(differences(desired.metadata, record.server_metadata)))
                actions.append(Action(ActionKind.UPDATE, Reason.SPEC_CHANGED,
                                      "spec changed" + (f" ({', '.join(changed)})" if changed else ""),
                                      fields=changed))
        elif observed.state is Observed.PRESENT and observed.info is not None:
            refused = record.refused if record.refused_for_hash == desired.spec_hash else {}
            drift = drifted(desired.metadata, observed.info.metadata, refused)
            if drift:
                fields = tuple(sorted(drift))
                actions.append(Action(ActionKind.UPDATE, Reason.DRIFT,
                                      f"changed at the AS: {', '.join(fields)}; restoring declared values",
                                      fields=fields))
        if not actions and record.refused and record.refused_for_hash == desired.spec_hash:
            actions.append(Action(ActionKind.REPORT, Reason.REFUSED,
                                  "the AS did not keep declared values: "
                                  + describe_refusals(desired.metadata, record.refused)))
    if record is not None:
        for old in record.retiring:
            if now >= old.delete_after:
                actions.append(Action(ActionKind.DELETE_RETIRING, Reason.GRACE_OVER,
                                      f"grace period of old client {old.client_id} is over; deleting it",
                                      target=old.client_id))
    return Plan(tuple(actions))


# --- observe --------------------------------------------------------------------------------------------

Save = Callable[[RegistrationRecord | None], None]


def observe(record: RegistrationRecord | None, server: ServerConnection, save: Save) -> Observation:
    """One RFC 7592 read. A RAT or secret the AS returns is persisted before anything else happens."""
    if record is None or record.registration == "cimd":
        return Observation.not_read()
    if record.registration_client_uri is None or record.registration_access_token is None:
        return Observation(Observed.UNSUPPORTED, detail="no registration_client_uri: RFC 7592 not offered")
    try:
        info = rfc7592.read(server.http, record.registration_client_uri, record.registration_access_token)
    except ClientGone as exc:
        return Observation(Observed.GONE, detail=str(exc))
    except CredentialsRejected as exc:
        return Observation(Observed.UNAUTHORIZED, detail=str(exc))
    except OperationUnsupported as exc:
        return Observation(Observed.UNSUPPORTED, detail=str(exc))
    if _absorb_credentials(record, info):
        save(record)
    return Observation(Observed.PRESENT, info=info)


def _absorb_credentials(record: RegistrationRecord, info: ClientInformation) -> bool:
    """RFC 7592 §3: a new secret or RAT in any response replaces the old one at once."""
    changed = False
    if info.registration_access_token is not None and info.registration_access_token != \
            record.registration_access_token:
        record.registration_access_token = info.registration_access_token
        changed = True
    if info.client_secret is not None and info.client_secret != record.client_secret:
        record.client_secret = info.client_secret
        changed = True
    if info.registration_client_uri and info.registration_client_uri != record.registration_client_uri:
        record.registration_client_uri = info.registration_client_uri
        changed = True
    if info.client_secret_expires_at is not None and \
            info.client_secret_expires_at != record.client_secret_expires_at:
        record.client_secret_expires_at = info.client_secret_expires_at
        changed = True
    return changed


# --- apply ----------------------------------------------------------------------------------------------

@dataclass
class Event:
    reason: str
    message: str
    warning: bool = False


@dataclass
class Outcome:
    """What one apply left behind, for status, events and exit codes."""

    record: RegistrationRecord | None
    reason: str
    message: str
    ready: bool
    synced: bool
    events: list[Event] = field(default_factory=list)
    #: The credentials workloads use changed (publish them: Secret, outputs).
    credentials_changed: bool = False
    requests: int = 0


def apply(plan_: Plan, desired: Desired, record: RegistrationRecord | None, observed: Observation,
          server: ServerConnection, save: Save, now: datetime) -> Outcome:
    """Carry out ``plan_``. Persists after every AS answer; raises ClientregError on the first failure
    of a step that matters (partial progress is already saved)."""
    events: list[Event] = []
    credentials_changed = False
    synced = True
    for action in plan_.actions:
        if action.kind in (ActionKind.REGISTER, ActionKind.ROTATE):
            record = _register(action, desired, record, server, save, now)
            credentials_changed = True
            events.append(Event(action.reason, f"{action.message}: client {record.client_id}"))
        elif action.kind is ActionKind.UPDATE:
            assert record is not None
            record = _update(desired, record, observed, server, save)
            events.append(Event(action.reason, action.message))
            if record.refused:
                events.append(Event(Reason.REFUSED, "the AS did not keep declared values: "
                                    + describe_refusals(desired.metadata, record.refused), warning=True))
        elif action.kind is ActionKind.DELETE_RETIRING:
            assert record is not None
            event = _delete_retiring(record, action.target or "", server, save)
            events.append(event)
        elif action.kind is ActionKind.DELETE:
            assert record is not None
            _delete_all(record, server, save)
            events.append(Event(action.reason, action.message))
            return Outcome(None, action.reason, f"client {record.client_id} deleted at the AS", ready=False,
                           synced=True, events=events)
        elif action.kind is ActionKind.FORGET:
            assert record is not None
            save(None)
            events.append(Event(action.reason, action.message))
            return Outcome(None, action.reason, action.message, ready=False, synced=True, events=events)
        elif action.kind is ActionKind.REPORT:
            synced = False
    if record is None:
        return Outcome(None, plan_.reason, plan_.message, ready=False, synced=False, events=events)
    reason, message = plan_.reason, plan_.message
    if record.refused and record.refused_for_hash == desired.spec_hash:
        # Ready (the client works) but not Synced: the standing fact beats what this run happened to do,
        # which the events already tell.
        synced = False
        reason = Reason.REFUSED
        message = "the AS did not keep declared values: " + describe_refusals(desired.metadata, record.refused)
    return Outcome(record, reason, message, ready=True, synced=synced, events=events,
                   credentials_changed=credentials_changed)


def _register(action: Action, desired: Desired, previous: RegistrationRecord | None,
              server: ServerConnection, save: Save, now: datetime) -> RegistrationRecord:
    if desired.registration == "cimd":
        return _publish_cimd(desired, previous, server, save, now)
    server.check_policy(desired.metadata)
    # Credentials first: a missing initial access token is a wait, and waiting costs no request.
    iat, statement = server.initial_access_token, server.software_statement
    endpoint = server.registration_endpoint
    info = rfc7591.register(server.http, endpoint, request_metadata(desired.metadata),
                            initial_access_token=iat, software_statement=statement)
    record = RegistrationRecord(
        client_id=info.client_id, client_secret=info.client_secret,
        client_secret_expires_at=info.client_secret_expires_at, client_id_issued_at=info.client_id_issued_at,
        registration_client_uri=info.registration_client_uri,
        registration_access_token=info.registration_access_token,
        registration_endpoint=endpoint, spec_hash=desired.spec_hash, server_metadata=info.metadata,
        registered_at=now, rotation_request=desired.rotation_request,
        retiring=list(previous.retiring) if previous else [],
    )
    if previous is not None:
        record.rotation_request = desired.rotation_request or previous.rotation_request
        record.last_rotation = now
        if action.reason is not Reason.CLIENT_GONE:
            # The old client may still be serving workloads (rotation) or may be unreachable with our
            # credentials (rejected RAT); either way it is deleted after the grace period, best effort.
            grace = desired.grace() if action.kind is ActionKind.ROTATE else timedelta(0)
            record.retiring.append(RetiringClient(
                client_id=previous.client_id, registration_client_uri=previous.registration_client_uri,
                registration_access_token=previous.registration_access_token, delete_after=now + grace,
                reason=str(action.reason)))
    _note_refusals(record, desired, info.metadata)
    _persist_registration(record, save)
    # Endpoints published to workloads come from discovery: only after the registration is safe.
    try:
        record.issuer = server.issuer
        record.token_endpoint = server.token_endpoint
    except ClientregError as exc:
        log.warning("could not read the token endpoint of %s: %s", server, exc)
    else:
        save(record)
    return record


def _persist_registration(record: RegistrationRecord, save: Save) -> None:
    try:
        save(record)
    except Exception as exc:
        # The crash window: the AS holds a client we could not write down. Say which, never the secret.
        log.error("registered client %s but could not persist it (%s): delete it at the AS by hand",
                  record.client_id, type(exc).__name__)
        raise StateError(f"registered client {record.client_id} but could not persist the result: "
                         f"{type(exc).__name__}; delete that client at the AS by hand") from exc


def _publish_cimd(desired: Desired, previous: RegistrationRecord | None, server: ServerConnection,
                  save: Save, now: datetime) -> RegistrationRecord:
    from .cimd import render_document

    if not server.supports_cimd:
        raise OperationUnsupported(
            "the AS does not advertise client_id_metadata_document_supported (CIMD §5): use registration: dcr")
    assert desired.client_id_url is not None
    document = render_document(desired.client_id_url, desired.metadata)
    record = RegistrationRecord(client_id=desired.client_id_url, registration="cimd",
                                spec_hash=desired.spec_hash, server_metadata=document, registered_at=now,
                                issuer=server.issuer, token_endpoint=server.token_endpoint,
                                last_rotation=previous.last_rotation if previous else None)
    save(record)
    return record


def _update(desired: Desired, record: RegistrationRecord, observed: Observation, server: ServerConnection,
            save: Save) -> RegistrationRecord:
    assert record.registration_client_uri is not None and record.registration_access_token is not None
    server.check_policy(desired.metadata)
    if observed.state is Observed.PRESENT and observed.info is not None:
        current = observed.info
    else:
        current = rfc7592.read(server.http, record.registration_client_uri, record.registration_access_token)
        if _absorb_credentials(record, current):
            save(record)
    # RFC 7592 §2.2: PUT replaces everything; start from what the AS holds so undeclared server-side
    # settings survive, then lay the declared values over it. Fields the user stopped declaring go.
    body = {k: v for k, v in current.metadata.items() if k not in rfc7592.FIELDS_NOT_SENT_ON_UPDATE}
    for gone in set(record.declared_fields) - set(desired.metadata):
        body.pop(gone, None)
    body.update(request_metadata(desired.metadata))
    assert record.registration_access_token is not None and record.registration_client_uri is not None
    info = rfc7592.update(server.http, record.registration_client_uri, record.registration_access_token,
                          record.client_id, body)
    _absorb_credentials(record, info)
    record.server_metadata = info.metadata
    record.spec_hash = desired.spec_hash
    record.declared_fields = sorted(desired.metadata)
    _note_refusals(record, desired, info.metadata)
    save(record)
    return record


def _note_refusals(record: RegistrationRecord, desired: Desired, returned: dict[str, Any]) -> None:
    record.refused = differences(desired.metadata, returned)
    record.refused_for_hash = desired.spec_hash if record.refused else None
    record.declared_fields = sorted(desired.metadata)


def _delete_retiring(record: RegistrationRecord, client_id: str, server: ServerConnection,
                     save: Save) -> Event:
    old = next((r for r in record.retiring if r.client_id == client_id), None)
    if old is None:
        return Event(Reason.GRACE_OVER, f"old client {client_id} already gone")
    event = Event(Reason.GRACE_OVER, f"deleted old client {client_id}")
    if old.registration_client_uri and old.registration_access_token:
        try:
            rfc7592.delete(server.http, old.registration_client_uri, old.registration_access_token)
        except (ClientGone, CredentialsRejected):
            event = Event(Reason.GRACE_OVER, f"old client {client_id} was already gone or unreachable")
        except (OperationUnsupported, NotPermitted) as exc:
            event = Event(Reason.GRACE_OVER, f"could not delete old client {client_id} ({exc.reason}); "
                          "remove it at the AS by hand", warning=True)
    else:
        event = Event(Reason.GRACE_OVER, f"old client {client_id} has no RFC 7592 access; remove it at "
                      "the AS by hand", warning=True)
    record.retiring = [r for r in record.retiring if r.client_id != client_id]
    save(record)
    return event


def _delete_all(record: RegistrationRecord, server: ServerConnection, save: Save) -> None:
    for old in list(record.retiring):
        _delete_retiring(record, old.client_id, server, save)
    if record.registration == "dcr":
        if not (record.registration_client_uri and record.registration_access_token):
            raise OperationUnsupported(f"client {record.client_id} cannot be deleted through RFC 7592 "
                                       "(no registration_client_uri): delete it at the AS, or use "
                                       "deletionPolicy: Orphan")
        try:
            rfc7592.delete(server.http, record.registration_client_uri, record.registration_access_token)
        except ClientGone:
            pass
        except CredentialsRejected:
            # Hydra and oidc-provider answer a deleted client's token with 401 too: after a lost DELETE
            # response this is the normal case. Say so, in case the RAT was lost instead.
            log.warning("client %s: the AS rejects our registration access token; assuming it is already "
                        "deleted", record.client_id)
    save(None)


def reconcile(desired: Desired, record: RegistrationRecord | None, server: ServerConnection, save: Save,
              now: datetime | None = None) -> tuple[Plan, Outcome]:
    """observe → plan → apply: what every front end runs for one resource."""
    now = now or datetime.now(UTC)
    if not desired.deleting and desired.registration == "dcr":
        server.check_policy(desired.metadata)
    observation = observe(record, server, save) if not desired.deleting else Observation.not_read()
    the_plan = plan(desired, record, observation, now)
    return the_plan, apply(the_plan, desired, record, observation, server, save, now)


__all__ = [
    "Action", "ActionKind", "ConfigurationError", "Desired", "Event", "Observation", "Observed", "Outcome",
    "Plan", "Reason", "apply", "next_rotation", "next_wakeup", "observe", "plan", "reconcile", "rotation_due",
]
