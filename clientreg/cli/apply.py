"""``clientreg apply`` and ``clientreg plan``: a folder of documents against its servers."""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
from rich.table import Table

from ..errors import ClientregError
from ..resolve import DEFAULT_CLUSTER_RESOURCE_NAMESPACE
from ..store import document_folders, write_pointers
from ._common import fail, files_option, load, log, open_store, out, print_results, select, state_option
from .runner import Runner


@click.command()
@files_option(required=True)
@state_option
@click.option("-o", "--output", type=click.Choice(["table", "json", "yaml"]), default="table")
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1, 64),
              help="Clients reconciled at once (each AS's own rate limit still applies).")
@click.option("--cluster-resource-namespace", default=DEFAULT_CLUSTER_RESOURCE_NAMESPACE, show_default=True,
              help="Namespace whose Secrets ClusterAuthorizationServers read.")
@click.option("--publish-dir", envvar="CLIENTREG_PUBLISH_DIR", default=None,
              type=click.Path(file_okay=False, path_type=Path),
              help="Write documents the AS fetches from the web (Client ID Metadata Documents, JWKS at "
                   "jwksUri) to DIR/<host>/<path>, for static hosting.")
@click.argument("names", nargs=-1)
def apply(paths: tuple[Path, ...], state_dir: Path | None, output: str, concurrency: int,
          cluster_resource_namespace: str, publish_dir: Path | None, names: tuple[str, ...]) -> None:
    """Register or update every OAuthClient in the files. Exit 0 only when all are Ready."""
    docs = load(paths)
    clients = select(docs, names)
    store = open_store(state_dir, paths, say=True)
    runner = Runner(docs, store, cluster_ns=cluster_resource_namespace, publish_dir=publish_dir)
    try:
        runner.check_references(clients)
        with store.locked(), ThreadPoolExecutor(max_workers=concurrency) as pool:
            results = list(pool.map(runner.apply_one, clients))
    except ClientregError as exc:
        fail(exc)
    finally:
        runner.close()
    # The next run finds this state from the documents' folders, or refuses rather than register them again.
    if any(r.client_id for r in results):
        for pointer in write_pointers(document_folders(paths), store.root):
            log.info("wrote %s", pointer)
    print_results(results, output)
    failed = [r for r in results if not r.ready or r.exit_code]  # Ready but needing a person counts too
    if failed:
        sys.exit(max(r.exit_code for r in failed) or 1)


@click.command("plan")
@files_option(required=True)
@state_option
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table")
@click.option("--cluster-resource-namespace", default=DEFAULT_CLUSTER_RESOURCE_NAMESPACE, show_default=True)
def plan_cmd(paths: tuple[Path, ...], state_dir: Path | None, output: str, cluster_resource_namespace: str) -> None:
    """Show what apply would do and why; changes nothing at the AS."""
    docs = load(paths)
    clients = select(docs, ())
    store = open_store(state_dir, paths, say=True)
    runner = Runner(docs, store, cluster_ns=cluster_resource_namespace)
    try:
        runner.check_references(clients)
        with store.locked():
            results = [runner.plan_one(c) for c in clients]
    except ClientregError as exc:
        fail(exc)
    finally:
        runner.close()
    if output == "json":
        out.print_json(json.dumps([{"name": r.name, "namespace": r.namespace, "reason": r.reason,
                                    "message": r.message, "actions": r.actions or [], "policies": r.fired or []}
                                   for r in results]))
    else:
        table = Table(box=None, pad_edge=False)
        for col in ("NAMESPACE", "NAME", "REASON", "ACTIONS", "WHY (every policy that fired)"):
            table.add_column(col, overflow="fold")
        for r in results:
            why = "\n".join(f"{f['policy']}" + ("" if f["acted"] else " (not acted on)") for f in r.fired or [])
            table.add_row(r.namespace, r.name, r.reason, "\n".join(r.actions or []) or "none" if r.exit_code == 0
                          else r.message, why or "-")
        out.print(table)
    if any(r.exit_code for r in results):
        sys.exit(max(r.exit_code for r in results))

