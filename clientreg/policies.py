"""Why clientreg does what it does: the ordered policy chain behind :func:`plan`.

Each policy answers one question about one client ("does this apply, and why?") with a :class:`Fired`
(one reason, a message, the actions it calls for) or None. :func:`plan` evaluates :data:`CHAIN` in order and
records EVERY policy that fired in the plan (``clientreg plan`` shows them all); precedence decides which
of them act:

- ``EXCLUSIVE`` (deletion): when it fires, it alone acts and the rest of the chain is not asked.
- ``PRIMARY``: the first primary policy that fires decides what happens to the client (register, register
  a replacement, rotate the key, update); later primary ones are recorded, not acted on. Whatever acts
  brings the client to the whole declared state: a replacement is registered with the declared metadata
  and the record carries the new spec hash, so a spec change found with a due rotation needs no second
  action (and :func:`clientreg.loop.reconcile_once` re-plans until nothing is left, should one remain).
- ``UNLESS_ACTING``: acts only when nothing before it acts (waiting for publication, reporting refusals).
- ``ALWAYS``: acts whenever it fires (retiring old clients and keys after their grace period).

Pure: no I/O, no clock of its own (``now`` is given).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from . import publish
from .actions import Action, ActionKind, Plan
from .desired import Desired
from .drift import describe_refusals, differences, drifted
from .observation import Observation, Observed
from .reasons import Reason
from .record import RegistrationRecord
from .spec import Rotation


@dataclass(frozen=True)
class Context:
    """What every policy looks at. ``desired`` already carries the jwks the record's keys imply."""

    desired: Desired
    record: RegistrationRecord | None
    observed: Observation
    now: datetime


@dataclass(frozen=True)
class Fired:
    """A policy applies: why (one reason and a message), and what it would do."""

    policy: str
    reason: Reason
    message: str
    actions: tuple[Action, ...] = ()
    #: Set by plan(): whether precedence let this policy act.
    acted: bool = False

    def describe(self) -> str:
        return f"{self.policy}: {self.reason}: {self.message}" + ("" if self.acted else " (not acted on: precedence)")


class Precedence(enum.StrEnum):
    EXCLUSIVE = "exclusive"
    PRIMARY = "primary"
    UNLESS_ACTING = "unless-acting"
    ALWAYS = "always"


Check = Callable[[Context], "Fired | None"]


@dataclass(frozen=True)
class Policy:
    name: str
    precedence: Precedence
    check: Check


def _fired(name: str, reason: Reason, message: str, *actions: Action) -> Fired:
    return Fired(name, reason, message, actions)


def _act(kind: ActionKind, reason: Reason, message: str, *, target: str | None = None,
         fields: tuple[str, ...] = ()) -> Action:
    return Action(kind, reason, message, target=target, fields=fields)


# --- the policies, in chain order -----------------------------------------------------------------------

def deleting(ctx: Context) -> Fired | None:
    """The resource is being deleted: delete the client at the AS, or forget it (deletionPolicy Orphan)."""
    if not ctx.desired.deleting:
        return None
    record = ctx.record
    if record is None:
        return Fired("Deleting", Reason.DELETED, "nothing registered; nothing to delete")
    if ctx.desired.deletion_policy == "Orphan":
        message = f"deletionPolicy Orphan: client {record.client_id} is kept at the AS"
        return _fired("Deleting", Reason.ORPHANED, message, _act(ActionKind.FORGET, Reason.ORPHANED, message))
    message = f"deleting client {record.client_id} at the AS"
    return _fired("Deleting", Reason.DELETED, message, _act(ActionKind.DELETE, Reason.DELETED, message))


def not_registered(ctx: Context) -> Fired | None:
    if ctx.record is not None:
        return None
    message = "registering a new client"
    return _fired("NotRegistered", Reason.NOT_REGISTERED, message,
                  _act(ActionKind.REGISTER, Reason.NOT_REGISTERED, message))


def client_gone_at_server(ctx: Context) -> Fired | None:
    if ctx.record is None or ctx.observed.state is not Observed.GONE:
        return None
    message = f"client {ctx.record.client_id} no longer exists at the AS; registering anew"
    return _fired("ClientGoneAtServer", Reason.CLIENT_GONE, message,
                  _act(ActionKind.REGISTER, Reason.CLIENT_GONE, message))


