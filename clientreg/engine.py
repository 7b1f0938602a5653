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
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from . import keys as keypairs
from . import publish, retiring, rfc7591, rfc7592
from .drift import describe_refusals, differences, drifted
from .durations import parse_duration
from .errors import (
    ClientGone,
    ClientregError,
    ConfigurationError,
    CredentialsRejected,
    NotPermitted,
    OperationUnsupported,
    ProtocolError,
    StateError,
    TransportError,
)
from .http import NOT_JSON, HttpClient, HttpSettings, parse_json
from .reasons import Reason
from .record import ClientKey, RegistrationRecord, RetiringClient
from .rfc7591 import ClientInformation
from .server import ServerConnection
from .spec import KeyPair, OAuthClient, Rotation, request_metadata
from .ssrf import USER_CONFIGURED

log = logging.getLogger("clientreg.engine")


class ActionKind(enum.StrEnum):
    REGISTER = "register"
    UPDATE = "update"
    #: Register a new client to replace the current one, which retires after the grace period (rotation, or
    #: a spec change the AS cannot apply in place).
    REGISTER_REPLACEMENT = "register-replacement"
    #: The former name of REGISTER_REPLACEMENT, kept for code that still says it.
    ROTATE = "register-replacement"
    DELETE_RETIRING = "delete-retiring"
    DELETE = "delete"
    FORGET = "forget"
    REPORT = "report"
    #: private_key_jwt: add a new key to the JWKS (RFC 7592 PUT or re-published document).
    ROTATE_KEY = "rotate-key"
    #: private_key_jwt: drop a retiring key from the JWKS once its grace period is over.
    RETIRE_KEY = "retire-key"
    #: Nothing to send: a published document must first match (not Ready until it does).
    AWAIT_PUBLICATION = "await-publication"


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
        return self.kind not in (ActionKind.REPORT, ActionKind.FORGET, ActionKind.AWAIT_PUBLICATION)


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
    #: private_key_jwt keys clientreg generates and holds; the declared jwks is derived from the record.
    key_pair: KeyPair | None = None

    @classmethod
    def from_client(cls, client: OAuthClient, *, deleting: bool = False,
                    rotation_request: str | None = None) -> Desired:
        spec = client.spec
        return cls(key=f"{client.metadata.namespace or 'default'}/{client.metadata.name}",
                   metadata=spec.wire_metadata(), spec_hash=spec.spec_hash(), registration=spec.registration,
                   client_id_url=spec.client_id_url, rotation=spec.rotation,
                   deletion_policy=spec.deletion_policy, deleting=deleting, rotation_request=rotation_request,
                   key_pair=spec.key_pair)

    def grace(self) -> timedelta:
        return self.rotation.grace() if self.rotation else timedelta(minutes=10)

    def with_keys(self, record: RegistrationRecord | None) -> Desired:
        """This Desired with the ``jwks`` its record's keys imply, unless the keys are published at a
        jwks_uri: what is declared, registered and compared for drift is the public half of the keys
        clientreg holds."""
        return self.with_key_list(record.keys if record is not None else [])

    def with_key_list(self, keys: list[ClientKey]) -> Desired:
        if self.key_pair is None or not keys or "jwks_uri" in self.metadata:
            return self
        return replace(self, metadata={**self.metadata, "jwks": keypairs.jwks(keys)})


class Observed(enum.StrEnum):
    PRESENT = "present"
    GONE = "gone"
    UNAUTHORIZED = "unauthorized"
    UNSUPPORTED = "unsupported"
    NOT_READ = "not-read"


@dataclass(frozen=True)
class Published:
    """What one URL of :func:`clientreg.publish.documents` served when observed."""

    url: str
    #: The parsed JSON; None when nothing usable was served (see ``detail``).
    document: Any = None
    detail: str = ""


