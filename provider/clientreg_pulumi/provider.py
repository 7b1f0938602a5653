"""The Pulumi dynamic provider: Pulumi's resource lifecycle mapped onto the core's one reconcile loop.

=========  =====================================================================================
check      the core models validate the arguments; failures name the argument and the rule
diff       pure: arguments compared as the AS compares them; a new AS is a replacement; time-driven
           work the core says is due (a rotation, a retired client or key past its grace period) or
           what refresh found (drift, a deleted Secret, a failed step) means an update
create     :func:`clientreg.engine.reconcile` with no record (or an adopted one)  (lifecycle.py)
read       one observation and the core's pure plan: drift shows on refresh; only a client the core
           says is gone leaves the state (refresh.py)
update     :func:`clientreg.engine.reconcile` with the record kept in the outputs  (lifecycle.py)
delete     :func:`clientreg.engine.reconcile` with ``deleting=True`` (honours deletion_policy)
=========  =====================================================================================

The status outputs come from :mod:`clientreg.report`, the mapping every front end shares.

Pickled with dill into every resource's state: this object carries no attributes at all.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)
from pulumi.runtime import rpc
from pydantic import ValidationError

from clientreg.engine import next_rotation, next_wakeup, rotation_due

from . import args, lifecycle, refresh
from .lifecycle import ADDRESS_POLICY, OAuthClientError
from .outputs import (
    CLIENT_OUTPUTS,
    NEEDS_UPDATE,
    STATUS_FAILED,
    STATUS_IN_SYNC,
    STATUS_SECRET_DRIFT,
    published_documents,
    record_of,
)


class OAuthClientProvider(ResourceProvider):
    """Registers, updates, rotates and deletes one OAuth client per resource through the clientreg core."""

    # The pickle holds a reference to this class and nothing else (see __getstate__), so keeping it
    # readable in the state costs nothing and lets `pulumi stack export` show there is nothing inside.
    serialize_as_secret_always = False

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        pass

    # --- check / diff: pure ----------------------------------------------------------------------

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return CheckResult(news, [CheckFailure(prop, reason) for prop, reason in args.problems(news)])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = args.changed_args(olds, news, args.REPLACE_ARGS)
        updates = args.changed_args(olds, news, tuple(a for a in (*args.ECHOED_ARGS, *args.INTERNAL_ARGS)
                                                      if a not in args.REPLACE_ARGS))
        pending = pending_work(olds, news, datetime.now(UTC))
        rotating = ("rotation" in pending) or args.ROTATION_TRIGGER in updates
        return DiffResult(changes=bool(replaces or updates or pending), replaces=replaces,
                          stables=[] if (replaces or rotating) else list(CLIENT_OUTPUTS),
                          delete_before_replace=False)

    # --- create / read / update / delete: one run of the core's loop each ----------------------

    def create(self, props: dict[str, Any]) -> CreateResult:
        id_, outs = lifecycle.create(props)
        return CreateResult(id_, outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        found = refresh.read_with_inputs(id_, props, engine_inputs())
        if found is None:
            return ReadResult(None, {})
        outs, inputs = found
        return ReadResult(id_, outs, inputs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(lifecycle.update(olds, news))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        lifecycle.delete(props)


def engine_inputs() -> dict[str, Any] | None:
    """The resource's inputs as the engine sent them in its Read request, or None when not at hand.

    The SDK's dynamic-provider host hands ``read`` the outputs only; its ``Read`` method, a few frames up,
    holds the request. Refresh needs the inputs to show drift where ``preview --diff`` looks (see
    :func:`clientreg_pulumi.refresh.read_with_inputs`); without them (another host, a direct call) drift is
    still in the outputs (``status``, ``status_message``), only the diff does not mark the property.
    """
    frame: FrameType | None = sys._getframe(1)
    for _ in range(6):
        frame = frame.f_back if frame is not None else None
        if frame is None:
            return None
        request = frame.f_locals.get("request")
        if frame.f_code.co_name == "Read" and request is not None and hasattr(request, "inputs"):
            try:
                found = rpc.deserialize_properties(request.inputs)
            except Exception:  # not the request this was written for: show drift in the outputs only
                return None
            return dict(found) if isinstance(found, dict) and found else None
    return None


def pending_work(olds: Mapping[str, Any], news: Mapping[str, Any], now: datetime) -> list[str]:
    """Reasons for an update that no argument shows: what refresh or a failed step left, and time-driven
    work the core says is due (its ``next_wakeup``: a rotation, a retired client or key past its grace)."""
    pending = []
    if olds.get("status") in NEEDS_UPDATE:
        pending.append(str(olds["status"]))
    record = record_of(olds)
    if record is None or args.has_unknowns(news):
        return pending
    try:
        want = args.desired(news)
    except ValidationError:
        return pending
    if rotation_due(want, record, now) is not None:
        pending.append("rotation")
    due = next_wakeup(want, record)
    if due is not None and now >= due and "rotation" not in pending:
        rotation = next_rotation(want, record)
        pending.append("rotation" if rotation is not None and now >= rotation else "grace-period-over")
    return pending


__all__ = ["ADDRESS_POLICY", "STATUS_FAILED", "STATUS_IN_SYNC", "STATUS_SECRET_DRIFT", "OAuthClientError",
           "OAuthClientProvider", "engine_inputs", "pending_work", "published_documents"]
