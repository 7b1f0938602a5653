"""``clientreg``: apply a folder of OAuthClient documents against an AS, with local state.

Exit codes: 0 all Ready; 1 other failure; 2 invalid input; 3 waiting for a dependency (a Secret);
4 the AS refused or answered nonsense; 5 the AS could not be reached; 6 local state unusable.
Only ``credentials`` (and ``token --show``) print a secret: the user asked for it by name.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click
import yaml
from rich.table import Table

from . import publish
from ._render import console, env_line, error_line
from .documents import DEFAULT_NAMESPACE, DocumentSet, load_documents
from .engine import Desired, Outcome, Plan, Reason, fetch_published, next_wakeup, observe, plan, reconcile
from .errors import ClientregError, ConfigurationError, describe
from .http import HttpClient, HttpSettings
from .record import RegistrationRecord
from .resolve import DEFAULT_CLUSTER_RESOURCE_NAMESPACE, resolve_server, server_key
from .server import ServerConnection
from .spec import AuthorizationServerSpec, OAuthClient
from .ssrf import USER_CONFIGURED
from .store import DEFAULT_STATE_DIR, Entry, LocalStore

# Servers' words are printed as plain, escaped text: markup and emoji off (clientreg._render).
out, err = console(), console(stderr=True)
log = logging.getLogger("clientreg")
# The person running the CLI wrote the YAML: their local and private servers are fine, but no URL (nor a
# lying discovery document) may make clientreg connect to link-local addresses such as 169.254.169.254.
ADDRESS_POLICY = USER_CONFIGURED


def _fail(exc: ClientregError) -> NoReturn:
    err.print(error_line(exc))
    sys.exit(exc.exit_code)


def _state_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--state-dir", envvar="CLIENTREG_STATE_DIR", default=DEFAULT_STATE_DIR,
                        show_default=True, type=click.Path(file_okay=False, path_type=Path),
                        help="Where registration records are kept (files are 0600).")(f)


def _files_option(required: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option("-f", "--filename", "paths", multiple=True, required=required,
                        type=click.Path(path_type=Path), help="A YAML/JSON file or a folder of them.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="Log progress to stderr (-vv for HTTP detail).")
@click.version_option(package_name="clientreg")
def main(verbose: int) -> None:
    """Declarative OAuth clients through Dynamic Client Registration (RFC 7591/7592)."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if verbose < 2:
        logging.getLogger("httpx").setLevel(logging.WARNING)


# --- apply / plan --------------------------------------------------------------------------------------

@dataclass
class Result:
    namespace: str
    name: str
    ready: bool
    reason: str
    message: str
    client_id: str | None = None
    secret_expires_at: int | None = None
    exit_code: int = 0
    actions: list[str] | None = None

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "namespace": self.namespace, "clientId": self.client_id,
                "ready": self.ready, "reason": self.reason, "message": self.message,
                "secretExpiresAt": _iso(self.secret_expires_at)}