def registration_access_token_revoked(ctx: Context) -> Fired | None:
    """401 to the read and the client not proven gone (clientreg.liveness): never replace it silently."""
    record = ctx.record
    if record is None or ctx.observed.state is not Observed.TOKEN_REVOKED:
        return None
    message = (f"the AS rejects the registration access token of client {record.client_id} but the client still "
               "exists (or cannot be proven gone): someone else may hold it; nothing is replaced. "
               f"({ctx.observed.detail}) Adopt it by restoring a valid registration access token into the "
               "record, or delete it (clientreg delete, or deletionPolicy)")
    return _fired("RegistrationAccessTokenRevoked", Reason.TOKEN_REVOKED, message,
                  _act(ActionKind.REPORT, Reason.TOKEN_REVOKED, message, target=record.client_id))


def metadata_document_changed(ctx: Context) -> Fired | None:
    """CIMD: the document (or its URL) changed; publishing it is the update (the URL is the client)."""
    record, desired = ctx.record, ctx.desired
    if record is None or desired.registration != "cimd":
        return None
    if record.spec_hash == desired.spec_hash and record.client_id == desired.client_id_url:
        return None
    message = "client metadata document changed; publishing it anew"
    return _fired("MetadataDocumentChanged", Reason.SPEC_CHANGED, message,
                  _act(ActionKind.REGISTER, Reason.SPEC_CHANGED, message))


def _rotation(name: str, reason: Reason) -> Check:
    def check(ctx: Context) -> Fired | None:
        if ctx.record is None:
            return None
        due = _ROTATION_CHECKS[reason](ctx.desired, ctx.record, ctx.now)
        if due is None:
            return None
        action = _rotation_action(ctx, due)
        return None if action is None else _fired(name, reason, due.message, action)

    check.__name__ = check.__qualname__ = name
    check.__doc__ = f"{reason}: the current credentials must be replaced now."
    return check


def _rotation_action(ctx: Context, due: Action) -> Action | None:
    """A rotation replaces the key when the new key can reach the AS without a new registration (RFC 7592
    update of ``jwks``, a re-published JWKS or CIMD document); otherwise the client."""
    desired, record = ctx.desired, ctx.record
    assert record is not None
    rotates_key = desired.key_pair is not None and bool(record.keys) and (
        desired.registration == "cimd" or "jwks_uri" in desired.metadata
        or (record.registration_client_uri is not None and ctx.observed.state is not Observed.UNSUPPORTED))
    if rotates_key:
        message = due.message.replace("rotating", "rotating the key") if "rotating" in due.message \
            else f"{due.message}: rotating the client key"
        return _act(ActionKind.ROTATE_KEY, due.reason, message)
    if desired.registration == "cimd":
        return None  # a CIMD client has no secret: only its keys rotate
    return due


def spec_changed_without_update(ctx: Context) -> Fired | None:
    """DCR without RFC 7592 (or an AS that refuses it): a spec change needs a replacement client."""
    record, desired = ctx.record, ctx.desired
    if record is None or desired.registration != "dcr" or record.spec_hash == desired.spec_hash:
        return None
    if ctx.observed.state is not Observed.UNSUPPORTED and record.registration_client_uri is not None:
        return None
    message = "spec changed and the AS offers no RFC 7592 update: registering a replacement client"
    return _fired("SpecChangedWithoutUpdate", Reason.SPEC_CHANGED_REPLACED, message,
                  _act(ActionKind.REGISTER_REPLACEMENT, Reason.SPEC_CHANGED_REPLACED, message))


def spec_changed(ctx: Context) -> Fired | None:
    record, desired = ctx.record, ctx.desired
    if record is None or desired.registration != "dcr" or record.spec_hash == desired.spec_hash:
        return None
    if ctx.observed.state is Observed.UNSUPPORTED or record.registration_client_uri is None:
        return None
    changed = tuple(sorted(differences(desired.metadata, record.server_metadata)))
    # A client adopted from elsewhere has no spec hash yet: its first update takes it over; no spec changed.
    message = ("adopted client: the declared metadata replaces what the AS held" if not record.spec_hash
               else "spec changed") + (f" ({', '.join(changed)})" if changed else "")
    return _fired("SpecChanged", Reason.SPEC_CHANGED, message,
                  _act(ActionKind.UPDATE, Reason.SPEC_CHANGED, message, fields=changed))


