"""``clientreg get``, ``credentials`` and ``token``: what the local state knows about registered clients."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .._render import env_line
from ..errors import ClientregError, ConfigurationError
from ..http import HttpClient, HttpSettings
from ..store import Entry, LocalStore
from ._common import ADDRESS_POLICY, Result, fail, open_store, out, print_results, state_option


def entries_named(store: LocalStore, name: str | None, namespace: str | None) -> list[Entry]:
    entries = store.entries()
    if name:
        ns, _, short = name.rpartition("/")
        ns = ns or namespace or ""
        entries = [e for e in entries if e.name == short and (not ns or e.namespace == ns)]
        if not entries:
            fail(ConfigurationError(f"no client named {name!r} in {store.root} (apply it first)"))
        if len(entries) > 1:
            fail(ConfigurationError(f"{name!r} exists in several namespaces: use NAMESPACE/NAME or -n"))
    elif namespace:
        entries = [e for e in entries if e.namespace == namespace]
    return entries


def one(store: LocalStore, name: str, namespace: str | None) -> Entry:
    entry = entries_named(store, name, namespace)[0]
    if entry.record is None:
        fail(ConfigurationError(f"{entry.key} has no registered client yet"))
    return entry


@click.command()
@click.argument("name", required=False)
@state_option
@click.option("-n", "--namespace", default=None)
@click.option("-o", "--output", type=click.Choice(["table", "json", "yaml"]), default="table")
def get(name: str | None, state_dir: Path | None, namespace: str | None, output: str) -> None:
    """Show registered clients and their last status (no secrets)."""
    store = open_store(state_dir)
    try:
        entries = entries_named(store, name, namespace)
    except ClientregError as exc:
        fail(exc)
    results = [Result(e.namespace, e.name, bool(e.status.get("ready")), str(e.status.get("reason", "Unknown")),
                      str(e.status.get("message", "")), e.record.client_id if e.record else None,
                      e.record.client_secret_expires_at if e.record else None) for e in entries]
    print_results(results, output)


@click.command()
@click.argument("name")
@state_option
@click.option("-n", "--namespace", default=None)
@click.option("-o", "--output", type=click.Choice(["json", "env"]), default="json")
def credentials(name: str, state_dir: Path | None, namespace: str | None, output: str) -> None:
    """Print a client's credentials. The one command that prints a secret."""
    entry = one(open_store(state_dir), name, namespace)
    record = entry.record
    assert record is not None
    values: dict[str, str | None] = {
        "client_id": record.client_id,
        "client_secret": record.client_secret.get_secret_value() if record.client_secret else None,
        "issuer": record.issuer, "token_endpoint": record.token_endpoint}
    # private_key_jwt: the current private key (PEM), its kid and algorithm, instead of a secret.
    values.update({k: v for k, v in record.credentials().items() if k not in values})
    if output == "json":
        click.echo(json.dumps(values, indent=2))
    else:
        for key, value in values.items():
            if value is not None:
                click.echo(env_line(key, value))


@click.command()
@click.argument("name")
@state_option
@click.option("-n", "--namespace", default=None)
@click.option("--scope", default=None, help="Scope to request.")
@click.option("--show", is_flag=True, help="Print the access token itself.")
def token(name: str, state_dir: Path | None, namespace: str | None, scope: str | None, show: bool) -> None:
    """Prove the stored credentials work: a client_credentials token request (RFC 6749 §4.4)."""
    from ..tokens import client_credentials_token

    entry = one(open_store(state_dir), name, namespace)
    assert entry.record is not None
    try:
        with HttpClient(HttpSettings(address_policy=ADDRESS_POLICY)) as http:
            result = client_credentials_token(http, entry.record, scope=scope)
    except ClientregError as exc:
        fail(exc)
    if show:
        click.echo(result.access_token.get_secret_value())
    else:
        out.print(f"{entry.key}: token obtained from {entry.record.token_endpoint} "
                  f"(type {result.token_type}, expires in {result.expires_in or '?'}s"
                  + (f", scope {result.scope!r}" if result.scope else "") + ")")