def _iso(ts: int | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts else None


def _find_server(docs: DocumentSet) -> Callable[[str, str | None, str], AuthorizationServerSpec | None]:
    def find(kind: str, namespace: str | None, name: str) -> AuthorizationServerSpec | None:
        if kind == "ClusterAuthorizationServer":
            cluster = docs.cluster_servers.get(name)
            return cluster.spec if cluster else None
        server = docs.servers.get((namespace or DEFAULT_NAMESPACE, name))
        return server.spec if server else None
    return find


def _find_secret(docs: DocumentSet) -> Callable[[str, str, str], str | None]:
    def find(namespace: str, name: str, key: str) -> str | None:
        secret = docs.secrets.get((namespace, name))
        return secret.data.get(key) if secret else None
    return find


def _status(outcome: Outcome, desired: Desired) -> dict[str, Any]:
    record = outcome.record
    wake = next_wakeup(desired, record)
    return {
        "ready": outcome.ready, "synced": outcome.synced, "reason": str(outcome.reason),
        "message": outcome.message, "clientId": record.client_id if record else None,
        "secretExpiresAt": record.client_secret_expires_at if record else None,
        "lastRotation": record.last_rotation.isoformat() if record and record.last_rotation else None,
        "nextAction": wake.isoformat() if wake else None,
        "updatedAt": datetime.now(UTC).isoformat(),
    }


def _without_time(status: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if k != "updatedAt"}


class Runner:
    """One apply (or plan) over a document set, sharing server connections and the state lock."""

    def __init__(self, docs: DocumentSet, store: LocalStore, *, cluster_ns: str,
                 http_settings: HttpSettings | None = None, publish_dir: Path | None = None) -> None:
        self.docs, self.store, self.cluster_ns = docs, store, cluster_ns
        self.http_settings = http_settings
        self.publish_dir = publish_dir
        self.connections: dict[tuple[str, str, str], ServerConnection] = {}
        self._connections_lock = threading.Lock()
        # Published documents (CIMD, JWKS at jwks_uri) live on the client's web host, not at an AS.
        self.documents_http = HttpClient(HttpSettings(retries=1, max_body_bytes=256 * 1024,
                                                      address_policy=ADDRESS_POLICY))
        self.fetch = fetch_published(self.documents_http)

    def check_references(self) -> None:
        """Every serverRef resolves before anything is sent: no half-applied folder over a typo."""
        for client in self.docs.clients.values():
            kind, ns, name = client.spec.server_ref.kind, client.metadata.namespace or DEFAULT_NAMESPACE, \
                client.spec.server_ref.name
            found = self.docs.cluster_servers.get(name) if kind == "ClusterAuthorizationServer" \
                else self.docs.servers.get((ns, name))
            if found is None:
                where = "" if kind == "ClusterAuthorizationServer" else f" in namespace {ns!r}"
                raise ConfigurationError(
                    f"{kind} {name!r} is not defined{where} in the applied files",
                    source=self.docs.sources.get(("OAuthClient", ns, client.metadata.name)),
                    document=f"OAuthClient/{client.metadata.name}", field="spec.serverRef.name",
                    rule="an OAuthClient references an AuthorizationServer of its own namespace or a "
                         "ClusterAuthorizationServer")

    def connection(self, client: OAuthClient) -> ServerConnection:
        # One connection per AS for the whole run, even when the first clients of a concurrent apply
        # arrive together: else each worker discovers on its own and gets its own rate-limit bucket.
        with self._connections_lock:
            # resolve_server returns the cached connection, but only after checking the namespace may use it.
            cached = self.connections.get(server_key(client))
            http = HttpClient(self.http_settings) if self.http_settings is not None and cached is None else None
            return resolve_server(client, _find_server(self.docs), _find_secret(self.docs),
                                  cluster_resource_namespace=self.cluster_ns, cache=self.connections, http=http,
                                  address_policy=ADDRESS_POLICY)

    def apply_one(self, client: OAuthClient, *, deleting: bool = False,
                  rotation_request: str | None = None) -> Result:
        ns, name = client.metadata.namespace or DEFAULT_NAMESPACE, client.metadata.name
        entry = self.store.load(ns, name)
        request = rotation_request or entry.requests.get("rotation")
        desired = Desired.from_client(client, deleting=deleting, rotation_request=request)
        try:
            server = self.connection(client)
            _, outcome = reconcile(desired, entry.record, server, self._saver(entry), fetch=self.fetch)
            if self.publish_dir is not None and outcome.record is not None:
                written = publish.write_tree(self.publish_dir, publish.documents(outcome.record))
                for path in written:
                    log.info("%s/%s: wrote %s", ns, name, path)
                if written and not outcome.ready and \
                        outcome.reason in (Reason.DOCUMENT_NOT_PUBLISHED, Reason.DOCUMENT_DIFFERS):
                    # Served straight from the folder (a dev host, a synced bucket): check once more now.
                    _, outcome = reconcile(desired, outcome.record, server, self._saver(entry), fetch=self.fetch)
        except ClientregError as exc:
            entry.status = {**entry.status, "ready": False, "synced": False, "reason": exc.reason,
                            "message": str(exc), "updatedAt": datetime.now(UTC).isoformat()}
            if entry.record is not None or entry.requests:
                self.store.write(entry)
            return Result(ns, name, False, exc.reason, str(exc),
                          entry.record.client_id if entry.record else None, exit_code=exc.exit_code)
        for event in outcome.events:
            log.log(logging.WARNING if event.warning else logging.INFO, "%s/%s %s: %s", ns, name, event.reason,
                    event.message)
        if outcome.record is None:
            self.store.delete(ns, name)
        else:
            if request and outcome.record.rotation_request == request:
                entry.requests.pop("rotation", None)
            entry.record = outcome.record
            status = _status(outcome, desired)
            # A no-op apply writes nothing locally either: the status only moves when something happened.
            if _without_time(status) != _without_time(entry.status) or request:
                entry.status = status
                self.store.write(entry)
        # Waiting for a document to be published is a dependency, not a failure (exit 3, like a Secret).
        waiting = 3 if outcome.reason == Reason.DOCUMENT_NOT_PUBLISHED else 0
        return Result(ns, name, outcome.ready, str(outcome.reason), outcome.message,
                      outcome.record.client_id if outcome.record else None,
                      outcome.record.client_secret_expires_at if outcome.record else None, exit_code=waiting)

    def plan_one(self, client: OAuthClient) -> Result:
        ns, name = client.metadata.namespace or DEFAULT_NAMESPACE, client.metadata.name
        entry = self.store.load(ns, name)
        desired = Desired.from_client(client, rotation_request=entry.requests.get("rotation"))
        try:
            server = self.connection(client)
            server.check_policy(desired.metadata)  # as in apply, before any request; a read may rotate the RAT
            observation = observe(entry.record, server, self._saver(entry), fetch=self.fetch)
        except ClientregError as exc:
            return Result(ns, name, False, exc.reason, str(exc), exit_code=exc.exit_code)
        the_plan: Plan = plan(desired, entry.record, observation, datetime.now(UTC))
        return Result(ns, name, not the_plan.writes, str(the_plan.reason), the_plan.message,
                      entry.record.client_id if entry.record else None,
                      actions=[f"{a.kind}: {a.reason}: {a.message}" for a in the_plan.actions])

    def _saver(self, entry: Entry) -> Callable[[RegistrationRecord | None], None]:
        def save(record: RegistrationRecord | None) -> None:
            entry.record = record
            if record is None:
                self.store.delete(entry.namespace, entry.name)
            else:
                self.store.write(entry)
        return save

    def close(self) -> None:
        for conn in self.connections.values():
            conn.close()
        self.documents_http.close()


def _print_results(results: list[Result], output: str) -> None:
    if output == "json":
        out.print_json(json.dumps([r.as_json() for r in results]))
        return
    if output == "yaml":
        out.print(yaml.safe_dump([r.as_json() for r in results], sort_keys=False), end="")
        return
    table = Table(box=None, pad_edge=False)
    for col in ("NAMESPACE", "NAME", "READY", "REASON", "CLIENT ID", "EXPIRES", "MESSAGE"):
        table.add_column(col, overflow="fold")
    for r in results:
        table.add_row(r.namespace, r.name, "True" if r.ready else "False", r.reason, r.client_id or "",
                      _iso(r.secret_expires_at) or "never" if r.client_id else "", r.message)
    out.print(table)


def _load(paths: Iterable[Path]) -> DocumentSet:
    try:
        docs = load_documents(paths)
    except ClientregError as exc:
        _fail(exc)
    if not docs.clients:
        _fail(ConfigurationError("no OAuthClient documents found in the given files"))
    return docs


def _select(docs: DocumentSet, names: tuple[str, ...]) -> list[OAuthClient]:
    clients = [docs.clients[k] for k in sorted(docs.clients)]
    if not names:
        return clients
    wanted = set(names)
    chosen = [c for c in clients if c.metadata.name in wanted
              or f"{c.metadata.namespace or DEFAULT_NAMESPACE}/{c.metadata.name}" in wanted]
    missing = wanted - {c.metadata.name for c in chosen} - {f"{c.metadata.namespace}/{c.metadata.name}"
                                                           for c in chosen}
    if missing:
        _fail(ConfigurationError(f"no OAuthClient named {', '.join(sorted(missing))} in the given files"))
    return chosen


@main.command()
@_files_option(required=True)
@_state_option
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
def apply(paths: tuple[Path, ...], state_dir: Path, output: str, concurrency: int,
          cluster_resource_namespace: str, publish_dir: Path | None, names: tuple[str, ...]) -> None:
    """Register or update every OAuthClient in the files. Exit 0 only when all are Ready."""
    docs = _load(paths)
    clients = _select(docs, names)
    store = LocalStore(state_dir)
    runner = Runner(docs, store, cluster_ns=cluster_resource_namespace, publish_dir=publish_dir)
    try:
        runner.check_references()
        with store.locked(), ThreadPoolExecutor(max_workers=concurrency) as pool:
            results = list(pool.map(runner.apply_one, clients))
    except ClientregError as exc:
        _fail(exc)
    finally:
        runner.close()
    _print_results(results, output)
    failed = [r for r in results if not r.ready]
    if failed:
        sys.exit(max(r.exit_code for r in failed) or 1)


@main.command("plan")
@_files_option(required=True)
@_state_option
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table")
@click.option("--cluster-resource-namespace", default=DEFAULT_CLUSTER_RESOURCE_NAMESPACE, show_default=True)
def plan_cmd(paths: tuple[Path, ...], state_dir: Path, output: str, cluster_resource_namespace: str) -> None:
    """Show what apply would do and why; changes nothing at the AS."""
    docs = _load(paths)
    store = LocalStore(state_dir)
    runner = Runner(docs, store, cluster_ns=cluster_resource_namespace)
    try:
        runner.check_references()
        with store.locked():
            results = [runner.plan_one(c) for c in _select(docs, ())]
    except ClientregError as exc:
        _fail(exc)
    finally:
        runner.close()
    if output == "json":
        out.print_json(json.dumps([{"name": r.name, "namespace": r.namespace, "reason": r.reason,
                                    "message": r.message, "actions": r.actions or []} for r in results]))
    else:
        table = Table(box=None, pad_edge=False)
        for col in ("NAMESPACE", "NAME", "REASON", "ACTIONS"):
            table.add_column(col, overflow="fold")
        for r in results:
            table.add_row(r.namespace, r.name, r.reason, "\n".join(r.actions or []) or "none" if r.exit_code == 0
                          else r.message)
        out.print(table)
    if any(r.exit_code for r in results):
        sys.exit(max(r.exit_code for r in results))


# --- get / credentials / token ----------------------------------------------------------------------

def _entries(store: LocalStore, name: str | None, namespace: str | None) -> list[Entry]:
    entries = store.entries()
    if name:
        ns, _, short = name.rpartition("/")
        ns = ns or namespace or ""
        entries = [e for e in entries if e.name == short and (not ns or e.namespace == ns)]
        if not entries:
            _fail(ConfigurationError(f"no client named {name!r} in {store.root} (apply it first)"))
        if len(entries) > 1:
            _fail(ConfigurationError(f"{name!r} exists in several namespaces: use NAMESPACE/NAME or -n"))
    elif namespace:
        entries = [e for e in entries if e.namespace == namespace]
    return entries


def _one(store: LocalStore, name: str, namespace: str | None) -> Entry:
    entry = _entries(store, name, namespace)[0]
    if entry.record is None:
        _fail(ConfigurationError(f"{entry.key} has no registered client yet"))
    return entry


@main.command()
@click.argument("name", required=False)
@_state_option
@click.option("-n", "--namespace", default=None)
@click.option("-o", "--output", type=click.Choice(["table", "json", "yaml"]), default="table")
def get(name: str | None, state_dir: Path, namespace: str | None, output: str) -> None:
    """Show registered clients and their last status (no secrets)."""
    store = LocalStore(state_dir)
    try:
        entries = _entries(store, name, namespace)
    except ClientregError as exc:
        _fail(exc)
    results = [Result(e.namespace, e.name, bool(e.status.get("ready")), str(e.status.get("reason", "Unknown")),
                      str(e.status.get("message", "")), e.record.client_id if e.record else None,
                      e.record.client_secret_expires_at if e.record else None) for e in entries]
    _print_results(results, output)


@main.command()
@click.argument("name")
@_state_option
@click.option("-n", "--namespace", default=None)
@click.option("-o", "--output", type=click.Choice(["json", "env"]), default="json")
def credentials(name: str, state_dir: Path, namespace: str | None, output: str) -> None:
    """Print a client's credentials. The one command that prints a secret."""
    entry = _one(LocalStore(state_dir), name, namespace)
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


@main.command()
@click.argument("name")
@_state_option
@click.option("-n", "--namespace", default=None)
@click.option("--scope", default=None, help="Scope to request.")
@click.option("--show", is_flag=True, help="Print the access token itself.")
def token(name: str, state_dir: Path, namespace: str | None, scope: str | None, show: bool) -> None:
    """Prove the stored credentials work: a client_credentials token request (RFC 6749 §4.4)."""
    from .tokens import client_credentials_token

    entry = _one(LocalStore(state_dir), name, namespace)
    assert entry.record is not None
    try:
        with HttpClient(HttpSettings(address_policy=ADDRESS_POLICY)) as http:
            result = client_credentials_token(http, entry.record, scope=scope)
    except ClientregError as exc:
        _fail(exc)
    if show:
        click.echo(result.access_token.get_secret_value())
    else:
        out.print(f"{entry.key}: token obtained from {entry.record.token_endpoint} "
                  f"(type {result.token_type}, expires in {result.expires_in or '?'}s"
                  + (f", scope {result.scope!r}" if result.scope else "") + ")")


# --- rotate / delete -----------------------------------------------------------------------------------

@main.command()
@click.argument("name")
@_state_option
@click.option("-n", "--namespace", default=None)
@_files_option(required=False)
@click.option("--cluster-resource-namespace", default=DEFAULT_CLUSTER_RESOURCE_NAMESPACE, show_default=True)
def rotate(name: str, state_dir: Path, namespace: str | None, paths: tuple[Path, ...],
           cluster_resource_namespace: str) -> None:
    """Ask for new credentials (cmctl renew's counterpart). With -f, rotate now; else on the next apply."""
    store = LocalStore(state_dir)
    entry = _one(store, name, namespace)
    request = f"cli-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:6]}"
    if not paths:
        with store.locked():
            entry = store.load(entry.namespace, entry.name)
            entry.requests["rotation"] = request
            store.write(entry)
        out.print(f"{entry.key}: rotation requested; the next `clientreg apply` registers new credentials")
        return
    docs = _load(paths)
    client = docs.clients.get((entry.namespace, entry.name))
    if client is None:
        _fail(ConfigurationError(f"{entry.key} is not defined in the given files"))
    runner = Runner(docs, store, cluster_ns=cluster_resource_namespace)
    try:
        with store.locked():
            result = runner.apply_one(client, rotation_request=request)
    finally:
        runner.close()
    _print_results([result], "table")
    if not result.ready:
        sys.exit(result.exit_code or 1)


@main.command()
@click.argument("names", nargs=-1)
@_files_option(required=False)
@_state_option
@click.option("-n", "--namespace", default=None)
@click.option("--cluster-resource-namespace", default=DEFAULT_CLUSTER_RESOURCE_NAMESPACE, show_default=True)
def delete(names: tuple[str, ...], paths: tuple[Path, ...], state_dir: Path, namespace: str | None,
           cluster_resource_namespace: str) -> None:
    """Delete clients at the AS (RFC 7592) and forget them. deletionPolicy: Orphan only forgets."""
    store = LocalStore(state_dir)
    if not names and not paths:
        _fail(ConfigurationError("name the clients to delete, or give -f PATH"))
    results: list[Result] = []
    exit_code = 0
    try:
        with store.locked():
            if paths:
                docs = _load(paths)
                runner = Runner(docs, store, cluster_ns=cluster_resource_namespace)
                try:
                    results += [runner.apply_one(c, deleting=True) for c in _select(docs, names)]
                finally:
                    runner.close()
            else:
                for name in names:
                    results.append(_delete_by_record(store, _one(store, name, namespace)))
    except ClientregError as exc:
        _fail(exc)
    for r in results:
        if r.exit_code:
            exit_code = max(exit_code, r.exit_code)
            err.print(error_line(f"{r.namespace}/{r.name}: {r.message}"))
        else:
            out.print(f"{r.namespace}/{r.name}: {r.message}")
    sys.exit(exit_code)


def _delete_by_record(store: LocalStore, entry: Entry) -> Result:
    """Delete with only what the record holds: RFC 7592 DELETE needs the URI and the RAT, not the spec."""
    record = entry.record
    assert record is not None
    spec = AuthorizationServerSpec(registration_endpoint=record.registration_endpoint or record.issuer
                                   or record.registration_client_uri)
    desired = Desired(key=entry.key, metadata={}, spec_hash=record.spec_hash, deleting=True,
                      registration="cimd" if record.registration == "cimd" else "dcr")
    server = ServerConnection.for_spec(spec, name=entry.key, address_policy=ADDRESS_POLICY)
    try:
        _, outcome = reconcile(desired, record, server, lambda r: store.delete(entry.namespace, entry.name)
                               if r is None else store.write(Entry(entry.namespace, entry.name, r, entry.status)))
    except ClientregError as exc:
        return Result(entry.namespace, entry.name, False, exc.reason, str(exc), exit_code=exc.exit_code)
    finally:
        server.close()
    return Result(entry.namespace, entry.name, False, str(outcome.reason), outcome.message)


# --- discover / check-server / dev-server ---------------------------------------------------------------

@main.command()
@click.argument("url")
@click.option("-o", "--output", type=click.Choice(["json", "table"]), default="json")
@click.option("--ca-bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
def discover(url: str, output: str, ca_bundle: Path | None) -> None:
    """Find an AS's metadata from its issuer, or from an MCP server / protected resource URL."""
    from .discovery import discover as run_discovery

    settings = HttpSettings(ca_bundle=ca_bundle.read_text() if ca_bundle else None, address_policy=ADDRESS_POLICY)
    try:
        with HttpClient(settings) as http:
            found = run_discovery(http, url)
    except ClientregError as exc:
        _fail(exc)
    data: dict[str, Any] = {"metadata_url": found.metadata_url,
                            "server": found.server.model_dump(mode="json", exclude_none=True)}
    if found.resource is not None:
        data["resource"] = found.resource.model_dump(mode="json", exclude_none=True)
    if output == "json":
        out.print_json(json.dumps(data))
        return
    table = Table(box=None, pad_edge=False)
    table.add_column("FIELD")
    table.add_column("VALUE", overflow="fold")
    for key, value in data["server"].items():
        table.add_row(key, value if isinstance(value, str) else json.dumps(value))
    out.print(table)


@main.command("check-server")
@click.argument("issuer")
@click.option("--initial-access-token-file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--registration-endpoint", default=None, help="Skip discovery of the registration endpoint.")
@click.option("--ca-bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table")
def check_server(issuer: str, initial_access_token_file: Path | None, registration_endpoint: str | None,
                 ca_bundle: Path | None, output: str) -> None:
    """Register a throwaway client, measure what the AS supports, then delete it."""
    from .checkserver import check_server as run_check

    iat = initial_access_token_file.read_text().strip() if initial_access_token_file else None
    try:
        report = run_check(issuer, initial_access_token=iat, registration_endpoint=registration_endpoint,
                           ca_bundle=ca_bundle.read_text() if ca_bundle else None,
                           address_policy=ADDRESS_POLICY)
    except ClientregError as exc:
        _fail(exc)
    if output == "json":
        out.print_json(json.dumps(report.as_json()))
        return
    table = Table(box=None, pad_edge=False, title=f"{report.issuer}")
    table.add_column("FEATURE")
    table.add_column("RESULT")
    table.add_column("DETAIL", overflow="fold")
    for check in report.checks:
        table.add_row(check.feature, check.result, check.detail)
    out.print(table)


@main.command("dev-server")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=9400, show_default=True, type=int)
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="SQLite file; clients survive restarts. Default: in memory.")
@click.option("--initial-access-token", envvar="CLIENTREG_DEV_IAT", default=None,
              help="Require this initial access token for registration (RFC 7591 §3).")