def drift_at_server(ctx: Context) -> Fired | None:
    record, desired, observed = ctx.record, ctx.desired, ctx.observed
    if record is None or observed.state is not Observed.PRESENT or observed.info is None \
            or record.spec_hash != desired.spec_hash:
        return None
    refused = record.refused if record.refused_for_hash == desired.spec_hash else {}
    drift = drifted(desired.metadata, observed.info.metadata, refused)
    if not drift:
        return None
    fields = tuple(sorted(drift))
    message = f"changed at the AS: {', '.join(fields)}; restoring declared values"
    return _fired("DriftAtServer", Reason.DRIFT, message, _act(ActionKind.UPDATE, Reason.DRIFT, message, fields=fields))


def _publication(ctx: Context, *, missing: bool) -> list[Action]:
    """Published documents not served as the record says. Only URLs actually read count: a plan made
    without looking claims nothing about them."""
    if ctx.record is None:
        return []
    seen = {p.url: p for p in ctx.observed.published}
    actions = []
    for url, expected in publish.documents(ctx.record).items():
        served = seen.get(url)
        if served is None:
            continue
        if served.document is None:
            if missing:
                actions.append(_act(ActionKind.AWAIT_PUBLICATION, Reason.DOCUMENT_NOT_PUBLISHED,
                                    f"{url} does not serve the document yet ({served.detail or 'nothing served'})",
                                    target=url))
            continue
        fields = publish.differences(expected, served.document)
        if fields and not missing:
            actions.append(_act(ActionKind.AWAIT_PUBLICATION, Reason.DOCUMENT_DIFFERS,
                                f"{url} serves a different document ({', '.join(fields)}); publish the rendered one",
                                target=url, fields=tuple(fields)))
    return actions


def document_not_published(ctx: Context) -> Fired | None:
    actions = _publication(ctx, missing=True)
    return Fired("DocumentNotPublished", Reason.DOCUMENT_NOT_PUBLISHED, actions[0].message, tuple(actions)) \
        if actions else None


def published_document_differs(ctx: Context) -> Fired | None:
    actions = _publication(ctx, missing=False)
    return Fired("PublishedDocumentDiffers", Reason.DOCUMENT_DIFFERS, actions[0].message, tuple(actions)) \
        if actions else None


def server_refused_value(ctx: Context) -> Fired | None:
    record, desired = ctx.record, ctx.desired
    if record is None or not record.refused or record.refused_for_hash != desired.spec_hash:
        return None
    message = "the AS did not keep declared values: " + describe_refusals(desired.metadata, record.refused)
    return _fired("ServerRefusedValue", Reason.REFUSED, message, _act(ActionKind.REPORT, Reason.REFUSED, message))


def retired_key_grace_over(ctx: Context) -> Fired | None:
    if ctx.record is None:
        return None
    actions = tuple(_act(ActionKind.RETIRE_KEY, Reason.GRACE_OVER,
                         f"grace period of old key {key.kid} is over; removing it from the JWKS", target=key.kid)
                    for key in ctx.record.keys if key.remove_after is not None and ctx.now >= key.remove_after)
    return Fired("RetiredKeyGraceOver", Reason.GRACE_OVER, actions[0].message, actions) if actions else None


def retired_client_grace_over(ctx: Context) -> Fired | None:
    if ctx.record is None:
        return None
    actions = tuple(_act(ActionKind.DELETE_RETIRING, Reason.GRACE_OVER,
                         f"grace period of old client {old.client_id} is over; deleting it", target=old.client_id)
                    for old in ctx.record.retiring if ctx.now >= old.delete_after)
    return Fired("RetiredClientGraceOver", Reason.GRACE_OVER, actions[0].message, actions) if actions else None