@dataclass(frozen=True)
class Observation:
    state: Observed
    info: ClientInformation | None = None
    detail: str = ""
    #: Published documents as fetched (CIMD, JWKS at jwks_uri); empty when none exist or none were read.
    published: tuple[Published, ...] = ()

    @classmethod
    def not_read(cls) -> Observation:
        return cls(Observed.NOT_READ)


# --- plan -----------------------------------------------------------------------------------------------

def rotation_due(desired: Desired, record: RegistrationRecord, now: datetime) -> Action | None:
    """Why the current credentials must be replaced now, if they must."""
    if desired.rotation_request and desired.rotation_request != record.rotation_request:
        return Action(ActionKind.REGISTER_REPLACEMENT, Reason.ROTATION_REQUESTED,
                      f"rotation requested ({desired.rotation_request})")
    expires = record.expires_at()
    if expires is not None and record.client_secret is not None:
        threshold = expiry_threshold(desired.rotation, record, expires)
        if now >= threshold:
            return Action(ActionKind.REGISTER_REPLACEMENT, Reason.NEARING_EXPIRY,
                          f"client secret expires at {expires.isoformat()}; rotating ahead of it")
    if desired.rotation and desired.rotation.period:
        since = record.last_rotation or record.registered_at
        if now >= since + parse_duration(desired.rotation.period):
            return Action(ActionKind.REGISTER_REPLACEMENT, Reason.PERIOD_ELAPSED,
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
    times += [k.remove_after for k in record.keys if k.remove_after is not None]
    rotation = next_rotation(desired, record)
    if rotation is not None:
        times.append(rotation)
    return min(times) if times else None


def plan(desired: Desired, record: RegistrationRecord | None, observed: Observation, now: datetime) -> Plan:
    """Decide what to do. Pure: no I/O, no clock of its own."""
    actions: list[Action] = []
    desired = desired.with_keys(record)
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
        elif desired.key_pair is not None and record.keys:
            rotate = rotation_due(desired, record, now)
            if rotate:
                actions.append(_as_key_rotation(rotate))
    elif observed.state is Observed.GONE:
        actions.append(Action(ActionKind.REGISTER, Reason.CLIENT_GONE,
                              f"client {record.client_id} no longer exists at the AS; registering anew"))
    elif observed.state is Observed.UNAUTHORIZED:
        actions.append(Action(ActionKind.REGISTER, Reason.CREDENTIALS_REJECTED,
                              f"the AS rejects the registration access token of {record.client_id}; "
                              "registering anew"))
    else:
        rotate = rotation_due(desired, record, now)
        if rotate and _rotates_key(desired, record, observed):
            actions.append(_as_key_rotation(rotate))
        elif rotate:
            actions.append(rotate)
        elif record.spec_hash != desired.spec_hash:
            if observed.state is Observed.UNSUPPORTED or record.registration_client_uri is None:
                actions.append(Action(ActionKind.REGISTER_REPLACEMENT, Reason.SPEC_CHANGED_REPLACED,
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
        if not actions:
            actions.extend(_publication_checks(record, observed))
        if not actions and record.refused and record.refused_for_hash == desired.spec_hash:
            actions.append(Action(ActionKind.REPORT, Reason.REFUSED,
                                  "the AS did not keep declared values: "
                                  + describe_refusals(desired.metadata, record.refused)))
    if record is not None and desired.registration == "cimd" and not actions:
        actions.extend(_publication_checks(record, observed))
    if record is not None:
        for key in record.keys:
            if key.remove_after is not None and now >= key.remove_after:
                actions.append(Action(ActionKind.RETIRE_KEY, Reason.GRACE_OVER,
                                      f"grace period of old key {key.kid} is over; removing it from the JWKS",
                                      target=key.kid))
        for old in record.retiring:
            if now >= old.delete_after:
                actions.append(Action(ActionKind.DELETE_RETIRING, Reason.GRACE_OVER,
                                      f"grace period of old client {old.client_id} is over; deleting it",
                                      target=old.client_id))
    return Plan(tuple(actions))


def _rotates_key(desired: Desired, record: RegistrationRecord, observed: Observation) -> bool:
    """Rotation replaces the key, not the client, when the new key can reach the AS without a new
    registration: an RFC 7592 update of ``jwks``, or a re-published JWKS at ``jwks_uri``."""
    if desired.key_pair is None or not record.keys:
        return False
    if "jwks_uri" in desired.metadata:
        return True
    return record.registration_client_uri is not None and observed.state is not Observed.UNSUPPORTED


def _as_key_rotation(rotate: Action) -> Action:
    return Action(ActionKind.ROTATE_KEY, rotate.reason, rotate.message.replace("rotating", "rotating the key")
                  if "rotating" in rotate.message else f"{rotate.message}: rotating the client key")


def _publication_checks(record: RegistrationRecord, observed: Observation) -> list[Action]:
    """Published documents that do not serve what the record says. Only URLs that were actually
    read count: a plan made without looking claims nothing about them."""
    seen = {p.url: p for p in observed.published}
    actions = []
    for url, expected in publish.documents(record).items():
        served = seen.get(url)
        if served is None:
            continue
        if served.document is None:
            actions.append(Action(ActionKind.AWAIT_PUBLICATION, Reason.DOCUMENT_NOT_PUBLISHED,
                                  f"{url} does not serve the document yet ({served.detail or 'nothing served'})",
                                  target=url))
            continue
        fields = publish.differences(expected, served.document)
        if fields:
            actions.append(Action(ActionKind.AWAIT_PUBLICATION, Reason.DOCUMENT_DIFFERS,
                                  f"{url} serves a different document ({', '.join(fields)}); publish the "
                                  "rendered one", target=url, fields=tuple(fields)))
    return actions


# --- observe --------------------------------------------------------------------------------------------

Save = Callable[[RegistrationRecord | None], None]


#: GET a published document's URL and return its JSON; raise ClientregError when nothing usable is served.
Fetch = Callable[[str], Any]


def fetch_published(http: HttpClient) -> Fetch:
    """A :data:`Fetch` through clientreg's HttpClient (https, no redirects, bounded body)."""

    def fetch(url: str) -> Any:
        response = http.request("GET", url, retry=False)
        if response.status_code != 200:
            raise ProtocolError(f"GET {url} answered HTTP {response.status_code}", status=response.status_code,
                                url=url)
        data = parse_json(response.content)
        if data is NOT_JSON:
            raise ProtocolError(f"GET {url} did not return usable JSON", url=url)
        return data

    return fetch


def _observe_published(record: RegistrationRecord, fetch: Fetch | None) -> tuple[Published, ...]:
    expected = publish.documents(record)
    if not expected:
        return ()
    own: HttpClient | None = None
    if fetch is None:
        # Documents live on the client's web host, not at the AS: its caBundle and rate limit do not apply.
        own = HttpClient(HttpSettings(retries=1, max_body_bytes=256 * 1024, address_policy=USER_CONFIGURED))
        fetch = fetch_published(own)
    seen = []
    try:
        for url in expected:
            try:
                seen.append(Published(url, document=fetch(url)))
            except ClientregError as exc:
                seen.append(Published(url, detail=str(exc)))
    finally:
        if own is not None:
            own.close()
    return tuple(seen)


def observe(record: RegistrationRecord | None, server: ServerConnection, save: Save, *,
            fetch: Fetch | None = None) -> Observation:
    """One RFC 7592 read, plus a GET of every published document (CIMD, JWKS at jwks_uri).

    A RAT or secret the AS returns is persisted before anything else happens. ``fetch`` replaces how
    published documents are read (the CLI shares one client; an operator may guard it against SSRF).
    """
    if record is None:
        return Observation.not_read()
    if record.registration == "cimd":
        return Observation(Observed.NOT_READ, published=_observe_published(record, fetch))
    if record.registration_client_uri is None or record.registration_access_token is None:
        return Observation(Observed.UNSUPPORTED, detail="no registration_client_uri: RFC 7592 not offered",
                           published=_observe_published(record, fetch))
    try:
        info = rfc7592.read(server.http, record.registration_client_uri, record.registration_access_token)
    except ClientGone as exc:
        return Observation(Observed.GONE, detail=str(exc))
    except CredentialsRejected as exc:
        return Observation(Observed.UNAUTHORIZED, detail=str(exc))
    except OperationUnsupported as exc:
        return Observation(Observed.UNSUPPORTED, detail=str(exc), published=_observe_published(record, fetch))
    if _absorb_credentials(record, info) | _fill_endpoints(record, server):
        save(record)
    return Observation(Observed.PRESENT, info=info, published=_observe_published(record, fetch))


def _fill_endpoints(record: RegistrationRecord, server: ServerConnection) -> bool:
    """A registration interrupted between its two saves (see _register) lacks the endpoints workloads
    are given; the next look fills them in. True when something changed."""
    if record.issuer and record.token_endpoint:
        return False
    try:
        issuer, token_endpoint = server.issuer, server.token_endpoint
    except ClientregError:
        return False
    changed = False
    if not record.issuer and issuer:
        record.issuer, changed = issuer, True
    if not record.token_endpoint and token_endpoint:
        record.token_endpoint, changed = token_endpoint, True
    return changed


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
        if action.kind in (ActionKind.REGISTER, ActionKind.REGISTER_REPLACEMENT):
            record = _register(action, desired, record, server, save, now)
            credentials_changed = True
            events.append(Event(action.reason, f"{action.message}: client {record.client_id}"))
        elif action.kind is ActionKind.UPDATE:
            assert record is not None
            if _ensure_current_key(record, desired, now):
                # A key pair just declared (or its algorithm changed): kept before the AS hears of it.
                save(record)
                credentials_changed = True
            record = _update(desired.with_keys(record), record, observed, server, save)
            events.append(Event(action.reason, action.message))
            if record.refused:
                events.append(Event(Reason.REFUSED, "the AS did not keep declared values: "
                                    + describe_refusals(desired.with_keys(record).metadata, record.refused),
                                    warning=True))
        elif action.kind is ActionKind.ROTATE_KEY:
            assert record is not None
            new, old = _rotate_keys(record, desired, now)
            record.last_rotation = now
            record.rotation_request = desired.rotation_request or record.rotation_request
            _publish_keys(desired, record, observed, server, save)
            credentials_changed = True
            kept = f"; old key {', '.join(old)} stays in the JWKS until {(now + desired.grace()).isoformat()}" \
                if old else ""
            events.append(Event(Reason.KEY_ROTATED, f"{action.message}: new key {new}{kept}"))
        elif action.kind is ActionKind.RETIRE_KEY:
            assert record is not None
            record.keys = [k for k in record.keys if k.kid != action.target]
            _publish_keys(desired, record, observed, server, save)
            events.append(Event(action.reason, f"removed old key {action.target} from the JWKS"))
        elif action.kind is ActionKind.DELETE_RETIRING:
            assert record is not None
            event = _delete_retiring(record, action.target or "", server, save, now)
            events.append(event)
        elif action.kind is ActionKind.DELETE:
            assert record is not None
            _delete_all(record, server, save, now)
            events.append(Event(action.reason, action.message))
            return Outcome(None, action.reason, f"client {record.client_id} deleted at the AS", ready=False,
                           synced=True, events=events)
        elif action.kind is ActionKind.FORGET:
            assert record is not None
            save(None)
            events.append(Event(action.reason, action.message))
            return Outcome(None, action.reason, action.message, ready=False, synced=True, events=events)
        elif action.kind in (ActionKind.REPORT, ActionKind.AWAIT_PUBLICATION):
            synced = False
    if record is None:
        return Outcome(None, plan_.reason, plan_.message, ready=False, synced=False, events=events)
    reason: str  # a Reason, or a standing fact's reason from retiring
    reason, message = plan_.reason, plan_.message
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


def _ensure_current_key(record: RegistrationRecord, desired: Desired, now: datetime) -> bool:
    """Give the record a current key of the declared algorithm; True when one was generated."""
    if desired.key_pair is None:
        return False
    current = record.current_key()
    if current is not None and current.algorithm == desired.key_pair.algorithm:
        return False
    _rotate_keys(record, desired, now)
    return True


def _rotate_keys(record: RegistrationRecord, desired: Desired, now: datetime) -> tuple[str, list[str]]:
    """A new current key; the old current one retires after the grace period. (new kid, old kids)."""
    assert desired.key_pair is not None
    new = keypairs.generate(desired.key_pair.algorithm, now=now, rsa_key_size=desired.key_pair.rsa_key_size)
    old: list[str] = []
    keys = []
    for key in record.keys:
        if key.remove_after is None:
            key = key.model_copy(update={"remove_after": now + desired.grace()})
            old.append(key.kid)
        keys.append(key)
    record.keys = [*keys, new]
    return new.kid, old


def _publish_keys(desired: Desired, record: RegistrationRecord, observed: Observation, server: ServerConnection,
                  save: Save) -> None:
    """Make the record's key set reach the AS. The keys are saved first: a private key the AS accepts
    must never exist only in memory."""
    save(record)
    if record.registration == "cimd":
        assert desired.client_id_url is not None
        record.server_metadata = _render_cimd(desired.with_keys(record))
        save(record)
    elif "jwks_uri" not in desired.metadata and record.registration_client_uri is not None:
        _update(desired.with_keys(record), record, observed, server, save)


def _render_cimd(desired: Desired) -> dict[str, Any]:
    from .cimd import render_document

    assert desired.client_id_url is not None
    # The implied wire values too (response_types: [] for client_credentials-only clients): an AS reads
    # the document as if it were a registration request.
    return render_document(desired.client_id_url, request_metadata(desired.metadata))


def _keys_for(action: Action, desired: Desired, previous: RegistrationRecord | None,
              now: datetime) -> list[ClientKey]:
    """The keys a (re-)registration carries: the previous ones (a client re-registered after it vanished
    keeps working with the same key), a fresh one on rotation or when none is current."""
    if desired.key_pair is None:
        return []
    holder = RegistrationRecord(client_id="-", keys=list(previous.keys) if previous else [])
    if action.kind is ActionKind.REGISTER_REPLACEMENT and holder.keys:
        _rotate_keys(holder, desired, now)
    else:
        _ensure_current_key(holder, desired, now)
    return holder.keys


def _register(action: Action, desired: Desired, previous: RegistrationRecord | None,
              server: ServerConnection, save: Save, now: datetime) -> RegistrationRecord:
    keys = _keys_for(action, desired, previous, now)
    desired = desired.with_key_list(keys)
    server.check_policy(desired.metadata)
    if desired.registration == "cimd":
        return _publish_cimd(desired, previous, keys, server, save, now)
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
        retiring=list(previous.retiring) if previous else [], keys=keys,
    )
    if previous is not None:
        record.rotation_request = desired.rotation_request or previous.rotation_request
        record.last_rotation = now
        if action.reason is not Reason.CLIENT_GONE:
            # The old client may still be serving workloads (rotation) or may be unreachable with our
            # credentials (rejected RAT); either way it is deleted after the grace period, best effort.
            grace = desired.grace() if action.kind is ActionKind.REGISTER_REPLACEMENT else timedelta(0)
            record.retiring.append(RetiringClient(
                client_id=previous.client_id, registration_client_uri=previous.registration_client_uri,
                registration_access_token=previous.registration_access_token, delete_after=now + grace,
                reason=str(action.reason)))
    _note_refusals(record, desired, info.metadata)
    # Endpoints already known without a request go into the same first write; anything needing
    # discovery waits until the registration is safe on disk.
    record.issuer, record.token_endpoint = server.known_endpoints()
    _persist_registration(record, save)
    if server.spec.issuer and (record.issuer is None or record.token_endpoint is None):
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


def _publish_cimd(desired: Desired, previous: RegistrationRecord | None, keys: list[ClientKey],
                  server: ServerConnection, save: Save, now: datetime) -> RegistrationRecord:
    if not server.supports_cimd:
        raise OperationUnsupported(
            "the AS does not advertise client_id_metadata_document_supported (CIMD §5): use registration: dcr")
    assert desired.client_id_url is not None
    document = _render_cimd(desired)
    record = RegistrationRecord(client_id=desired.client_id_url, registration="cimd",
                                spec_hash=desired.spec_hash, server_metadata=document,
                                registered_at=previous.registered_at if previous else now,
                                issuer=server.issuer, token_endpoint=server.token_endpoint,
                                last_rotation=previous.last_rotation if previous else None,
                                rotation_request=previous.rotation_request if previous else desired.rotation_request,
                                declared_fields=sorted(desired.metadata), keys=keys)
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
                     save: Save, now: datetime, *, strict: bool = False) -> Event:
    old = next((r for r in record.retiring if r.client_id == client_id), None)
    if old is None:
        return Event(Reason.GRACE_OVER, f"old client {client_id} already gone")
    event = Event(Reason.GRACE_OVER, f"deleted old client {client_id}")
    if old.registration_client_uri and old.registration_access_token:
        interrupted = retiring.mark_sending(record, old, save)
        try:
            rfc7592.delete(server.http, old.registration_client_uri, old.registration_access_token, retry=False)
        except ClientGone:
            event = Event(Reason.GRACE_OVER, f"old client {client_id} was already gone")
        except CredentialsRejected:
            if interrupted:  # our own earlier DELETE, whose answer was lost, took the token with the client
                event = Event(Reason.GRACE_OVER, retiring.INTERRUPTED.format(client_id=client_id))
            else:
                # 401: gone, or someone else holds its token now. Never "gone": kept, reported, retried.
                retiring.note_refusal(old, now)
                save(record)
                if strict:
                    raise retiring.RetiringDeleteRefused(retiring.refusal_message(old, deleting=True)) from None
                return Event(retiring.DELETE_REFUSED, retiring.refusal_message(old), warning=True)
        except (OperationUnsupported, NotPermitted) as exc:
            event = Event(Reason.GRACE_OVER, f"could not delete old client {client_id} ({exc.reason}); "
                          "remove it at the AS by hand", warning=True)
        except (TransportError, ProtocolError) as exc:
            if strict:
                raise
            # Cleanup of an old client must not fail the reconcile of the current one: keep it
            # retiring and try again next time.
            return Event(Reason.GRACE_OVER, f"could not delete old client {client_id} yet ({exc.reason}); "
                         "will retry", warning=True)
    else:
        event = Event(Reason.GRACE_OVER, f"old client {client_id} has no RFC 7592 access; remove it at "
                      "the AS by hand", warning=True)
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


def reconcile(desired: Desired, record: RegistrationRecord | None, server: ServerConnection, save: Save,
              now: datetime | None = None, *, fetch: Fetch | None = None) -> tuple[Plan, Outcome]:
    """observe → plan → apply: what every front end runs for one resource."""
    now = now or datetime.now(UTC)
    if not desired.deleting:  # the redirect policy binds DCR and CIMD clients alike, before any request
        server.check_policy(desired.metadata)
    observation = observe(record, server, save, fetch=fetch) if not desired.deleting else Observation.not_read()
    the_plan = plan(desired, record, observation, now)
    return the_plan, apply(the_plan, desired, record, observation, server, save, now)


__all__ = [
    "Action", "ActionKind", "ConfigurationError", "Desired", "Event", "Fetch", "Observation", "Observed", "Outcome",
    "Plan", "Published", "Reason", "apply", "fetch_published", "next_rotation", "next_wakeup", "observe", "plan",
    "reconcile", "rotation_due",
]
