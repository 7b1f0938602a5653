"""The one reconcile loop every front end runs for one resource (CLI, operator, Pulumi provider).

observe → plan → apply (which includes the cleanup of retiring clients and keys whose grace period is
over) → when time-driven work is next due. Front ends turn the :class:`~clientreg.apply.Outcome` into
their own status; they re-implement no step of it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from .actions import Plan
from .apply import Outcome, apply
from .desired import Desired
from .observe import Fetch, Observation, Save, observe
from .policies import next_wakeup, plan
from .record import RegistrationRecord
from .server import ServerConnection


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
    observation = observe(record, server, save, fetch=fetch) if not desired.deleting else Observation.not_read()
    the_plan = plan(desired, record, observation, now)
    outcome = apply(the_plan, desired, record, observation, server, save, now)
    outcome.next_due = next_wakeup(desired, outcome.record)
    return the_plan, outcome


__all__ = ["Outcome", "reconcile_once"]