P = Precedence
#: The chain, in precedence order. Adding a policy: a function above, a line here, a test of it and of
#: its place (tests/unit/test_policies.py), a reason in clientreg/reasons.py.
CHAIN: tuple[Policy, ...] = (
    Policy("Deleting", P.EXCLUSIVE, deleting),
    Policy("NotRegistered", P.PRIMARY, not_registered),
    Policy("ClientGoneAtServer", P.PRIMARY, client_gone_at_server),
    Policy("RegistrationAccessTokenRevoked", P.PRIMARY, registration_access_token_revoked),
    Policy("MetadataDocumentChanged", P.PRIMARY, metadata_document_changed),
    Policy("RotationRequested", P.PRIMARY, _rotation("RotationRequested", Reason.ROTATION_REQUESTED)),
    Policy("SecretNearingExpiry", P.PRIMARY, _rotation("SecretNearingExpiry", Reason.NEARING_EXPIRY)),
    Policy("RotationPeriodElapsed", P.PRIMARY, _rotation("RotationPeriodElapsed", Reason.PERIOD_ELAPSED)),
    Policy("SpecChangedWithoutUpdate", P.PRIMARY, spec_changed_without_update),
    Policy("SpecChanged", P.PRIMARY, spec_changed),
    Policy("DriftAtServer", P.PRIMARY, drift_at_server),
    Policy("DocumentNotPublished", P.UNLESS_ACTING, document_not_published),
    Policy("PublishedDocumentDiffers", P.UNLESS_ACTING, published_document_differs),
    Policy("ServerRefusedValue", P.UNLESS_ACTING, server_refused_value),
    Policy("RetiredKeyGraceOver", P.ALWAYS, retired_key_grace_over),
    Policy("RetiredClientGraceOver", P.ALWAYS, retired_client_grace_over),
)


def plan(desired: Desired, record: RegistrationRecord | None, observed: Observation, now: datetime) -> Plan:
    """Decide what to do: evaluate :data:`CHAIN` in order. Pure: no I/O, no clock of its own."""
    record = observed.current(record)
    ctx = Context(desired.with_keys(record), record, observed, now)
    fired: list[Fired] = []
    actions: list[Action] = []
    for policy in CHAIN:
        found = policy.check(ctx)
        if found is None:
            continue
        # Exclusive and cleanup policies always act; the others only when nothing before them acted.
        acts = policy.precedence in (Precedence.EXCLUSIVE, Precedence.ALWAYS) or not any(f.acted for f in fired)
        if acts:
            actions.extend(found.actions)
        fired.append(Fired(found.policy, found.reason, found.message, found.actions, acted=acts))
        if policy.precedence is Precedence.EXCLUSIVE:
            break
    return Plan(tuple(actions), fired=tuple(fired))


# --- time-driven work -----------------------------------------------------------------------------------

def _requested(desired: Desired, record: RegistrationRecord, now: datetime) -> Action | None:
    if desired.rotation_request and desired.rotation_request != record.rotation_request:
        return Action(ActionKind.REGISTER_REPLACEMENT, Reason.ROTATION_REQUESTED,
                      f"rotation requested ({desired.rotation_request})")
    return None


def _nearing_expiry(desired: Desired, record: RegistrationRecord, now: datetime) -> Action | None:
    expires = record.expires_at()
    if expires is not None and record.client_secret is not None \
            and now >= expiry_threshold(desired.rotation, record, expires):
        return Action(ActionKind.REGISTER_REPLACEMENT, Reason.NEARING_EXPIRY,
                      f"client secret expires at {expires.isoformat()}; rotating ahead of it")
    return None


def _period_elapsed(desired: Desired, record: RegistrationRecord, now: datetime) -> Action | None:
    if desired.rotation and desired.rotation.period_delta is not None:
        since = record.last_rotation or record.registered_at
        if now >= since + desired.rotation.period_delta:
            return Action(ActionKind.REGISTER_REPLACEMENT, Reason.PERIOD_ELAPSED,
                          f"rotation period {desired.rotation.period} elapsed since {since.isoformat()}")
    return None


_ROTATION_CHECKS = {Reason.ROTATION_REQUESTED: _requested, Reason.NEARING_EXPIRY: _nearing_expiry,
                    Reason.PERIOD_ELAPSED: _period_elapsed}


def rotation_due(desired: Desired, record: RegistrationRecord, now: datetime) -> Action | None:
    """Why the current credentials must be replaced now, if they must (the first reason that applies)."""
    for check in _ROTATION_CHECKS.values():
        due = check(desired, record, now)
        if due is not None:
            return due
    return None


def expiry_threshold(rotation: Rotation | None, record: RegistrationRecord, expires: datetime) -> datetime:
    if rotation and rotation.rotate_before_delta is not None:
        return expires - rotation.rotate_before_delta
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
    if desired.rotation and desired.rotation.period_delta is not None:
        times.append((record.last_rotation or record.registered_at) + desired.rotation.period_delta)
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


__all__ = ["CHAIN", "Context", "Fired", "Policy", "Precedence", "expiry_threshold", "next_rotation", "next_wakeup",
           "plan", "rotation_due"]
