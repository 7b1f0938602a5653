"""The reconcile engine, as the front ends import it: one name space over the modules that implement it.

- :mod:`clientreg.desired` — what one OAuthClient asks for (:class:`Desired`)
- :mod:`clientreg.observation` — what the AS and the web hold now (:func:`observe`, never mutates the record)
- :mod:`clientreg.policies` — why: the ordered policy chain behind the pure :func:`plan`
- :mod:`clientreg.actions` — what a plan is made of (:class:`Action`, :class:`Plan`)
- :mod:`clientreg.execute` / :mod:`clientreg.registration` — carrying a plan out, persisting after every answer
- :mod:`clientreg.loop` — observe → plan → apply → cleanup → next due time (:func:`reconcile`)
- :mod:`clientreg.reasons` — every reason, one meaning each
"""

from __future__ import annotations

from .actions import Action, ActionKind, Plan
from .desired import Desired
from .errors import ConfigurationError
from .execute import Event, Outcome, apply
from .loop import reconcile_once
from .observation import Fetch, Observation, Observed, Published, Save, fetch_published, observe
from .policies import next_rotation, next_wakeup, plan, rotation_due
from .reasons import Reason

#: The loop under its historical name (same signature): what every front end runs for one resource.
reconcile = reconcile_once

__all__ = [
    "Action", "ActionKind", "ConfigurationError", "Desired", "Event", "Fetch", "Observation", "Observed", "Outcome",
    "Plan", "Published", "Reason", "Save", "apply", "fetch_published", "next_rotation", "next_wakeup", "observe",
    "plan", "reconcile", "reconcile_once", "rotation_due",
]
