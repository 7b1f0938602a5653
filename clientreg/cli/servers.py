"""``clientreg discover``, ``check-server`` and ``dev-server``: looking at (or running) an AS."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from ..errors import ClientregError
from ..http import HttpClient, HttpSettings
from ._common import ADDRESS_POLICY, fail, out


@click.command()
@click.argument("url")
@click.option("-o", "--output", type=click.Choice(["json", "table"]), default="json")
@click.option("--ca-bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
def discover(url: str, output: str, ca_bundle: Path | None) -> None:
    """Find an AS's metadata from its issuer, or from an MCP server / protected resource URL."""
    from ..discovery import discover as run_discovery

    settings = HttpSettings(ca_bundle=ca_bundle.read_text() if ca_bundle else None, address_policy=ADDRESS_POLICY)
    try:
        with HttpClient(settings) as http:
            found = run_discovery(http, url)
    except ClientregError as exc:
        fail(exc)
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


@click.command("check-server")
@click.argument("issuer")
@click.option("--initial-access-token-file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--registration-endpoint", default=None, help="Skip discovery of the registration endpoint.")
@click.option("--ca-bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table")
def check_server(issuer: str, initial_access_token_file: Path | None, registration_endpoint: str | None,
                 ca_bundle: Path | None, output: str) -> None:
    """Register a throwaway client, measure what the AS supports, then delete it."""
    from ..checkserver import check_server as run_check

    iat = initial_access_token_file.read_text().strip() if initial_access_token_file else None
    try:
        report = run_check(issuer, initial_access_token=iat, registration_endpoint=registration_endpoint,
                           ca_bundle=ca_bundle.read_text() if ca_bundle else None,
                           address_policy=ADDRESS_POLICY)
    except ClientregError as exc:
        fail(exc)
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


@click.command("dev-server")
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
    from ..devserver import DevServerSettings, serve

    serve(DevServerSettings(host=host, port=port, db_path=db, initial_access_token=initial_access_token,
                            rotate_registration_access_token=not no_rat_rotation,
                            secret_lifetime=secret_lifetime,
                            allowed_scopes=allowed_scopes.split() if allowed_scopes else None,
                            cimd=not no_cimd, fetch_allow_loopback=fetch_allow_loopback))
