"""What one reconcile tells the controller: when to look next, and whether a deletion is done."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    """What the caller needs to schedule the next look."""

    #: Deletion only: True when the client is gone (or orphaned) and the finalizer may go.
    finished: bool = True
    #: Seconds until the next reconcile is due; None: only a change to the resource brings one.
    requeue_after: float | None = None
    #: The credentials in the Secret were replaced (rotation, re-registration): consumers may restart.
    rotated: bool = False
    secret_name: str | None = None
    client_id: str | None = None
    reason: str | None = None
