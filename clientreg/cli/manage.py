"""``clientreg rotate`` and ``clientreg delete``: ask for new credentials, or let clients go.

``delete NAME`` has no spec to read: it honours the ``deletionPolicy`` the record kept from the last
apply. A record written before records kept it (policy unknown) is deleted at the AS only with
``--delete-at-server`` and forgotten only with ``--orphan``: nothing irreversible happens on a guess.
With ``-f`` the documents' ``deletionPolicy`` decides, as it does for the operator and Pulumi.
"""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import click

from .. import report
from .._render import error_line
from ..engine import Desired, reconcile
from ..errors import ClientregError, ConfigurationError
from ..resolve import DEFAULT_CLUSTER_RESOURCE_NAMESPACE
from ..server import ServerConnection
from ..spec import AuthorizationServerSpec
from ..store import Entry, LocalStore
from ._common import (
    ADDRESS_POLICY,
    Result,
    err,
    fail,
    files_option,
    load,
    open_store,
    out,
    print_results,
    select,
    state_option,
)
from .runner import Runner
from .show import one

Policy = Literal["Delete", "Orphan"]


@click.command()
@click.argument("name")
@state_option
@click.option("-n", "--namespace", default=None)
@files_option(required=False)
@click.option("--cluster-resource-namespace", default=DEFAULT_CLUSTER_RESOURCE_NAMESPACE, show_default=True)
def rotate(name: str, state_dir: Path | None, namespace: str | None, paths: tuple[Path, ...],
           cluster_resource_namespace: str) -> None:
    """Ask for new credentials (cmctl renew's counterpart). With -f, rotate now; else on the next apply."""
    store = open_store(state_dir, paths)
    entry = one(store, name, namespace)
    request = f"cli-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:6]}"
    if not paths:
        with store.locked():
            entry = store.load(entry.namespace, entry.name)
            entry.requests["rotation"] = request
            store.write(entry)
        out.print(f"{entry.key}: rotation requested; the next `clientreg apply` registers new credentials")
        return
    docs = load(paths)
    client = docs.clients.get((entry.namespace, entry.name))
    if client is None:
        fail(ConfigurationError(f"{entry.key} is not defined in the given files"))
    runner = Runner(docs, store, cluster_ns=cluster_resource_namespace)
    try:
        with store.locked():
            result = runner.apply_one(client, rotation_request=request)
    finally:
        runner.close()
    print_results([result], "table")
    if not result.ready:
        sys.exit(result.exit_code or 1)


@click.command()
@click.argument("names", nargs=-1)
@files_option(required=False)
@state_option
@click.option("-n", "--namespace", default=None)
@click.option("--cluster-resource-namespace", default=DEFAULT_CLUSTER_RESOURCE_NAMESPACE, show_default=True)
@click.option("--delete-at-server", is_flag=True,
              help="Delete at the AS whatever deletionPolicy the record kept (by name only).")
@click.option("--orphan", is_flag=True,
              help="Only forget: keep the client at the AS whatever the record says (by name only).")
def delete(names: tuple[str, ...], paths: tuple[Path, ...], state_dir: Path | None, namespace: str | None,
           cluster_resource_namespace: str, delete_at_server: bool, orphan: bool) -> None:
    """Delete clients at the AS (RFC 7592) and forget them. deletionPolicy: Orphan only forgets.

    By name, the deletionPolicy kept from the last apply decides; with -f, the documents' does.
    """
    if not names and not paths:
        fail(ConfigurationError("name the clients to delete, or give -f PATH"))
    if delete_at_server and orphan:
        fail(ConfigurationError("--delete-at-server and --orphan exclude each other"))
    policy: Policy | None = "Delete" if delete_at_server else "Orphan" if orphan else None
    if paths and policy is not None:
        fail(ConfigurationError("--delete-at-server and --orphan choose for clients deleted by name: with -f, "
                                "the documents' deletionPolicy decides"))
    store = open_store(state_dir, paths)
    results: list[Result] = []
    exit_code = 0
    try:
        with store.locked():
            if paths:
                docs = load(paths)
                runner = Runner(docs, store, cluster_ns=cluster_resource_namespace)
                try:
                    results += [runner.apply_one(c, deleting=True) for c in select(docs, names)]
                finally:
                    runner.close()
            else:
                chosen = [one(store, name, namespace) for name in names]
                for entry in chosen:  # every choice is known before anything is deleted
                    _policy_for(entry, policy)
                for entry in chosen:
                    results.append(_delete_by_record(store, entry, _policy_for(entry, policy)))
    except ClientregError as exc:
        fail(exc)
    for r in results:
        if r.exit_code:
            exit_code = max(exit_code, r.exit_code)
            err.print(error_line(f"{r.namespace}/{r.name}: {r.message}"))
        else:
            out.print(f"{r.namespace}/{r.name}: {r.message}")
    sys.exit(exit_code)


def _policy_for(entry: Entry, given: Policy | None) -> Policy:
    assert entry.record is not None
    policy = given or entry.record.deletion_policy
    if policy is None:
        raise ConfigurationError(
            f"{entry.key}: its record predates kept deletion policies, so whether client "
            f"{entry.record.client_id} must be kept at the AS is unknown: pass --delete-at-server to delete it "
            "there, --orphan to only forget it, or -f PATH to let its document's deletionPolicy decide",
            document=f"OAuthClient/{entry.name}", field="spec.deletionPolicy")
    return policy


def _delete_by_record(store: LocalStore, entry: Entry, policy: Policy) -> Result:
    """Delete with only what the record holds: RFC 7592 DELETE needs the URI and the RAT, not the spec."""
    record = entry.record
    assert record is not None
    spec = AuthorizationServerSpec(registration_endpoint=record.registration_endpoint or record.issuer
                                   or record.registration_client_uri)
    desired = Desired(key=entry.key, metadata={}, spec_hash=record.spec_hash, deleting=True,
                      deletion_policy=policy, registration="cimd" if record.registration == "cimd" else "dcr")
    server = ServerConnection.for_spec(spec, name=entry.key, address_policy=ADDRESS_POLICY)
    try:
        _, outcome = reconcile(desired, record, server, lambda r: store.delete(entry.namespace, entry.name)
                               if r is None else store.write(Entry(entry.namespace, entry.name, r, entry.status,
                                                                   entry.requests)))
    except ClientregError as exc:
        return Result(entry.namespace, entry.name, False, exc.reason, str(exc), exit_code=exc.exit_code)
    finally:
        server.close()
    if outcome.record is not None:
        # Not everything could go (an old client the AS refused to delete): `get` shows this, not the last apply.
        status = report.of_outcome(outcome)
        store.write(Entry(entry.namespace, entry.name, outcome.record, {
            **entry.status, "ready": status.ready, "synced": status.synced, "reason": status.headline,
            "message": status.message, "updatedAt": datetime.now(UTC).isoformat()}, entry.requests))
    return Result(entry.namespace, entry.name, False, str(outcome.reason), outcome.message)

