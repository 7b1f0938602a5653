"""What a plan is made of: actions, each with the reason that caused it, and the policies that fired."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .reasons import Reason

if TYPE_CHECKING:
    from .policies import Fired


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
    #: Every policy that fired, in chain order, whether or not precedence let it act (clientreg.policies).
    fired: tuple[Fired, ...] = ()

    @property
    def reason(self) -> Reason:
        return self.actions[0].reason if self.actions else Reason.IN_SYNC

    @property
    def message(self) -> str:
        return self.actions[0].message if self.actions else "client matches its spec"

    @property
    def writes(self) -> bool:
        return any(a.writes for a in self.actions)

    def explain(self) -> list[str]:
        """One line per policy that fired: why, and whether it acted."""
        return [f.describe() for f in self.fired]


__all__ = ["Action", "ActionKind", "Plan"]
