"""read (``pulumi refresh``): what the AS holds now, judged by the core, never by a copy of its rules.

One observation (:func:`clientreg.engine.observe`: an RFC 7592 read and the published documents) and the
core's pure plan (:mod:`clientreg.policies`) against the state of the last ``up``: drift is the core's
``DriftAtServer`` decision, the status the shared mapping of :mod:`clientreg.report`. The plan is made
against what the last ``up`` left at the AS (the record), not against the echoed arguments: a refresh
overwrites those echoes with the live values of drifted properties, so that ``preview --diff`` marks them
(``live => declared``), and a second refresh must still see drift, not a spec change.

The resource leaves the state only when the core says the client is gone: a 404, or a 401 whose token-endpoint
probe answers ``invalid_client`` (:mod:`clientreg.liveness`). A 401 the probe cannot prove to be a deleted
client (someone rotated the token with a PUT, and the client lives on, changed) keeps the resource, with
status ``RegistrationAccessTokenRevoked``, the client ID in the outputs and a Warning naming it, and the next
``up`` does not register a second client by itself: the user decides (adopt it back with a fresh token, or
register a new one on purpose).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pulumi
from pydantic import ValidationError

from clientreg import report
from clientreg.engine import Desired, Observed, Reason, observe, plan
from clientreg.record import RegistrationRecord

from . import args
from .lifecycle import OAuthClientError, connection, explained, kube_step, secret_owners, secret_place
from .outputs import (
    NEEDS_UPDATE,
    STATUS_FAILED,
    STATUS_SECRET_DRIFT,
    credential_outputs,
    record_of,
    show_live_value,
    status_outputs,
)

#: Where the SDK's dynamic-provider host keeps the pickled provider, in outputs and inputs alike.
PROVIDER_KEY = "__provider"


def read(id_: str, props: dict[str, Any]) -> dict[str, Any] | None:
    """The outputs after a refresh, or None when the client is gone and the resource leaves the state."""
    found = read_with_inputs(id_, props, None)
    return None if found is None else found[0]


def read_with_inputs(id_: str, props: dict[str, Any], inputs: Mapping[str, Any] | None,
                     ) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
    """The outputs after a refresh and, when the AS changed declared values and the engine's ``inputs`` are
    known, new inputs showing the live values (None: keep the inputs); None when the client is gone and the
    resource leaves the state.

    `preview --diff` compares the state's inputs with the program's (a dynamic provider's diff cannot name
    properties itself): with the live values in the inputs, it marks each drifted argument `live => declared`.
    The engine re-marks the secret inputs (initial_access_token, …) as secrets by name.
    """
    record = record_of(props)
    if record is None:
        raise OAuthClientError(
            f"client {id_}: `pulumi import` cannot work for a dynamic provider (the engine reads it without its "
            "arguments). Adopt the client instead: set adopt_client_id (or the import_ option), "
            "adopt_registration_client_uri and adopt_registration_access_token and run `pulumi up`")
    saved: list[RegistrationRecord | None] = []
    with connection(props, for_registration=False) as server, \
            explained(f"could not read client {record.client_id} at the AS"):
        observation = observe(record, server, saved.append)
    current = observation.current(record)
    assert current is not None
    if observation.state is Observed.GONE and not current.retiring:
        # Gone, proven by the AS: the next `up` registers a new client, like any resource deleted out of band.
        return None
    now = datetime.now(UTC)
    applied = _as_applied(props, current)
    the_plan = plan(applied, current, observation, now)
    status = report.of_plan(the_plan, applied, current, now)
    outs = dict(props)
    shown: dict[str, Any] | None = None
    if observation.state is Observed.TOKEN_REVOKED:
        works = observation.liveness is not None and observation.liveness.credentials_work
        status = _rejected(current, observation.detail, status, works)
    elif observation.state is Observed.PRESENT and observation.info is not None:
        live = observation.info.metadata
        drifted = report.drifted_fields(the_plan)
        shown = {k: v for k, v in inputs.items() if k != PROVIDER_KEY} if inputs is not None and drifted else None
        for wire in drifted:
            show_live_value(outs, wire, live.get(wire))
            if shown is not None:
                show_live_value(shown, wire, live.get(wire))
        outs["registered_metadata"] = live
        if status.reason == Reason.DRIFT:
            status = replace(status, message=status.message.replace(
                "restoring declared values", "`pulumi up` restores the declared values"))
    before = props.get("status")
    if status.reason == before == str(Reason.REFUSED) or (before == STATUS_FAILED
                                                           and status.reason not in NEEDS_UPDATE):
        # A standing fact already reported keeps its words (they name what was asked); a failed step stays
        # failed (and retried) until an `up` succeeds.
        status = replace(status, reason=str(props["status"]), message=str(props.get("status_message") or ""))
    outs.update(status_outputs(status))
    _check_secret(outs, props, current)
    outs.update(credential_outputs(current))
    outs.pop(PROVIDER_KEY, None)
    return outs, shown


def _as_applied(props: dict[str, Any], record: RegistrationRecord) -> Desired:
    """What the last ``up`` declared, as the AS kept it then: the record's declared fields and spec hash (the
    echoed arguments may already show live values), with the rest of the declaration (rotation, key pair)."""
    metadata = {f: record.server_metadata[f] for f in record.declared_fields if f in record.server_metadata}
    try:
        declared = args.desired(props)
    except ValidationError:  # outputs of an older version: the record alone still tells drift
        declared = Desired(key="pulumi", metadata=metadata, spec_hash=record.spec_hash)
    return replace(declared, metadata=metadata, spec_hash=record.spec_hash)


def _rejected(record: RegistrationRecord, detail: str, planned: report.Status, works: bool) -> report.Status:
    message = (f"the AS rejects the registration access token of client {record.client_id} (RFC 7592 §2) but the "
               "client still exists or cannot be proven gone: someone else may hold its token. It stays in the "
               "state; nothing is registered by itself. Adopt it back with a fresh registration access token "
               f"(adopt_* arguments), or change rotation_trigger to replace it ({detail})")
    pulumi.log.warn(f"client {record.client_id}: {message}")
    return replace(planned, ready=works, synced=False, reason=str(Reason.TOKEN_REVOKED), message=message)


def _check_secret(outs: dict[str, Any], props: dict[str, Any], record: RegistrationRecord) -> None:
    """With ``kubernetes_secret``: the Secret is still there and unchanged, or the next `up` restores it."""
    place = secret_place(props, quiet=True)
    if place is None:
        return
    with kube_step(f"could not read the Secret of client {record.client_id}") as kube:
        problem = kube.out_of_date(record, place, secret_owners(props)[0])
    if problem is None:
        return
    restores = f"{problem}; `pulumi up` restores it"
    if outs.get("status") in NEEDS_UPDATE:  # the next up acts anyway: say both
        outs["status_message"] = f"{outs.get('status_message') or ''}; {restores}".lstrip("; ")
    else:  # InSync, or a reported refusal that alone would not make `up` act
        outs.update(status=STATUS_SECRET_DRIFT, status_message=restores)
