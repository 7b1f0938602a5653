"""docs/servers.md, generated from `clientreg check-server` run against every real server.

    cd tests && python -m support.matrix [--write ../docs/servers.md]

The interop suite re-measures each server and fails when the committed page no longer matches.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

from clientreg.checkserver import Report, check_server
from clientreg.devserver import DevServer, DevServerSettings

from .features import FEATURES
from .peers import PeerServer

SERVERS = ["dev", "oidc-provider", "keycloak", "hydra"]
TITLES = {"dev": "clientreg dev-server", "oidc-provider": "node oidc-provider", "keycloak": "Keycloak",
          "hydra": "Ory Hydra"}
BEGIN, END = "<!-- matrix:begin -->", "<!-- matrix:end -->"


def measure(name: str, peer: PeerServer) -> Report:
    features = FEATURES[name]
    return check_server(peer.issuer, initial_access_token=peer.initial_access_token,
                        registration_endpoint=None if features.advertises_registration_endpoint
                        else peer.registration_endpoint)


def render(reports: dict[str, Report], versions: dict[str, str]) -> str:
    names = [n for n in SERVERS if n in reports]
    features: list[str] = []
    for n in names:
        for check in reports[n].checks:
            if check.feature not in features:
                features.append(check.feature)
    head = "| feature | " + " | ".join(f"{TITLES[n]} {versions.get(n, '')}".strip() for n in names) + " |"
    rows = [head, "|---" * (len(names) + 1) + "|"]
    for feature in features:
        cells = [reports[n].result(feature) or "—" for n in names]
        rows.append(f"| {feature} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def parse(page: str) -> dict[str, dict[str, str]]:
    """server title → feature → result, from the committed page."""
    table = page.split(BEGIN, 1)[1].split(END, 1)[0].strip().splitlines()
    titles = [c.strip() for c in table[0].strip("|").split("|")][1:]
    out: dict[str, dict[str, str]] = {t: {} for t in titles}
    for line in table[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        for title, value in zip(titles, cells[1:], strict=True):
            out[title][cells[0]] = value
    return out


def column_for(page: str, name: str) -> dict[str, str]:
    for title, column in parse(page).items():
        if title.startswith(TITLES[name]):
            return column
    raise KeyError(f"docs/servers.md has no column for {TITLES[name]}")


@contextlib.contextmanager
def running(name: str) -> Iterator[PeerServer]:
    if name == "dev":
        iat = secrets.token_urlsafe(16)
        with DevServer(DevServerSettings(initial_access_token=iat, secret_lifetime=3600)) as server:
            yield PeerServer(name="dev", issuer=server.issuer, registration_endpoint=f"{server.issuer}/register",
                             token_endpoint=f"{server.issuer}/token", initial_access_token=iat,
                             log_path=Path("/dev/null"))
    elif name == "oidc-provider":
        from .oidc_provider import running_oidc_provider
        with running_oidc_provider(secret_expires_in=3600, cimd=True) as peer:
            yield peer
    elif name == "hydra":
        from .hydra import running_hydra
        with running_hydra() as peer:
            yield peer
    else:
        from .keycloak import running_keycloak
        with running_keycloak() as keycloak:
            yield keycloak.create_realm("matrix")


def versions() -> dict[str, str]:
    out: dict[str, str] = {}
    with contextlib.suppress(Exception):
        from .oidc_provider import oidc_provider_version
        out["oidc-provider"] = oidc_provider_version()
    with contextlib.suppress(Exception):
        from . import hydra
        out["hydra"] = str(getattr(hydra, "HYDRA_VERSION", ""))
    with contextlib.suppress(Exception):
        from . import keycloak
        out["keycloak"] = str(getattr(keycloak, "KEYCLOAK_VERSION", ""))
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", type=Path, default=None)
    args = parser.parse_args()
    reports = {}
    for name in SERVERS:
        with running(name) as peer:
            reports[name] = measure(name, peer)
        print(f"measured {name}", file=sys.stderr)
    table = render(reports, versions())
    if args.write:
        page = args.write.read_text()
        before, rest = page.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
        args.write.write_text(f"{before}{BEGIN}\n{table}\n{END}{after}")
    else:
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
