"""One mapping from the core's :class:`~clientreg.execute.Outcome` (or a :class:`~clientreg.actions.Plan`) to
the status every front end shows: the CLI's state file, the operator's conditions, the Pulumi outputs.

The rule, in one place so no front end can contradict itself ("InSync" next to "registering a new
client"): ``reason`` and ``message`` describe the state AFTER the run. A run that acted and left the client
ready and synced reports ``InSync`` with the state message; why it acted (``acted``) and what it did (the
outcome's events) are told separately, as events or log lines. Anything short of ready and synced is a
standing fact: its own reason and message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .actions import Plan
from .desired import Desired
from .execute import Outcome, state_message
from .policies import next_wakeup
from .reasons import Reason
from .record import RegistrationRecord

#: Plans that say the client cannot be used as it stands (nothing registered, or not reachable as the
#: record knows it, or the AS cannot see its document yet).
_NOT_USABLE = frozenset({Reason.NOT_REGISTERED, Reason.CLIENT_GONE, Reason.CREDENTIALS_REJECTED,
                         Reason.DOCUMENT_NOT_PUBLISHED})


@dataclass(frozen=True)
class Status:
    """What a front end shows for one client."""

    ready: bool
    synced: bool
    #: A registered reason (clientreg.reasons): InSync exactly when ready and synced.
    reason: str
    #: The state the reason stands for, never the last action taken.
    message: str
    #: When time-driven work (a rotation, the end of a grace period) is next due.
    next_due: datetime | None = None
    #: Why the run acted (the first acting policy's reason); None when it did nothing.
    acted: str | None = None

    @property
    def in_sync(self) -> bool:
        return self.ready and self.synced

    @property
    def headline(self) -> str:
        """For a log of runs (the CLI's apply table, and `get` after it): why the run acted when it ended in
        sync ("NotRegistered" next to "client … matches its spec"), else the standing reason. A status
        field (operator conditions, Pulumi's ``status``) uses :attr:`reason`."""
        return self.acted if self.in_sync and self.acted else self.reason

    def due(self, now: datetime) -> bool:
        """Time-driven work is due now (a front end without its own timer asks on every look)."""
        return self.next_due is not None and now >= self.next_due


def of_outcome(outcome: Outcome) -> Status:
    """The status a run left behind."""
    acted = str(outcome.reason) if outcome.events else None
    if outcome.ready and outcome.synced:
        return Status(True, True, str(Reason.IN_SYNC), outcome.message, outcome.next_due, acted)
    return Status(outcome.ready, outcome.synced, str(outcome.reason), outcome.message, outcome.next_due, acted)


def of_plan(the_plan: Plan, desired: Desired, record: RegistrationRecord | None, now: datetime) -> Status:
    """The status an observation shows before anything is done (a refresh, ``clientreg plan``): InSync when
    no policy asks for anything, else the first acting policy's reason and message. ``record``: the one the
    plan was made on (``Observation.current``)."""
    due = next_wakeup(desired, record)
    if not the_plan.actions:
        message = state_message(record, now) if record is not None else "nothing registered"
        return Status(record is not None, True, str(Reason.IN_SYNC), message, due)
    first = the_plan.actions[0]
    # Work to do, or a standing fact such as a refusal already reported: not synced either way; the
    # client still works unless the plan says it cannot be used as the record knows it.
    ready = record is not None and first.reason not in _NOT_USABLE
    return Status(ready, False, str(first.reason), first.message, due)


def drifted_fields(the_plan: Plan) -> tuple[str, ...]:
    """The declared properties the AS changed behind clientreg's back, as the DriftAtServer policy found
    them (whether or not precedence let it act: a due rotation does not hide drift from the user)."""
    return tuple(sorted({f for fired in the_plan.fired if fired.reason is Reason.DRIFT
                         for action in fired.actions for f in action.fields}))


__all__ = ["Status", "drifted_fields", "of_outcome", "of_plan"]
