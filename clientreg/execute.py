"""apply: carry out a plan. Persists after EVERY answer from the AS, through ``save``, before it sends the
next request: a new registration access token or secret is never held only in memory.

The one window DCR cannot close: the AS has answered a registration but the answer is not yet
persisted (there is no list endpoint to find the client again). It is one ``save`` long; the client
ID is logged (never the secret) when that save fails so an operator can clean up.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from . import publish, retiring, rfc7592
from .actions import Action, ActionKind, Plan
from .desired import Desired
from .drift import describe_refusals
from .errors import ClientGone, CredentialsRejected, NotPermitted, OperationUnsupported, ProtocolError, TransportError
from .observation import Observation, Save
from .reasons import Reason
from .record import RegistrationRecord
from .registration import _ensure_current_key, _publish_keys, _register, _rotate_keys, _update
from .server import ServerConnection

log = logging.getLogger("clientreg.engine")


@dataclass
class Event:
    """What a run did. ``reason`` names the outcome (``Registered``, ``Rotated``...), ``cause`` the reason of the
    action (the condition's and the metrics' reason), which the message tells too."""

    reason: str
    message: str
    warning: bool = False
    cause: str = ""


#: The Event reason for carrying out an action of a kind for a cause: events name outcomes, conditions causes.
_OUTCOMES: dict[tuple[ActionKind, str], str] = {
    (ActionKind.REGISTER, Reason.SPEC_CHANGED): Reason.UPDATED,  # CIMD: a new document is the update
    (ActionKind.REGISTER_REPLACEMENT, Reason.SPEC_CHANGED_REPLACED): Reason.REPLACED,
    (ActionKind.UPDATE, Reason.DRIFT): Reason.DRIFT_CORRECTED,
}
_OUTCOME_OF_KIND: dict[ActionKind, str] = {
    ActionKind.REGISTER: Reason.REGISTERED,
    ActionKind.REGISTER_REPLACEMENT: Reason.ROTATED,
    ActionKind.UPDATE: Reason.UPDATED,
    ActionKind.ROTATE_KEY: Reason.KEY_ROTATED,
    ActionKind.RETIRE_KEY: Reason.OLD_KEY_REMOVED,
    ActionKind.DELETE: Reason.DELETED,
    ActionKind.FORGET: Reason.ORPHANED,
}


def _told(action: Action, message: str, *, warning: bool = False) -> Event:
    outcome = _OUTCOMES.get((action.kind, action.reason)) or _OUTCOME_OF_KIND[action.kind]
    return Event(outcome, message, warning=warning, cause=action.reason)


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
    #: When time-driven work (a rotation, the end of a grace period) is next due; set by the loop.
    next_due: datetime | None = None


def apply(plan_: Plan, desired: Desired, record: RegistrationRecord | None, observed: Observation,
          server: ServerConnection, save: Save, now: datetime) -> Outcome:
    """Carry out ``plan_``. Persists after every AS answer; raises ClientregError on the first failure
    of a step that matters (partial progress is already saved)."""
    record = observed.current(record)
    events: list[Event] = []
    credentials_changed = False
    synced = True
    for action in plan_.actions:
        if action.kind in (ActionKind.REGISTER, ActionKind.REGISTER_REPLACEMENT):
            record = _register(action, desired, record, server, save, now)
            credentials_changed = True
            events.append(_told(action, f"{action.message}: client {record.client_id}"))
        elif action.kind is ActionKind.UPDATE:
            assert record is not None
            if _ensure_current_key(record, desired, now):
                # A key pair just declared (or its algorithm changed): kept before the AS hears of it.
                save(record)
                credentials_changed = True
            record = _update(desired.with_keys(record), record, observed, server, save)
            events.append(_told(action, action.message))
            if record.refused:
                events.append(Event(Reason.REFUSED, "the AS did not keep declared values: "
                                    + describe_refusals(desired.with_keys(record).metadata, record.refused),
                                    warning=True, cause=Reason.REFUSED))
        elif action.kind is ActionKind.ROTATE_KEY:
            assert record is not None
            new, old = _rotate_keys(record, desired, now)
            record.last_rotation = now
            record.rotation_request = desired.rotation_request or record.rotation_request
            _publish_keys(desired, record, observed, server, save)
            credentials_changed = True
            kept = f"; old key {', '.join(old)} stays in the JWKS until {(now + desired.grace()).isoformat()}" \
                if old else ""
            events.append(_told(action, f"{action.message}: new key {new}{kept}"))
        elif action.kind is ActionKind.RETIRE_KEY:
            assert record is not None
            record.keys = [k for k in record.keys if k.kid != action.target]
            _publish_keys(desired, record, observed, server, save)
            events.append(_told(action, f"removed old key {action.target} from the JWKS"))
        elif action.kind is ActionKind.DELETE_RETIRING:
            assert record is not None
            event = _delete_retiring(record, action.target or "", server, save, now)
            events.append(event)
        elif action.kind is ActionKind.DELETE:
            assert record is not None
            _delete_all(record, server, save, now)
            events.append(_told(action, action.message))
            return Outcome(None, action.reason, f"client {record.client_id} deleted at the AS", ready=False,
                           synced=True, events=events)
        elif action.kind is ActionKind.FORGET:
            assert record is not None
            save(None)
            events.append(_told(action, action.message))
            return Outcome(None, action.reason, action.message, ready=False, synced=True, events=events)
        elif action.kind in (ActionKind.REPORT, ActionKind.AWAIT_PUBLICATION):
            synced = False
    if record is None:
        return Outcome(None, plan_.reason, plan_.message, ready=False, synced=False, events=events)
    revoked = next((a for a in plan_.actions if a.reason is Reason.TOKEN_REVOKED), None)
    if revoked is not None:
        # The client may be someone else's now: kept in the record, a Warning naming it, Ready only while its
        # credentials are proven to work (clientreg.liveness).
        events.append(Event(Reason.TOKEN_REVOKED, revoked.message, warning=True))
        works = observed.liveness is not None and observed.liveness.credentials_work
        return Outcome(record, Reason.TOKEN_REVOKED, revoked.message, ready=works, synced=False, events=events)
    reason: str  # a Reason, or a standing fact's reason from retiring
    # The reason says why this run acted (InSync when it did not); the message, the state it left behind.
    reason, message = plan_.reason, state_message(record, now)
    pending = _pending_publication(record, observed)
    if pending is not None:
        # The AS reads these documents from the web: until they match, it sees an old client or none.
        reason, message = pending
        return Outcome(record, reason, message, ready=False, synced=False, events=events,
                       credentials_changed=credentials_changed)
    declared = desired.with_keys(record).metadata
    if record.refused and record.refused_for_hash == desired.spec_hash:
        # Ready (the client works) but not Synced: the standing fact beats what this run happened to do,
        # which the events already tell.
        synced = False
        reason = Reason.REFUSED
        message = "the AS did not keep declared values: " + describe_refusals(declared, record.refused)
    refused = retiring.standing(record)
    if refused is not None:
        synced, (reason, message) = False, refused
    return Outcome(record, reason, message, ready=True, synced=synced, events=events,
                   credentials_changed=credentials_changed)


def state_message(record: RegistrationRecord, now: datetime) -> str:
    """The client as it stands, for status and `clientreg get`: never the last action taken."""
    parts = [f"client {record.client_id} matches its spec"]
    for old in record.retiring:
        when = f"retires at {old.delete_after.isoformat()}" if old.delete_after > now else "retires (deletion pending)"
        parts.append(f"old client {old.client_id} {when}")
    for key in record.keys:
        if key.remove_after is not None:
            parts.append(f"old key {key.kid} stays in the JWKS until {key.remove_after.isoformat()}")
    return "; ".join(parts)


def _pending_publication(record: RegistrationRecord, observed: Observation) -> tuple[Reason, str] | None:
    """The first published document that is not served as rendered (documents this run changed count:
    what was observed before the change is out of date)."""
    seen = {p.url: p for p in observed.published}
    for url, expected in publish.documents(record).items():
        served = seen.get(url)
        if served is None or served.document is None:
            why = served.detail if served is not None and served.detail else "not served yet"
            return Reason.DOCUMENT_NOT_PUBLISHED, f"publish the rendered document at {url} ({why})"
        fields = publish.differences(expected, served.document)
        if fields:
            return Reason.DOCUMENT_DIFFERS, (f"{url} serves a different document ({', '.join(fields)}); "
                                             "publish the rendered one")
    return None



def _delete_retiring(record: RegistrationRecord, client_id: str, server: ServerConnection,
                     save: Save, now: datetime, *, strict: bool = False) -> Event:
    old = next((r for r in record.retiring if r.client_id == client_id), None)
    if old is None:
        return Event(Reason.OLD_CLIENT_DELETED, f"old client {client_id} already gone", cause=Reason.GRACE_OVER)
    event = Event(Reason.OLD_CLIENT_DELETED, f"deleted old client {client_id}", cause=Reason.GRACE_OVER)
    if old.registration_client_uri and old.registration_access_token:
        interrupted = retiring.mark_sending(record, old, save)
        try:
            rfc7592.delete(server.http, old.registration_client_uri, old.registration_access_token, retry=False)
        except ClientGone:
            event = Event(Reason.OLD_CLIENT_DELETED, f"old client {client_id} was already gone",
                          cause=Reason.GRACE_OVER)
        except CredentialsRejected:
            if interrupted:  # our own earlier DELETE, whose answer was lost, took the token with the client
                event = Event(Reason.OLD_CLIENT_DELETED, retiring.INTERRUPTED.format(client_id=client_id),
                              cause=Reason.GRACE_OVER)
            else:
                # 401: gone, or someone else holds its token now. Never "gone": kept, reported, retried.
                retiring.note_refusal(old, now)
                save(record)
                if strict:
                    raise retiring.RetiringDeleteRefused(retiring.refusal_message(old, deleting=True)) from None
                return Event(retiring.DELETE_REFUSED, retiring.refusal_message(old), warning=True,
                             cause=retiring.DELETE_REFUSED)
        except (OperationUnsupported, NotPermitted) as exc:
            event = Event(Reason.OLD_CLIENT_NOT_DELETED,
                          f"could not delete old client {client_id} ({exc.reason}); remove it at the AS by hand",
                          warning=True, cause=Reason.GRACE_OVER)
        except (TransportError, ProtocolError) as exc:
            if strict:
                raise
            # Cleanup of an old client must not fail the reconcile of the current one: keep it
            # retiring and try again next time.
            return Event(Reason.OLD_CLIENT_NOT_DELETED,
                         f"could not delete old client {client_id} yet ({exc.reason}); will retry", warning=True,
                         cause=Reason.GRACE_OVER)
    else:
        event = Event(Reason.OLD_CLIENT_NOT_DELETED, f"old client {client_id} has no RFC 7592 access; remove it at "
                      "the AS by hand", warning=True, cause=Reason.GRACE_OVER)
    record.retiring = [r for r in record.retiring if r.client_id != client_id]
    save(record)
    return event


def _delete_all(record: RegistrationRecord, server: ServerConnection, save: Save, now: datetime) -> None:
    for old in list(record.retiring):
        _delete_retiring(record, old.client_id, server, save, now, strict=True)
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

