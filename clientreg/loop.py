"""The one reconcile loop every front end runs for one resource (CLI, operator, Pulumi provider).

observe → plan → apply (which includes the cleanup of retiring clients and keys whose grace period is
over) → re-plan on the new record until nothing more is due now → when time-driven work is next due.
Front ends turn the :class:`~clientreg.execute.Outcome` into their own status; they re-implement no step.

Converging in one run is Terraform's create-before-destroy carried to a fixed point: a rotation with
``gracePeriod: 0s`` registers the replacement and then, in the same run, deletes the old client, whose
grace period is over the moment the replacement exists. The passes after the first are bounded and never
register a client: at most one registration per run, whatever a server's answers make the policies say.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from .actions import ActionKind, Plan
from .desired import Desired
from .execute import Outcome, apply
from .observation import Fetch, Observation, Observed, Save, observe
from .policies import next_wakeup, plan
from .record import RegistrationRecord
from .server import ServerConnection

#: Passes after the first: enough for "register a replacement, then delete the old one" and for a key
#: rotation a document change hid; a bound, so that no answer can keep a run going.
MAX_FOLLOW_UP_PASSES = 2
#: What a follow-up pass may do: finish this run's work, never start another registration.
FOLLOW_UP = frozenset({ActionKind.DELETE_RETIRING, ActionKind.RETIRE_KEY, ActionKind.ROTATE_KEY, ActionKind.UPDATE})


def reconcile_once(desired: Desired, record: RegistrationRecord | None, server: ServerConnection, save: Save,
                   now: datetime | None = None, *, fetch: Fetch | None = None) -> tuple[Plan, Outcome]:
    """Run the loop once for one resource. The caller's ``record`` is never changed: the record after the
    run is ``Outcome.record`` (already saved). Returns the first pass's plan (what the run was for) and the
    outcome of the whole run."""
    now = now or datetime.now(UTC)
    if record is not None:
        record = record.model_copy(deep=True)
    if not desired.deleting:  # the redirect policy binds DCR and CIMD clients alike, before any request
        server.check_policy(desired.metadata)
        if record is not None:  # ... and only the server that issued a client may be given its metadata
            server.check_owns(record)
    observation = observe(record, server, save, fetch=fetch) if not desired.deleting else Observation.not_read()
    the_plan = plan(desired, record, observation, now)
    outcome = apply(the_plan, desired, record, observation, server, save, now)
    if not desired.deleting and the_plan.writes:
        outcome = _follow_up(desired, the_plan, outcome, observation, server, save, now)
    outcome.next_due = next_wakeup(desired, outcome.record)
    return the_plan, outcome


def _follow_up(desired: Desired, first: Plan, outcome: Outcome, observed: Observation, server: ServerConnection,
               save: Save, now: datetime) -> Outcome:
    """Re-plan on the record the run left and carry out what is due now, to a fixed point. An action this
    run already tried (a DELETE that failed and stays retiring) waits for the next run."""
    # The AS holds what this run just wrote: no second read. What the web served is still what was seen.
    known = replace(observed, state=Observed.NOT_READ, info=None, record=None)
    tried = {(a.kind, a.target) for a in first.actions}
    for _ in range(MAX_FOLLOW_UP_PASSES):
        if outcome.record is None:
            break
        follow = plan(desired, outcome.record, known, now)
        due = tuple(a for a in follow.actions if a.kind in FOLLOW_UP and (a.kind, a.target) not in tried)
        if not due:
            break
        tried.update((a.kind, a.target) for a in due)
        more = apply(Plan(due, fired=follow.fired), desired, outcome.record, known, server, save, now)
        outcome = _merged(outcome, more)
    return outcome


def _merged(first: Outcome, then: Outcome) -> Outcome:
    """One outcome for the run: every event, the state after the last pass, the first pass's reason unless
    the state after the run is a standing fact (not Ready, not Synced) with its own."""
    reason = first.reason if then.ready and then.synced else then.reason
    return replace(then, reason=reason, events=[*first.events, *then.events],
                   credentials_changed=first.credentials_changed or then.credentials_changed,
                   requests=first.requests + then.requests)


__all__ = ["FOLLOW_UP", "MAX_FOLLOW_UP_PASSES", "Outcome", "reconcile_once"]
