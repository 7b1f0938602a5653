"""What every ``clientreg`` command shares: the consoles, the options, state location, result tables."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click
import yaml
from rich.table import Table

from .._render import console, error_line
from ..documents import DEFAULT_NAMESPACE, DocumentSet, load_documents
from ..errors import ClientregError, ConfigurationError
from ..spec import OAuthClient
from ..ssrf import USER_CONFIGURED
from ..store import LocalStore, locate_state

# Servers' words are printed as plain, escaped text: markup and emoji off (clientreg._render).
out, err = console(), console(stderr=True)
log = logging.getLogger("clientreg")
# The person running the CLI wrote the YAML: their local and private servers are fine, but no URL (nor a
# lying discovery document) may make clientreg connect to link-local addresses such as 169.254.169.254.
ADDRESS_POLICY = USER_CONFIGURED


#: Exit code of an apply that left a client needing a person (RegistrationAccessTokenRevoked): nothing was
#: replaced, the client may be someone else's now (docs/cli.md "Exit codes").
ATTENTION_EXIT = 7


def adopt_hint(state: Path, namespace: str, name: str) -> str:
    """How to adopt or delete a client whose registration access token someone else holds (CLI state)."""
    return (f"To adopt it: `clientreg adopt {name} -n {namespace} --state-dir {state} "
            "--registration-access-token-file FILE` with the token the AS last issued for it; to drop it: "
            f"`clientreg delete {name} -n {namespace} --orphan` and delete the client at the AS by hand")


def fail(exc: ClientregError) -> NoReturn:
    err.print(error_line(exc))
    sys.exit(exc.exit_code)


def state_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--state-dir", envvar="CLIENTREG_STATE_DIR", default=None,
                        show_default="the nearest .clientreg/ up the tree; see docs/cli.md",
                        type=click.Path(file_okay=False, path_type=Path),
                        help="Where registration records are kept (files are 0600).")(f)


def files_option(required: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option("-f", "--filename", "paths", multiple=True, required=required,
                        type=click.Path(path_type=Path), help="A YAML/JSON file or a folder of them.")


def open_store(state_dir: Path | None, paths: Iterable[Path] = (), *, say: bool = False) -> LocalStore:
    """The state a command works on (see :func:`clientreg.store.locate_state`); ``say``: name it on stderr
    when it was found rather than given, so that nobody applies against a state they did not mean."""
    try:
        located = locate_state(state_dir, paths)
    except ClientregError as exc:
        fail(exc)
    if say and located.how != "given":
        what = "new state" if located.how == "new" else "using state"
        err.print(f"{what} {located.root} (--state-dir or CLIENTREG_STATE_DIR to choose another)")
    return LocalStore(located.root)


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
    #: plan: every policy that fired, in the chain's order, acted on or not (clientreg/policies.py).
    fired: list[dict[str, Any]] | None = None

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "namespace": self.namespace, "clientId": self.client_id,
                "ready": self.ready, "reason": self.reason, "message": self.message,
                "secretExpiresAt": iso(self.secret_expires_at)}


def iso(ts: int | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts else None


def print_results(results: list[Result], output: str) -> None:
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
                      iso(r.secret_expires_at) or "never" if r.client_id else "", r.message)
    out.print(table)


def load(paths: Iterable[Path]) -> DocumentSet:
    try:
        docs = load_documents(paths)
    except ClientregError as exc:
        fail(exc)
    if not docs.clients:
        fail(ConfigurationError("no OAuthClient documents found in the given files"))
    return docs


def select(docs: DocumentSet, names: tuple[str, ...]) -> list[OAuthClient]:
    clients = [docs.clients[k] for k in sorted(docs.clients)]
    if not names:
        return clients
    wanted = set(names)
    chosen = [c for c in clients if c.metadata.name in wanted
              or f"{c.metadata.namespace or DEFAULT_NAMESPACE}/{c.metadata.name}" in wanted]
    missing = wanted - {c.metadata.name for c in chosen} - {f"{c.metadata.namespace}/{c.metadata.name}"
                                                           for c in chosen}
    if missing:
        fail(ConfigurationError(f"no OAuthClient named {', '.join(sorted(missing))} in the given files"))
    return chosen