@click.option("--secret-lifetime", type=int, default=None, help="Issued secrets expire after N seconds.")
@click.option("--no-rat-rotation", is_flag=True, help="Keep the registration access token on update.")
@click.option("--allowed-scopes", default=None, help="Space-separated; other requested scopes are dropped.")
@click.option("--no-cimd", is_flag=True, help="Refuse Client ID Metadata Document clients.")
@click.option("--fetch-allow-loopback", is_flag=True,
              help="TESTING ONLY: let CIMD documents and jwks_uri be fetched from loopback addresses.")
def dev_server(host: str, port: int, db: Path | None, initial_access_token: str | None,
               secret_lifetime: int | None, no_rat_rotation: bool, allowed_scopes: str | None, no_cimd: bool,
               fetch_allow_loopback: bool) -> None:
    """Run the embedded development AS (RFC 7591/7592/8414 on Authlib)."""
    from .devserver import DevServerSettings, serve

    serve(DevServerSettings(host=host, port=port, db_path=db, initial_access_token=initial_access_token,
                            rotate_registration_access_token=not no_rat_rotation,
                            secret_lifetime=secret_lifetime,
                            allowed_scopes=allowed_scopes.split() if allowed_scopes else None,
                            cimd=not no_cimd, fetch_allow_loopback=fetch_allow_loopback))


__all__ = ["describe", "main"]
